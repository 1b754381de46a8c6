package governance_test

import (
	"context"
	"testing"
	"time"

	"github.com/dpaas/dpaas/governance"
)

// TestEveryVotingType runs one proposal of each kind of vote through a
// 3-instance cluster: the same certified result on every instance.
func TestEveryVotingType(t *testing.T) {
	gc := newGovCluster(t, 3, nil)
	ctx := context.Background()
	cases := []struct {
		typ     governance.Type
		choices []string
		votes   [3]governance.Choice
		winner  int
		scores  []int64
	}{
		{governance.Basic, nil, [3]governance.Choice{governance.For(), governance.Abstain(), governance.Against()}, -1, []int64{1, 1, 1}},
		{governance.SingleChoice, []string{"a", "b", "c"}, [3]governance.Choice{governance.Option(2), governance.Option(2), governance.Option(0)}, 2, []int64{1, 0, 2}},
		{governance.Approval, []string{"a", "b", "c"}, [3]governance.Choice{governance.Approve(0, 1), governance.Approve(1), governance.Approve(1, 2)}, 1, []int64{1, 3, 1}},
		{governance.Weighted, []string{"a", "b"}, [3]governance.Choice{governance.Weights(3, 1), governance.Weights(0, 1), governance.Weights(1, 1)}, 1, []int64{0, 1}},
		{governance.Quadratic, []string{"a", "b"}, [3]governance.Choice{governance.Weights(1, 0), governance.Weights(0, 1), governance.Weights(0, 1)}, 1, nil},
		{governance.RankedChoice, []string{"a", "b", "c"}, [3]governance.Choice{governance.Rank(0, 1), governance.Rank(1, 0), governance.Rank(1, 2)}, 1, []int64{1, 2, 0}},
	}
	ids := make([]governance.ID, len(cases))
	for k, c := range cases {
		id, err := gc.gov(k%3).Propose(ctx, governance.Proposal{Title: string(c.typ), Type: c.typ, Choices: c.choices,
			End: gc.clock.Now().Add(time.Hour)})
		if err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		ids[k] = id
	}
	for k, c := range cases {
		gc.waitProposal(ids[k])
		for i, v := range c.votes {
			if err := gc.gov(i).Vote(ctx, ids[k], v); err != nil {
				t.Fatalf("%s: node %d votes: %v", c.typ, i, err)
			}
		}
	}
	for k := range cases {
		gc.waitVoters(ids[k], 3)
	}
	gc.clock.Advance(time.Hour + time.Second)
	for k, c := range cases {
		for i, r := range gc.waitFinal(ids[k]) {
			if r.Winner != c.winner {
				t.Fatalf("%s on node %d: winner %d, want %d (scores %v)", c.typ, i, r.Winner, c.winner, r.Scores)
			}
			if c.scores == nil {
				continue
			}
			for j, want := range c.scores {
				if r.Scores[j].Int64() != want {
					t.Fatalf("%s on node %d: scores %v, want %v", c.typ, i, r.Scores, c.scores)
				}
			}
		}
	}
}
