// Package tally counts the ballots of a governance proposal.
//
// Count is a pure function of a proposal's rules and a set of ballots: it
// reads no clock and keeps no state, so every replica that holds the same
// ballots, received in any order, computes the same Result, down to the
// last wei of voting power. All arithmetic is on integers (math/big);
// nothing is rounded differently on another machine.
//
// # Ballots that count
//
// A ballot counts when its time lies in the window [Start, End), its
// choice is valid for the kind of vote (Check), and it is its voter's
// latest: of one voter's ballots the one with the greatest Time counts,
// and of two with the same Time the one with the greater ID. So a voter
// may change their mind until the end, and the order in which ballots
// arrive never matters.
//
// # Kinds of vote
//
//   - Basic: one choice of For (0), Against (1), Abstain (2). Passed when
//     For holds more than Threshold of For+Against (default: more than
//     half). Abstentions count toward the quorum only.
//   - SingleChoice: one choice; its score is the voter's power.
//   - Approval: any set of distinct choices; each gets the voter's full
//     power.
//   - Weighted: one weight per choice; the voter's power is split in
//     proportion, each part rounded down.
//   - Quadratic: weights as in Weighted; a choice's score is the square of
//     the sum of the square roots of the parts voters gave it, scaled so
//     the scores add up to the participating power. Many small holders
//     outweigh one large one.
//   - RankedChoice: distinct choices in order of preference (not all need
//     be ranked); instant runoff. Each round counts every ballot for its
//     highest-ranked choice still running; a choice with more than half
//     of the power still running wins; otherwise every choice tied for the
//     lowest score is eliminated at once. If all choices left are tied,
//     there is no winner.
//
// For every kind but Basic, the winner is the single choice with the top
// score (a tie means no winner), and the proposal passes when the winner's
// score exceeds Threshold of the participating power (RankedChoice: of the
// power still running in the last round); Threshold 0 means any unique
// top choice passes. Every kind needs Quorum: the participating power, the
// sum of the counted ballots' power, abstentions included, must reach it.
package tally

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"golang.org/x/crypto/sha3"
)

// Kind is a kind of vote.
type Kind uint8

// The kinds of vote.
const (
	Basic Kind = 1 + iota
	SingleChoice
	Approval
	Weighted
	Quadratic
	RankedChoice
)

// Basic's choices.
const (
	For     = 0
	Against = 1
	Abstain = 2
)

// MaxChoices bounds the choices of a proposal.
const MaxChoices = 256

// MaxBasisPoints is a share of 100%.
const MaxBasisPoints = 10_000

var kindNames = [...]string{Basic: "basic", SingleChoice: "single-choice", Approval: "approval",
	Weighted: "weighted", Quadratic: "quadratic", RankedChoice: "ranked-choice"}

func (k Kind) String() string {
	if k >= Basic && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ParseKind returns the Kind named s (as String writes it).
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if name != "" && name == s {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown kind of vote %.40q", ErrInvalidRules, s)
}

// Errors returned by Check and Rules.Validate.
var (
	ErrInvalidRules  = errors.New("governance: invalid voting rules")
	ErrInvalidChoice = errors.New("governance: invalid choice")
	ErrOutsideWindow = errors.New("governance: ballot outside the voting window")
	ErrNoPower       = errors.New("governance: ballot without voting power")
)

// Rules are what a proposal fixes about its count.
type Rules struct {
	Kind Kind
	// Choices is the number of choices, at most MaxChoices; Basic has 3.
	Choices int
	// Start and End bound the ballots' Time: Start <= Time < End. Any
	// unit will do, as long as ballots use the same one.
	Start, End int64
	// Quorum is the least participating power for the proposal to pass;
	// nil means none.
	Quorum *big.Int
	// Threshold, in basis points, is the share the winner must exceed.
	// Basic: of For+Against, 0 meaning 5,000 (a majority). Other kinds:
	// of the participating power, 0 meaning a unique top choice passes.
	Threshold uint16
}

// Validate reports whether r can be counted.
func (r Rules) Validate() error {
	switch {
	case r.Kind < Basic || r.Kind > RankedChoice:
		return fmt.Errorf("%w: %s", ErrInvalidRules, r.Kind)
	case r.Kind == Basic && r.Choices != 3:
		return fmt.Errorf("%w: a basic vote has 3 choices (for, against, abstain), not %d", ErrInvalidRules, r.Choices)
	case r.Choices < 2 || r.Choices > MaxChoices:
		return fmt.Errorf("%w: %d choices, want 2 to %d", ErrInvalidRules, r.Choices, MaxChoices)
	case r.End <= r.Start:
		return fmt.Errorf("%w: the vote ends (%d) before it starts (%d)", ErrInvalidRules, r.End, r.Start)
	case r.Threshold > MaxBasisPoints:
		return fmt.Errorf("%w: threshold %d basis points is over %d", ErrInvalidRules, r.Threshold, MaxBasisPoints)
	case r.Quorum != nil && r.Quorum.Sign() < 0:
		return fmt.Errorf("%w: negative quorum", ErrInvalidRules)
	}
	return nil
}

// Ballot is one voter's vote, as the tally sees it: who, with what power
// (resolved by the proposal's electorate), when, and which choice.
type Ballot struct {
	Voter common.Address
	// Power is the voter's power; nil counts as none.
	Power *big.Int
	// Time orders a voter's ballots; the latest counts.
	Time int64
	// Choice, by kind: Basic and SingleChoice, one choice index; Approval,
	// distinct indices; RankedChoice, distinct indices, most preferred
	// first; Weighted and Quadratic, one weight per choice (Choices
	// entries, not all zero).
	Choice []uint32
	// ID names the ballot (its hash); it breaks ties between two ballots
	// of one voter with the same Time, and makes up the ballot set's Root.
	ID [32]byte
}

// Check reports whether b's choice is valid under r, and whether it was
// cast inside the window and with some power.
func Check(r Rules, b *Ballot) error {
	if b.Time < r.Start || b.Time >= r.End {
		return fmt.Errorf("%w: at %d, the window is [%d, %d)", ErrOutsideWindow, b.Time, r.Start, r.End)
	}
	if b.Power == nil || b.Power.Sign() <= 0 {
		return ErrNoPower
	}
	return checkChoice(r, b.Choice)
}

func checkChoice(r Rules, c []uint32) error {
	n := uint32(r.Choices)
	switch r.Kind {
	case Basic, SingleChoice:
		if len(c) != 1 || c[0] >= n {
			return fmt.Errorf("%w: a %s vote takes one choice below %d", ErrInvalidChoice, r.Kind, n)
		}
	case Approval, RankedChoice:
		if len(c) == 0 || len(c) > int(n) {
			return fmt.Errorf("%w: a %s vote takes 1 to %d choices, not %d", ErrInvalidChoice, r.Kind, n, len(c))
		}
		var seen [MaxChoices]bool
		for _, x := range c {
			if x >= n || seen[x] {
				return fmt.Errorf("%w: choice %d is out of range or repeated", ErrInvalidChoice, x)
			}
			seen[x] = true
		}
	case Weighted, Quadratic:
		if len(c) != int(n) {
			return fmt.Errorf("%w: a %s vote takes %d weights, not %d", ErrInvalidChoice, r.Kind, n, len(c))
		}
		if !slices.ContainsFunc(c, func(w uint32) bool { return w != 0 }) {
			return fmt.Errorf("%w: every weight is zero", ErrInvalidChoice)
		}
	default:
		return fmt.Errorf("%w: %s", ErrInvalidRules, r.Kind)
	}
	return nil
}

// Result is a proposal's count.
type Result struct {
	// Scores holds each choice's score (RankedChoice: in the last round).
	Scores []*big.Int
	// Rounds holds, for RankedChoice, every round's scores, the first
	// preferences first; an eliminated choice scores zero from the round
	// after its elimination.
	Rounds [][]*big.Int
	// Participation is the sum of the counted ballots' power.
	Participation *big.Int
	// Voters is the number of counted ballots, one per voter.
	Voters int
	// Superseded counts ballots replaced by a later one of the same voter;
	// Refused those outside the window, without power or with an invalid
	// choice.
	Superseded, Refused int
	// Winner is the winning choice, or -1 when there is none (no ballots,
	// or a tie at the top). Basic: For or Against.
	Winner    int
	QuorumMet bool
	Passed    bool
	// Counted lists the counted ballots' IDs in ascending order.
	Counted []common.Hash
	// Root commits to the counted ballots: the Keccak-256 of Counted.
	// Replicas that hold the same counted ballots have the same Root.
	Root common.Hash
}

// Count counts ballots under r. It does not modify ballots.
func Count(r Rules, ballots []Ballot) (Result, error) {
	if err := r.Validate(); err != nil {
		return Result{}, err
	}
	res := Result{Winner: -1, Participation: new(big.Int)}
	counted := latest(r, ballots, &res)
	res.Voters = len(counted)
	for _, b := range counted {
		res.Participation.Add(res.Participation, b.Power)
	}
	res.Counted, res.Root = root(counted)
	switch r.Kind {
	case Basic, SingleChoice, Approval:
		res.Scores = plurality(r, counted)
	case Weighted:
		res.Scores = weighted(r, counted)
	case Quadratic:
		res.Scores = quadratic(r, counted, res.Participation)
	case RankedChoice:
		res.Rounds = runoff(r, counted)
		res.Scores = res.Rounds[len(res.Rounds)-1]
	}
	res.QuorumMet = r.Quorum == nil || res.Participation.Cmp(r.Quorum) >= 0
	if r.Kind == Basic {
		decideBasic(r, &res)
	} else {
		decide(r, &res)
	}
	return res, nil
}

// latest keeps each voter's latest valid ballot, ordered by voter.
func latest(r Rules, ballots []Ballot, res *Result) []*Ballot {
	best := make(map[common.Address]*Ballot, len(ballots))
	for i := range ballots {
		b := &ballots[i]
		if Check(r, b) != nil {
			res.Refused++
			continue
		}
		cur, ok := best[b.Voter]
		if !ok {
			best[b.Voter] = b
			continue
		}
		res.Superseded++
		if b.Time > cur.Time || b.Time == cur.Time && bytes.Compare(b.ID[:], cur.ID[:]) > 0 {
			best[b.Voter] = b
		}
	}
	out := make([]*Ballot, 0, len(best))
	for _, b := range best {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *Ballot) int { return bytes.Compare(a.Voter[:], b.Voter[:]) })
	return out
}

func root(counted []*Ballot) ([]common.Hash, common.Hash) {
	ids := make([]common.Hash, len(counted))
	for i, b := range counted {
		ids[i] = b.ID
	}
	slices.SortFunc(ids, func(a, b common.Hash) int { return bytes.Compare(a[:], b[:]) })
	return ids, Root(ids)
}

// Root is the Keccak-256 of ids, which must be in ascending order: the
// root of a ballot set as Result.Root gives it.
func Root(ids []common.Hash) common.Hash {
	h := sha3.NewLegacyKeccak256()
	for i := range ids {
		h.Write(ids[i][:])
	}
	var out common.Hash
	h.Sum(out[:0])
	return out
}

func zeros(n int) []*big.Int {
	s := make([]*big.Int, n)
	for i := range s {
		s[i] = new(big.Int)
	}
	return s
}

// plurality scores Basic, SingleChoice and Approval: each chosen choice
// gets the voter's full power.
func plurality(r Rules, counted []*Ballot) []*big.Int {
	scores := zeros(r.Choices)
	for _, b := range counted {
		for _, c := range b.Choice {
			scores[c].Add(scores[c], b.Power)
		}
	}
	return scores
}

// parts splits b's power over the choices in proportion to its weights,
// rounding each part down.
func parts(b *Ballot, each func(c int, part *big.Int)) {
	var total uint64
	for _, w := range b.Choice {
		total += uint64(w)
	}
	sum := new(big.Int).SetUint64(total)
	part := new(big.Int)
	for c, w := range b.Choice {
		if w == 0 {
			continue
		}
		part.SetUint64(uint64(w))
		part.Mul(part, b.Power)
		part.Quo(part, sum)
		each(c, part)
	}
}

func weighted(r Rules, counted []*Ballot) []*big.Int {
	scores := zeros(r.Choices)
	for _, b := range counted {
		parts(b, func(c int, part *big.Int) { scores[c].Add(scores[c], part) })
	}
	return scores
}

// quadraticScale keeps the square roots of small parts from rounding to
// nothing: sqrt(part << 64) = sqrt(part) << 32.
const quadraticScale = 64

func quadratic(r Rules, counted []*Ballot, participation *big.Int) []*big.Int {
	roots := zeros(r.Choices)
	var scaled, tmp big.Int
	for _, b := range counted {
		parts(b, func(c int, part *big.Int) {
			scaled.Lsh(part, quadraticScale)
			roots[c].Add(roots[c], sqrt(&scaled, &tmp))
		})
	}
	total := new(big.Int)
	for _, s := range roots {
		s.Mul(s, s)
		total.Add(total, s)
	}
	if total.Sign() == 0 {
		return roots
	}
	for _, s := range roots {
		s.Mul(s, participation)
		s.Quo(s, total)
	}
	return roots
}

// sqrt sets n to its integer square root (rounded down) and returns it.
// It starts Newton's method from a float64 estimate good to about 26 bits,
// which two or three steps take to full precision: big.Int.Sqrt, starting
// from a power of two, takes several times longer on token-sized numbers.
func sqrt(n, tmp *big.Int) *big.Int {
	bits := n.BitLen()
	if bits <= 52 {
		v := n.Uint64()
		x := uint64(math.Sqrt(float64(v)))
		for x*x > v {
			x--
		}
		for (x+1)*(x+1) <= v {
			x++
		}
		return n.SetUint64(x)
	}
	shift := uint(bits-52) &^ 1
	tmp.Rsh(n, shift)
	x := new(big.Int).SetUint64(uint64(math.Sqrt(float64(tmp.Uint64()))) + 1)
	x.Lsh(x, shift/2) // at or above the root
	for {
		// y = (x + n/x) / 2; stop once it no longer decreases.
		tmp.Quo(n, x)
		tmp.Add(tmp, x)
		tmp.Rsh(tmp, 1)
		if tmp.Cmp(x) >= 0 {
			break
		}
		x.Set(tmp)
	}
	return n.Set(x)
}

// runoff counts ranked ballots by instant runoff and returns each round's
// scores.
func runoff(r Rules, counted []*Ballot) [][]*big.Int {
	running := make([]bool, r.Choices)
	for i := range running {
		running[i] = true
	}
	next := make([]int, len(counted))   // index into each ballot's ranking
	piles := make([][]int32, r.Choices) // ballots counted for each choice
	scores := zeros(r.Choices)          // this round's scores
	active := new(big.Int)              // power of ballots not exhausted
	place := func(i int) {
		b := counted[i]
		for next[i] < len(b.Choice) {
			c := b.Choice[next[i]]
			if running[c] {
				piles[c] = append(piles[c], int32(i))
				scores[c].Add(scores[c], b.Power)
				return
			}
			next[i]++
		}
		active.Sub(active, b.Power) // exhausted
	}
	for i, b := range counted {
		active.Add(active, b.Power)
		place(i)
	}
	var rounds [][]*big.Int
	half := new(big.Int)
	for {
		rounds = append(rounds, clone(scores))
		left := 0
		var top, low *big.Int
		for c, s := range scores {
			if !running[c] {
				continue
			}
			left++
			if top == nil || s.Cmp(top) > 0 {
				top = s
			}
			if low == nil || s.Cmp(low) < 0 {
				low = s
			}
		}
		half.Rsh(active, 1)
		if left <= 1 || top.Cmp(half) > 0 && top.Sign() > 0 || top.Cmp(low) == 0 {
			return rounds
		}
		low = new(big.Int).Set(low)
		var moved []int32
		for c, s := range scores {
			if running[c] && s.Cmp(low) == 0 {
				running[c] = false
				moved = append(moved, piles[c]...)
				piles[c] = nil
				s.SetInt64(0)
			}
		}
		slices.Sort(moved)
		for _, i := range moved {
			next[i]++
			place(int(i))
		}
	}
}

func clone(s []*big.Int) []*big.Int {
	out := make([]*big.Int, len(s))
	for i, x := range s {
		out[i] = new(big.Int).Set(x)
	}
	return out
}

func decideBasic(r Rules, res *Result) {
	yes, no := res.Scores[For], res.Scores[Against]
	switch yes.Cmp(no) {
	case 1:
		res.Winner = For
	case -1:
		res.Winner = Against
	}
	threshold := r.Threshold
	if threshold == 0 {
		threshold = MaxBasisPoints / 2
	}
	// yes / (yes + no) > threshold / 10,000
	lhs := new(big.Int).Mul(yes, big.NewInt(MaxBasisPoints))
	rhs := new(big.Int).Add(yes, no)
	rhs.Mul(rhs, big.NewInt(int64(threshold)))
	res.Passed = res.QuorumMet && yes.Sign() > 0 && lhs.Cmp(rhs) > 0
}

func decide(r Rules, res *Result) {
	top, ties := -1, 0
	for c, s := range res.Scores {
		switch {
		case top < 0 || s.Cmp(res.Scores[top]) > 0:
			top, ties = c, 0
		case s.Cmp(res.Scores[top]) == 0:
			ties++
		}
	}
	if top < 0 || ties > 0 || res.Scores[top].Sign() == 0 {
		return
	}
	res.Winner = top
	base := res.Participation
	if r.Kind == RankedChoice {
		base = new(big.Int)
		for _, s := range res.Scores {
			base.Add(base, s)
		}
	}
	lhs := new(big.Int).Mul(res.Scores[top], big.NewInt(MaxBasisPoints))
	rhs := new(big.Int).Mul(base, big.NewInt(int64(r.Threshold)))
	res.Passed = res.QuorumMet && lhs.Cmp(rhs) > 0
}
