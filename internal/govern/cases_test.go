package govern

import (
	"reflect"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

func TestCasePanel(t *testing.T) {
	t0 := time.UnixMilli(1_800_000_000_000)
	w := time.Minute
	a, b, c, d, e := addr(1), addr(2), addr(3), addr(4), addr(5)
	list := []common.Address{c, a, e, b, d} // a draw order
	at := func(x time.Duration) time.Time { return t0.Add(x) }
	vote := func(bps uint16, x time.Duration) CaseVote { return CaseVote{PayeeBps: bps, First: at(x)} }
	type votes = map[common.Address]CaseVote
	for name, tc := range map[string]struct {
		list     []common.Address
		k        int
		votes    votes
		now      time.Duration
		panel    []common.Address
		replaced []common.Address
	}{
		"first round: the first k": {list, 3, nil, 59 * time.Second, []common.Address{c, a, e}, nil},
		"round ends at exactly opened+window: nobody voted, all three replaced, two spares": {
			list, 3, nil, w, []common.Address{e, b, d}, []common.Address{c, a}},
		"the silent one replaced by the next": {
			list, 3, votes{c: vote(1, time.Second), e: vote(1, 30*time.Second)}, w + time.Second,
			[]common.Address{c, e, b}, []common.Address{a}},
		"a vote at the round's end is late": {
			list, 3, votes{c: vote(1, 0), a: vote(1, w), e: vote(1, 0)}, w,
			[]common.Address{c, e, b}, []common.Address{a}},
		"everyone voted: no replacement ever": {
			list, 3, votes{c: vote(1, 0), a: vote(2, 0), e: vote(3, 0)}, 100 * w,
			[]common.Address{c, a, e}, nil},
		"the replacement has a full round": {
			list, 3, votes{c: vote(1, 0), e: vote(1, 0), b: vote(1, w+59*time.Second)}, 5 * w,
			[]common.Address{c, e, b}, []common.Address{a}},
		"the replacement silent too: replaced in the second round": {
			list, 3, votes{c: vote(1, 0), e: vote(1, 0)}, 2 * w,
			[]common.Address{c, e, d}, []common.Address{a, b}},
		"list used up: the panel keeps its last members": {
			list, 3, votes{c: vote(1, 0), e: vote(1, 0)}, 50 * w,
			[]common.Address{c, e, d}, []common.Address{a, b}},
		"a vote by a replaced member comes too late": {
			list, 3, votes{c: vote(1, 0), e: vote(1, 0), a: vote(1, w+time.Second)}, w,
			[]common.Address{c, e, b}, []common.Address{a}},
		"panel of one, the first silent": {
			list, 1, votes{a: vote(1, 10*time.Second)}, w,
			[]common.Address{a}, []common.Address{c}},
		"panel of one, first two silent, third votes late in round 1 but in time for its seat": {
			list, 1, votes{e: vote(1, 2*w+time.Second)}, 3 * w,
			[]common.Address{e}, []common.Address{c, a}},
		"list as long as the panel: no replacement": {
			[]common.Address{c, a, e}, 3, nil, 10 * w, []common.Address{c, a, e}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			panel, replaced := CasePanel(tc.list, tc.k, t0, w, tc.votes, at(tc.now))
			if !reflect.DeepEqual(panel, tc.panel) || !reflect.DeepEqual(replaced, tc.replaced) {
				t.Fatalf("panel %v, replaced %v; want %v, %v", panel, replaced, tc.panel, tc.replaced)
			}
		})
	}
}

func TestMajority(t *testing.T) {
	a, b, c, d, e := addr(1), addr(2), addr(3), addr(4), addr(5)
	v := func(bps uint16) CaseVote { return CaseVote{PayeeBps: bps} }
	type votes = map[common.Address]CaseVote
	for name, tc := range map[string]struct {
		k      int
		panel  []common.Address
		votes  votes
		bps    uint16
		voters []common.Address
		ok     bool
	}{
		"no votes":                    {3, []common.Address{a, b, c}, nil, 0, nil, false},
		"one of three":                {3, []common.Address{a, b, c}, votes{a: v(10)}, 0, nil, false},
		"two of three agree":          {3, []common.Address{a, b, c}, votes{a: v(10), c: v(10), b: v(20)}, 10, []common.Address{a, c}, true},
		"three disagree":              {3, []common.Address{a, b, c}, votes{a: v(10), b: v(20), c: v(30)}, 0, nil, false},
		"off-panel votes ignored":     {3, []common.Address{a, b, c}, votes{a: v(10), d: v(10), e: v(10)}, 0, nil, false},
		"three of five":               {5, []common.Address{a, b, c, d, e}, votes{a: v(0), b: v(0), e: v(0), c: v(1)}, 0, []common.Address{a, b, e}, true},
		"two of five is not":          {5, []common.Address{a, b, c, d, e}, votes{a: v(0), b: v(0)}, 0, nil, false},
		"panel of one":                {1, []common.Address{d}, votes{d: v(9999)}, 9999, []common.Address{d}, true},
		"even k needs more than half": {4, []common.Address{a, b, c, d}, votes{a: v(5), b: v(5)}, 0, nil, false},
		"k larger than what is left":  {3, []common.Address{a, b}, votes{a: v(5), b: v(5)}, 5, []common.Address{a, b}, true},
	} {
		t.Run(name, func(t *testing.T) {
			bps, voters, ok := Majority(tc.k, tc.panel, tc.votes)
			if bps != tc.bps || ok != tc.ok || !reflect.DeepEqual(voters, tc.voters) {
				t.Fatalf("Majority = %d, %v, %v; want %d, %v, %v", bps, voters, ok, tc.bps, tc.voters, tc.ok)
			}
		})
	}
}
