package dapp_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/internal/mirror"
	"github.com/dpaas/dpaas/internal/payout"
	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/store"
)

var payoutSeed = flag.Uint64("payout-seed", 0, "seed of TestPayoutsEndToEnd (0 = time)")

func payoutKeys(t *testing.T, n int) ([]*ecdsa.PrivateKey, []common.Address) {
	t.Helper()
	keys := make([]*ecdsa.PrivateKey, n)
	accounts := make([]common.Address, n)
	for i := range keys {
		k, err := ethcrypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i], accounts[i] = k, ethcrypto.PubkeyToAddress(k.PublicKey)
	}
	return keys, accounts
}

// TestPayoutSignaturesRefuseForgery: a payout signature document written
// in another member's name, signed by another key, malformed or changed
// in place is refused, on the writer as on every replica, and counted; a
// good one replicates.
func TestPayoutSignaturesRefuseForgery(t *testing.T) {
	keys, accounts := payoutKeys(t, 2)
	c := dapptest.New(t, 2, dapptest.Options{
		Configure: func(i int, cfg *dapp.Config) { cfg.Key = keys[i] },
	})
	c.WaitConnected()
	ctx := context.Background()
	a := c.Node(0)
	coll := a.Store().Collection(dapp.PayoutSignaturesCollection)
	chain, fund, epoch := big.NewInt(1337), common.HexToAddress("0x00000000000000000000000000000000000f00d5"), uint64(42)
	table := []payment.PayoutEntry{{Account: accounts[1], Amount: big.NewInt(7)}}
	hash, err := payment.PayoutTableHash(table)
	if err != nil {
		t.Fatal(err)
	}
	doc := func(key *ecdsa.PrivateKey) map[string]any {
		sig, err := payment.SignPayout(key, chain, fund, epoch, table)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"epoch": epoch, "fund": fund, "chain": chain.String(), "tableHash": hash, "sig": hexutil.Bytes(sig)}
	}
	id := func(i int) string { return fmt.Sprintf("%d/%s", epoch, accounts[i].Hex()) }
	before := dapp.PayoutSignaturesRefused(a)
	forged := map[string]struct {
		id  string
		doc map[string]any
	}{
		"in another member's name":   {id(1), doc(keys[1])},
		"signed by another key":      {id(0), doc(keys[1])},
		"ID not canonical":           {fmt.Sprintf("%d/%s", epoch, accounts[0].String()[2:]), doc(keys[0])},
		"signature of another epoch": {fmt.Sprintf("%d/%s", epoch+1, accounts[0].Hex()), doc(keys[0])},
	}
	bad := doc(keys[0])
	bad["sig"] = hexutil.Bytes(make([]byte, 64))
	forged["malformed signature"] = struct {
		id  string
		doc map[string]any
	}{id(0), bad}
	extra := doc(keys[0])
	extra["more"] = 1
	forged["an extra field"] = struct {
		id  string
		doc map[string]any
	}{id(0), extra}
	for what, f := range forged {
		if err := coll.Put(ctx, f.id, f.doc); err == nil {
			t.Fatalf("a payout signature %s was accepted", what)
		}
	}
	if got := dapp.PayoutSignaturesRefused(a) - before; got < uint64(len(forged)) {
		t.Fatalf("%d refusals counted, want at least %d", got, len(forged))
	}
	if err := coll.Put(ctx, id(0), doc(keys[0])); err != nil {
		t.Fatalf("a good payout signature was refused: %v", err)
	}
	waitDoc(t, c, []int{1}, dapp.PayoutSignaturesCollection, id(0))
	if err := coll.Update(ctx, id(0), store.Set("epoch", epoch+1)); err == nil {
		t.Fatal("a payout signature was changed in place")
	}
	if _, err := dapp.Open(ctx, dapp.Config{App: dapp.Manifest{Name: "x"}, Store: store.Config{
		Validators: map[string]store.Validator{dapp.PayoutSignaturesCollection: func(store.Write) error { return nil }}}}); err == nil {
		t.Fatal("the payout signatures collection's validator was replaced")
	}
}

// TestPayoutsEndToEnd: five verified instances on a fund's committee, on
// four /24 networks (nodes 3 and 4 share one), paid through payment
// channels in one epoch, sign that epoch's table and have the fund pay it
// once: each instance's balance rises by exactly its row of the table
// every instance recomputes, and the table is the one payout.Compute gives
// from the standings and the redemptions. Within it:
//
//   - one member, picked by the seed, signs a table paying itself
//     everything: the honest signatures are the majority that pays;
//   - one instance (1 or 2, picked by the seed, not that member) claims
//     blobs it does not hold: it fails its storage challenges, scores 0
//     and is paid nothing for what it served;
//   - nodes 3 and 4 are one diversity group, whose share the table splits
//     between them;
//   - the honest members sign but never submit (as if each crashed after
//     signing; the one with the lowest account is first in turn), except
//     one, C. Once another instance holds C's signature, C is stopped; the
//     table has its majority without C; C is restarted with nothing of
//     its payout state but its store, recomputes the same table, keeps
//     the signature it made and submits in its turn, a Grace or two after
//     it sees the majority: the fund pays the epoch exactly once, and C
//     alone submitted.
func TestPayoutsEndToEnd(t *testing.T) {
	const n = 5
	// Members sign and submit an epoch for PayoutLookback epochs after it
	// ends: 45 s here, where the payout, with a stop and a restart on the
	// way, can take 25 s under -race on a machine running other tests.
	const epochLen = 15 * time.Second
	seed := *payoutSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -payout-seed=%d)", seed, seed)
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tokens := func(x int64) *big.Int { return new(big.Int).Mul(big.NewInt(x), big.NewInt(1e15)) }

	// Roles. diverseIPs(n) puts nodes n-2 and n-1 on one /24; the blob
	// claimer is neither of them (the pair's split is then between two
	// paid instances) nor node 0, which adds the blobs.
	liar := rnd.IntN(n)
	claimer := 1 + rnd.IntN(2)
	if claimer == liar {
		claimer = 3 - claimer
	}

	dev, err := payment.NewDevChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	keys, accounts := payoutKeys(t, n)
	clientKey, err := ethcrypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Fund(ctx, ethcrypto.PubkeyToAddress(clientKey.PublicKey), tokens(100_000)); err != nil {
		t.Fatal(err)
	}
	for _, acc := range accounts {
		if err := dev.Fund(ctx, acc, nil); err != nil { // gas only
			t.Fatal(err)
		}
	}
	client, err := payment.Open(ctx, payment.Config{Dev: dev, Key: clientKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	fundAddr, err := client.DeployFund(ctx, payment.FundConfig{Committee: accounts, Budget: tokens(100)})
	if err != nil {
		t.Fatal(err)
	}
	fund, err := client.OpenFund(ctx, fundAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fund.Deposit(ctx, tokens(1000)); err != nil {
		t.Fatal(err)
	}
	budget := tokens(60) // the governance budget, below the fund's own
	app := dapp.Manifest{Name: t.Name(), Members: accounts, Params: map[string]string{
		dapp.ParamPayoutFund:   fundAddr.Hex(),
		dapp.ParamPayoutBudget: budget.String(),
	}}
	c := dapptest.New(t, n, dapptest.Options{
		App:      app,
		ListenIP: diverseIPs(n),
		Timeout:  2 * time.Minute, // five instances under -race on a loaded machine
		Configure: func(i int, cfg *dapp.Config) {
			cfg.Key = keys[i]
			cfg.Payment.Dev = dev
			cfg.Mirror = fastMirror(epochLen)
			cfg.Mirror.Release = "1.0.0"
			cfg.Governance.CloseDelay = 200 * time.Millisecond
			// Late attestations have time to arrive: the honest members
			// must compute the same table.
			cfg.Payouts.Grace = 2 * time.Second
			if i == claimer {
				holdOnlyAssignedBlobs(cfg)
			}
		},
	})
	c.WaitConnected()
	var why string      // what a wait last found missing
	var stages []string // how long after the epoch paid ended each step was done
	defer func() {
		if t.Failed() && why != "" {
			t.Log("last unmet:", why)
		}
		if t.Failed() && len(stages) > 0 {
			t.Log("since the epoch ended:", strings.Join(stages, ", "))
		}
	}()
	// The honest signer with the lowest account submits first; crash, the
	// next one but the claimer, is the one that submits, after its restart.
	byAccount := func(skip ...int) int {
		best := -1
		for i, acc := range accounts {
			if !slices.Contains(skip, i) && (best < 0 || bytes.Compare(acc[:], accounts[best][:]) < 0) {
				best = i
			}
		}
		return best
	}
	first := byAccount(liar)
	crash := byAccount(liar, first, claimer)
	obs := byAccount(crash) // any node that keeps running
	dapp.LieInPayouts(c.Node(liar))
	for i := range n {
		if i != liar {
			dapp.MuteInPayouts(c.Node(i)) // a restart of crash unmutes it
		}
	}
	t.Logf("node %d signs false tables, node %d claims blobs it does not hold, node %d (lowest honest account) and all other honest members but node %d never submit; node %d is stopped after signing and submits once restarted",
		liar, claimer, first, crash, crash)

	// Governance approves the test binary as release 1.0.0.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	id, err := c.Node(0).Governance().Propose(ctx, governance.Proposal{
		Title: "approve 1.0.0",
		End:   time.Now().Add(8 * time.Second),
		Actions: []governance.Action{governance.ApproveRelease(governance.Release{
			Version: "1.0.0", Executables: map[string]string{runtime.GOOS + "/" + runtime.GOARCH: hex.EncodeToString(sum[:])}})},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every member votes as soon as the proposal reaches it. One vote
	// passes it: on a loaded machine the proposal may reach a member after
	// it closed.
	voted := make([]bool, n)
	c.WaitFor("the members' votes", func() bool {
		all := true
		for i := range n {
			if voted[i] {
				continue
			}
			err := c.Node(i).Governance().Vote(ctx, id, governance.For())
			switch {
			case err == nil:
				voted[i] = true
			case i > 0 && errors.Is(err, governance.ErrNotOpen):
				voted[i] = true
				t.Logf("node %d did not vote: %v", i, err)
			default:
				why, all = fmt.Sprintf("node %d's vote: %v", i, err), false
			}
		}
		return all
	})
	why = ""
	c.WaitFor("every instance verified on every instance", func() bool {
		for i, node := range c.Nodes() {
			rs := replicaMap(t, node)
			if len(rs) != n {
				why = fmt.Sprintf("node %d lists %d instances", i, len(rs))
				return false
			}
			for _, r := range rs {
				if !r.Verified {
					why = fmt.Sprintf("node %d lists %s unverified", i, r.ID.ShortString())
					return false
				}
			}
		}
		return true
	})
	why = ""
	claimBlobsNotHeld(t, c, 0, claimer, rnd)
	heard := time.Now()

	channels := make([]*payment.Channel, n)
	for i, acc := range accounts {
		if channels[i], err = client.OpenChannel(ctx, acc, tokens(100), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Redeem within one epoch: wait for one just begun after the false
	// claims were heard, with the chain's clock not ahead of the wall
	// clock.
	r := c.Node(obs).Replicas()
	var e uint64
	c.WaitFor("a fresh epoch with time to redeem", func() bool {
		now := time.Now()
		e = r.Epoch()
		return r.EpochStart(e).After(heard) && r.EpochStart(e+1).Sub(now) >= 7*time.Second && dev.Now().Before(now.Add(time.Second))
	})
	paid := make([]*big.Int, n)
	for i, node := range c.Nodes() {
		paid[i] = tokens(1 + rnd.Int64N(20))
		v, err := channels[i].Pay(paid[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := node.Payments().Accept(ctx, v); err != nil {
			t.Fatal(err)
		}
		if _, err := node.Payments().Redeem(ctx, channels[i].ID()); err != nil {
			t.Fatal(err)
		}
	}
	before := make([]*big.Int, n)
	for i, acc := range accounts {
		if before[i], err = client.Balance(ctx, acc); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("redeemed %v in epoch %d", paid, e)
	c.WaitFor(fmt.Sprintf("epoch %d over", e), func() bool { return r.Epoch() > e })
	stage := func(what string) {
		stages = append(stages, fmt.Sprintf("%s %v", what, time.Since(r.EpochStart(e+1)).Round(time.Millisecond)))
	}
	// No member can compute the table before the chain passes the epoch's
	// end (a dev chain seals blocks only for transactions): until then,
	// let every instance receive every prober's last attestations of the
	// epoch, so that the members, and crash after its restart, compute
	// one table. A prober writes them on its first round after the epoch,
	// with its first of the next one.
	c.WaitFor(fmt.Sprintf("the attestations of epoch %d final on every instance", e), func() bool {
		var ref []dapp.Standing
		for i, node := range c.Nodes() {
			raws, err := node.Replicas().Attestations(ctx, e+1)
			if err != nil {
				t.Fatal(err)
			}
			probers := map[peer.ID]bool{}
			for _, raw := range raws {
				if a, err := mirror.OpenAttestation(node.AppID().String(), raw); err == nil {
					probers[a.Prober] = true
				}
			}
			if len(probers) < n {
				why = fmt.Sprintf("node %d holds attestations of epoch %d by %d probers", i, e+1, len(probers))
				return false
			}
			ss, err := node.Replicas().Standings(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				ref = ss
			} else if !reflect.DeepEqual(ss, ref) {
				why = fmt.Sprintf("node %d's standings of epoch %d differ from node 0's", i, e)
				return false
			}
		}
		return true
	})
	why = ""
	stage("attestations final")
	if err := dev.Fund(ctx, client.Account(), nil); err != nil {
		t.Fatal(err)
	}
	served, err := client.RedeemedTo(ctx, r.EpochStart(e), r.EpochStart(e+1))
	if err != nil {
		t.Fatal(err)
	}
	for i, acc := range accounts {
		if served[acc] == nil || served[acc].Cmp(paid[i]) != 0 {
			t.Fatalf("instance %d served %v in epoch %d, redeemed %v: the redemptions straddled epochs", i, served[acc], e, paid[i])
		}
	}

	// crash signs, and is stopped once another instance holds its
	// signature; the others' make a majority without it.
	status := func() dapp.PayoutStatus {
		st, err := c.Node(obs).Payouts().Status(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	c.WaitFor(fmt.Sprintf("node %d's signature of epoch %d on node %d", crash, e, obs), func() bool {
		_, ok := status().Signatures[accounts[crash]]
		return ok
	})
	stage(fmt.Sprintf("node %d's signature seen", crash))
	c.Stop(crash)
	stage("stopped")
	var st dapp.PayoutStatus
	c.WaitFor(fmt.Sprintf("a majority of epoch %d's table, node %d stopped", e, crash), func() bool {
		st = status()
		return st.Majority != (common.Hash{})
	})
	if st.Signatures[accounts[crash]] != st.Majority {
		t.Fatalf("node %d signed %s, the majority %s", crash, st.Signatures[accounts[crash]], st.Majority)
	}
	if st.Paid {
		t.Fatalf("epoch %d paid with every submitter muted or stopped", e)
	}
	stage("majority")
	c.Restart(crash)
	c.WaitConnected()
	stage("restarted")

	var last uint64
	c.WaitFor(fmt.Sprintf("the fund to pay epoch %d", e), func() bool {
		st, err := fund.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last = st.LastEpoch
		if last < e && r.Epoch() > e+dapp.PayoutLookback {
			t.Fatalf("epoch %d unpaid and out of the members' lookback of %d epochs", e, dapp.PayoutLookback)
		}
		return last >= e
	})
	stage("paid")
	t.Logf("since epoch %d ended: %s", e, strings.Join(stages, ", "))
	if last != e {
		t.Fatalf("the fund's last epoch is %d, want %d (no later epoch has anything to pay)", last, e)
	}

	rows, hash, err := c.Node(obs).Payouts().Table(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		got, h, err := c.Node(i).Payouts().Table(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if h != hash || len(got) != len(rows) {
			t.Fatalf("node %d's table %s (%d rows), node %d's %s (%d rows)", i, h, len(got), obs, hash, len(rows))
		}
	}
	// The table is payout.Compute's over the standings and redemptions.
	standings, err := r.Standings(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	var instances []payout.Instance
	for _, s := range standings {
		instances = append(instances, payout.Instance{Account: s.Account, Group: s.Group, Availability: s.AvailabilityPPM, Verified: s.Verified, Served: served[s.Account]})
	}
	want, err := payout.Compute(instances, payout.Params{Budget: budget, MinAvailability: payout.DefaultMinAvailability})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(rows) {
		t.Fatalf("table %v, payout.Compute %v", rows, want)
	}
	total := new(big.Int)
	amount := map[common.Address]*big.Int{}
	for i, row := range rows {
		if row.Account != want[i].Account || row.Amount.Cmp(want[i].Amount) != 0 {
			t.Fatalf("table row %d: %s %v, payout.Compute: %s %v", i, row.Account, row.Amount, want[i].Account, want[i].Amount)
		}
		total.Add(total, row.Amount)
		amount[row.Account] = row.Amount
	}
	t.Logf("epoch %d table %s: %v", e, hash, rows)
	if total.Cmp(budget) != 0 {
		t.Fatalf("the table pays %v, want the governance budget %v", total, budget)
	}
	byNode := make([]dapp.Standing, n)
	groups := map[string]bool{}
	for i := range n {
		var ok bool
		for _, s := range standings {
			if s.ID == c.Node(i).ID() {
				byNode[i], ok = s, true
			}
		}
		if !ok {
			t.Fatalf("node %d has no standing in epoch %d", i, e)
		}
		groups[byNode[i].Group] = true
	}
	// The claimer served and is paid nothing: its probers failed it.
	if s := byNode[claimer]; s.AvailabilityPPM != 0 || s.Probers < 3 {
		t.Fatalf("the blob claimer's standing in epoch %d: %+v", e, s)
	}
	if f := challengesFailed(t, c.Node(obs), e, c.Node(claimer).ID()); f == 0 {
		t.Fatalf("no challenge of the blob claimer failed in epoch %d", e)
	}
	if a := amount[accounts[claimer]]; a != nil && a.Sign() != 0 {
		t.Fatalf("the blob claimer is paid %v", a)
	}
	// Nodes n-2 and n-1 share a /24: one group, the others one each. The
	// group's share is split between them by what each served.
	p, q := byNode[n-2], byNode[n-1]
	if p.Group != q.Group || len(groups) != n-1 {
		t.Fatalf("nodes %d and %d in groups %s and %s, %d groups in all: want one shared, %d in all", n-2, n-1, p.Group, q.Group, len(groups), n-1)
	}
	if ap, aq := amount[p.Account], amount[q.Account]; ap != nil && aq != nil {
		share := new(big.Int).Add(ap, aq)
		sp, sq := served[p.Account], served[q.Account]
		both := new(big.Int).Add(sp, sq)
		// ap = share × sp / (sp+sq), up to the unit a remainder gets.
		d := new(big.Int).Sub(new(big.Int).Mul(ap, both), new(big.Int).Mul(share, sp))
		if d.Abs(d).Cmp(both) >= 0 {
			t.Fatalf("the pair's share %v split %v/%v, served %v/%v", share, ap, aq, sp, sq)
		}
	} else {
		t.Logf("the pair not both paid (availability %d and %d ppm): no split to check", p.AvailabilityPPM, q.AvailabilityPPM)
	}
	for i, acc := range accounts {
		after, err := client.Balance(ctx, acc)
		if err != nil {
			t.Fatal(err)
		}
		want := new(big.Int).Set(before[i])
		if a := amount[acc]; a != nil {
			want.Add(want, a)
		}
		if after.Cmp(want) != 0 {
			t.Fatalf("instance %d: balance %v, want %v + its row %v", i, after, before[i], amount[acc])
		}
	}
	// Every honest member signed the paid table, crash once, before its
	// stop: a signature is put whole, so signing again after the restart
	// would show here if the table were another.
	st = status()
	for i, acc := range accounts {
		if h := st.Signatures[acc]; (h == hash) == (i == liar) {
			t.Fatalf("node %d signed %s, the paid table is %s (node %d lies)", i, h, hash, liar)
		}
	}
	if !st.Paid || st.Majority != hash || st.Fund != fundAddr {
		t.Fatalf("status %+v, want paid with majority %s", st, hash)
	}
	// Only crash submits, and only after its restart: before its stop it
	// was muted, so the counter its restart reset held nothing.
	submitted := uint64(0)
	for i := range n {
		got := dapp.PayoutsSubmitted(c.Node(i))
		submitted += got
		want := uint64(0)
		if i == crash {
			want = 1
		}
		if got != want {
			t.Fatalf("node %d submitted %d payouts, want %d", i, got, want)
		}
	}
	if submitted != 1 {
		t.Fatalf("%d payouts submitted, want 1", submitted)
	}
}

// TestPayoutsConfigValidated: a negative Grace is an invalid config.
func TestPayoutsConfigValidated(t *testing.T) {
	_, err := dapp.Open(context.Background(), dapp.Config{App: dapp.Manifest{Name: "x"}, Payouts: dapp.PayoutsConfig{Grace: -time.Second}})
	if !errors.Is(err, dapp.ErrInvalidConfig) {
		t.Fatalf("Open with a negative Grace: %v, want ErrInvalidConfig", err)
	}
}

// TestPayoutParamsChecked: with no fund set there are no payouts
// (ErrNoFund), and a payout parameter governance set to something
// unusable is ErrBadPayoutParam, not a panic or a zero.
func TestPayoutParamsChecked(t *testing.T) {
	fund := common.HexToAddress("0x00000000000000000000000000000000000f00d5").Hex()
	for _, tc := range []struct {
		name   string
		params map[string]string
		want   error
	}{
		{"unset", nil, dapp.ErrNoFund},
		{"fund not an address", map[string]string{dapp.ParamPayoutFund: "nowhere"}, dapp.ErrBadPayoutParam},
		{"zero fund", map[string]string{dapp.ParamPayoutFund: (common.Address{}).Hex()}, dapp.ErrBadPayoutParam},
		{"negative budget", map[string]string{dapp.ParamPayoutFund: fund, dapp.ParamPayoutBudget: "-5"}, dapp.ErrBadPayoutParam},
		{"budget not a number", map[string]string{dapp.ParamPayoutFund: fund, dapp.ParamPayoutBudget: "lots"}, dapp.ErrBadPayoutParam},
		{"availability above 100%", map[string]string{dapp.ParamPayoutFund: fund, dapp.ParamPayoutMinAvailability: "1000001"}, dapp.ErrBadPayoutParam},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dapptest.New(t, 1, dapptest.Options{App: dapp.Manifest{Name: t.Name(), Params: tc.params}})
			ctx := context.Background()
			e := c.Node(0).Replicas().Epoch() - 1
			if _, _, err := c.Node(0).Payouts().Table(ctx, e); !errors.Is(err, tc.want) {
				t.Fatalf("Table: %v, want %v", err, tc.want)
			}
			if _, err := c.Node(0).Payouts().Status(ctx, e); !errors.Is(err, tc.want) {
				t.Fatalf("Status: %v, want %v", err, tc.want)
			}
		})
	}
}
