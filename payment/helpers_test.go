package payment

import (
	"context"
	"crypto/ecdsa"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/internal/voucher"
)

// tokens is n whole tokens (18 decimals).
func tokens(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }

func newDev(t testing.TB) *DevChain {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := NewDevChain(ctx)
	if err != nil {
		t.Fatalf("NewDevChain: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("DevChain.Close: %v", err)
		}
	})
	return d
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openFunded opens a Payments on cfg whose account the dev chain funds
// with gas and funds tokens.
func openFunded(t testing.TB, d *DevChain, cfg Config, funds *big.Int) *Payments {
	t.Helper()
	ctx := testCtx(t)
	if cfg.RPCURL == "" {
		cfg.Dev = d
	}
	if cfg.Key == nil {
		cfg.Key = newKey(t)
	}
	if err := d.Fund(ctx, crypto.PubkeyToAddress(cfg.Key.PublicKey), funds); err != nil {
		t.Fatalf("Fund: %v", err)
	}
	p, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func addrOf(k *ecdsa.PrivateKey) common.Address { return crypto.PubkeyToAddress(k.PublicKey) }

func callBytes32(ctx context.Context, p *Payments, data []byte) (common.Hash, error) {
	out, err := p.channels.CallRaw(&bind.CallOpts{Context: ctx}, data)
	if err != nil {
		return common.Hash{}, err
	}
	return common.BytesToHash(out), nil
}

// signWith signs a voucher with the codec, for tests that forge ones a
// Channel would not sign.
func signWith(key *ecdsa.PrivateKey, d voucher.Domain, channel common.Hash, amount *big.Int) (Voucher, error) {
	v, err := voucher.Sign(key, d, channel, amount)
	return Voucher(v), err
}
