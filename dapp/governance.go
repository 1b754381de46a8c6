package dapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/payment"
)

// genesis is the manifest's governance settings.
func (m Manifest) genesis() governance.Genesis {
	g := governance.Genesis{
		Members:      m.Members,
		Closers:      m.Closers,
		VotingPeriod: m.VotingPeriod,
		Quorum:       m.Quorum,
		ChainID:      m.ChainID,
	}
	if m.ProposalThreshold != nil {
		g.ProposalThreshold = new(big.Int).Set(m.ProposalThreshold)
	}
	if len(m.Params) > 0 {
		g.Params = make(map[string]json.RawMessage, len(m.Params))
		for k, v := range m.Params {
			if json.Valid([]byte(v)) {
				g.Params[k] = json.RawMessage(v)
			} else {
				g.Params[k], _ = json.Marshal(v)
			}
		}
	}
	return g
}

// startGovernance opens governance on the store, with a journal in the
// instance's database so that no action runs twice across restarts.
func (n *Node) startGovernance(ctx context.Context) error {
	space, err := n.db.Space("governance")
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	gc := n.cfg.Governance
	gc.Store, gc.Key, gc.AppID, gc.Genesis = n.store, n.key, n.cfg.appID, n.cfg.App.genesis()
	gc.Journal, gc.Metrics, gc.Logger = kvJournal{space}, n.cfg.Metrics, n.log
	gc.Balances = lazyBalances{n}
	if gc.Escrow == nil {
		gc.Escrow = lazyEscrow{n}
	}
	n.gov, err = governance.Open(ctx, gc)
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	n.closers = append(n.closers, ignoreClosed(n.gov.Close, governance.ErrClosed))
	return nil
}

// Governance is the DApp's governance: proposals, ballots, results,
// parameters and members.
func (n *Node) Governance() *governance.Governance { return n.gov }

// kvJournal keeps governance's journal in the instance's database, each
// record synced before it returns.
type kvJournal struct{ space *kv.Space }

const (
	journalBegun    = 'b'
	journalFinished = 'f'
)

func (j kvJournal) Begin(key string) (bool, error) {
	has, err := j.space.Has([]byte(key))
	if err != nil || has {
		return false, err
	}
	return true, j.space.Set([]byte(key), []byte{journalBegun}, true)
}

func (j kvJournal) Finish(key, msg string) error {
	return j.space.Set([]byte(key), append([]byte{journalFinished}, msg...), true)
}

func (j kvJournal) Lookup(key string) (governance.JournalEntry, bool, error) {
	v, err := j.space.Get([]byte(key))
	if errors.Is(err, kv.ErrNotFound) {
		return governance.JournalEntry{}, false, nil
	}
	if err != nil || len(v) == 0 {
		return governance.JournalEntry{}, false, err
	}
	return governance.JournalEntry{Finished: v[0] == journalFinished, Err: string(v[1:])}, true, nil
}

// lazyEscrow is governance's escrow contract: the instance's payments,
// started on first use (a case on a deal, or OpenDeal).
type lazyEscrow struct{ n *Node }

func (e lazyEscrow) escrow(ctx context.Context) (governance.Escrow, error) {
	p, err := e.n.StartPayments(ctx)
	if err != nil {
		return nil, err
	}
	return governance.PaymentsEscrow(p), nil
}

func (e lazyEscrow) EscrowContract(ctx context.Context) (*big.Int, common.Address, error) {
	p, err := e.escrow(ctx)
	if err != nil {
		return nil, common.Address{}, err
	}
	return p.EscrowContract(ctx)
}

func (e lazyEscrow) OpenEscrow(ctx context.Context, d payment.EscrowDeal) (payment.DealID, error) {
	p, err := e.escrow(ctx)
	if err != nil {
		return payment.DealID{}, err
	}
	return p.OpenEscrow(ctx, d)
}

func (e lazyEscrow) Dispute(ctx context.Context, deal payment.DealID) (common.Hash, error) {
	p, err := e.escrow(ctx)
	if err != nil {
		return common.Hash{}, err
	}
	return p.Dispute(ctx, deal)
}

func (e lazyEscrow) Settle(ctx context.Context, deal payment.DealID, payeeBps uint16, sigs [][]byte) (common.Hash, error) {
	p, err := e.escrow(ctx)
	if err != nil {
		return common.Hash{}, err
	}
	return p.Settle(ctx, deal, payeeBps, sigs)
}

func (e lazyEscrow) EscrowState(ctx context.Context, deal payment.DealID) (payment.EscrowInfo, error) {
	p, err := e.escrow(ctx)
	if err != nil {
		return payment.EscrowInfo{}, err
	}
	return p.EscrowState(ctx, deal)
}

func (e lazyEscrow) EscrowSettlement(ctx context.Context, deal payment.DealID) (common.Hash, uint16, error) {
	p, err := e.escrow(ctx)
	if err != nil {
		return common.Hash{}, 0, err
	}
	return p.EscrowSettlement(ctx, deal)
}
