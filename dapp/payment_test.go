package dapp_test

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/payment"
)

// TestNoChainMeansAPrivateChain: an instance given no chain runs payments
// on the private development chain of the process, holding tokens to try
// them with.
func TestNoChainMeansAPrivateChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := open(t, dapp.Config{App: dapp.Manifest{Name: t.Name()}})
	tokens := func(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }
	p := n.Payments()
	if p == nil || p.Account() != n.Account() {
		t.Fatal("no payments without a chain")
	}
	bal, err := p.Balance(ctx, n.Account())
	if err != nil || bal.Cmp(tokens(1000)) != 0 {
		t.Fatalf("balance %v, %v; want 1000 tokens", bal, err)
	}
	var other [20]byte
	other[19] = 1
	if _, err := p.Transfer(ctx, other, tokens(3)); err != nil {
		t.Fatal(err)
	}
	if bal, err := p.Balance(ctx, other); err != nil || bal.Cmp(tokens(3)) != 0 {
		t.Fatalf("payee balance %v, %v", bal, err)
	}
}

// TestPaymentsBetweenNodes: two instances on one development chain, the
// second reaching it through JSON-RPC over HTTP as a remote chain would
// be. One pays the other by transfer, then by metered use of a service
// through a payment channel; the provider redeems exactly what was used.
func TestPaymentsBetweenNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dev, err := payment.NewDevChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the cluster, so it runs after the nodes are closed
	// (cleanups run last-in first-out).
	t.Cleanup(func() { dev.Close() })
	url, err := dev.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	c := dapptest.New(t, 2, dapptest.Options{
		Configure: func(i int, cfg *dapp.Config) {
			if i == 0 {
				cfg.Payment.Dev = dev
			} else {
				cfg.Payment.RPCURL = url
			}
		},
	})
	c.WaitConnected()
	consumer, provider := c.Node(0), c.Node(1)
	if consumer.Payments().Account() != consumer.Account() {
		t.Fatal("payments do not use the instance key")
	}
	tokens := func(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e15)) }
	for _, n := range []*dapp.Node{consumer, provider} {
		if err := dev.Fund(ctx, n.Account(), tokens(10_000)); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := consumer.Payments().Transfer(ctx, provider.Account(), tokens(5)); err != nil {
		t.Fatal(err)
	}
	bal, err := provider.Payments().Balance(ctx, provider.Account())
	if err != nil {
		t.Fatal(err)
	}
	if want := tokens(10_005); bal.Cmp(want) != 0 {
		t.Fatalf("provider balance %v, want %v", bal, want)
	}
	if _, err := consumer.Payments().Transfer(ctx, provider.Account(), tokens(1_000_000)); !errors.Is(err, payment.ErrInsufficientFunds) {
		t.Fatalf("overdraft transfer: %v", err)
	}

	price := tokens(1)
	ch, err := consumer.Payments().OpenChannel(ctx, provider.Account(), tokens(500), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	consumer.Payments().SetAutoPayLimit(provider.Account(), tokens(200))
	m, err := provider.Payments().NewMeter(payment.MeterConfig{Price: price, Every: 10, CreditLimit: tokens(50)})
	if err != nil {
		t.Fatal(err)
	}
	for served := 0; served < 200; {
		err := m.Charge(consumer.ID(), 5)
		if errors.Is(err, payment.ErrCreditExceeded) {
			c.WaitFor("the consumer's payment", func() bool {
				return provider.Payments().Unpaid(consumer.Account()).Cmp(tokens(45)) <= 0
			})
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		served += 5
	}
	if err := m.Settle(ctx, consumer.ID()); err != nil {
		t.Fatal(err)
	}
	best, ok := provider.Payments().Best(ch.ID())
	if !ok || best.Amount.Cmp(tokens(200)) != 0 {
		t.Fatalf("best voucher %v, want %v", best.Amount, tokens(200))
	}
	if _, err := provider.Payments().Redeem(ctx, ch.ID()); err != nil {
		t.Fatal(err)
	}
	bal, err = provider.Payments().Balance(ctx, provider.Account())
	if err != nil {
		t.Fatal(err)
	}
	if want := tokens(10_205); bal.Cmp(want) != 0 {
		t.Fatalf("provider balance after redeem %v, want %v", bal, want)
	}
	// Past its auto-pay limit the consumer stops paying and is refused.
	for {
		err := m.Charge(consumer.ID(), 5)
		if errors.Is(err, payment.ErrCreditExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if provider.Payments().Unpaid(consumer.Account()).Cmp(tokens(50)) > 0 {
			t.Fatal("served past the credit limit")
		}
	}
}
