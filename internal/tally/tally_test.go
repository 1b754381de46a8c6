package tally

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

func voter(i int) common.Address {
	var a common.Address
	a[0] = byte(i >> 8)
	a[1] = byte(i)
	a[19] = 0xaa
	return a
}

// b is a ballot of voter v with power p at time t.
func b(v int, p int64, t int64, choice ...uint32) Ballot {
	id := [32]byte{byte(v >> 8), byte(v), byte(t)}
	return Ballot{Voter: voter(v), Power: big.NewInt(p), Time: t, Choice: choice, ID: id}
}

func ints(s []*big.Int) []int64 {
	out := make([]int64, len(s))
	for i, x := range s {
		out[i] = x.Int64()
	}
	return out
}

func rules(k Kind, choices int) Rules {
	return Rules{Kind: k, Choices: choices, Start: 0, End: 100}
}

func TestCount(t *testing.T) {
	withQuorum := func(r Rules, q int64) Rules { r.Quorum = big.NewInt(q); return r }
	withThreshold := func(r Rules, th uint16) Rules { r.Threshold = th; return r }
	cases := []struct {
		name    string
		rules   Rules
		ballots []Ballot
		scores  []int64
		winner  int
		passed  bool
		voters  int
	}{
		{"basic for wins", rules(Basic, 3), []Ballot{b(1, 10, 1, For), b(2, 5, 1, Against), b(3, 100, 1, Abstain)},
			[]int64{10, 5, 100}, For, true, 3},
		{"basic tie fails", rules(Basic, 3), []Ballot{b(1, 5, 1, For), b(2, 5, 1, Against)},
			[]int64{5, 5, 0}, -1, false, 2},
		{"basic only abstain fails", rules(Basic, 3), []Ballot{b(1, 5, 1, Abstain)},
			[]int64{0, 0, 5}, -1, false, 1},
		{"basic quorum counts abstentions", withQuorum(rules(Basic, 3), 100), []Ballot{b(1, 10, 1, For), b(3, 90, 1, Abstain)},
			[]int64{10, 0, 90}, For, true, 2},
		{"basic quorum missed", withQuorum(rules(Basic, 3), 101), []Ballot{b(1, 10, 1, For), b(3, 90, 1, Abstain)},
			[]int64{10, 0, 90}, For, false, 2},
		{"basic two thirds, exactly two thirds fails", withThreshold(rules(Basic, 3), 6667), []Ballot{b(1, 20, 1, For), b(2, 10, 1, Against)},
			[]int64{20, 10, 0}, For, false, 2},
		{"basic two thirds met", withThreshold(rules(Basic, 3), 6666), []Ballot{b(1, 20, 1, For), b(2, 10, 1, Against)},
			[]int64{20, 10, 0}, For, true, 2},
		{"basic later ballot replaces", rules(Basic, 3), []Ballot{b(1, 10, 5, Against), b(1, 10, 2, For), b(2, 3, 1, For)},
			[]int64{3, 10, 0}, Against, false, 2},
		{"basic ballots outside the window ignored", rules(Basic, 3), []Ballot{b(1, 10, 100, Against), b(1, 10, 2, For), b(2, 3, -1, Against)},
			[]int64{10, 0, 0}, For, true, 1},
		{"single choice plurality", rules(SingleChoice, 3), []Ballot{b(1, 4, 1, 0), b(2, 3, 1, 1), b(3, 3, 1, 2)},
			[]int64{4, 3, 3}, 0, true, 3},
		{"single choice needs a majority when asked", withThreshold(rules(SingleChoice, 3), 5000), []Ballot{b(1, 4, 1, 0), b(2, 3, 1, 1), b(3, 3, 1, 2)},
			[]int64{4, 3, 3}, 0, false, 3},
		{"single choice tie has no winner", rules(SingleChoice, 2), []Ballot{b(1, 3, 1, 0), b(2, 3, 1, 1)},
			[]int64{3, 3}, -1, false, 2},
		{"approval gives full power to each", rules(Approval, 3), []Ballot{b(1, 4, 1, 0, 1), b(2, 3, 1, 1), b(3, 2, 1, 2, 0)},
			[]int64{6, 7, 2}, 1, true, 3},
		{"approval threshold against participation", withThreshold(rules(Approval, 3), 7800), []Ballot{b(1, 4, 1, 0, 1), b(2, 3, 1, 1), b(3, 2, 1, 2, 0)},
			[]int64{6, 7, 2}, 1, false, 3},
		{"weighted splits and rounds down", rules(Weighted, 3), []Ballot{b(1, 10, 1, 1, 1, 1), b(2, 9, 1, 2, 1, 0)},
			[]int64{9, 6, 3}, 0, true, 2},
		// Quadratic: A gives 100 to choice 0; B, C, D give 25 each to
		// choice 1: roots 10 against 3 x 5 = 15, squares 100 and 225,
		// scaled to the participation of 175.
		{"quadratic favours many small holders", rules(Quadratic, 2), []Ballot{b(1, 100, 1, 1, 0), b(2, 25, 1, 0, 1), b(3, 25, 1, 0, 1), b(4, 25, 1, 0, 1)},
			[]int64{53, 121}, 1, true, 4},
		// Ranked: the textbook runoff. 0 leads the first round with 8 of
		// 21 but 2's ballots move to 1, which then has 13.
		{"ranked runoff", rules(RankedChoice, 3), []Ballot{b(1, 8, 1, 0, 2), b(2, 7, 1, 1, 2), b(3, 6, 1, 2, 1)},
			[]int64{8, 13, 0}, 1, true, 3},
		{"ranked majority in the first round", rules(RankedChoice, 3), []Ballot{b(1, 11, 1, 0), b(2, 7, 1, 1, 0), b(3, 3, 1, 2)},
			[]int64{11, 7, 3}, 0, true, 3},
		{"ranked exhausted ballots leave the count", rules(RankedChoice, 3), []Ballot{b(1, 5, 1, 0), b(2, 4, 1, 1), b(3, 3, 1, 2)},
			// 2 eliminated (3 exhausted), then 0 has 5 of 9 running.
			[]int64{5, 4, 0}, 0, true, 3},
		{"ranked all tied has no winner", rules(RankedChoice, 2), []Ballot{b(1, 5, 1, 0), b(2, 5, 1, 1)},
			[]int64{5, 5}, -1, false, 2},
		{"ranked tied lowest eliminated together", rules(RankedChoice, 4), []Ballot{b(1, 7, 1, 0), b(2, 2, 1, 1, 3), b(3, 2, 1, 2, 3), b(4, 4, 1, 3)},
			// No majority of 15 in the first round (7, 2, 2, 4); 1 and 2 go
			// at once and their ballots move to 3, which then has 8 of 15.
			[]int64{7, 0, 0, 8}, 3, true, 4},
		{"no ballots", rules(SingleChoice, 2), nil, []int64{0, 0}, -1, false, 0},
		{"invalid choices refused", rules(SingleChoice, 2), []Ballot{b(1, 5, 1, 7), b(2, 5, 1), b(3, 0, 1, 0), b(4, 2, 1, 1)},
			[]int64{0, 2}, 1, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Count(tc.rules, tc.ballots)
			if err != nil {
				t.Fatal(err)
			}
			if got := ints(res.Scores); !reflect.DeepEqual(got, tc.scores) {
				t.Errorf("scores %v, want %v", got, tc.scores)
			}
			if res.Winner != tc.winner || res.Passed != tc.passed || res.Voters != tc.voters {
				t.Errorf("winner %d passed %v voters %d, want %d %v %d", res.Winner, res.Passed, res.Voters, tc.winner, tc.passed, tc.voters)
			}
		})
	}
}

func TestRankedRounds(t *testing.T) {
	res, err := Count(rules(RankedChoice, 3), []Ballot{b(1, 8, 1, 0, 2), b(2, 7, 1, 1, 2), b(3, 6, 1, 2, 1)})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{8, 7, 6}, {8, 13, 0}}
	var got [][]int64
	for _, r := range res.Rounds {
		got = append(got, ints(r))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rounds %v, want %v", got, want)
	}
}

func TestRefusedAndSuperseded(t *testing.T) {
	res, err := Count(rules(Basic, 3), []Ballot{
		b(1, 10, 1, For), b(1, 10, 2, Against), b(1, 10, 3, For), // two superseded
		b(2, 10, 200, For), // outside
		b(3, 10, 1, 3),     // invalid
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Superseded != 2 || res.Refused != 2 || res.Voters != 1 {
		t.Fatalf("superseded %d refused %d voters %d, want 2 2 1", res.Superseded, res.Refused, res.Voters)
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		kind    Kind
		choices int
		choice  []uint32
		want    error
	}{
		{Basic, 3, []uint32{2}, nil},
		{Basic, 3, []uint32{3}, ErrInvalidChoice},
		{Basic, 3, []uint32{0, 1}, ErrInvalidChoice},
		{SingleChoice, 4, nil, ErrInvalidChoice},
		{Approval, 4, []uint32{0, 3}, nil},
		{Approval, 4, []uint32{0, 0}, ErrInvalidChoice},
		{Approval, 2, []uint32{0, 1, 1}, ErrInvalidChoice},
		{RankedChoice, 3, []uint32{2, 0}, nil},
		{RankedChoice, 3, []uint32{2, 3}, ErrInvalidChoice},
		{Weighted, 3, []uint32{0, 0, 1}, nil},
		{Weighted, 3, []uint32{0, 0, 0}, ErrInvalidChoice},
		{Quadratic, 3, []uint32{1, 1}, ErrInvalidChoice},
	}
	for _, tc := range cases {
		r := rules(tc.kind, tc.choices)
		bl := b(1, 1, 1, tc.choice...)
		if err := Check(r, &bl); !errors.Is(err, tc.want) {
			t.Errorf("%s %v: %v, want %v", tc.kind, tc.choice, err, tc.want)
		}
	}
	bl := b(1, 1, 100, 0)
	if err := Check(rules(SingleChoice, 2), &bl); !errors.Is(err, ErrOutsideWindow) {
		t.Errorf("at the end: %v", err)
	}
	bl = b(1, 0, 1, 0)
	if err := Check(rules(SingleChoice, 2), &bl); !errors.Is(err, ErrNoPower) {
		t.Errorf("no power: %v", err)
	}
}

func TestRulesValidate(t *testing.T) {
	bad := []Rules{
		{Kind: 0, Choices: 2, End: 1},
		{Kind: 7, Choices: 2, End: 1},
		{Kind: Basic, Choices: 2, End: 1},
		{Kind: SingleChoice, Choices: 1, End: 1},
		{Kind: SingleChoice, Choices: MaxChoices + 1, End: 1},
		{Kind: SingleChoice, Choices: 2, Start: 5, End: 5},
		{Kind: SingleChoice, Choices: 2, End: 1, Threshold: 10_001},
		{Kind: SingleChoice, Choices: 2, End: 1, Quorum: big.NewInt(-1)},
	}
	for _, r := range bad {
		if _, err := Count(r, nil); !errors.Is(err, ErrInvalidRules) {
			t.Errorf("%+v: %v, want ErrInvalidRules", r, err)
		}
	}
	for k := Basic; k <= RankedChoice; k++ {
		if got, err := ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, got, err)
		}
	}
}

// randomBallots returns n ballots of v voters, some voting several times,
// some with invalid or outside ballots.
func randomBallots(rng *rand.Rand, r Rules, n, v int) []Ballot {
	out := make([]Ballot, n)
	for i := range out {
		x := Ballot{Voter: voter(rng.IntN(v)), Power: new(big.Int).Lsh(big.NewInt(rng.Int64N(1<<40)+1), uint(rng.IntN(80))),
			Time: rng.Int64N(r.End+10) - 5}
		for j := range x.ID {
			x.ID[j] = byte(rng.Uint32())
		}
		switch r.Kind {
		case Basic, SingleChoice:
			x.Choice = []uint32{uint32(rng.IntN(r.Choices))}
		case Approval, RankedChoice:
			perm := rng.Perm(r.Choices)
			for _, c := range perm[:1+rng.IntN(r.Choices)] {
				x.Choice = append(x.Choice, uint32(c))
			}
		case Weighted, Quadratic:
			x.Choice = make([]uint32, r.Choices)
			for c := range x.Choice {
				x.Choice[c] = uint32(rng.IntN(4))
			}
			x.Choice[rng.IntN(r.Choices)]++
		}
		if rng.IntN(50) == 0 {
			x.Choice = append(x.Choice, 99) // invalid
		}
		out[i] = x
	}
	return out
}

// TestOrderDoesNotMatter is the property every replica relies on: any
// order of the same ballots gives the same result.
func TestOrderDoesNotMatter(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	for k := Basic; k <= RankedChoice; k++ {
		for round := range 20 {
			choices := 3
			if k != Basic {
				choices = 2 + rng.IntN(6)
			}
			r := Rules{Kind: k, Choices: choices, Start: 0, End: 100, Threshold: uint16(rng.IntN(7000))}
			ballots := randomBallots(rng, r, 1+rng.IntN(300), 1+rng.IntN(100))
			want, err := Count(r, ballots)
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				shuffled := append([]Ballot(nil), ballots...)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				got, err := Count(r, shuffled)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("seed %d, %s round %d: a shuffled order gives %+v, want %+v", seed, k, round, got, want)
				}
			}
			checkInvariants(t, r, ballots, want)
		}
	}
}

func checkInvariants(t *testing.T, r Rules, ballots []Ballot, res Result) {
	t.Helper()
	if res.Voters+res.Superseded+res.Refused != len(ballots) {
		t.Fatalf("%s: %d counted + %d superseded + %d refused != %d ballots", r.Kind, res.Voters, res.Superseded, res.Refused, len(ballots))
	}
	sum := new(big.Int)
	for _, s := range res.Scores {
		if s.Sign() < 0 {
			t.Fatalf("%s: negative score", r.Kind)
		}
		sum.Add(sum, s)
	}
	switch r.Kind {
	case Basic, SingleChoice:
		if sum.Cmp(res.Participation) != 0 {
			t.Fatalf("%s: scores add up to %s, participation %s", r.Kind, sum, res.Participation)
		}
	case Weighted, Quadratic, RankedChoice:
		if sum.Cmp(res.Participation) > 0 {
			t.Fatalf("%s: scores add up to %s, more than the participation %s", r.Kind, sum, res.Participation)
		}
	}
	if res.Passed && (res.Winner < 0 || !res.QuorumMet) {
		t.Fatalf("%s: passed without a winner or quorum: %+v", r.Kind, res)
	}
}

// TestLatestBallotCounts: whatever a voter voted before, only their last
// ballot in the window counts, and the result equals a count of last
// ballots only.
func TestLatestBallotCounts(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 8))
	for k := Basic; k <= RankedChoice; k++ {
		r := Rules{Kind: k, Choices: 3, Start: 0, End: 100}
		ballots := randomBallots(rng, r, 400, 50)
		last := map[common.Address]Ballot{}
		for _, x := range ballots {
			if Check(r, &x) != nil {
				continue
			}
			cur, ok := last[x.Voter]
			if !ok || x.Time > cur.Time || x.Time == cur.Time && string(x.ID[:]) > string(cur.ID[:]) {
				last[x.Voter] = x
			}
		}
		var only []Ballot
		for _, x := range last {
			only = append(only, x)
		}
		all, _ := Count(r, ballots)
		once, _ := Count(r, only)
		if !reflect.DeepEqual(ints(all.Scores), ints(once.Scores)) || all.Root != once.Root || all.Passed != once.Passed {
			t.Fatalf("seed %d, %s: counting every ballot gives %v, counting the last ones %v", seed, k, ints(all.Scores), ints(once.Scores))
		}
	}
}

func TestRootDependsOnCountedBallots(t *testing.T) {
	r := rules(SingleChoice, 2)
	a, _ := Count(r, []Ballot{b(1, 1, 1, 0), b(2, 1, 1, 1)})
	c, _ := Count(r, []Ballot{b(2, 1, 1, 1), b(1, 1, 1, 0), b(3, 1, 500, 1)}) // the late one is not counted
	d, _ := Count(r, []Ballot{b(1, 1, 1, 0), b(2, 1, 2, 1)})
	if a.Root != c.Root {
		t.Fatal("same counted ballots, different roots")
	}
	if a.Root == d.Root {
		t.Fatal("different ballots, same root")
	}
}

func BenchmarkCount100k(b *testing.B) {
	for k := Basic; k <= RankedChoice; k++ {
		b.Run(k.String(), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			r := Rules{Kind: k, Choices: 3, Start: 0, End: 1 << 40}
			if k != Basic {
				r.Choices = 8
			}
			ballots := randomBallots(rng, r, 100_000, 100_000)
			for i := range ballots {
				ballots[i].Voter = voterN(i)
				ballots[i].Time = 1
				if k != Basic && k != SingleChoice && len(ballots[i].Choice) > r.Choices {
					ballots[i].Choice = ballots[i].Choice[:r.Choices]
				}
			}
			b.ResetTimer()
			for range b.N {
				res, err := Count(r, ballots)
				if err != nil {
					b.Fatal(err)
				}
				if res.Voters < 90_000 {
					b.Fatalf("only %d voters counted", res.Voters)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/tally")
		})
	}
}

func voterN(i int) common.Address {
	var a common.Address
	copy(a[:], fmt.Sprintf("%020d", i))
	return a
}

func TestSqrt(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	var tmp big.Int
	check := func(n *big.Int) {
		want := new(big.Int).Sqrt(n)
		if got := sqrt(new(big.Int).Set(n), &tmp); got.Cmp(want) != 0 {
			t.Fatalf("seed %d: sqrt(%s) = %s, want %s", seed, n, got, want)
		}
	}
	for i := range int64(2000) {
		check(big.NewInt(i))
	}
	for range 3000 {
		n := new(big.Int).Lsh(big.NewInt(rng.Int64()), uint(rng.IntN(300)))
		n.Add(n, big.NewInt(rng.Int64N(3)-1).Abs(big.NewInt(rng.Int64N(3))))
		check(n)
		sq := new(big.Int).Mul(n, n) // perfect squares and their neighbours
		check(sq)
		check(sq.Sub(sq, big.NewInt(1)))
		check(sq.Add(sq, big.NewInt(2)))
	}
}
