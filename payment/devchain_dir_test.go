package payment

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/kv/kvtest"
)

func openDevDir(t *testing.T, dir string, id *big.Int) *DevChain {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := OpenDevChain(ctx, DevChainConfig{Dir: dir, ChainID: id})
	if err != nil {
		t.Fatalf("OpenDevChain(%s): %v", dir, err)
	}
	return d
}

// TestDevChainInDirectory: a dev chain kept in a directory and reopened
// is the same chain: same chain ID, contracts, blocks, balances and
// channels, and it carries on from there.
func TestDevChainInDirectory(t *testing.T) {
	dir := t.TempDir()
	d := openDevDir(t, dir, big.NewInt(1337))
	if d.ChainID().Int64() != 1337 || !d.Info().Persistent {
		t.Fatalf("chain ID %v, info %+v", d.ChainID(), d.Info())
	}
	ctx := testCtx(t)
	payerKey, payeeKey := newKey(t), newKey(t)
	// The payer keeps its channels in a database of its own, so the same
	// payer pays on after the chain restarts.
	payerDB, err := kv.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer payerDB.Close()
	payerSpace, err := payerDB.Space("payment")
	if err != nil {
		t.Fatal(err)
	}
	payer := openFunded(t, d, Config{Key: payerKey, Space: payerSpace}, tokens(10))
	payee := openFunded(t, d, Config{Key: payeeKey}, nil)
	if _, err := payer.Transfer(ctx, payee.Account(), tokens(3)); err != nil {
		t.Fatal(err)
	}
	ch, err := payer.OpenChannel(ctx, payee.Account(), tokens(2), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	head, err := d.client.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	token, channels, escrow := d.Token(), d.Channels(), d.Escrow()
	payer.Close()
	payee.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// The chain keeps the chain ID it was created with.
	d = openDevDir(t, dir, big.NewInt(5))
	defer d.Close()
	if d.ChainID().Int64() != 1337 || d.Token() != token || d.Channels() != channels {
		t.Fatalf("reopened chain %v token %s channels %s, want 1337 %s %s", d.ChainID(), d.Token(), d.Channels(), token, channels)
	}
	if escrow == (common.Address{}) || d.Escrow() != escrow {
		t.Fatalf("reopened chain's escrow %s, want %s", d.Escrow(), escrow)
	}
	if got, err := d.client.BlockNumber(ctx); err != nil || got != head {
		t.Fatalf("reopened head %d (%v), want %d", got, err, head)
	}
	payer = openFunded(t, d, Config{Key: payerKey, Space: payerSpace}, nil)
	payee = openFunded(t, d, Config{Key: payeeKey}, nil)
	if b := balance(t, payee, payee.Account()); b.Cmp(tokens(3)) != 0 {
		t.Fatalf("payee holds %v after reopening, want %v", b, tokens(3))
	}
	if b := balance(t, payer, payer.Account()); b.Cmp(tokens(5)) != 0 {
		t.Fatalf("payer holds %v after reopening, want %v", b, tokens(5))
	}
	// The channel is still there: a voucher on it is accepted and redeemed.
	ch, ok := payer.Channel(ch.ID())
	if !ok {
		t.Fatal("payer lost its channel")
	}
	v, err := ch.Pay(tokens(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatalf("Accept on a channel opened before the restart: %v", err)
	}
	if _, err := payee.Redeem(ctx, ch.ID()); err != nil {
		t.Fatalf("Redeem after the restart: %v", err)
	}
	if b := balance(t, payee, payee.Account()); b.Cmp(tokens(4)) != 0 {
		t.Fatalf("payee holds %v after redeeming, want %v", b, tokens(4))
	}
}

// TestDevChainDirectoryChecks: a directory that holds something else is
// not taken for a dev chain, and a broken state file is reported.
func TestDevChainDirectoryChecks(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDevChain(ctx, DevChainConfig{Dir: dir}); err == nil || !strings.Contains(err.Error(), "not a dev chain directory") {
		t.Fatalf("OpenDevChain on a foreign directory = %v", err)
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, devStateFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDevChain(ctx, DevChainConfig{Dir: dir}); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("OpenDevChain with a broken state file = %v", err)
	}
	if _, err := OpenDevChain(ctx, DevChainConfig{ChainID: big.NewInt(-1)}); err == nil {
		t.Fatal("negative chain ID accepted")
	}
	closed, err := NewDevChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := closed.Fund(ctx, common.Address{0x55}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Fund after Close = %v", err)
	}
}

// BenchmarkDevChainTransfer: one token transfer, mined in its own block,
// on an in-memory dev chain and on one kept in a directory (which syncs
// the directory after every block).
func BenchmarkDevChainTransfer(b *testing.B) {
	for _, kept := range []bool{false, true} {
		name := "memory"
		if kept {
			name = "dir"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			cfg := DevChainConfig{}
			if kept {
				cfg.Dir = b.TempDir()
			}
			d, err := OpenDevChain(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			p := openFunded(b, d, Config{}, tokens(1))
			to := common.Address{0x55}
			d.markLocal(to) // no warning about an unseen account
			b.ResetTimer()
			start := kvtest.CPUTime()
			for b.Loop() {
				if _, err := p.Transfer(ctx, to, big.NewInt(1)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((kvtest.CPUTime()-start).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

// TestDevChainDirFromBeforeEscrow: a chain kept by a version without the
// Escrow contract (no "escrow" in its state file) gets one deployed when
// reopened, recorded, and usable.
func TestDevChainDirFromBeforeEscrow(t *testing.T) {
	dir := t.TempDir()
	d := openDevDir(t, dir, nil)
	token := d.Token()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, devStateFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if _, ok := st["escrow"]; !ok {
		t.Fatalf("state file %s has no escrow", raw)
	}
	delete(st, "escrow")
	if raw, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	d = openDevDir(t, dir, nil)
	escrow := d.Escrow()
	if escrow == (common.Address{}) || d.Token() != token {
		t.Fatalf("reopened: escrow %s, token %s (want %s)", escrow, d.Token(), token)
	}
	f := &escrowFixture{d: d, fund: addrOf(newKey(t)), arbiters: []*ecdsa.PrivateKey{newKey(t)}}
	f.payer = openFunded(t, d, Config{}, tokens(2))
	f.payee = openFunded(t, d, Config{}, nil)
	id := f.open(t, tokens(2), 0)
	if _, err := f.payer.Release(testCtx(t), id); err != nil {
		t.Fatalf("Release on the escrow deployed at reopening: %v", err)
	}
	f.payer.Close()
	f.payee.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openDevDir(t, dir, nil)
	defer d.Close()
	if d.Escrow() != escrow {
		t.Fatalf("escrow %s after a second reopening, want %s", d.Escrow(), escrow)
	}
}
