package govern

import (
	"encoding/json"
	"errors"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/internal/tally"
)

func addr(i int) common.Address { return common.Address{byte(i)} }

func proposal(id byte, author int, start, end uint64, actions ...govmsg.Action) Proposal {
	return Proposal{ID: common.Hash{id}, Proposal: govmsg.Proposal{Author: addr(author), Kind: "basic",
		Electorate: ElectorateMembers, Start: start, End: end, Actions: actions}}
}

func ballot(p byte, voter int, t uint64, choice uint32) Ballot {
	return Ballot{ID: common.Hash{p, byte(voter), byte(t)}, Ballot: govmsg.Ballot{Proposal: common.Hash{p}, Voter: addr(voter), Time: t, Choice: []uint32{choice}}}
}

// closeAll has each of closers sign the count of p as Evaluate sees it.
func closeAll(g Genesis, in Input, p byte, closers ...int) []Closing {
	o := Evaluate(g, in).Outcomes[common.Hash{p}]
	var out []Closing
	for _, c := range closers {
		out = append(out, Closing{Closing: govmsg.Closing{Proposal: common.Hash{p}, Root: o.Result.Root}, Closer: addr(c), Ballots: o.Result.Counted})
	}
	return out
}

func TestFinalNeedsMajority(t *testing.T) {
	g := Genesis{Members: []common.Address{addr(1), addr(2), addr(3)}, Params: map[string]json.RawMessage{"fee": json.RawMessage("1")}}
	in := Input{
		Proposals: []Proposal{proposal(9, 1, 0, 100, govmsg.Action{Kind: ActionSetParam, Name: "fee", Value: []byte("2")})},
		Ballots:   []Ballot{ballot(9, 1, 10, tally.For), ballot(9, 2, 10, tally.For), ballot(9, 4, 10, tally.Against)},
	}
	st := Evaluate(g, in)
	o := st.Outcomes[common.Hash{9}]
	if o.Final || o.Result.Voters != 2 || !o.Result.Passed || o.Ineligible != 1 {
		t.Fatalf("before closing: final %v voters %d passed %v ineligible %d (the non-member's ballot must not count)", o.Final, o.Result.Voters, o.Result.Passed, o.Ineligible)
	}
	orphan := in
	orphan.Ballots = append(append([]Ballot(nil), in.Ballots...), ballot(7, 1, 10, tally.For))
	if n := Evaluate(g, orphan).Orphans; n != 1 {
		t.Fatalf("a ballot on no known proposal: %d orphans, want 1", n)
	}
	in.Closings = closeAll(g, in, 9, 1)
	if Evaluate(g, in).Outcomes[common.Hash{9}].Final {
		t.Fatal("final with one closer of three")
	}
	in.Closings = append(in.Closings, closeAll(g, in, 9, 4)...) // not a closer
	if Evaluate(g, in).Outcomes[common.Hash{9}].Final {
		t.Fatal("a non-closer's signature counted")
	}
	in.Closings = append(in.Closings, closeAll(g, in, 9, 2)...)
	st = Evaluate(g, in)
	if !st.Outcomes[common.Hash{9}].Final || string(st.Params["fee"]) != "2" || len(st.Executed) != 1 {
		t.Fatalf("after two closers of three: final %v fee %s executed %d", st.Outcomes[common.Hash{9}].Final, st.Params["fee"], len(st.Executed))
	}
	// A ballot that arrives after the certificate changes nothing.
	in.Ballots = append(in.Ballots, ballot(9, 3, 20, tally.Against), ballot(9, 1, 30, tally.Against))
	again := Evaluate(g, in).Outcomes[common.Hash{9}]
	if !again.Final || !again.Result.Passed || again.Result.Voters != 2 {
		t.Fatalf("late ballots moved a final result: %+v", again.Result)
	}
}

func TestCertifiedBallotsMissing(t *testing.T) {
	g := Genesis{Members: []common.Address{addr(1), addr(2)}}
	in := Input{Proposals: []Proposal{proposal(9, 1, 0, 100)}, Ballots: []Ballot{ballot(9, 1, 1, tally.For), ballot(9, 2, 1, tally.For)}}
	in.Closings = closeAll(g, in, 9, 1, 2)
	in.Ballots = in.Ballots[:1] // this replica has not received the second ballot yet
	o := Evaluate(g, in).Outcomes[common.Hash{9}]
	if o.Final || o.Missing != 1 || o.Certificate == nil {
		t.Fatalf("final %v missing %d", o.Final, o.Missing)
	}
}

func TestLowerRootWins(t *testing.T) {
	g := Genesis{Members: []common.Address{addr(1), addr(2), addr(3)}}
	in := Input{Proposals: []Proposal{proposal(9, 1, 0, 100)}, Ballots: []Ballot{ballot(9, 1, 1, tally.For)}}
	a := closeAll(g, in, 9, 1, 2, 3)
	in.Ballots = append(in.Ballots, ballot(9, 2, 1, tally.Against))
	b := closeAll(g, in, 9, 1, 2, 3)
	in.Closings = append(a, b...)
	want := a[0].Root
	if cmpHash(b[0].Root, want) < 0 {
		want = b[0].Root
	}
	if got := Evaluate(g, in).Outcomes[common.Hash{9}].Certificate.Root; got != want {
		t.Fatalf("certificate %x, want the lower root %x", got, want)
	}
	// A closing whose ballots do not make its root is ignored.
	forged := a[0]
	forged.Ballots = nil
	in.Closings = []Closing{forged, a[1]}
	if Evaluate(g, in).Outcomes[common.Hash{9}].Certificate != nil {
		t.Fatal("a closing with the wrong ballots counted")
	}
}

func TestMembershipOverTime(t *testing.T) {
	g := Genesis{Members: []common.Address{addr(1), addr(2)}}
	admit := proposal(1, 1, 0, 100, govmsg.Action{Kind: ActionAdmitMember, Name: addr(3).Hex()})
	remove := proposal(2, 1, 0, 200, govmsg.Action{Kind: ActionRemoveMember, Name: addr(2).Hex()})
	early := proposal(3, 3, 50, 300)  // by 3, who was not yet a member at 50
	later := proposal(4, 3, 150, 300) // by 3, a member since 100
	in := Input{Proposals: []Proposal{later, early, remove, admit},
		Ballots: []Ballot{ballot(1, 1, 1, tally.For), ballot(2, 1, 1, tally.For), ballot(4, 2, 160, tally.For)}}
	in.Closings = append(closeAll(g, in, 1, 1, 2), closeAll(g, in, 2, 1, 2)...)
	st := Evaluate(g, in)
	if !errors.Is(st.Outcomes[common.Hash{3}].Refused, ErrNotMember) {
		t.Fatalf("a proposal by a future member: %v", st.Outcomes[common.Hash{3}].Refused)
	}
	o := st.Outcomes[common.Hash{4}]
	if o.Refused != nil || !reflect.DeepEqual(o.Electorate, []common.Address{addr(1), addr(2), addr(3)}) || o.Result.Voters != 1 {
		t.Fatalf("electorate at 150 %v, refused %v, voters %d", o.Electorate, o.Refused, o.Result.Voters)
	}
	if !reflect.DeepEqual(st.Members, []common.Address{addr(1), addr(3)}) {
		t.Fatalf("members now %v", st.Members)
	}
	if st.Executed[0].Proposal != (common.Hash{1}) || st.Executed[1].Proposal != (common.Hash{2}) {
		t.Fatalf("execution order %v", st.Executed)
	}
}

// TestAnyOrder: the state is a function of the set of messages, not of
// their order.
func TestAnyOrder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	g := Genesis{Members: []common.Address{addr(1), addr(2), addr(3), addr(4)}, Params: map[string]json.RawMessage{}}
	var in Input
	for p := range byte(6) {
		in.Proposals = append(in.Proposals, proposal(p+1, 1+rng.IntN(4), uint64(p)*10, uint64(p)*10+5+uint64(rng.IntN(40)),
			govmsg.Action{Kind: ActionSetParam, Name: "x", Value: []byte{'0' + p}}))
		for v := 1; v <= 4; v++ {
			in.Ballots = append(in.Ballots, ballot(p+1, v, uint64(p)*10+uint64(rng.IntN(6)), uint32(rng.IntN(3))))
		}
	}
	for p := range byte(6) {
		in.Closings = append(in.Closings, closeAll(g, in, p+1, 1, 2, 3)...)
	}
	want := Evaluate(g, in)
	for range 20 {
		shuffled := Input{Proposals: append([]Proposal(nil), in.Proposals...), Ballots: append([]Ballot(nil), in.Ballots...),
			Closings: append([]Closing(nil), in.Closings...)}
		rng.Shuffle(len(shuffled.Proposals), func(i, j int) {
			shuffled.Proposals[i], shuffled.Proposals[j] = shuffled.Proposals[j], shuffled.Proposals[i]
		})
		rng.Shuffle(len(shuffled.Ballots), func(i, j int) { shuffled.Ballots[i], shuffled.Ballots[j] = shuffled.Ballots[j], shuffled.Ballots[i] })
		rng.Shuffle(len(shuffled.Closings), func(i, j int) {
			shuffled.Closings[i], shuffled.Closings[j] = shuffled.Closings[j], shuffled.Closings[i]
		})
		got := Evaluate(g, shuffled)
		if !reflect.DeepEqual(got.Params, want.Params) || !reflect.DeepEqual(got.Members, want.Members) || len(got.Executed) != len(want.Executed) {
			t.Fatalf("seed %d: another order gives params %v, want %v", seed, got.Params, want.Params)
		}
		for id, o := range want.Outcomes {
			if got.Outcomes[id].Final != o.Final || got.Outcomes[id].Result.Root != o.Result.Root {
				t.Fatalf("seed %d: proposal %x differs in another order", seed, id)
			}
		}
	}
}

func TestRulesRefused(t *testing.T) {
	for _, p := range []govmsg.Proposal{
		{Kind: "basic", Electorate: "tokens", End: 1},
		{Kind: "basic", Electorate: ElectorateMembers, Choices: []string{"a", "b"}, End: 1},
		{Kind: "plurality", Electorate: ElectorateMembers, End: 1},
		{Kind: "single-choice", Electorate: ElectorateMembers, Choices: []string{"a"}, End: 1},
		{Kind: "basic", Electorate: ElectorateMembers, Start: 5, End: 5},
		{Kind: "basic", Electorate: ElectorateMembers, End: 1, Quorum: big.NewInt(-1)},
	} {
		if _, err := Rules(&p); !errors.Is(err, ErrBadProposal) {
			t.Errorf("%+v: %v", p, err)
		}
	}
}

func delegation(from, to int, t uint64) Delegation {
	return Delegation{ID: common.Hash{byte(from), byte(to), byte(t)}, Delegation: govmsg.Delegation{Delegator: addr(from), Delegate: addr(to), Time: t}}
}

func TestDelegation(t *testing.T) {
	g := Genesis{Members: []common.Address{addr(1), addr(2), addr(3), addr(4)}}
	in := Input{
		Proposals: []Proposal{proposal(9, 1, 100, 200)},
		Delegations: []Delegation{
			delegation(2, 1, 10),  // 2 gives its vote to 1
			delegation(3, 1, 10),  // and 3 too...
			delegation(3, 0, 20),  // ...but revokes
			delegation(4, 7, 50),  // 4 gives its vote to 7, a non-member
			delegation(3, 7, 150), // after the start: ignored for this proposal
			delegation(9, 1, 10),  // 9 is no member: gives nothing
		},
		Ballots: []Ballot{ballot(9, 1, 110, tally.For), ballot(9, 3, 110, tally.Against), ballot(9, 7, 120, tally.Against)},
	}
	o := Evaluate(g, in).Outcomes[common.Hash{9}]
	if got := ints(o.Result.Scores); !reflect.DeepEqual(got, []int64{2, 2, 0}) {
		t.Fatalf("scores %v, want for 2 (1 and its delegator 2), against 2 (3, and 7 holding 4's vote)", got)
	}
	// A delegator who votes takes back their vote.
	in.Ballots = append(in.Ballots, ballot(9, 2, 130, tally.Against))
	o = Evaluate(g, in).Outcomes[common.Hash{9}]
	if got := ints(o.Result.Scores); !reflect.DeepEqual(got, []int64{1, 3, 0}) {
		t.Fatalf("scores %v after the delegator voted, want [1 3 0]", got)
	}
	// Once certified, a delegator's late ballot takes nothing back.
	in.Ballots = in.Ballots[:3]
	in.Closings = closeAll(g, in, 9, 1, 2, 3)
	in.Ballots = append(in.Ballots, ballot(9, 2, 130, tally.Against))
	o = Evaluate(g, in).Outcomes[common.Hash{9}]
	if got := ints(o.Result.Scores); !o.Final || !reflect.DeepEqual(got, []int64{2, 2, 0}) {
		t.Fatalf("final %v scores %v after a late ballot, want the certified [2 2 0]", o.Final, got)
	}
	if !slices.Contains(o.Eligible, addr(7)) || slices.Contains(o.Electorate, addr(7)) {
		t.Fatalf("the delegate 7 is eligible but no member: eligible %v", o.Eligible)
	}
}

func ints(s []*big.Int) []int64 {
	out := make([]int64, len(s))
	for i, x := range s {
		out[i] = x.Int64()
	}
	return out
}
