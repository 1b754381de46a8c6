package dapp

import (
	"context"
	"math/big"
	"sync"
	"sync/atomic"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/payment"
)

// privateFunds is what the faucet of the private development chain gives
// an instance on its first use: enough tokens to try payments with.
var privateFunds = new(big.Int).Mul(big.NewInt(1000), big.NewInt(1e18))

// privateChain is the development chain the instances of this process
// share when Config.Payment names no chain. A chain costs megabytes of
// heap and dozens of goroutines, so one serves every instance: it starts
// with the first instance that uses payments and closes when the last one
// that used it closes.
var privateChain sharedChain

type sharedChain struct {
	started atomic.Int64 // chains started, for tests

	mu     sync.Mutex
	dev    *payment.DevChain       // nil while no instance uses it
	users  int                     // acquisitions not yet released
	funded map[common.Address]bool // accounts the faucet has paid on dev
}

// acquire returns the running chain, starting it if needed, with account
// funded once per chain, and the function that gives it back.
func (s *sharedChain) acquire(ctx context.Context, account common.Address) (*payment.DevChain, func() error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		dev, err := payment.NewDevChain(ctx)
		if err != nil {
			return nil, nil, err
		}
		s.dev, s.funded = dev, make(map[common.Address]bool)
		s.started.Add(1)
	}
	if !s.funded[account] {
		if err := s.dev.Fund(ctx, account, privateFunds); err != nil {
			if s.users == 0 {
				_ = s.dev.Close()
				s.dev, s.funded = nil, nil
			}
			return nil, nil, err
		}
		s.funded[account] = true
	}
	s.users++
	var once sync.Once
	release := func() (err error) {
		once.Do(func() { err = s.release() })
		return err
	}
	return s.dev, release, nil
}

func (s *sharedChain) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users--
	if s.users > 0 {
		return nil
	}
	dev := s.dev
	s.dev, s.funded = nil, nil
	return dev.Close()
}

// running reports whether a chain runs and how many instances use it.
func (s *sharedChain) running() (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dev != nil, s.users
}

// lazyBalances is governance's view of the chain: a token-weighted count
// starts payments, anything else never does.
type lazyBalances struct{ n *Node }

func (b lazyBalances) BalanceAt(ctx context.Context, who common.Address, block uint64) (*big.Int, error) {
	p, err := b.n.StartPayments(ctx)
	if err != nil {
		return nil, err
	}
	return p.BalanceAt(ctx, who, block)
}

func (b lazyBalances) BlockNumber(ctx context.Context) (uint64, error) {
	p, err := b.n.StartPayments(ctx)
	if err != nil {
		return 0, err
	}
	return p.BlockNumber(ctx)
}

// paymentsCollector reports payments' counters, zero until payments start,
// without starting them.
type paymentsCollector struct{ n *Node }

// idlePayments stands for payments not started: its counters are zero.
var idlePayments = new(payment.Payments)

func (c paymentsCollector) Describe(ch chan<- *prometheus.Desc) {
	idlePayments.Collector().Describe(ch)
}

func (c paymentsCollector) Collect(ch chan<- prometheus.Metric) {
	c.n.pay.mu.Lock()
	p := c.n.pay.p
	c.n.pay.mu.Unlock()
	if p == nil {
		p = idlePayments
	}
	p.Collector().Collect(ch)
}
