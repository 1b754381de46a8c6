package governance

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/govern"
	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/internal/tally"
)

// close signs the closings that are due and returns how long until the
// next one may be, or 0 when none is pending.
func (g *Governance) close(ctx context.Context, st *govern.State) time.Duration {
	now := millis(g.cfg.Now())
	delay := uint64(g.cfg.CloseDelay.Milliseconds())
	resign := uint64(g.cfg.ResignAfter.Milliseconds())
	var next uint64
	wakeAt := func(t uint64) {
		if next == 0 || t < next {
			next = t
		}
	}
	for id, o := range st.Outcomes {
		if o.Refused != nil || o.Certificate != nil || len(o.NeedBalances) > 0 {
			continue
		}
		if _, ok := slices.BinarySearchFunc(o.Closers, g.self, cmpAddress); !ok {
			continue
		}
		due := o.Proposal.End + delay
		if now < due {
			wakeAt(due)
			continue
		}
		last, signed := g.lastClosing(id)
		if signed && last.root == o.Result.Root {
			continue // wait for the others
		}
		// Sign again at once when this replica now holds every ballot the
		// other closers counted (they will come to the same root), or after
		// ResignAfter in any case.
		if signed && now < last.at+resign && !g.coversOthers(id, o.Result.Counted) {
			wakeAt(last.at + resign)
			continue
		}
		if err := g.signClosing(ctx, id, o.Result); err != nil {
			g.log.Warn("governance: cannot sign a closing", "proposal", id, "err", err)
			wakeAt(now + delay)
			continue
		}
		wakeAt(now + resign)
	}
	if next == 0 {
		return 0
	}
	return time.Duration(next-min(next, now))*time.Millisecond + time.Millisecond
}

// coversOthers reports whether counted includes every ballot that other
// closers' closings of proposal id list.
func (g *Governance) coversOthers(id common.Hash, counted []common.Hash) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.input.closings {
		if c.Proposal != id || c.Closer == g.self {
			continue
		}
		for _, b := range c.Ballots {
			if _, ok := slices.BinarySearchFunc(counted, b, cmpHash); !ok {
				return false
			}
		}
	}
	return true
}

type signedRoot struct {
	root common.Hash
	at   uint64
}

// lastClosing returns this instance's latest closing of proposal id and
// when it was signed (for closings from before a restart: when this
// instance learnt of them).
func (g *Governance) lastClosing(id common.Hash) (signedRoot, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.signed[id]; ok {
		return s, true
	}
	for _, c := range g.input.closings {
		if c.Proposal == id && c.Closer == g.self {
			s := signedRoot{root: c.Root, at: millis(g.cfg.Now())}
			g.signed[id] = s
			return s, true
		}
	}
	return signedRoot{}, false
}

func (g *Governance) signClosing(ctx context.Context, id common.Hash, res tally.Result) error {
	c := &govmsg.Closing{Proposal: id, Root: res.Root}
	td, err := json.Marshal(c.TypedData(g.domain))
	if err != nil {
		return err
	}
	sig, err := govmsg.Sign(g.cfg.Key, c.Digest(g.domain))
	if err != nil {
		return err
	}
	ballots := res.Counted
	if ballots == nil {
		ballots = []common.Hash{}
	}
	rec := record{Typed: td, Sig: sig, Closer: g.self.Hex(), Ballots: ballots}
	docID := closingDocID(c, g.self)
	raw, _ := json.Marshal(rec)
	if _, err := decodeRecord(g.domain, ClosingsCollection, docID, raw); err != nil {
		return err
	}
	if err := g.closings.Put(ctx, docID, rec); err != nil {
		return err
	}
	g.mu.Lock()
	g.signed[id] = signedRoot{root: res.Root, at: millis(g.cfg.Now())}
	g.mu.Unlock()
	g.absorb(ClosingsCollection, docID, raw)
	g.metrics.closings.Inc()
	g.log.Info("governance: signed the closing of a proposal", "proposal", id, "root", res.Root, "ballots", len(ballots))
	return nil
}

// Certificate proves a proposal's result: more than half of its closers
// signed the root of the same ballots.
type Certificate struct {
	Proposal ID
	Root     common.Hash
	// Ballots are the IDs of the counted ballots, ascending; Root is the
	// Keccak-256 of their concatenation.
	Ballots    []common.Hash
	Signatures []ClosingSignature
}

// ClosingSignature is one closer's EIP-712 signature of the closing
// {proposal, root}.
type ClosingSignature struct {
	Closer    common.Address
	Signature []byte
}

// Verify checks c for the DApp appID under genesis g (for the domain's
// chain ID), against closers, the proposal's closers (Result.Closers):
// the ballots make the root, and more than half of closers signed it.
func (c *Certificate) Verify(appID [32]byte, g Genesis, closers []common.Address) error {
	d := domain(appID, g)
	if !slices.IsSortedFunc(c.Ballots, cmpHash) || tally.Root(c.Ballots) != c.Root {
		return fmt.Errorf("%w: the certificate's ballots do not make its root", ErrInvalid)
	}
	digest := (&govmsg.Closing{Proposal: common.Hash(c.Proposal), Root: c.Root}).Digest(d)
	valid := map[common.Address]bool{}
	for _, s := range c.Signatures {
		if !slices.Contains(closers, s.Closer) {
			continue
		}
		if err := govmsg.Verify(digest, s.Signature, s.Closer); err != nil {
			return fmt.Errorf("governance: certificate: %w", err)
		}
		valid[s.Closer] = true
	}
	if 2*len(valid) <= len(govern.Sorted(closers)) {
		return fmt.Errorf("%w: %d of %d closers signed the certificate", ErrInvalid, len(valid), len(closers))
	}
	return nil
}

// Result is where a proposal stands on this replica.
type Result struct {
	Proposal  ID
	Author    common.Address
	Title     string
	Body      string
	Type      Type
	Choices   []string
	Start     time.Time
	End       time.Time
	Quorum    *big.Int
	Threshold uint16
	Actions   []Action

	// Refused says why the proposal does not count, if it does not (its
	// author was not a member when it started, its rules are invalid...).
	Refused string
	// Scores holds each choice's score; for Basic: for, against, abstain.
	Scores []*big.Int
	// Voters is the number of counted ballots, one per voter.
	Voters int
	// Ignored counts the ballots held but not counted: cast outside the
	// window, with an invalid choice, or by an account with no power on
	// the proposal (later ballots replacing earlier ones are not counted
	// here).
	Ignored       int
	Participation *big.Int
	// Winner is the winning choice, or -1. Basic: 0 for, 1 against.
	Winner    int
	QuorumMet bool
	Passed    bool
	// Ended is set once the vote's end has passed on this replica's clock.
	Ended bool
	// Final is set once the result is certified and this replica holds
	// every certified ballot: it will not change again, anywhere.
	Final       bool
	Certificate *Certificate
	// Electorate is the members when the vote started; Delegated, the
	// members who had given their vote to each delegate; Closers, who
	// certifies the result.
	Electorate []common.Address
	Delegated  map[common.Address][]common.Address
	Closers    []common.Address
}

// Result returns where proposal id stands: the tally of the ballots held
// so far, or, once final, the certified result.
func (g *Governance) Result(ctx context.Context, id ID) (Result, error) {
	if err := g.checkOpen("result"); err != nil {
		return Result{}, err
	}
	o, ok := g.evaluate().Outcomes[common.Hash(id)]
	if !ok {
		return Result{}, fmt.Errorf("governance: result of %s: %w", id, ErrNotFound)
	}
	return g.result(o), nil
}

// Proposals returns every proposal this replica holds, the latest ending
// first.
func (g *Governance) Proposals(ctx context.Context) ([]Result, error) {
	if err := g.checkOpen("proposals"); err != nil {
		return nil, err
	}
	st := g.evaluate()
	out := make([]Result, 0, len(st.Outcomes))
	for _, o := range st.Outcomes {
		out = append(out, g.result(o))
	}
	slices.SortFunc(out, func(a, b Result) int {
		if c := b.End.Compare(a.End); c != 0 {
			return c
		}
		return cmpHash(common.Hash(a.Proposal), common.Hash(b.Proposal))
	})
	return out, nil
}

// WaitFinal waits until proposal id is final on this replica, or ctx ends.
func (g *Governance) WaitFinal(ctx context.Context, id ID) (Result, error) {
	for {
		g.mu.Lock()
		changed := g.evaluated
		g.mu.Unlock()
		res, err := g.Result(ctx, id)
		if err == nil && res.Final {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("governance: wait for %s: %w", id, ctx.Err())
		case <-g.group.Context().Done():
			return res, fmt.Errorf("governance: wait for %s: %w", id, ErrClosed)
		case <-changed:
		}
	}
}

func (g *Governance) result(o *govern.Outcome) Result {
	p := o.Proposal
	r := Result{
		Proposal: ID(p.ID), Author: p.Author, Title: p.Title, Body: p.Body, Type: Type(p.Kind),
		Choices: slices.Clone(p.Choices), Start: time.UnixMilli(int64(min(p.Start, 1<<62))),
		End: time.UnixMilli(int64(min(p.End, 1<<62))), Quorum: p.Quorum, Threshold: p.Threshold,
		Winner: -1, Ended: millis(g.cfg.Now()) >= p.End,
		Electorate: slices.Clone(o.Electorate), Closers: slices.Clone(o.Closers),
		Delegated: maps.Clone(o.Delegated),
	}
	for _, a := range p.Actions {
		r.Actions = append(r.Actions, Action{Kind: a.Kind, Name: a.Name, Value: json.RawMessage(a.Value)})
	}
	if o.Refused != nil {
		r.Refused = o.Refused.Error()
		return r
	}
	res := o.Result
	r.Scores, r.Voters, r.Participation = res.Scores, res.Voters, res.Participation
	r.Ignored = res.Refused + o.Ineligible
	r.Winner, r.QuorumMet, r.Passed, r.Final = res.Winner, res.QuorumMet, res.Passed, o.Final
	if c := o.Certificate; c != nil {
		cert := &Certificate{Proposal: ID(p.ID), Root: c.Root, Ballots: slices.Clone(c.Ballots)}
		for _, s := range c.Closings {
			cert.Signatures = append(cert.Signatures, ClosingSignature{Closer: s.Closer, Signature: slices.Clone(s.Sig)})
		}
		r.Certificate = cert
	}
	return r
}
