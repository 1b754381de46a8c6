package governance

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/govern"
	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/payment"
)

// refreshEvery is how often a replica reads again the status of a deal
// that is not closed; a closed deal never changes.
const refreshEvery = 2 * time.Second

// retrySettle is how long an instance waits after a failed settlement
// before it tries again.
const retrySettle = 3 * time.Second

// caseBook holds the case documents this replica has, and what it read
// of their deals from the chain. It is guarded by mu; chain reads happen
// outside it.
type caseBook struct {
	mu          sync.Mutex
	deals       map[common.Hash]map[common.Address]dealDoc
	cases       map[common.Hash]map[common.Address]caseDoc
	evidence    map[common.Hash]map[string]evidenceDoc
	ballots     map[common.Hash]map[string]ballotDoc
	settlements map[common.Hash]map[common.Address]settlementDoc
	chain       map[common.Hash]chainDeal
	attempts    map[common.Hash]time.Time
	chainID     *big.Int
	contract    common.Address
}

// chainDeal is a deal as last read from the chain (at, by the real clock).
type chainDeal struct {
	info       payment.EscrowInfo
	at         time.Time
	settled    bool
	settledTx  common.Hash
	settledBps uint16
}

func newCaseBook() *caseBook {
	return &caseBook{
		deals:       map[common.Hash]map[common.Address]dealDoc{},
		cases:       map[common.Hash]map[common.Address]caseDoc{},
		evidence:    map[common.Hash]map[string]evidenceDoc{},
		ballots:     map[common.Hash]map[string]ballotDoc{},
		settlements: map[common.Hash]map[common.Address]settlementDoc{},
		chain:       map[common.Hash]chainDeal{},
		attempts:    map[common.Hash]time.Time{},
	}
}

func put[K comparable, V any](m map[common.Hash]map[K]V, deal common.Hash, k K, v V) {
	if m[deal] == nil {
		m[deal] = map[K]V{}
	}
	m[deal][k] = v
}

// add files one checked document.
func (b *caseBook) add(id string, doc any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch m := doc.(type) {
	case *dealDoc:
		put(b.deals, m.Deal, m.Payer, *m)
	case *caseDoc:
		put(b.cases, m.Deal, m.Party, *m)
	case *evidenceDoc:
		put(b.evidence, m.Deal, id, *m)
	case *ballotDoc:
		put(b.ballots, m.Deal, id, *m)
	case *settlementDoc:
		put(b.settlements, m.Deal, m.By, *m)
	}
}

// caseDeals returns the deals someone opened a case on.
func (b *caseBook) caseDeals() []common.Hash {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]common.Hash, 0, len(b.cases))
	for d := range b.cases {
		out = append(out, d)
	}
	slices.SortFunc(out, cmpHash)
	return out
}

// allDeals returns the deals recorded or under a case.
func (b *caseBook) allDeals() []common.Hash {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []common.Hash
	for d := range b.deals {
		out = append(out, d)
	}
	for d := range b.cases {
		if b.deals[d] == nil {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, cmpHash)
	return out
}

func (b *caseBook) dealRecord(deal common.Hash, payer common.Address) (dealDoc, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.deals[deal][payer]
	return d, ok
}

// absorbCase files a document of a case collection.
func (g *Governance) absorbCase(coll, id string, raw []byte) {
	doc, err := decodeCaseDoc(g.domain, coll, id, raw)
	if err != nil {
		g.metrics.refused.WithLabelValues("stored").Inc()
		g.log.Warn("governance: ignoring an invalid stored case document", "collection", coll, "id", cut(id), "err", err)
		return
	}
	g.book.add(id, doc)
	g.pokeCases()
}

func (g *Governance) pokeCases() {
	select {
	case g.caseWake <- struct{}{}:
	default:
	}
}

// contract returns the escrow's chain and address, read once.
func (g *Governance) contract(ctx context.Context) (*big.Int, common.Address, error) {
	g.book.mu.Lock()
	chainID, addr := g.book.chainID, g.book.contract
	g.book.mu.Unlock()
	if chainID != nil {
		return chainID, addr, nil
	}
	chainID, addr, err := g.cfg.Escrow.EscrowContract(ctx)
	if err != nil {
		return nil, common.Address{}, err
	}
	g.book.mu.Lock()
	g.book.chainID, g.book.contract = chainID, addr
	g.book.mu.Unlock()
	return chainID, addr, nil
}

// dealInfo returns a deal as the chain holds it: from the book when it
// was read less than refreshEvery ago or is closed, unless fresh.
func (g *Governance) dealInfo(ctx context.Context, deal common.Hash, fresh bool) (payment.EscrowInfo, error) {
	if _, _, err := g.contract(ctx); err != nil {
		return payment.EscrowInfo{}, err
	}
	g.book.mu.Lock()
	c, ok := g.book.chain[deal]
	g.book.mu.Unlock()
	if ok && !fresh && (c.info.Status == payment.EscrowClosed || time.Since(c.at) < refreshEvery) {
		return c.info, nil
	}
	info, err := g.cfg.Escrow.EscrowState(ctx, deal)
	if err != nil {
		return payment.EscrowInfo{}, err
	}
	c = chainDeal{info: info, at: time.Now()}
	if info.Status == payment.EscrowClosed {
		tx, bps, err := g.cfg.Escrow.EscrowSettlement(ctx, deal)
		switch {
		case err == nil:
			c.settled, c.settledTx, c.settledBps = true, tx, bps
		case !errors.Is(err, payment.ErrUnknownDeal):
			// Read the status again next time rather than remember a
			// closed deal without knowing how it closed.
			c.at, c.info.Status = time.Time{}, payment.EscrowDisputed
			g.book.mu.Lock()
			g.book.chain[deal] = c
			g.book.mu.Unlock()
			return info, nil
		}
	}
	g.book.mu.Lock()
	g.book.chain[deal] = c
	g.book.mu.Unlock()
	return info, nil
}

// caseOf computes the case on a deal from the book, the deal's terms on
// the chain and the clock. A case exists once the deal is disputed (or
// was settled by a ruling) and one of its parties opened it; everything
// else is ignored, the same on every replica: openings of a deal that was
// never disputed or by others than the parties, evidence by others than
// the parties, ballots of others than the deal's arbiters or for another
// contract.
func (g *Governance) caseOf(info payment.EscrowInfo) (Case, bool) {
	party := func(a common.Address) bool { return a == info.Payer || a == info.Payee }
	window, now := g.windowParam(), g.cfg.Now()
	b := g.book
	b.mu.Lock()
	defer b.mu.Unlock()
	chain := b.chain[info.ID]
	if info.Status != payment.EscrowDisputed && (info.Status != payment.EscrowClosed || !chain.settled) {
		return Case{}, false
	}
	var opening *caseDoc
	for _, c := range b.cases[info.ID] {
		if !party(c.Party) {
			continue
		}
		if opening == nil || c.Time < opening.Time || c.Time == opening.Time && cmpAddress(c.Party, opening.Party) < 0 {
			opening = &c
		}
	}
	if opening == nil {
		return Case{}, false
	}
	opened := time.UnixMilli(int64(opening.Time))
	out := Case{Deal: dealOf(info), OpenedBy: opening.Party, Opened: opened, Window: window,
		Evidence: []Evidence{}, Ballots: []CaseBallot{}}
	for id, e := range b.evidence[info.ID] {
		if party(e.Party) {
			out.Evidence = append(out.Evidence, Evidence{ID: common.HexToHash(id), Party: e.Party,
				Time: time.UnixMilli(int64(e.Time)), Text: e.Text, Docs: e.Docs, Blobs: e.Blobs})
		}
	}
	slices.SortFunc(out.Evidence, func(x, y Evidence) int {
		if c := x.Time.Compare(y.Time); c != 0 {
			return c
		}
		return cmpHash(x.ID, y.ID)
	})
	latest := map[common.Address]CaseBallot{}
	votes := map[common.Address]govern.CaseVote{}
	for id, v := range b.ballots[info.ID] {
		if b.chainID == nil || !slices.Contains(info.Arbiters, v.Arbiter) || v.ChainID.ToInt().Cmp(b.chainID) != 0 || v.Escrow != b.contract {
			continue
		}
		cb := CaseBallot{ID: common.HexToHash(id), Arbiter: v.Arbiter, PayeeBps: v.PayeeBps,
			Time: time.UnixMilli(int64(v.Time)), Ruling: v.Ruling}
		out.Ballots = append(out.Ballots, cb)
		if l, ok := latest[v.Arbiter]; !ok || cb.Time.After(l.Time) || cb.Time.Equal(l.Time) && cmpHash(cb.ID, l.ID) > 0 {
			latest[v.Arbiter] = cb
		}
		first := cb.Time
		if prev, ok := votes[v.Arbiter]; ok && prev.First.Before(first) {
			first = prev.First
		}
		votes[v.Arbiter] = govern.CaseVote{PayeeBps: latest[v.Arbiter].PayeeBps, First: first}
	}
	out.Panel, out.Replaced = govern.CasePanel(info.Arbiters, info.PanelSize, opened, window, votes, now)
	rounds := int64(0)
	if now.After(opened) {
		rounds = int64(now.Sub(opened) / window)
	}
	out.RoundEnd = opened.Add(time.Duration(rounds+1) * window)
	for i, cb := range out.Ballots {
		out.Ballots[i].Counted = latest[cb.Arbiter].ID == cb.ID && slices.Contains(out.Panel, cb.Arbiter)
	}
	slices.SortFunc(out.Ballots, func(x, y CaseBallot) int {
		if c := x.Time.Compare(y.Time); c != 0 {
			return c
		}
		return cmpHash(x.ID, y.ID)
	})
	out.PayeeBps, out.Majority, out.Decided = govern.Majority(info.PanelSize, out.Panel, votes)
	var recorded []settlementDoc
	for _, s := range b.settlements[info.ID] {
		recorded = append(recorded, s)
	}
	slices.SortFunc(recorded, func(x, y settlementDoc) int {
		if x.Time != y.Time {
			return cmpUint(x.Time, y.Time)
		}
		return cmpAddress(x.By, y.By)
	})
	for _, s := range recorded {
		onChain := chain.settled && chain.settledTx == s.Tx
		if out.Settlement == nil || onChain && !out.Settlement.OnChain {
			out.Settlement = &Settlement{Tx: s.Tx, PayeeBps: s.PayeeBps, By: s.By, Time: time.UnixMilli(int64(s.Time)), OnChain: onChain}
		}
	}
	if chain.settled && (out.Settlement == nil || !out.Settlement.OnChain) {
		out.Settlement = &Settlement{Tx: chain.settledTx, PayeeBps: chain.settledBps, OnChain: true}
	}
	return out, true
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// runCases settles decided cases: an instance of a party or of an
// arbiter in the majority submits the majority's rulings to the escrow
// contract and records the transaction.
func (g *Governance) runCases(ctx context.Context) {
	if g.cfg.Escrow == nil {
		return
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-g.caseWake:
		}
		for _, deal := range g.book.caseDeals() {
			if ctx.Err() != nil {
				return
			}
			g.settleCase(ctx, deal)
		}
	}
}

func (g *Governance) settleCase(ctx context.Context, deal common.Hash) {
	info, err := g.dealInfo(ctx, deal, false)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Debug("governance: reading a case's deal", "deal", deal, "err", err)
		}
		return
	}
	c, ok := g.caseOf(info)
	if !ok || !c.Decided || info.Status != payment.EscrowDisputed {
		return
	}
	if g.self != info.Payer && g.self != info.Payee && !slices.Contains(c.Majority, g.self) {
		return
	}
	g.book.mu.Lock()
	last := g.book.attempts[deal]
	if time.Since(last) < retrySettle {
		g.book.mu.Unlock()
		return
	}
	g.book.attempts[deal] = time.Now()
	g.book.mu.Unlock()
	var sigs [][]byte
	for _, a := range c.Majority {
		for _, b := range c.Ballots {
			if b.Arbiter == a && b.Counted {
				sigs = append(sigs, b.Ruling)
			}
		}
	}
	tx, err := g.cfg.Escrow.Settle(ctx, deal, c.PayeeBps, sigs)
	switch {
	case err == nil:
		g.metrics.settles.WithLabelValues("settled").Inc()
	case errors.Is(err, payment.ErrDealClosed):
		g.metrics.settles.WithLabelValues("closed").Inc()
	case ctx.Err() == nil:
		g.metrics.settles.WithLabelValues("failed").Inc()
	}
	if errors.Is(err, payment.ErrDealClosed) {
		// Settled already, perhaps by this very instance before a retry:
		// record what the chain holds, if it is this ruling.
		var bps uint16
		if tx, bps, err = g.cfg.Escrow.EscrowSettlement(ctx, deal); err == nil && bps != c.PayeeBps {
			err = fmt.Errorf("settled by another ruling (%d bps)", bps)
		}
		if err == nil && c.Settlement != nil && c.Settlement.By != (common.Address{}) {
			return // recorded already
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("governance: settling a case", "deal", deal, "err", err)
		}
		return
	}
	if _, err := g.dealInfo(ctx, deal, true); err != nil && ctx.Err() == nil {
		g.log.Warn("governance: reading a settled deal", "deal", deal, "err", err)
	}
	m := &govmsg.Settlement{Deal: deal, By: g.self, PayeeBps: c.PayeeBps, Tx: tx, Time: millis(g.cfg.Now())}
	sig, err := govmsg.Sign(g.cfg.Key, m.Digest(g.domain))
	if err == nil {
		doc := settlementDoc{Deal: deal, By: g.self, PayeeBps: c.PayeeBps, Tx: tx, Time: m.Time, Sig: sig}
		err = g.cfg.Store.Collection(SettlementsCollection).Put(ctx, pairID(deal, g.self), doc)
	}
	if err != nil && ctx.Err() == nil {
		g.log.Warn("governance: recording a settlement", "deal", deal, "tx", tx, "err", err)
	}
	g.log.Info("governance: settled a case", "deal", deal, "payeeBps", c.PayeeBps, "tx", tx)
}

func isCaseCollection(coll string) bool {
	return strings.HasPrefix(coll, "_governance.") && slices.Contains(caseCollections, coll)
}
