package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"go.uber.org/goleak"

	"github.com/dpaas/dpaas/payment"
)

// The test binary plays three programs: the test itself (the payee
// instance), the devchain program, and a payer instance.
const (
	roleEnv = "DPAAS_DEVCHAIN_TEST_ROLE"
	argsEnv = "DPAAS_DEVCHAIN_TEST_ARGS"
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "devchain":
		if err := run(strings.Fields(os.Getenv(argsEnv)), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "devchain:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "payer":
		if err := payer(strings.Fields(os.Getenv(argsEnv))); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		// go-ethereum's process-wide transaction sender cache, started
		// once per process by the first chain (TestFlags starts one) and
		// never stopped.
		goleak.IgnoreTopFunction("github.com/ethereum/go-ethereum/core.(*txSenderCacher).cache"),
		// goleveldb's memory-pool drainer, which lingers up to a second
		// after the in-memory chain's database closes.
		goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"),
	)
}

func tokens(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }

// payer is the second instance, in a process of its own: given only the
// chain's URL it funds itself from the faucet, sends the payee 3 tokens,
// opens a channel of 5 and prints a voucher for 2.
func payer(args []string) error {
	url, payee := args[0], common.HexToAddress(args[1])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, err := crypto.GenerateKey()
	if err != nil {
		return err
	}
	p, err := payment.Open(ctx, payment.Config{RPCURL: url, Key: key, PollInterval: 5 * time.Millisecond})
	if err != nil {
		return err
	}
	defer p.Close()
	dev, err := payment.DialDevChain(ctx, url)
	if err != nil {
		return err
	}
	defer dev.Close()
	if err := dev.Fund(ctx, p.Account(), tokens(10)); err != nil {
		return err
	}
	fmt.Println("account", p.Account().Hex())
	if _, err := p.Transfer(ctx, payee, tokens(3)); err != nil {
		return err
	}
	ch, err := p.OpenChannel(ctx, payee, tokens(5), time.Hour)
	if err != nil {
		return err
	}
	v, err := ch.Pay(tokens(2))
	if err != nil {
		return err
	}
	wire, err := v.MarshalBinary()
	if err != nil {
		return err
	}
	fmt.Println("voucher", hex.EncodeToString(wire))
	return nil
}

// child runs the test binary in role with args; its stdout lines arrive on
// the returned channel, which closes when the child closes its stdout.
func child(t *testing.T, role string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, argsEnv+"="+strings.Join(args, " "))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	return cmd, lines
}

// expect waits for a line with prefix and returns the rest of it.
func expect(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child ended before printing %q", prefix)
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return rest
			}
			if strings.HasPrefix(l, "error") {
				t.Fatalf("child: %s", l)
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %q", prefix)
		}
	}
}

// startChain starts the devchain program on dir and returns its URL.
func startChain(t *testing.T, dir string) (*exec.Cmd, <-chan string, string) {
	t.Helper()
	cmd, lines := child(t, "devchain", "-dir", dir, "-http", "127.0.0.1:0")
	url := expect(t, lines, "listening ")
	return cmd, lines, url
}

func stopChain(t *testing.T, cmd *exec.Cmd, lines <-chan string, sig os.Signal) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	err := cmd.Wait()
	if sig == os.Interrupt && err != nil {
		t.Fatalf("devchain after interrupt: %v", err)
	}
}

func open(t *testing.T, ctx context.Context, url string, key *ecdsa.PrivateKey) *payment.Payments {
	t.Helper()
	p, err := payment.Open(ctx, payment.Config{RPCURL: url, Key: key, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	return p
}

func balance(t *testing.T, ctx context.Context, p *payment.Payments, who common.Address) *big.Int {
	t.Helper()
	b, err := p.Balance(ctx, who)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTwoProcessesPayEachOther: the devchain program in one process, a
// payer instance in another and a payee instance in this one, each given
// only the chain's URL: the payer's transfer and voucher reach the payee,
// the payee pays back, and the chain, stopped and started again from its
// directory (cleanly, then killed), still holds the same contracts and
// balances.
func TestTwoProcessesPayEachOther(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	chain, chainOut, url := startChain(t, dir)
	defer func() {
		if chain.ProcessState == nil {
			_ = chain.Process.Kill()
			_ = chain.Wait()
		}
	}()

	dev, err := payment.DialDevChain(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	info := dev.Info()
	if info.ChainID.Int64() != 1337 || !info.Persistent {
		t.Fatalf("dpaas_info = %+v, want chain 1337, persistent", info)
	}
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	payee := open(t, ctx, url, key)
	if payee.Token() != info.Token || payee.ChannelsContract() != info.Channels {
		t.Fatalf("Open learned token %s channels %s, chain says %s %s", payee.Token(), payee.ChannelsContract(), info.Token, info.Channels)
	}
	if err := dev.Fund(ctx, payee.Account(), nil); err != nil { // gas only
		t.Fatal(err)
	}
	dev.Close()

	proc, lines := child(t, "payer", url, payee.Account().Hex())
	payerAcct := common.HexToAddress(expect(t, lines, "account "))
	wire, err := hex.DecodeString(expect(t, lines, "voucher "))
	if err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := proc.Wait(); err != nil {
		t.Fatalf("payer process: %v", err)
	}
	if got := balance(t, ctx, payee, payee.Account()); got.Cmp(tokens(3)) != 0 {
		t.Fatalf("payee received %v from the other process, want %v", got, tokens(3))
	}
	v, err := payment.ParseVoucher(wire)
	if err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatalf("Accept of the other process's voucher: %v", err)
	}
	if _, err := payee.Redeem(ctx, v.Channel); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if _, err := payee.Transfer(ctx, payerAcct, tokens(1)); err != nil {
		t.Fatalf("Transfer back: %v", err)
	}
	wantPayee, wantPayer := tokens(4), tokens(3) // payer: 10 - 3 - 5 (deposit) + 1
	if got := balance(t, ctx, payee, payee.Account()); got.Cmp(wantPayee) != 0 {
		t.Fatalf("payee holds %v, want %v", got, wantPayee)
	}
	if got := balance(t, ctx, payee, payerAcct); got.Cmp(wantPayer) != 0 {
		t.Fatalf("payer holds %v, want %v", got, wantPayer)
	}
	payee.Close()

	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGKILL} {
		stopChain(t, chain, chainOut, sig)
		chain, chainOut, url = startChain(t, dir)
		dev, err := payment.DialDevChain(ctx, url)
		if err != nil {
			t.Fatalf("after %v: %v", sig, err)
		}
		if again := dev.Info(); again.ChainID.Cmp(info.ChainID) != 0 || again.Token != info.Token || again.Channels != info.Channels {
			t.Fatalf("after %v the chain is %+v, was %+v", sig, again, info)
		}
		dev.Close()
		p := open(t, ctx, url, key)
		if got := balance(t, ctx, p, p.Account()); got.Cmp(wantPayee) != 0 {
			t.Fatalf("after %v the payee holds %v, want %v", sig, got, wantPayee)
		}
		if got := balance(t, ctx, p, payerAcct); got.Cmp(wantPayer) != 0 {
			t.Fatalf("after %v the payer holds %v, want %v", sig, got, wantPayer)
		}
		// And the chain carries on.
		wantPayee.Sub(wantPayee, big.NewInt(1))
		wantPayer.Add(wantPayer, big.NewInt(1))
		if _, err := p.Transfer(ctx, payerAcct, big.NewInt(1)); err != nil {
			t.Fatalf("after %v: Transfer: %v", sig, err)
		}
		p.Close()
	}
	stopChain(t, chain, chainOut, os.Interrupt)
}

// TestFlags: bad flags are refused before anything starts.
func TestFlags(t *testing.T) {
	if err := run([]string{"-nope"}, os.Stdout); err == nil {
		t.Fatal("unknown flag accepted")
	}
	if err := run([]string{"extra"}, os.Stdout); err == nil || !strings.Contains(err.Error(), "unexpected") {
		t.Fatalf("stray argument: %v", err)
	}
	if err := run([]string{"-http", "256.0.0.1:1"}, os.Stdout); err == nil {
		t.Fatal("bad address accepted")
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}
