// Package govern decides what a DApp's governance has come to: which
// proposals are valid, their counts, which are final, and the parameters
// and members that their executed actions leave behind.
//
// Evaluate is a pure function of the genesis settings and the signed
// messages a replica holds (proposals, ballots, closings), whatever order
// they arrived in. Replicas that hold the same messages reach the same
// State; a replica that lacks some reaches the same State once it has them.
//
// # Time and membership
//
// Proposals take effect in the order of their end (then of their ID). The
// electorate of a proposal, and the closers who certify it, are the
// members after every final, passed proposal that ended at or before the
// proposal's start. So a proposal's electorate is fixed when it starts and
// never depends on later events.
//
// # Closing
//
// After a proposal ends, each closer signs the root of the ballots it
// counted (a Closing, with the list of those ballots). The proposal is
// final once more than half of its closers have signed one root: the
// certificate. Its result is then the count of exactly the certified
// ballots, so a ballot that turns up later, backdated or delayed, changes
// nothing. Should two roots ever both gather a majority (closers that
// each re-signed before seeing the other's certificate), the lower root
// is the certificate, everywhere.
package govern

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/internal/tally"
)

// Built-in action kinds.
const (
	ActionSetParam     = "set-param"
	ActionAdmitMember  = "admit-member"
	ActionRemoveMember = "remove-member"
	// ActionApproveRelease records a release of the DApp's code (its
	// Value, JSON) as approved.
	ActionApproveRelease = "approve-release"
)

// Electorates: one member, one vote; or the token balance at the
// proposal's snapshot block.
const (
	ElectorateMembers = "members"
	ElectorateToken   = "token"
)

// Errors that say why a proposal is not counted.
var (
	ErrNotMember      = errors.New("governance: proposer is not a member")
	ErrBelowThreshold = errors.New("governance: proposer holds too few tokens")
	ErrBadProposal    = errors.New("governance: invalid proposal")
	ErrNoSuchProposal = errors.New("governance: unknown proposal")
)

// Genesis holds the settings a DApp starts with.
type Genesis struct {
	Members []common.Address
	// Closers certify results; nil means the electorate of each proposal.
	Closers []common.Address
	Params  map[string]json.RawMessage
	// ProposalThreshold is, for token proposals, the least balance the
	// author must hold at the snapshot; nil means any positive balance.
	ProposalThreshold *big.Int
}

// BalanceKey names a token balance: who's, at the end of block Block.
type BalanceKey struct {
	Who   common.Address
	Block uint64
}

// Proposal is a proposal whose author's signature has been checked.
type Proposal struct {
	govmsg.Proposal
	ID common.Hash
}

// Ballot is a ballot whose voter's signature has been checked.
type Ballot struct {
	govmsg.Ballot
	ID common.Hash
}

// Delegation is a delegation whose delegator's signature has been
// checked.
type Delegation struct {
	govmsg.Delegation
	ID common.Hash
}

// Closing is a closer's signed root, with the ballots it names, the
// signature checked.
type Closing struct {
	govmsg.Closing
	Closer  common.Address
	Ballots []common.Hash // ascending; their tally.Root is Closing.Root
	Sig     []byte
}

// Input is what a replica holds.
type Input struct {
	Proposals   []Proposal
	Ballots     []Ballot
	Closings    []Closing
	Delegations []Delegation
	// Balances are the token balances learnt from the chain, for token
	// proposals; Outcome.NeedBalances says which are missing.
	Balances map[BalanceKey]*big.Int
}

// Certificate is a majority of a proposal's closers agreeing on one root.
type Certificate struct {
	Root     common.Hash
	Ballots  []common.Hash
	Closings []Closing // ordered by closer
}

// Outcome is where one proposal stands.
type Outcome struct {
	Proposal *Proposal
	// Refused says why the proposal does not count (nil if it does).
	Refused error
	Rules   tally.Rules
	// Electorate is the members at the proposal's start.
	Electorate []common.Address
	// Delegated maps each delegate to the members who delegated to it at
	// the proposal's start (each sorted).
	Delegated map[common.Address][]common.Address
	// Eligible is who may vote: the electorate and the delegates, sorted.
	Eligible []common.Address
	Closers  []common.Address
	// Ineligible counts ballots of accounts without power on the
	// proposal (not members, no balance, nobody delegated to them).
	Ineligible int
	// NeedBalances lists, for a token proposal, the accounts whose balance
	// at the snapshot this replica must learn before it can count; the
	// proposal is neither counted nor closed until then.
	NeedBalances []common.Address
	Result       tally.Result
	// Certificate is the certificate, once there is one.
	Certificate *Certificate
	// Missing counts certified ballots this replica does not hold yet;
	// the outcome is final only when none is missing.
	Missing int
	Final   bool
}

// Executed is one final, passed proposal's actions, in execution order.
type Executed struct {
	Proposal common.Hash
	Actions  []govmsg.Action
}

// State is what Evaluate concludes.
type State struct {
	Outcomes map[common.Hash]*Outcome
	// Executed lists the final, passed proposals in the order their actions
	// run.
	Executed []Executed
	Members  []common.Address // ascending
	Params   map[string]json.RawMessage
	// Releases are the approved releases' values, in order of approval.
	Releases []json.RawMessage
	// Orphans counts ballots that name no proposal this replica holds.
	Orphans int
}

// membership is one admission or removal and when it took effect.
type membership struct {
	at     uint64
	admit  bool
	member common.Address
}

// Evaluate computes the state of governance from genesis and the messages
// in in. It does not modify in.
func Evaluate(g Genesis, in Input) State {
	g.Members = Sorted(g.Members)
	if g.Closers != nil {
		g.Closers = Sorted(g.Closers)
	}
	// Membership changes in the order they take effect (append keeps it).
	st := State{Outcomes: make(map[common.Hash]*Outcome, len(in.Proposals)), Params: maps.Clone(g.Params)}
	if st.Params == nil {
		st.Params = map[string]json.RawMessage{}
	}
	ballots := map[common.Hash][]*Ballot{}
	for i := range in.Ballots {
		b := &in.Ballots[i]
		ballots[b.Proposal] = append(ballots[b.Proposal], b)
	}
	closings := map[common.Hash][]*Closing{}
	for i := range in.Closings {
		c := &in.Closings[i]
		closings[c.Proposal] = append(closings[c.Proposal], c)
	}
	delegations := slices.Clone(in.Delegations)
	slices.SortFunc(delegations, func(a, b Delegation) int {
		if a.Time != b.Time {
			return cmpUint(a.Time, b.Time)
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	order := make([]*Proposal, 0, len(in.Proposals))
	seen := map[common.Hash]bool{}
	for i := range in.Proposals {
		if p := &in.Proposals[i]; !seen[p.ID] {
			seen[p.ID] = true
			order = append(order, p)
		}
	}
	slices.SortFunc(order, func(a, b *Proposal) int {
		if a.End != b.End {
			return cmpUint(a.End, b.End)
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	var changes []membership
	for _, p := range order {
		members := membersAt(g.Members, changes, p.Start)
		o := evaluate(g, p, members, delegations, in.Balances, ballots[p.ID], closings[p.ID])
		st.Outcomes[p.ID] = o
		if !o.Final || !o.Result.Passed {
			continue
		}
		st.Executed = append(st.Executed, Executed{Proposal: p.ID, Actions: p.Actions})
		for _, a := range p.Actions {
			switch a.Kind {
			case ActionSetParam:
				st.Params[a.Name] = json.RawMessage(a.Value)
			case ActionApproveRelease:
				st.Releases = append(st.Releases, json.RawMessage(a.Value))
			case ActionAdmitMember, ActionRemoveMember:
				if addr, ok := parseAddress(a.Name); ok {
					changes = append(changes, membership{at: p.End, admit: a.Kind == ActionAdmitMember, member: addr})
				}
			}
		}
	}
	st.Members = membersAt(g.Members, changes, ^uint64(0))
	for id, bs := range ballots {
		if _, ok := st.Outcomes[id]; !ok {
			st.Orphans += len(bs)
		}
	}
	return st
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

func parseAddress(s string) (common.Address, bool) {
	if !common.IsHexAddress(s) {
		return common.Address{}, false
	}
	return common.HexToAddress(s), true
}

// membersAt returns the members at time t: genesis, then every change
// that took effect at or before t, in order.
func membersAt(genesis []common.Address, changes []membership, t uint64) []common.Address {
	if !slices.ContainsFunc(changes, func(c membership) bool { return c.at <= t }) {
		return genesis // sorted; callers do not modify it
	}
	set := map[common.Address]bool{}
	for _, m := range genesis {
		set[m] = true
	}
	for _, c := range changes {
		if c.at > t {
			continue
		}
		if c.admit {
			set[c.member] = true
		} else {
			delete(set, c.member)
		}
	}
	out := slices.Collect(maps.Keys(set))
	slices.SortFunc(out, func(a, b common.Address) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// delegatedAt returns, for each delegate, the members whose latest
// delegation at or before t names it (delegations sorted by time, then
// ID); a delegation to the zero address revokes.
// With members nil, any account may delegate (token electorates).
func delegatedAt(members []common.Address, delegations []Delegation, t uint64) map[common.Address][]common.Address {
	latest := map[common.Address]common.Address{}
	for _, d := range delegations {
		if d.Time > t {
			break
		}
		if d.Delegate == d.Delegator {
			continue
		}
		if _, ok := slices.BinarySearchFunc(members, d.Delegator, cmpAddress); members != nil && !ok {
			continue
		}
		latest[d.Delegator] = d.Delegate
	}
	out := map[common.Address][]common.Address{}
	for from, to := range latest {
		if to != (common.Address{}) {
			out[to] = append(out[to], from)
		}
	}
	for _, from := range out {
		slices.SortFunc(from, cmpAddress)
	}
	return out
}

// Rules returns the tally rules of p, or why it has none.
func Rules(p *govmsg.Proposal) (tally.Rules, error) {
	kind, err := tally.ParseKind(p.Kind)
	if err != nil {
		return tally.Rules{}, fmt.Errorf("%w: %v", ErrBadProposal, err)
	}
	r := tally.Rules{Kind: kind, Choices: len(p.Choices), Start: int64(min(p.Start, 1<<63-1)),
		End: int64(min(p.End, 1<<63-1)), Quorum: p.Quorum, Threshold: p.Threshold}
	if kind == tally.Basic {
		r.Choices = 3
		if len(p.Choices) != 0 {
			return tally.Rules{}, fmt.Errorf("%w: a basic vote names no choices (for, against, abstain)", ErrBadProposal)
		}
	}
	if p.Electorate != ElectorateMembers && p.Electorate != ElectorateToken {
		return tally.Rules{}, fmt.Errorf("%w: electorate %.40q is not supported", ErrBadProposal, p.Electorate)
	}
	if err := r.Validate(); err != nil {
		return tally.Rules{}, fmt.Errorf("%w: %v", ErrBadProposal, err)
	}
	return r, nil
}

func evaluate(g Genesis, p *Proposal, members []common.Address, delegations []Delegation, balances map[BalanceKey]*big.Int,
	ballots []*Ballot, closings []*Closing) *Outcome {
	o := &Outcome{Proposal: p, Electorate: members, Closers: g.Closers}
	if o.Closers == nil {
		o.Closers = members
	}
	r, err := Rules(&p.Proposal)
	if err != nil {
		o.Refused = err
		return o
	}
	o.Rules = r
	// base is an account's own power; ok is false while a balance it
	// depends on is unknown.
	var base func(common.Address) (*big.Int, bool)
	if p.Electorate == ElectorateToken {
		o.Delegated = delegatedAt(nil, delegations, p.Start)
		need := map[common.Address]bool{}
		base = func(a common.Address) (*big.Int, bool) {
			b, ok := balances[BalanceKey{a, p.Snapshot}]
			if !ok {
				need[a] = true
			}
			return b, ok
		}
		author, ok := base(p.Author)
		threshold := g.ProposalThreshold
		if threshold == nil || threshold.Sign() <= 0 {
			threshold = big.NewInt(1)
		}
		if ok && author.Cmp(threshold) < 0 {
			o.Refused = fmt.Errorf("%w: %s holds %s at block %d, the threshold is %s", ErrBelowThreshold, p.Author, author, p.Snapshot, threshold)
			return o
		}
		// Every voter's and delegator's balance must be known to count.
		for _, b := range ballots {
			base(b.Voter)
			for _, from := range o.Delegated[b.Voter] {
				base(from)
			}
		}
		if len(need) > 0 {
			o.NeedBalances = Sorted(slices.Collect(maps.Keys(need)))
			return o
		}
	} else {
		o.Delegated = delegatedAt(members, delegations, p.Start)
		if _, ok := slices.BinarySearchFunc(members, p.Author, cmpAddress); !ok {
			o.Refused = fmt.Errorf("%w: %s", ErrNotMember, p.Author)
			return o
		}
		one := big.NewInt(1)
		base = func(a common.Address) (*big.Int, bool) {
			if _, ok := slices.BinarySearchFunc(members, a, cmpAddress); ok {
				return one, true
			}
			return nil, true
		}
		o.Eligible = slices.Clone(members)
	}
	for to := range o.Delegated {
		o.Eligible = append(o.Eligible, to)
	}
	o.Eligible = Sorted(o.Eligible)
	o.Certificate = certify(o.Closers, closings)
	if o.Certificate == nil {
		counted, ineligible := powers(r, base, o.Delegated, ballots)
		o.Result, _ = tally.Count(r, counted)
		o.Ineligible = ineligible
		return o
	}
	// Count exactly the certified ballots: a ballot that arrives later
	// neither counts nor, by showing that a delegator voted, takes power
	// from their delegate.
	certified := make([]*Ballot, 0, len(o.Certificate.Ballots))
	for _, b := range ballots {
		if _, ok := slices.BinarySearchFunc(o.Certificate.Ballots, b.ID, cmpHash); ok {
			certified = append(certified, b)
		}
	}
	counted, ineligible := powers(r, base, o.Delegated, certified)
	o.Result, _ = tally.Count(r, counted)
	o.Ineligible = ineligible
	o.Missing = len(o.Certificate.Ballots) - len(o.Result.Counted)
	o.Final = o.Missing == 0 && o.Result.Root == o.Certificate.Root
	return o
}

// powers gives each ballot its voter's power: the voter's own (base),
// plus that of each account that delegated to the voter and cast no valid
// ballot of its own. Ballots of voters without power are dropped.
func powers(r tally.Rules, base func(common.Address) (*big.Int, bool), delegated map[common.Address][]common.Address, ballots []*Ballot) ([]tally.Ballot, int) {
	out := make([]tally.Ballot, 0, len(ballots))
	voted := map[common.Address]bool{}
	for _, b := range ballots {
		tb := tally.Ballot{Voter: b.Voter, Power: big.NewInt(1), Time: int64(min(b.Time, 1<<63-1)), Choice: b.Choice, ID: b.ID}
		if tally.Check(r, &tb) == nil {
			voted[b.Voter] = true
		}
		out = append(out, tb)
	}
	kept := out[:0]
	for _, tb := range out {
		tb.Power.SetInt64(0)
		if own, _ := base(tb.Voter); own != nil {
			tb.Power.Set(own)
		}
		for _, from := range delegated[tb.Voter] {
			if own, _ := base(from); own != nil && !voted[from] {
				tb.Power.Add(tb.Power, own)
			}
		}
		if tb.Power.Sign() <= 0 {
			continue
		}
		kept = append(kept, tb)
	}
	return kept, len(out) - len(kept)
}

func cmpAddress(a, b common.Address) int { return bytes.Compare(a[:], b[:]) }
func cmpHash(a, b common.Hash) int       { return bytes.Compare(a[:], b[:]) }

// certify returns the certificate among closings, if any: the lowest root
// that more than half of closers signed.
func certify(closers []common.Address, closings []*Closing) *Certificate {
	byRoot := map[common.Hash]map[common.Address]*Closing{}
	for _, c := range closings {
		if _, ok := slices.BinarySearchFunc(closers, c.Closer, cmpAddress); !ok {
			continue
		}
		if tally.Root(c.Ballots) != c.Root || !slices.IsSortedFunc(c.Ballots, cmpHash) {
			continue
		}
		if byRoot[c.Root] == nil {
			byRoot[c.Root] = map[common.Address]*Closing{}
		}
		byRoot[c.Root][c.Closer] = c
	}
	var best *Certificate
	for root, signed := range byRoot {
		if 2*len(signed) <= len(closers) {
			continue
		}
		if best != nil && bytes.Compare(root[:], best.Root[:]) > 0 {
			continue
		}
		cert := &Certificate{Root: root}
		for _, c := range signed {
			cert.Closings = append(cert.Closings, *c)
		}
		slices.SortFunc(cert.Closings, func(a, b Closing) int { return cmpAddress(a.Closer, b.Closer) })
		cert.Ballots = cert.Closings[0].Ballots
		best = cert
	}
	return best
}

// Sorted returns addrs sorted ascending without duplicates: addrs itself
// when it already is.
func Sorted(addrs []common.Address) []common.Address {
	strictly := true
	for i := 1; i < len(addrs) && strictly; i++ {
		strictly = cmpAddress(addrs[i-1], addrs[i]) < 0
	}
	if strictly {
		return addrs
	}
	out := slices.Clone(addrs)
	slices.SortFunc(out, cmpAddress)
	return slices.Compact(out)
}
