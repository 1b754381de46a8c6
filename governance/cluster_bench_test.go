package governance_test

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/payment"
)

// BenchmarkBallotVisible: a ballot cast on one instance of three, the time
// until Result on both others counts it (p50, p99 over b.N ballots, each by
// another member).
func BenchmarkBallotVisible(b *testing.B) {
	keys := make([]*ecdsa.PrivateKey, b.N+3)
	var members []common.Address
	for i := range keys {
		keys[i], _ = crypto.GenerateKey()
		members = append(members, crypto.PubkeyToAddress(keys[i].PublicKey))
	}
	dev, err := payment.NewDevChain(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	c := dapptest.New(b, 3, dapptest.Options{
		App: dapp.Manifest{Name: "bench-visible", Members: members},
		Configure: func(i int, cfg *dapp.Config) {
			cfg.Key = keys[i]
			cfg.Payment = payment.Config{Dev: dev}
		},
	})
	c.WaitConnected()
	ctx := context.Background()
	g0 := c.Node(0).Governance()
	id, err := g0.Propose(ctx, governance.Proposal{Title: "bench", End: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	c.WaitFor("proposal everywhere", func() bool {
		for _, n := range c.Nodes() {
			if _, err := n.Governance().Result(ctx, id); err != nil {
				return false
			}
		}
		return true
	})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := g0.VoteAs(ctx, governance.KeySigner(keys[3+i]), id, governance.For(), ""); err != nil {
			b.Fatal(err)
		}
		for _, n := range c.Nodes()[1:] {
			for {
				r, _ := n.Governance().Result(ctx, id)
				if r.Voters >= i+1 {
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkClose10k: a proposal with 10,000 voters in a 5-instance
// cluster; the time from its end until every instance holds the
// certificate and the final result (CloseDelay 200 ms of it).
func BenchmarkClose10k(b *testing.B) {
	const voters = 10_000
	keys := make([]*ecdsa.PrivateKey, voters)
	members := make([]common.Address, voters)
	for i := range keys {
		keys[i], _ = crypto.GenerateKey()
		members[i] = crypto.PubkeyToAddress(keys[i].PublicKey)
	}
	dev, err := payment.NewDevChain(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	for range b.N {
		b.StopTimer()
		clk := newClock()
		c := dapptest.New(b, 5, dapptest.Options{
			App: dapp.Manifest{Name: fmt.Sprint("bench-close-", time.Now().UnixNano()), Members: members, Closers: members[:5]},
			Configure: func(i int, cfg *dapp.Config) {
				cfg.Key = keys[i]
				cfg.Payment = payment.Config{Dev: dev}
				cfg.Governance.Now = clk.Now
				cfg.Governance.CloseDelay = 200 * time.Millisecond
			},
			Timeout: 5 * time.Minute,
		})
		c.WaitConnected()
		ctx := context.Background()
		id, err := c.Node(0).Governance().Propose(ctx, governance.Proposal{Title: "big", End: clk.Now().Add(time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		c.WaitFor("proposal everywhere", func() bool {
			for _, n := range c.Nodes() {
				if _, err := n.Governance().Result(ctx, id); err != nil {
					return false
				}
			}
			return true
		})
		var wg sync.WaitGroup
		for w := range 5 {
			wg.Go(func() {
				g := c.Node(w).Governance()
				for i := w; i < voters; i += 5 {
					if err := g.VoteAs(ctx, governance.KeySigner(keys[i]), id, governance.For(), ""); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		c.WaitFor("every ballot everywhere", func() bool {
			for _, n := range c.Nodes() {
				if k, _ := n.Store().Collection(governance.BallotsCollection).Count(ctx); k != voters {
					return false
				}
			}
			return true
		})
		b.StartTimer()
		// From the end on, the test clock runs at the speed of real time.
		start := time.Now()
		clk.Advance(time.Hour)
		stop := make(chan struct{})
		go func() {
			last := time.Now()
			for {
				select {
				case <-stop:
					return
				case now := <-time.After(5 * time.Millisecond):
					clk.Advance(now.Sub(last))
					last = now
				}
			}
		}()
		for _, n := range c.Nodes() {
			if _, err := n.Governance().WaitFinal(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-to-final")
		b.StopTimer()
		close(stop)
		c.Close()
	}
}
