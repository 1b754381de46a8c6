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
	"runtime"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/governance"
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

// TestPayoutsEndToEnd: three verified instances on a fund's committee,
// paid through payment channels in one epoch, sign that epoch's table
// and have the fund pay it: each instance's balance rises by exactly its
// row of the table every instance recomputes, and the table is the one
// payout.Compute gives from the standings and the redemptions. One
// member, picked by the seed, signs a table paying itself everything:
// the two honest signatures are the majority that pays. The honest
// member who would submit first never does (as if it crashed after
// signing): the other submits a Grace later.
func TestPayoutsEndToEnd(t *testing.T) {
	const n = 3
	const epochLen = 10 * time.Second
	seed := *payoutSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -payout-seed=%d)", seed, seed)
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tokens := func(x int64) *big.Int { return new(big.Int).Mul(big.NewInt(x), big.NewInt(1e15)) }

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
		Timeout:  90 * time.Second,
		Configure: func(i int, cfg *dapp.Config) {
			cfg.Key = keys[i]
			cfg.Payment.Dev = dev
			cfg.Mirror = fastMirror(epochLen)
			cfg.Mirror.Release = "1.0.0"
			cfg.Governance.CloseDelay = 200 * time.Millisecond
			// Late attestations have time to arrive: the two honest
			// members must compute the same table.
			cfg.Payouts.Grace = 2 * time.Second
		},
	})
	c.WaitConnected()
	liar := rnd.IntN(n)
	dapp.LieInPayouts(c.Node(liar))
	// The honest signer with the lowest account submits first: mute it.
	first := -1
	for i, acc := range accounts {
		if i != liar && (first < 0 || bytes.Compare(acc[:], accounts[first][:]) < 0) {
			first = i
		}
	}
	dapp.MuteInPayouts(c.Node(first))
	t.Logf("node %d signs false tables, node %d never submits", liar, first)

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
		End:   time.Now().Add(3 * time.Second),
		Actions: []governance.Action{governance.ApproveRelease(governance.Release{
			Version: "1.0.0", Executables: map[string]string{runtime.GOOS + "/" + runtime.GOARCH: hex.EncodeToString(sum[:])}})},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, node := range c.Nodes() {
		c.WaitFor(fmt.Sprintf("node %d's vote", i), func() bool {
			return node.Governance().Vote(ctx, id, governance.For()) == nil
		})
	}
	c.WaitFor("every instance verified on every instance", func() bool {
		for _, node := range c.Nodes() {
			rs := replicaMap(t, node)
			if len(rs) != n {
				return false
			}
			for _, r := range rs {
				if !r.Verified {
					return false
				}
			}
		}
		return true
	})

	channels := make([]*payment.Channel, n)
	for i, acc := range accounts {
		if channels[i], err = client.OpenChannel(ctx, acc, tokens(100), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Redeem within one epoch: wait for one just begun, with the chain's
	// clock not ahead of the wall clock.
	r := c.Node(0).Replicas()
	var e uint64
	c.WaitFor("a fresh epoch with time to redeem", func() bool {
		now := time.Now()
		e = r.Epoch()
		return r.EpochStart(e+1).Sub(now) >= 6*time.Second && dev.Now().Before(now.Add(time.Second))
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
	// The chain must pass the epoch's end for its redemptions to be final:
	// a dev chain seals blocks only for transactions, so send one.
	c.WaitFor(fmt.Sprintf("epoch %d over", e), func() bool { return r.Epoch() > e })
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

	var last uint64
	c.WaitFor(fmt.Sprintf("the fund to pay epoch %d", e), func() bool {
		st, err := fund.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last = st.LastEpoch
		return last >= e
	})
	if last != e {
		t.Fatalf("the fund's last epoch is %d, want %d (no later epoch has anything to pay)", last, e)
	}

	rows, hash, err := c.Node(0).Payouts().Table(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	for i, node := range c.Nodes()[1:] {
		got, h, err := node.Payouts().Table(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if h != hash || len(got) != len(rows) {
			t.Fatalf("node %d's table %s (%d rows), node 0's %s (%d rows)", i+1, h, len(got), hash, len(rows))
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
	st, err := c.Node(1).Payouts().Status(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	honest := 0
	for acc, h := range st.Signatures {
		if acc == accounts[liar] && h == hash {
			t.Fatalf("the liar's signature is of the honest table %s", h)
		}
		if h == hash {
			honest++
		}
	}
	if !st.Paid || st.Majority != hash || 2*honest <= n || st.Fund != fundAddr {
		t.Fatalf("status %+v, want paid with majority %s", st, hash)
	}
	for i, node := range c.Nodes() {
		want := uint64(0)
		if i != liar && i != first {
			want = 1
		}
		if got := dapp.PayoutsSubmitted(node); got != want {
			t.Fatalf("node %d submitted %d payouts, want %d", i, got, want)
		}
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
