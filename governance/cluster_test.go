package governance_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/payment"
)

// clock is a clock the test moves; every node of a cluster shares it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_800_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type govCluster struct {
	*dapptest.Cluster
	keys  []*ecdsa.PrivateKey
	clock *clock
	dev   *payment.DevChain
}

// newGovCluster starts n nodes whose accounts are the DApp's members.
func newGovCluster(t *testing.T, n int, change func(m *dapp.Manifest)) *govCluster {
	t.Helper()
	gc := &govCluster{clock: newClock()}
	var members []common.Address
	for range n {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		gc.keys = append(gc.keys, k)
		members = append(members, crypto.PubkeyToAddress(k.PublicKey))
	}
	dev, err := payment.NewDevChain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	gc.dev = dev
	app := dapp.Manifest{Name: t.Name(), Members: members, Params: map[string]string{"fee-bps": "250"}}
	if change != nil {
		change(&app)
	}
	gc.Cluster = dapptest.New(t, n, dapptest.Options{
		App: app,
		Configure: func(i int, cfg *dapp.Config) {
			cfg.Key = gc.keys[i]
			cfg.Governance.Now = gc.clock.Now
			cfg.Governance.CloseDelay = 500 * time.Millisecond
			cfg.Payment = payment.Config{Dev: dev}
		},
	})
	t.Cleanup(func() { dev.Close() })
	gc.WaitConnected()
	return gc
}

func (gc *govCluster) gov(i int) *governance.Governance { return gc.Node(i).Governance() }

// waitProposal waits until every running node holds proposal id.
func (gc *govCluster) waitProposal(id governance.ID) {
	gc.WaitFor("the proposal on every node", func() bool {
		for _, n := range gc.Nodes() {
			if _, err := n.Governance().Result(context.Background(), id); err != nil {
				return false
			}
		}
		return true
	})
}

// waitVoters waits until every running node counts n voters on id, so
// that advancing the test clock does not close the vote before a ballot
// has travelled (in real time, CloseDelay covers that).
func (gc *govCluster) waitVoters(id governance.ID, n int) {
	gc.WaitFor("the ballots on every node", func() bool {
		for _, node := range gc.Nodes() {
			if r, _ := node.Governance().Result(context.Background(), id); r.Voters != n {
				return false
			}
		}
		return true
	})
}

func (gc *govCluster) waitFinal(id governance.ID) []governance.Result {
	var out []governance.Result
	gc.WaitFor("the result final on every node", func() bool {
		out = out[:0]
		for _, n := range gc.Nodes() {
			r, err := n.Governance().Result(context.Background(), id)
			if err != nil || !r.Final {
				return false
			}
			out = append(out, r)
		}
		return true
	})
	return out
}

func TestVoteSetsParamEverywhere(t *testing.T) {
	gc := newGovCluster(t, 3, nil)
	ctx := context.Background()
	var fee int
	if err := gc.gov(2).Param(ctx, "fee-bps", &fee); err != nil || fee != 250 {
		t.Fatalf("genesis fee-bps = %d, %v; want 250", fee, err)
	}
	id, err := gc.gov(0).Propose(ctx, governance.Proposal{
		Title: "Raise the ride fee to 3%",
		End:   gc.clock.Now().Add(time.Hour),
		Actions: []governance.Action{governance.SetParam("fee-bps", 300),
			governance.ApproveRelease(governance.Release{Version: "1.1.0", Executables: map[string]string{"linux/amd64": "ab12"}})},
	})
	if err != nil {
		t.Fatal(err)
	}
	gc.waitProposal(id)
	// Node 2 votes for, then changes its mind: its later ballot counts.
	for i, c := range []governance.Choice{governance.For(), governance.For(), governance.For()} {
		if err := gc.gov(i).Vote(ctx, id, c); err != nil {
			t.Fatalf("node %d votes: %v", i, err)
		}
	}
	gc.clock.Advance(time.Millisecond)
	if err := gc.gov(2).Vote(ctx, id, governance.Against()); err != nil {
		t.Fatal(err)
	}
	gc.WaitFor("3 voters, node 2's changed ballot counted everywhere", func() bool {
		for _, n := range gc.Nodes() {
			r, _ := n.Governance().Result(ctx, id)
			if r.Voters != 3 || r.Scores[1].Int64() != 1 {
				return false
			}
		}
		return true
	})
	r, _ := gc.gov(1).Result(ctx, id)
	if r.Final || !r.Passed || r.Scores[0].Int64() != 2 || r.Scores[1].Int64() != 1 {
		t.Fatalf("before the end: final %v passed %v scores %v", r.Final, r.Passed, r.Scores)
	}
	gc.clock.Advance(time.Hour + time.Second)
	results := gc.waitFinal(id)
	for i, r := range results {
		if !r.Passed || r.Certificate == nil {
			t.Fatalf("node %d: passed %v certificate %v", i, r.Passed, r.Certificate)
		}
		if err := r.Certificate.Verify(gc.Node(i).AppID(), governance.Genesis{}, r.Closers); err != nil {
			t.Fatalf("node %d: certificate does not verify: %v", i, err)
		}
		if r.Certificate.Root != results[0].Certificate.Root {
			t.Fatalf("node %d certified another root", i)
		}
	}
	for i, n := range gc.Nodes() {
		if err := n.Governance().Param(ctx, "fee-bps", &fee); err != nil || fee != 300 {
			t.Fatalf("node %d: fee-bps = %d, %v; want 300", i, fee, err)
		}
		rel, err := n.Governance().Releases(ctx)
		if err != nil || len(rel) != 1 || rel[0].Version != "1.1.0" || rel[0].Executables["linux/amd64"] != "ab12" {
			t.Fatalf("node %d: releases %+v, %v", i, rel, err)
		}
	}
	if _, err := gc.gov(0).Propose(ctx, governance.Proposal{Title: "bad release",
		Actions: []governance.Action{governance.ApproveRelease(governance.Release{Version: "2"})}}); !errors.Is(err, governance.ErrInvalid) {
		t.Fatalf("a release without executables: %v", err)
	}
}

func TestLateBallotChangesNothing(t *testing.T) {
	gc := newGovCluster(t, 3, nil)
	ctx := context.Background()
	start := gc.clock.Now()
	id, err := gc.gov(0).Propose(ctx, governance.Proposal{Title: "t", End: start.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	gc.waitProposal(id)
	if err := gc.gov(0).Vote(ctx, id, governance.Against()); err != nil {
		t.Fatal(err)
	}
	gc.waitVoters(id, 1)
	gc.clock.Advance(2 * time.Minute)
	before := gc.waitFinal(id)
	if before[0].Passed {
		t.Fatal("passed with one vote against")
	}
	// A member signs a backdated ballot For and submits it after the
	// certificate: it is stored (well signed) but counts nowhere.
	backdated := backdatedBallot(t, gc, 1, id, start.Add(time.Second))
	if _, err := gc.gov(1).Submit(ctx, backdated.typed, backdated.sig); err != nil {
		t.Fatal(err)
	}
	gc.WaitFor("the late ballot stored everywhere", func() bool {
		for _, n := range gc.Nodes() {
			if c, _ := n.Store().Collection(governance.BallotsCollection).Count(ctx); c != 2 {
				return false
			}
		}
		return true
	})
	for i, n := range gc.Nodes() {
		r, _ := n.Governance().Result(ctx, id)
		if !r.Final || r.Passed || r.Voters != 1 || r.Certificate.Root != before[0].Certificate.Root {
			t.Fatalf("node %d after a late ballot: final %v passed %v voters %d", i, r.Final, r.Passed, r.Voters)
		}
	}
}

type signedTyped struct{ typed, sig []byte }

// backdatedBallot has member i sign a For ballot dated at.
func backdatedBallot(t *testing.T, gc *govCluster, i int, id governance.ID, at time.Time) signedTyped {
	t.Helper()
	saved := gc.clock.Now()
	gc.clock.mu.Lock()
	gc.clock.t = at
	gc.clock.mu.Unlock()
	typed := gc.gov(i).TypedData(id, gc.gov(i).Account(), governance.For(), "backdated")
	gc.clock.mu.Lock()
	gc.clock.t = saved
	gc.clock.mu.Unlock()
	signer := governance.KeySigner(gc.keys[i])
	sig, err := signer.Sign(context.Background(), typed, digestOf(t, gc, i, typed))
	if err != nil {
		t.Fatal(err)
	}
	return signedTyped{typed, sig}
}

func digestOf(t *testing.T, gc *govCluster, i int, typed []byte) common.Hash {
	t.Helper()
	d, err := governance.Digest(gc.Node(i).AppID(), governance.Genesis{}, typed)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNonMemberRefused(t *testing.T) {
	gc := newGovCluster(t, 2, nil)
	ctx := context.Background()
	stranger, _ := crypto.GenerateKey()
	_, err := gc.gov(0).ProposeAs(ctx, governance.KeySigner(stranger), governance.Proposal{Title: "x"})
	if !errors.Is(err, governance.ErrNotMember) {
		t.Fatalf("a stranger's proposal: %v, want ErrNotMember", err)
	}
	id, err := gc.gov(0).Propose(ctx, governance.Proposal{Title: "y", End: gc.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := gc.gov(0).VoteAs(ctx, governance.KeySigner(stranger), id, governance.For(), ""); !errors.Is(err, governance.ErrNotMember) {
		t.Fatalf("a stranger's ballot: %v, want ErrNotMember", err)
	}
	if err := gc.gov(0).Vote(ctx, id, governance.Option(7)); !errors.Is(err, governance.ErrInvalidChoice) {
		t.Fatalf("an invalid choice: %v, want ErrInvalidChoice", err)
	}
	if err := gc.gov(0).VoteAs(ctx, governance.KeySigner(gc.keys[0]), id, governance.For(), string(make([]byte, governance.MaxReason+1))); !errors.Is(err, governance.ErrInvalid) {
		t.Fatalf("an oversize reason: %v, want ErrInvalid", err)
	}
	if err := gc.gov(0).Vote(ctx, governance.ID{1}, governance.For()); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("an unknown proposal: %v, want ErrNotFound", err)
	}
	// A stranger's ballot signed by a wallet is well formed, so it is
	// stored and replicated, but every replica leaves it out of the count.
	typed := gc.gov(1).TypedData(id, crypto.PubkeyToAddress(stranger.PublicKey), governance.For(), "")
	sig, err := governance.KeySigner(stranger).Sign(ctx, typed, digestOf(t, gc, 1, typed))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gc.gov(1).Submit(ctx, typed, sig); err != nil {
		t.Fatal(err)
	}
	gc.WaitFor("the stranger's ballot ignored everywhere", func() bool {
		for _, n := range gc.Nodes() {
			if r, _ := n.Governance().Result(ctx, id); r.Ignored != 1 || r.Voters != 0 {
				return false
			}
		}
		return true
	})
	// A forged document written straight into the store is refused by
	// the validators, locally and so everywhere.
	err = gc.Node(0).Store().Collection(governance.BallotsCollection).Put(ctx, "0x01", map[string]any{"typed": "{}", "sig": "0x00"})
	if err == nil {
		t.Fatal("a forged ballot document was accepted")
	}
}

func TestPartitionedCloserHeals(t *testing.T) {
	gc := newGovCluster(t, 5, nil)
	ctx := context.Background()
	id, err := gc.gov(0).Propose(ctx, governance.Proposal{Title: "split", End: gc.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	gc.waitProposal(id)
	for i := range 3 {
		if err := gc.gov(i).Vote(ctx, id, governance.For()); err != nil {
			t.Fatal(err)
		}
	}
	gc.waitVoters(id, 3)
	gc.Partition([]int{0, 1, 2}, []int{3, 4})
	// Node 4 votes inside the window, but nobody on the majority side
	// sees its ballot before they close.
	if err := gc.gov(4).Vote(ctx, id, governance.Against()); err != nil {
		t.Fatal(err)
	}
	gc.clock.Advance(time.Hour + time.Second)
	gc.WaitFor("the majority side final", func() bool {
		for i := range 3 {
			if r, _ := gc.gov(i).Result(ctx, id); !r.Final {
				return false
			}
		}
		return true
	})
	r3, _ := gc.gov(3).Result(ctx, id)
	if r3.Final {
		t.Fatal("the minority side certified a result on its own")
	}
	gc.Heal()
	results := gc.waitFinal(id)
	for i, r := range results {
		if r.Voters != 3 || !r.Passed || r.Certificate.Root != results[0].Certificate.Root {
			t.Fatalf("node %d after healing: voters %d passed %v", i, r.Voters, r.Passed)
		}
	}
}

func TestActionsRunOnceAcrossRestarts(t *testing.T) {
	gc := newGovCluster(t, 3, nil)
	ctx := context.Background()
	var mu sync.Mutex
	calls := map[int]int{}
	handle := func(i int) {
		gc.gov(i).Handle("greet", func(_ context.Context, a governance.Action) error {
			mu.Lock()
			calls[i]++
			mu.Unlock()
			if string(a.Value) != `"hello"` {
				return errors.New("unexpected value " + string(a.Value))
			}
			return nil
		})
	}
	for i := range 3 {
		handle(i)
	}
	id, err := gc.gov(0).Propose(ctx, governance.Proposal{
		Title: "greet", End: gc.clock.Now().Add(time.Hour),
		Actions: []governance.Action{
			{Kind: "greet", Value: []byte(`"hello"`)},
			governance.SetParam("greeted", true),
			{Kind: "fail-once", Value: []byte(`1`)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	gc.waitProposal(id)
	for i := range 3 {
		if err := gc.gov(i).Vote(ctx, id, governance.For()); err != nil {
			t.Fatal(err)
		}
	}
	gc.waitVoters(id, 3)
	gc.Stop(2)
	gc.clock.Advance(time.Hour + time.Second)
	gc.WaitFor("the action run on nodes 0 and 1", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return calls[0] == 1 && calls[1] == 1
	})
	failures := 0
	gc.gov(0).Handle("fail-once", func(context.Context, governance.Action) error {
		failures++
		return errors.New("refused")
	})
	gc.WaitFor("the failing action recorded", func() bool {
		ran, err := gc.gov(0).ActionStatus(id, 2)
		return ran && err != nil
	})
	// Node 2 was down when the result became final: it runs the action
	// once when it comes back; node 0 restarted runs nothing again.
	gc.Restart(2)
	handle(2)
	gc.WaitFor("the action run on node 2", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return calls[2] == 1
	})
	gc.Stop(0)
	gc.Restart(0)
	handle(0)
	gc.gov(0).Handle("fail-once", func(context.Context, governance.Action) error {
		failures++
		return nil
	})
	var greeted bool
	if err := gc.gov(0).Param(ctx, "greeted", &greeted); err != nil || !greeted {
		t.Fatalf("after restart: greeted %v, %v", greeted, err)
	}
	// A later change makes governance look at its actions again.
	id2, err := gc.gov(1).Propose(ctx, governance.Proposal{Title: "nudge", End: gc.clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	gc.waitProposal(id2)
	if ran, err := gc.gov(0).ActionStatus(id, 0); !ran || err != nil {
		t.Fatalf("node 0's record of the action: ran %v err %v", ran, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls[0] != 1 || calls[1] != 1 || calls[2] != 1 || failures != 1 {
		t.Fatalf("calls %v, failures %d: want each node once and one failure", calls, failures)
	}
}

func TestAdmitMember(t *testing.T) {
	gc := newGovCluster(t, 3, func(m *dapp.Manifest) { m.Members = m.Members[:2] })
	ctx := context.Background()
	third := gc.Node(2).Account()
	if _, err := gc.gov(2).Propose(ctx, governance.Proposal{Title: "me"}); !errors.Is(err, governance.ErrNotMember) {
		t.Fatalf("non-member proposes: %v", err)
	}
	id, err := gc.gov(0).Propose(ctx, governance.Proposal{Title: "admit", End: gc.clock.Now().Add(time.Hour),
		Actions: []governance.Action{governance.AdmitMember(third)}})
	if err != nil {
		t.Fatal(err)
	}
	gc.waitProposal(id)
	for i := range 2 {
		if err := gc.gov(i).Vote(ctx, id, governance.For()); err != nil {
			t.Fatal(err)
		}
	}
	gc.waitVoters(id, 2)
	gc.clock.Advance(time.Hour + time.Second)
	gc.waitFinal(id)
	gc.WaitFor("three members everywhere", func() bool {
		for _, n := range gc.Nodes() {
			m, _ := n.Governance().Members(ctx)
			if len(m) != 3 {
				return false
			}
		}
		return true
	})
	if _, err := gc.gov(2).Propose(ctx, governance.Proposal{Title: "now I may"}); err != nil {
		t.Fatalf("the admitted member proposes: %v", err)
	}
}

func TestDelegatedVote(t *testing.T) {
	gc := newGovCluster(t, 3, nil)
	ctx := context.Background()
	// Member 2 gives its vote to member 0; a non-member delegate is
	// refused until someone delegates to it.
	if err := gc.gov(2).Delegate(ctx, gc.Node(0).Account()); err != nil {
		t.Fatal(err)
	}
	gc.WaitFor("the delegation everywhere", func() bool {
		for _, n := range gc.Nodes() {
			if c, _ := n.Store().Collection(governance.DelegationsCollection).Count(ctx); c != 1 {
				return false
			}
		}
		return true
	})
	gc.clock.Advance(time.Second)
	id, err := gc.gov(1).Propose(ctx, governance.Proposal{Title: "d", End: gc.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	gc.waitProposal(id)
	if err := gc.gov(0).Vote(ctx, id, governance.For()); err != nil {
		t.Fatal(err)
	}
	if err := gc.gov(1).Vote(ctx, id, governance.Against()); err != nil {
		t.Fatal(err)
	}
	gc.waitVoters(id, 2)
	gc.clock.Advance(time.Hour + time.Second)
	for i, r := range gc.waitFinal(id) {
		if r.Scores[0].Int64() != 2 || r.Scores[1].Int64() != 1 || !r.Passed {
			t.Fatalf("node %d: scores %v passed %v; want for 2 (member 0 and its delegator), against 1", i, r.Scores, r.Passed)
		}
	}
}

func TestTokenElectorate(t *testing.T) {
	gc := newGovCluster(t, 3, nil)
	ctx := context.Background()
	tokens := func(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }
	holder, _ := crypto.GenerateKey() // a holder with no instance, voting from a wallet
	for i, amount := range []int64{5, 3, 0} {
		if amount > 0 {
			if err := gc.dev.Fund(ctx, gc.Node(i).Account(), tokens(amount)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := gc.dev.Fund(ctx, crypto.PubkeyToAddress(holder.PublicKey), tokens(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.gov(2).Propose(ctx, governance.Proposal{Title: "no tokens", Electorate: governance.Tokens}); !errors.Is(err, governance.ErrBelowThreshold) {
		t.Fatalf("a proposal by an account without tokens: %v", err)
	}
	id, err := gc.gov(0).Propose(ctx, governance.Proposal{Title: "by balance", Type: governance.SingleChoice,
		Choices: []string{"red", "blue"}, Electorate: governance.Tokens, End: gc.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	gc.waitProposal(id)
	// Tokens moved after the snapshot change nothing.
	if err := gc.dev.Fund(ctx, gc.Node(1).Account(), tokens(100)); err != nil {
		t.Fatal(err)
	}
	if err := gc.gov(0).Vote(ctx, id, governance.Option(0)); err != nil {
		t.Fatal(err)
	}
	if err := gc.gov(1).Vote(ctx, id, governance.Option(1)); err != nil {
		t.Fatal(err)
	}
	if err := gc.gov(2).VoteAs(ctx, governance.KeySigner(holder), id, governance.Option(1), "from a wallet"); err != nil {
		t.Fatal(err)
	}
	gc.waitVoters(id, 3)
	gc.clock.Advance(time.Hour + time.Second)
	for i, r := range gc.waitFinal(id) {
		if r.Scores[0].Cmp(tokens(5)) != 0 || r.Scores[1].Cmp(tokens(7)) != 0 || r.Winner != 1 {
			t.Fatalf("node %d: scores %v winner %d; want red 5, blue 3+4 tokens", i, r.Scores, r.Winner)
		}
	}
}
