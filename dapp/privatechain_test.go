package dapp_test

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/payment"
)

func tokens(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }

// TestIdleInstancesStartNoChain: instances that name no chain and never
// use payments start no development chain, even with governance open and
// their payment metrics scraped.
func TestIdleInstancesStartNoChain(t *testing.T) {
	_, _, before := dapp.PrivateChain()
	regs := make([]*prometheus.Registry, 2)
	c := dapptest.New(t, 2, dapptest.Options{Configure: func(i int, cfg *dapp.Config) {
		regs[i] = prometheus.NewRegistry()
		cfg.Metrics = regs[i]
	}})
	c.WaitConnected()
	mfs, err := regs[0].Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "dpaas_payment_") {
			found = true
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 0 {
				t.Errorf("%s = %v before payments started", mf.GetName(), v)
			}
		}
	}
	if !found {
		t.Error("no dpaas_payment_ metric registered")
	}
	if running, users, started := dapp.PrivateChain(); running || users != 0 || started != before {
		t.Fatalf("private chain running %v, users %d, started %d (was %d); want none", running, users, started, before)
	}
	// Closed before any use, an instance starts none afterwards.
	n := c.Node(0)
	c.Stop(0)
	if p, err := n.StartPayments(context.Background()); !errors.Is(err, dapp.ErrClosed) || n.Payments() != nil {
		t.Fatalf("payments after close: %v, %v; want ErrClosed and nil", p, err)
	}
	if running, _, started := dapp.PrivateChain(); running || started != before {
		t.Fatalf("private chain started after close")
	}
}

// TestInstancesShareOnePrivateChain: instances of one process that name no
// chain share one private chain, started by the first that uses payments,
// so they pay each other; each is funded once; the chain outlives the
// first to close and closes with the last.
func TestInstancesShareOnePrivateChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, before := dapp.PrivateChain()
	c := dapptest.New(t, 2, dapptest.Options{})
	a, b := c.Node(0), c.Node(1)
	ap, err := a.StartPayments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if running, users, started := dapp.PrivateChain(); !running || users != 1 || started != before+1 {
		t.Fatalf("after first use: running %v, users %d, started %d (was %d)", running, users, started, before)
	}
	if _, err := ap.Transfer(ctx, b.Account(), tokens(5)); err != nil {
		t.Fatal(err)
	}
	bp := b.Payments()
	if bp == nil {
		t.Fatal("no payments")
	}
	if running, users, started := dapp.PrivateChain(); !running || users != 2 || started != before+1 {
		t.Fatalf("after second use: running %v, users %d, started %d (was %d)", running, users, started, before)
	}
	if ap.ChainID().Cmp(bp.ChainID()) != 0 {
		t.Fatalf("chains %v and %v", ap.ChainID(), bp.ChainID())
	}
	if bal, err := bp.Balance(ctx, b.Account()); err != nil || bal.Cmp(tokens(1005)) != 0 {
		t.Fatalf("payee balance %v, %v; want 1005 tokens", bal, err)
	}

	// A closes; b keeps the chain and pays a.
	c.Stop(0)
	if running, users, _ := dapp.PrivateChain(); !running || users != 1 {
		t.Fatalf("after one closed: running %v, users %d", running, users)
	}
	if _, err := bp.Transfer(ctx, a.Account(), tokens(2)); err != nil {
		t.Fatal(err)
	}
	// A restarted instance on the same chain is not funded again.
	a = c.Restart(0)
	ap = a.Payments()
	if bal, err := ap.Balance(ctx, a.Account()); err != nil || bal.Cmp(tokens(997)) != 0 {
		t.Fatalf("restarted balance %v, %v; want 997 tokens", bal, err)
	}

	c.Stop(0)
	c.Stop(1)
	if running, users, _ := dapp.PrivateChain(); running || users != 0 {
		t.Fatalf("after all closed: running %v, users %d", running, users)
	}
	if _, err := b.Payments().Balance(ctx, b.Account()); !errors.Is(err, payment.ErrClosed) {
		t.Fatalf("balance through a closed instance: %v; want payment.ErrClosed", err)
	}
	if _, err := c.Restart(0).Payments().Balance(ctx, a.Account()); err != nil {
		t.Fatal(err)
	}
	if _, _, started := dapp.PrivateChain(); started != before+2 {
		t.Fatalf("started %d chains, want 2", started-before)
	}
}

// TestTokenGovernanceStartsPayments: a token-weighted proposal is what
// starts payments for governance, on each instance that counts it, on the
// shared private chain where each instance holds its 1,000 tokens.
func TestTokenGovernanceStartsPayments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := dapptest.New(t, 2, dapptest.Options{})
	c.WaitConnected()
	if running, _, _ := dapp.PrivateChain(); running {
		t.Fatal("a chain runs before any use")
	}
	id, err := c.Node(0).Governance().Propose(ctx, governance.Proposal{Title: "by balance", Type: governance.SingleChoice,
		Choices: []string{"red", "blue"}, Electorate: governance.Tokens, End: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node(0).Governance().Vote(ctx, id, governance.Option(1)); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("node 1 counting node 0's tokens", func() bool {
		r, err := c.Node(1).Governance().Result(ctx, id)
		return err == nil && len(r.Scores) == 2 && r.Scores[1].Cmp(tokens(1000)) == 0
	})
	if running, users, _ := dapp.PrivateChain(); !running || users != 2 {
		t.Fatalf("running %v, users %d; want both instances on one chain", running, users)
	}
}

// TestConcurrentFirstUseStartsOneChain: instances using payments for the
// first time at once start one chain between them.
func TestConcurrentFirstUseStartsOneChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, before := dapp.PrivateChain()
	c := dapptest.New(t, 4, dapptest.Options{})
	errs := make(chan error, 2*c.Len())
	for _, n := range c.Nodes() {
		for range 2 {
			go func() {
				p, err := n.StartPayments(ctx)
				if err == nil {
					_, err = p.Balance(ctx, n.Account())
				}
				errs <- err
			}()
		}
	}
	for range 2 * c.Len() {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if running, users, started := dapp.PrivateChain(); !running || users != c.Len() || started != before+1 {
		t.Fatalf("running %v, users %d, started %d; want 1 chain for %d instances", running, users, started-before, c.Len())
	}
}
