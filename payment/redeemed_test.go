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
// ErrChainBehind.
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
	check(start, mid, map[common.Address]*big.Int{a.Account(): tokens(8), b.Account(): tokens(2)})
	check(mid, last.Add(time.Second), map[common.Address]*big.Int{a.Account(): tokens(1)})
	check(start, last.Add(time.Second), map[common.Address]*big.Int{a.Account(): tokens(9), b.Account(): tokens(2)})
	check(last.Add(time.Second), last.Add(2*time.Second), map[common.Address]*big.Int{})
	if _, err := payer.RedeemedTo(ctx, mid, start); err == nil {
		t.Fatal("an empty period was accepted")
	}
}
