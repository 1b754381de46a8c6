package governance

import (
	"context"
	"math/big"
	"sync"
	"time"

	"github.com/dpaas/dpaas/internal/govern"
)

// fetchBalances starts reading, from the chain, the balances that token
// proposals wait for. Each is read once; a read that fails is tried again
// on a later round.
func (g *Governance) fetchBalances(ctx context.Context, st *govern.State) {
	if g.cfg.Balances == nil {
		return
	}
	var keys []govern.BalanceKey
	g.mu.Lock()
	for _, o := range st.Outcomes {
		for _, who := range o.NeedBalances {
			k := govern.BalanceKey{Who: who, Block: o.Proposal.Snapshot}
			if _, ok := g.input.balances[k]; ok || g.input.fetching[k] {
				continue
			}
			g.input.fetching[k] = true
			keys = append(keys, k)
		}
	}
	g.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	g.group.Go(func(ctx context.Context) {
		const workers = 8
		var wg sync.WaitGroup
		next := make(chan govern.BalanceKey)
		for range min(workers, len(keys)) {
			wg.Go(func() {
				for k := range next {
					g.fetchBalance(ctx, k)
				}
			})
		}
		for _, k := range keys {
			select {
			case next <- k:
			case <-ctx.Done():
			}
		}
		close(next)
		wg.Wait()
		g.poke()
	})
}

func (g *Governance) fetchBalance(ctx context.Context, k govern.BalanceKey) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := g.cfg.Balances.BalanceAt(ctx, k.Who, k.Block)
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.input.fetching, k)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("governance: cannot read a balance", "account", k.Who, "block", k.Block, "err", err)
		}
		return
	}
	g.input.balances[k] = new(big.Int).Set(b)
	g.input.dirty = true
}
