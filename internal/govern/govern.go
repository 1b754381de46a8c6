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
)

// ElectorateMembers is the one electorate Evaluate counts: one member,
// one vote.
const ElectorateMembers = "members"

// Errors that say why a proposal is not counted.
var (
	ErrNotMember      = errors.New("governance: proposer is not a member")
	ErrBadProposal    = errors.New("governance: invalid proposal")
	ErrNoSuchProposal = errors.New("governance: unknown proposal")
)

// Genesis holds the settings a DApp starts with.
type Genesis struct {
	Members []common.Address
	// Closers certify results; nil means the electorate of each proposal.
	Closers []common.Address
	Params  map[string]json.RawMessage
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
	Result   tally.Result
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
		o := evaluate(g, p, members, delegatedAt(members, delegations, p.Start), ballots[p.ID], closings[p.ID])
		st.Outcomes[p.ID] = o
		if !o.Final || !o.Result.Passed {
			continue
		}
		st.Executed = append(st.Executed, Executed{Proposal: p.ID, Actions: p.Actions})
		for _, a := range p.Actions {
			switch a.Kind {
			case ActionSetParam:
				st.Params[a.Name] = json.RawMessage(a.Value)
			case ActionAdmitMember, ActionRemoveMember:
				if addr, ok := parseAddress(a.Name); ok {
					changes = append(changes, membership{at: p.End, admit: a.Kind == ActionAdmitMember, member: addr})
				}
			}
		}
	}
	st.Members = membersAt(g.Members, changes, ^uint64(0))
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
func delegatedAt(members []common.Address, delegations []Delegation, t uint64) map[common.Address][]common.Address {
	latest := map[common.Address]common.Address{}
	for _, d := range delegations {
		if d.Time > t {
			break
		}
		if _, ok := slices.BinarySearchFunc(members, d.Delegator, cmpAddress); !ok || d.Delegate == d.Delegator {
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
	if p.Electorate != ElectorateMembers {
		return tally.Rules{}, fmt.Errorf("%w: electorate %.40q is not supported", ErrBadProposal, p.Electorate)
	}
	if err := r.Validate(); err != nil {
		return tally.Rules{}, fmt.Errorf("%w: %v", ErrBadProposal, err)
	}
	return r, nil
}

func evaluate(g Genesis, p *Proposal, electorate []common.Address, delegated map[common.Address][]common.Address,
	ballots []*Ballot, closings []*Closing) *Outcome {
	o := &Outcome{Proposal: p, Electorate: electorate, Delegated: delegated, Closers: g.Closers}
	o.Eligible = slices.Clone(electorate)
	for to := range delegated {
		o.Eligible = append(o.Eligible, to)
	}
	o.Eligible = Sorted(o.Eligible)
	if o.Closers == nil {
		o.Closers = electorate
	}
	r, err := Rules(&p.Proposal)
	if err != nil {
		o.Refused = err
		return o
	}
	o.Rules = r
	if _, ok := slices.BinarySearchFunc(electorate, p.Author, cmpAddress); !ok {
		o.Refused = fmt.Errorf("%w: %s", ErrNotMember, p.Author)
		return o
	}
	o.Certificate = certify(o.Closers, closings)
	if o.Certificate == nil {
		o.Result, _ = tally.Count(r, powers(r, electorate, delegated, ballots))
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
	o.Result, _ = tally.Count(r, powers(r, electorate, delegated, certified))
	o.Missing = len(o.Certificate.Ballots) - len(o.Result.Counted)
	o.Final = o.Missing == 0 && o.Result.Root == o.Certificate.Root
	return o
}

// powers gives each ballot of an eligible voter its power: one for a
// member, plus one for each member who delegated to the voter and cast no
// valid ballot of their own.
func powers(r tally.Rules, electorate []common.Address, delegated map[common.Address][]common.Address, ballots []*Ballot) []tally.Ballot {
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
		power := int64(0)
		if _, ok := slices.BinarySearchFunc(electorate, tb.Voter, cmpAddress); ok {
			power = 1
		}
		for _, from := range delegated[tb.Voter] {
			if !voted[from] {
				power++
			}
		}
		if power == 0 {
			continue
		}
		tb.Power.SetInt64(power)
		kept = append(kept, tb)
	}
	return kept
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

// Sorted returns addrs sorted ascending without duplicates.
func Sorted(addrs []common.Address) []common.Address {
	out := slices.Clone(addrs)
	slices.SortFunc(out, cmpAddress)
	return slices.Compact(out)
}
