package main

import (
	"context"
	"errors"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"go.uber.org/goleak"

	"github.com/dpaas/dpaas/payment"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-ethereum's process-wide transaction sender cache.
		goleak.IgnoreTopFunction("github.com/ethereum/go-ethereum/core.(*txSenderCacher).cache"),
		// goleveldb's memory-pool drainer, which lingers up to a second
		// after the in-memory chain's database closes.
		goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"),
	)
}

// lines is an io.Writer that keeps what the program prints.
type lines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var accountLine = regexp.MustCompile(`account (0x[0-9a-fA-F]{40}) holds`)

// TestTwoInstancesPay runs the README's two terminals: alice waits, bob
// pays her 2.5 tokens, each instance given only the shared chain's URL;
// bob's instance started again keeps its account and balance.
func TestTwoInstancesPay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	chain, err := payment.NewDevChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	url, err := chain.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	aliceDir, bobDir := t.TempDir(), t.TempDir()

	var alice lines
	aliceCtx, stopAlice := context.WithCancel(ctx)
	aliceDone := make(chan error, 1)
	go func() { aliceDone <- run(aliceCtx, []string{"-chain", url, "-dir", aliceDir}, &alice) }()
	defer func() {
		stopAlice()
		if err := <-aliceDone; err != nil {
			t.Errorf("alice: %v", err)
		}
	}()
	waitFor(t, "alice to wait for payments", func() bool { return strings.Contains(alice.String(), "waiting for payments") })
	m := accountLine.FindStringSubmatch(alice.String())
	if m == nil || !strings.Contains(alice.String(), "holds 100 tokens") {
		t.Fatalf("alice printed %q", alice.String())
	}
	aliceAcct := m[1]

	var bob lines
	if err := run(ctx, []string{"-chain", url, "-dir", bobDir, "-to", aliceAcct, "-amount", "2.5", "-wait=false"}, &bob); err != nil {
		t.Fatalf("bob: %v\n%s", err, bob.String())
	}
	if !strings.Contains(bob.String(), "paid 2.5 tokens to "+common.HexToAddress(aliceAcct).Hex()) || !strings.Contains(bob.String(), "97.5 left") {
		t.Fatalf("bob printed %q", bob.String())
	}
	bobAcct := accountLine.FindStringSubmatch(bob.String())[1]
	waitFor(t, "alice to see bob's payment", func() bool {
		return strings.Contains(alice.String(), "received 2.5 tokens from "+common.HexToAddress(bobAcct).Hex())
	})

	// Bob's instance again: same account, no faucet this time.
	bob = lines{}
	if err := run(ctx, []string{"-chain", url, "-dir", bobDir, "-wait=false"}, &bob); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(bob.String(), "faucet") || !strings.Contains(bob.String(), bobAcct+" holds 97.5 tokens") {
		t.Fatalf("bob again printed %q", bob.String())
	}
	want := new(big.Int).Mul(big.NewInt(1025), big.NewInt(1e17))
	p, err := payment.Open(ctx, payment.Config{RPCURL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got, err := p.Balance(ctx, common.HexToAddress(aliceAcct)); err != nil || got.Cmp(want) != 0 {
		t.Fatalf("alice holds %v (%v), want %v", got, err, want)
	}
}

func TestTokens(t *testing.T) {
	for in, want := range map[string]string{"1": "1", "2.5": "2.5", "0.000000000000000001": "0.000000000000000001", "100": "100"} {
		n, err := parseTokens(in)
		if err != nil || formatTokens(n) != want {
			t.Errorf("%s -> %v %v -> %s", in, n, err, formatTokens(n))
		}
	}
	for _, bad := range []string{"x", "-1", "0.0000000000000000001"} {
		if _, err := parseTokens(bad); err == nil {
			t.Errorf("parseTokens(%q) accepted", bad)
		}
	}
	ctx := context.Background()
	if err := run(ctx, []string{"-to", "0x12"}, &lines{}); err == nil {
		t.Error("run without -dir accepted")
	}
	if err := run(ctx, []string{"-dir", t.TempDir(), "-to", "0x12"}, &lines{}); err == nil || !strings.Contains(err.Error(), "not an account") {
		t.Errorf("bad -to: %v", err)
	}
	// No chain at the URL: the error says to start one.
	err := run(ctx, []string{"-dir", t.TempDir(), "-chain", "http://127.0.0.1:1"}, &lines{})
	if !errors.Is(err, payment.ErrChainUnreachable) || !strings.Contains(err.Error(), "go run ./examples/devchain") {
		t.Errorf("unreachable chain: %v", err)
	}
}
