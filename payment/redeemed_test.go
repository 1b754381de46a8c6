package payment

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// TestRedeemedTo: what Redeemed events paid each payee, summed per
// period by block timestamp; a period the chain is not past yet is
// ErrChainBehind. LastBlockBefore finds the chain as it stood at a time.
func TestRedeemedTo(t *testing.T) {
	d := newDev(t)
	ctx := testCtx(t)
	payer := openFunded(t, d, Config{}, tokens(100))
	a := openFunded(t, d, Config{}, nil)
	b := openFunded(t, d, Config{}, nil)
	redeem := func(payee *Payments, ch *Channel, amount *big.Int) {
		t.Helper()
		v, err := ch.Pay(amount)
		if err != nil {
			t.Fatal(err)
		}
		if err := payee.Accept(ctx, v); err != nil {
			t.Fatal(err)
		}
		if _, err := payee.Redeem(ctx, ch.ID()); err != nil {
			t.Fatal(err)
		}
	}
	headTime := func() time.Time {
		t.Helper()
		n, err := payer.BlockNumber(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bt, err := payer.blockTime(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return bt
	}
	chA, err := payer.OpenChannel(ctx, a.Account(), tokens(20), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chB, err := payer.OpenChannel(ctx, b.Account(), tokens(20), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	start := headTime()
	redeem(a, chA, tokens(5))
	redeem(a, chA, tokens(3)) // paid 3 more: 8 in all
	redeem(b, chB, tokens(2))
	if err := d.AdjustTime(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	mid := headTime() // an empty block, after every redemption above
	midBlock, err := payer.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := payer.LastBlockBefore(ctx, mid); err != nil || b != midBlock-1 {
		t.Fatalf("last block before %v: %d, %v; want %d", mid, b, err, midBlock-1)
	}
	if b, err := payer.LastBlockBefore(ctx, mid.Add(time.Second)); !errors.Is(err, ErrChainBehind) {
		t.Fatalf("last block before a time the chain is not past: %d, %v; want ErrChainBehind", b, err)
	}
	redeem(a, chA, tokens(1))
	last := headTime()
	if _, err := payer.RedeemedTo(ctx, mid, last.Add(time.Second)); !errors.Is(err, ErrChainBehind) {
		t.Fatalf("a period the chain is not past: %v, want ErrChainBehind", err)
	}
	if err := d.AdjustTime(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	check := func(from, to time.Time, want map[common.Address]*big.Int) {
		t.Helper()
		// Asked by every instance, the answer is the same.
		for _, p := range []*Payments{payer, a, b} {
			got, err := p.RedeemedTo(ctx, from, to)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("redeemed from %v to %v: %v, want %v", from, to, got, want)
			}
			for acc, w := range want {
				if got[acc] == nil || got[acc].Cmp(w) != 0 {
					t.Fatalf("redeemed from %v to %v: %s got %v, want %v", from, to, acc, got[acc], w)
				}
			}
		}
	}
	if b, err := payer.LastBlockBefore(ctx, mid.Add(time.Second)); err != nil || b != midBlock {
		t.Fatalf("last block before %v: %d, %v; want %d", mid.Add(time.Second), b, err, midBlock)
	}
	check(start, mid, map[common.Address]*big.Int{a.Account(): tokens(8), b.Account(): tokens(2)})
	check(mid, last.Add(time.Second), map[common.Address]*big.Int{a.Account(): tokens(1)})
	check(start, last.Add(time.Second), map[common.Address]*big.Int{a.Account(): tokens(9), b.Account(): tokens(2)})
	check(last.Add(time.Second), last.Add(2*time.Second), map[common.Address]*big.Int{})
	if _, err := payer.RedeemedTo(ctx, mid, start); err == nil {
		t.Fatal("an empty period was accepted")
	}
}

// TestFundStateAt: a fund's state at an earlier block is what it was
// then, not now.
func TestFundStateAt(t *testing.T) {
	f := newFundFixture(t, 3)
	ctx := testCtx(t)
	before, err := f.stranger.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dep, err := f.depositor.OpenFund(ctx, f.fund.Address())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dep.Deposit(ctx, tokens(5)); err != nil {
		t.Fatal(err)
	}
	then, err := f.fund.StateAt(ctx, before)
	if err != nil {
		t.Fatal(err)
	}
	now, err := f.fund.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if then.Balance.Cmp(tokens(25)) != 0 || now.Balance.Cmp(tokens(30)) != 0 {
		t.Fatalf("balance then %v, now %v; want %v and %v", then.Balance, now.Balance, tokens(25), tokens(30))
	}
	if len(then.Committee) != 3 || then.Budget.Cmp(tokens(10)) != 0 {
		t.Fatalf("state then %+v", then)
	}
}
