package payment

import (
	"crypto/ecdsa"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/payout"
	"github.com/dpaas/dpaas/payment/internal/testtoken"
)

// fundFixture: a dev chain, a committee of n keys, a depositor with 100
// tokens who deployed a fund (budget 10 tokens) and put 25 tokens in it,
// and a stranger with gas only, who submits.
type fundFixture struct {
	d                   *DevChain
	depositor, stranger *Payments
	committee           []*ecdsa.PrivateKey
	fund                *Fund // bound through the stranger
}

func newFundFixture(t testing.TB, n int) *fundFixture {
	t.Helper()
	ctx := testCtx(t)
	f := &fundFixture{d: newDev(t)}
	f.depositor = openFunded(t, f.d, Config{}, tokens(100))
	f.stranger = openFunded(t, f.d, Config{}, nil)
	for range n {
		f.committee = append(f.committee, newKey(t))
	}
	addr, err := f.depositor.DeployFund(ctx, FundConfig{Committee: f.members(), Budget: tokens(10)})
	if err != nil {
		t.Fatalf("DeployFund: %v", err)
	}
	dep, err := f.depositor.OpenFund(ctx, addr)
	if err != nil {
		t.Fatalf("OpenFund: %v", err)
	}
	if _, err := dep.Deposit(ctx, tokens(25)); err != nil {
		t.Fatalf("Deposit: %v", err)
	}
	if f.fund, err = f.stranger.OpenFund(ctx, addr); err != nil {
		t.Fatalf("OpenFund: %v", err)
	}
	return f
}

func (f *fundFixture) members() []common.Address {
	out := make([]common.Address, len(f.committee))
	for i, k := range f.committee {
		out[i] = addrOf(k)
	}
	return out
}

// sigs: the payout signatures of the members with the given indexes.
func (f *fundFixture) sigs(t testing.TB, epoch uint64, table []PayoutEntry, idx ...int) [][]byte {
	t.Helper()
	var out [][]byte
	for _, i := range idx {
		s, err := SignPayout(f.committee[i], f.d.ChainID(), f.fund.Address(), epoch, table)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func (f *fundFixture) state(t testing.TB) FundState {
	t.Helper()
	st, err := f.fund.State(testCtx(t))
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return st
}

// entries converts a computed table to the payment package's rows.
func entries(rows []payout.Row) []PayoutEntry {
	out := make([]PayoutEntry, len(rows))
	for i, r := range rows {
		out[i] = PayoutEntry{Account: r.Account, Amount: r.Amount}
	}
	return out
}

// TestFundPayoutPaysExactBalances computes an epoch's table from
// instances (two sharing a diversity group, one unverified, one below the
// minimum availability), has 3 of 5 committee members sign it, lets a
// stranger submit it, and checks every balance to the unit.
func TestFundPayoutPaysExactBalances(t *testing.T) {
	f := newFundFixture(t, 5)
	ctx := testCtx(t)
	st := f.state(t)
	if st.Balance.Cmp(tokens(25)) != 0 || st.Budget.Cmp(tokens(10)) != 0 || st.LastEpoch != 0 || st.Nonce != 0 ||
		len(st.Committee) != 5 || st.CommitteeHash != panelHash(f.members()) || st.Token != f.d.Token() {
		t.Fatalf("state after deploy and deposit: %+v", st)
	}
	wantBalance(t, f.stranger, f.depositor.Account(), tokens(75), "depositor")

	acct := func() common.Address { return addrOf(newKey(t)) }
	a, b, c, unverified, slow := acct(), acct(), acct(), acct(), acct()
	rows, err := payout.Compute([]payout.Instance{
		{Account: a, Group: "10.0.1.0/24", Availability: 1_000_000, Verified: true, Served: big.NewInt(300)},
		{Account: b, Group: "10.0.1.0/24", Availability: 950_000, Verified: true, Served: big.NewInt(100)},
		{Account: c, Group: "10.0.2.0/24", Availability: 900_000, Verified: true, Served: big.NewInt(400)},
		{Account: unverified, Group: "10.0.3.0/24", Availability: 1_000_000, Verified: false, Served: big.NewInt(400)},
		{Account: slow, Group: "10.0.4.0/24", Availability: 899_999, Verified: true, Served: big.NewInt(400)},
	}, payout.Params{Budget: milli(9500), MinAvailability: payout.DefaultMinAvailability})
	if err != nil {
		t.Fatal(err)
	}
	table := entries(rows)
	// Group weights 1.0×400 and 0.9×400: 9.5 tokens split 10:9 (5 and
	// 4.5), the first group's 5 split 3:1 between a and b (by traffic),
	// at no loss to rounding.
	want := map[common.Address]*big.Int{a: milli(3750), b: milli(1250), c: milli(4500)}
	if len(table) != 3 {
		t.Fatalf("table %v, want a, b and c", table)
	}
	for _, e := range table {
		if e.Amount.Cmp(want[e.Account]) != 0 {
			t.Fatalf("table pays %s %v, want %v", e.Account, e.Amount, want[e.Account])
		}
	}

	tx, err := f.fund.SubmitPayout(ctx, 7, table, nil, f.sigs(t, 7, table, 4, 0, 2))
	if err != nil {
		t.Fatalf("SubmitPayout: %v", err)
	}
	for acc, amount := range want {
		wantBalance(t, f.stranger, acc, amount, acc.Hex())
	}
	wantBalance(t, f.stranger, unverified, new(big.Int), "unverified instance")
	wantBalance(t, f.stranger, slow, new(big.Int), "instance below the minimum availability")
	st = f.state(t)
	if st.Balance.Cmp(milli(15500)) != 0 || st.LastEpoch != 7 {
		t.Fatalf("after the payout: balance %v last epoch %d, want %v and 7", st.Balance, st.LastEpoch, milli(15500))
	}
	// The PaidOut event carries the hash anyone recomputes from the table.
	r, err := f.stranger.be.TransactionReceipt(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := PayoutTableHash(table)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range r.Logs {
		if ev, err := fundABI.UnpackPaidOutEvent(l); err == nil {
			found = true
			if ev.Epoch != 7 || common.Hash(ev.TableHash) != h || ev.Total.Cmp(milli(9500)) != 0 || ev.Recipients.Int64() != 3 {
				t.Fatalf("PaidOut %+v, want epoch 7, hash %s, total %v, 3 recipients", ev, h, milli(9500))
			}
		}
	}
	if !found {
		t.Fatal("no PaidOut event")
	}

	// A later epoch pays again, from any majority, in any order.
	next := []PayoutEntry{{Account: c, Amount: tokens(10)}}
	if _, err := f.fund.SubmitPayout(ctx, 8, next, f.members(), f.sigs(t, 8, next, 3, 1, 2)); err != nil {
		t.Fatalf("SubmitPayout epoch 8: %v", err)
	}
	wantBalance(t, f.stranger, c, milli(14500), "c after epoch 8")
	wantBalance(t, f.stranger, f.fund.Address(), milli(5500), "fund after epoch 8")
}

func TestFundPayoutRefusals(t *testing.T) {
	f := newFundFixture(t, 5)
	ctx := testCtx(t)
	payee := addrOf(newKey(t))
	table := []PayoutEntry{{Account: payee, Amount: tokens(4)}, {Account: addrOf(newKey(t)), Amount: big.NewInt(0)}}
	chainID, fundAddr := f.d.ChainID(), f.fund.Address()

	// Another fund with the same committee: a signature for it must not
	// pay from this one.
	otherAddr, err := f.depositor.DeployFund(ctx, FundConfig{Committee: f.members(), Budget: tokens(10)})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key *ecdsa.PrivateKey, chain *big.Int, fund common.Address, epoch uint64, tbl []PayoutEntry) []byte {
		t.Helper()
		s, err := SignPayout(key, chain, fund, epoch, tbl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	m := f.committee
	s0, s1 := sign(m[0], chainID, fundAddr, 1, table), sign(m[1], chainID, fundAddr, 1, table)
	highS := append([]byte(nil), sign(m[2], chainID, fundAddr, 1, table)...)
	s := new(big.Int).SetBytes(highS[32:64])
	n, _ := new(big.Int).SetString("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)
	s.Sub(n, s)
	s.FillBytes(highS[32:64])
	highS[64] ^= 1 // 27 <-> 28: the same signer with the high-s twin
	over := []PayoutEntry{{Account: payee, Amount: tokens(6)}, {Account: addrOf(newKey(t)), Amount: new(big.Int).Add(tokens(4), big.NewInt(1))}}
	for _, c := range []struct {
		name      string
		epoch     uint64
		table     []PayoutEntry
		committee []common.Address
		sigs      [][]byte
		want      error
	}{
		{"minority (2 of 5)", 1, table, nil, [][]byte{s0, s1}, ErrNoMajority},
		{"no signature", 1, table, nil, nil, ErrNoMajority},
		{"outsider signer", 1, table, nil, [][]byte{s0, s1, sign(newKey(t), chainID, fundAddr, 1, table)}, ErrNotCommittee},
		{"duplicate signer", 1, table, nil, [][]byte{s0, s1, s1}, ErrDuplicateSigner},
		{"replay from another fund", 1, table, nil, [][]byte{s0, s1, sign(m[2], chainID, otherAddr, 1, table)}, ErrNotCommittee},
		{"replay from another chain", 1, table, nil, [][]byte{s0, s1, sign(m[2], new(big.Int).Add(chainID, big.NewInt(1)), fundAddr, 1, table)}, ErrNotCommittee},
		{"another epoch's signature", 1, table, nil, [][]byte{s0, s1, sign(m[2], chainID, fundAddr, 2, table)}, ErrNotCommittee},
		{"a table changed after signing", 1, []PayoutEntry{{Account: payee, Amount: tokens(5)}, table[1]}, nil, [][]byte{s0, s1, sign(m[2], chainID, fundAddr, 1, table)}, ErrNotCommittee},
		{"high-s twin", 1, table, nil, [][]byte{s0, s1, highS}, ErrInvalidSignature},
		{"malformed signature", 1, table, nil, [][]byte{s0, s1, {1, 2, 3}}, ErrInvalidSignature},
		{"committee list not the fund's", 1, table, f.members()[:3], [][]byte{s0, s1, sign(m[2], chainID, fundAddr, 1, table)}, ErrNotCommittee},
		{"epoch 0", 0, table, nil, f.sigs(t, 0, table, 0, 1, 2), ErrStaleEpoch},
		{"over the epoch budget", 1, over, nil, f.sigs(t, 1, over, 0, 1, 2), ErrOverBudget},
		{"zero account", 1, []PayoutEntry{{Amount: big.NewInt(1)}}, nil, nil, ErrBadTable},
		{"negative amount", 1, []PayoutEntry{{Account: payee, Amount: big.NewInt(-1)}}, nil, nil, ErrBadTable},
		{"nil amount", 1, []PayoutEntry{{Account: payee}}, nil, nil, ErrBadTable},
	} {
		if _, err := f.fund.SubmitPayout(ctx, c.epoch, c.table, c.committee, c.sigs); !errors.Is(err, c.want) {
			t.Errorf("SubmitPayout with %s = %v, want %v", c.name, err, c.want)
		}
	}
	wantBalance(t, f.stranger, fundAddr, tokens(25), "fund after the refusals")
	wantBalance(t, f.stranger, payee, new(big.Int), "payee after the refusals")

	good := [][]byte{s0, s1, sign(m[2], chainID, fundAddr, 1, table)}
	if _, err := f.fund.SubmitPayout(ctx, 1, table, nil, good); err != nil {
		t.Fatalf("SubmitPayout: %v", err)
	}
	if _, err := f.fund.SubmitPayout(ctx, 1, table, nil, good); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("replayed payout = %v, want ErrStaleEpoch", err)
	}
	// Budget left in the fund: 21 tokens, budget 10; two epochs of 10
	// leave 1, so the third payout of 10 finds the balance too low.
	ten := []PayoutEntry{{Account: payee, Amount: tokens(10)}}
	for epoch := uint64(2); epoch <= 3; epoch++ {
		if _, err := f.fund.SubmitPayout(ctx, epoch, ten, nil, f.sigs(t, epoch, ten, 0, 1, 2)); err != nil {
			t.Fatalf("SubmitPayout %d: %v", epoch, err)
		}
	}
	if _, err := f.fund.SubmitPayout(ctx, 4, ten, nil, f.sigs(t, 4, ten, 0, 1, 2)); !errors.Is(err, ErrFundTooLow) {
		t.Fatalf("payout above the balance = %v, want ErrFundTooLow", err)
	}
	// An older epoch than the last paid is as stale as the same one.
	one := []PayoutEntry{{Account: payee, Amount: big.NewInt(1)}}
	if _, err := f.fund.SubmitPayout(ctx, 2, one, nil, f.sigs(t, 2, one, 0, 1, 2)); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("payout of an older epoch = %v, want ErrStaleEpoch", err)
	}
	wantBalance(t, f.stranger, payee, tokens(24), "payee")
	wantBalance(t, f.stranger, fundAddr, tokens(1), "fund")
}

// TestFundGovernance changes the budget and the committee by majority
// messages; replays, minorities and the old committee are refused.
func TestFundGovernance(t *testing.T) {
	f := newFundFixture(t, 3)
	ctx := testCtx(t)
	chainID, fundAddr := f.d.ChainID(), f.fund.Address()
	budgetSig := func(i int, budget *big.Int, nonce uint64) []byte {
		t.Helper()
		s, err := SignSetBudget(f.committee[i], chainID, fundAddr, budget, nonce)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := f.fund.SetBudget(ctx, tokens(20), 0, nil, [][]byte{budgetSig(0, tokens(20), 0)}); !errors.Is(err, ErrNoMajority) {
		t.Fatalf("SetBudget by 1 of 3 = %v, want ErrNoMajority", err)
	}
	if _, err := f.fund.SetBudget(ctx, tokens(20), 1, nil, [][]byte{budgetSig(0, tokens(20), 1), budgetSig(1, tokens(20), 1)}); !errors.Is(err, ErrStaleNonce) {
		t.Fatalf("SetBudget with a future nonce = %v, want ErrStaleNonce", err)
	}
	raise := [][]byte{budgetSig(0, tokens(20), 0), budgetSig(2, tokens(20), 0)}
	if _, err := f.fund.SetBudget(ctx, tokens(20), 0, nil, raise); err != nil {
		t.Fatalf("SetBudget: %v", err)
	}
	if _, err := f.fund.SetBudget(ctx, tokens(20), 0, nil, raise); !errors.Is(err, ErrStaleNonce) {
		t.Fatalf("replayed SetBudget = %v, want ErrStaleNonce", err)
	}
	if st := f.state(t); st.Budget.Cmp(tokens(20)) != 0 || st.Nonce != 1 {
		t.Fatalf("after SetBudget: budget %v nonce %d", st.Budget, st.Nonce)
	}
	payee := addrOf(newKey(t))
	fifteen := []PayoutEntry{{Account: payee, Amount: tokens(15)}}
	if _, err := f.fund.SubmitPayout(ctx, 1, fifteen, nil, f.sigs(t, 1, fifteen, 0, 1)); err != nil {
		t.Fatalf("payout within the new budget: %v", err)
	}

	// A new committee of four: one old member and three new keys.
	newKeys := []*ecdsa.PrivateKey{f.committee[1], newKey(t), newKey(t), newKey(t)}
	next := make([]common.Address, len(newKeys))
	for i, k := range newKeys {
		next[i] = addrOf(k)
	}
	commSig := func(k *ecdsa.PrivateKey) []byte {
		t.Helper()
		s, err := SignSetCommittee(k, chainID, fundAddr, next, 1)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := f.fund.SetCommittee(ctx, next, 1, nil, [][]byte{commSig(newKeys[1]), commSig(newKeys[2])}); !errors.Is(err, ErrNotCommittee) {
		t.Fatalf("SetCommittee signed by the incoming members = %v, want ErrNotCommittee", err)
	}
	if _, err := f.fund.SetCommittee(ctx, []common.Address{next[0], next[0]}, 1, nil, nil); !errors.Is(err, ErrBadCommittee) {
		t.Fatalf("SetCommittee with a repeated member = %v, want ErrBadCommittee", err)
	}
	if _, err := f.fund.SetCommittee(ctx, next, 1, nil, [][]byte{commSig(f.committee[0]), commSig(f.committee[2])}); err != nil {
		t.Fatalf("SetCommittee: %v", err)
	}
	st := f.state(t)
	if st.Nonce != 2 || st.CommitteeHash != panelHash(next) || len(st.Committee) != 4 || st.Committee[3] != next[3] {
		t.Fatalf("after SetCommittee: %+v", st)
	}
	// The old committee's majority no longer pays; the new one's does
	// (three of four: two is not a strict majority).
	one := []PayoutEntry{{Account: payee, Amount: tokens(1)}}
	if _, err := f.fund.SubmitPayout(ctx, 2, one, nil, f.sigs(t, 2, one, 0, 2)); !errors.Is(err, ErrNotCommittee) {
		t.Fatalf("payout by the old committee = %v, want ErrNotCommittee", err)
	}
	newSigs := func(idx ...int) [][]byte {
		var out [][]byte
		for _, i := range idx {
			s, err := SignPayout(newKeys[i], chainID, fundAddr, 2, one)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	if _, err := f.fund.SubmitPayout(ctx, 2, one, nil, newSigs(0, 3)); !errors.Is(err, ErrNoMajority) {
		t.Fatalf("payout by 2 of 4 = %v, want ErrNoMajority", err)
	}
	if _, err := f.fund.SubmitPayout(ctx, 2, one, nil, newSigs(0, 3, 2)); err != nil {
		t.Fatalf("payout by the new committee: %v", err)
	}
	wantBalance(t, f.stranger, payee, tokens(16), "payee")
}

// TestFundDigestsMatchContract checks the Go digests and table hash
// against the contract's own view functions.
func TestFundDigestsMatchContract(t *testing.T) {
	f := newFundFixture(t, 1)
	opts := &bind.CallOpts{Context: testCtx(t)}
	table := []PayoutEntry{{Account: common.Address{1}, Amount: tokens(3)}, {Account: common.Address{2}, Amount: big.NewInt(0)}}
	accs, amts, err := splitTable(table)
	if err != nil {
		t.Fatal(err)
	}
	h, err := PayoutTableHash(table)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bind.Call(f.fund.c, opts, fundABI.PackTableHash(accs, amts), fundABI.UnpackTableHash)
	if err != nil || common.Hash(got) != h {
		t.Fatalf("contract table hash %x (%v), Go %s", got, err, h)
	}
	got, err = bind.Call(f.fund.c, opts, fundABI.PackPayoutDigest(1<<40+3, h), fundABI.UnpackPayoutDigest)
	if want := PayoutDigest(f.d.ChainID(), f.fund.Address(), 1<<40+3, h); err != nil || common.Hash(got) != want {
		t.Fatalf("contract payout digest %x (%v), Go %s", got, err, want)
	}
	next := []common.Address{{7}, {8}, {9}}
	got, err = bind.Call(f.fund.c, opts, fundABI.PackSetCommitteeDigest(next, 5), fundABI.UnpackSetCommitteeDigest)
	if want := SetCommitteeDigest(f.d.ChainID(), f.fund.Address(), next, 5); err != nil || common.Hash(got) != want {
		t.Fatalf("contract committee digest %x (%v), Go %s", got, err, want)
	}
	got, err = bind.Call(f.fund.c, opts, fundABI.PackSetBudgetDigest(tokens(123), 6), fundABI.UnpackSetBudgetDigest)
	if want := SetBudgetDigest(f.d.ChainID(), f.fund.Address(), tokens(123), 6); err != nil || common.Hash(got) != want {
		t.Fatalf("contract budget digest %x (%v), Go %s", got, err, want)
	}
}

func TestFundDeployAndOpenRefusals(t *testing.T) {
	f := newFundFixture(t, 2)
	ctx := testCtx(t)
	a := f.members()
	for name, c := range map[string]struct {
		cfg  FundConfig
		want error
	}{
		"no committee":       {FundConfig{Budget: tokens(1)}, ErrBadCommittee},
		"zero member":        {FundConfig{Committee: []common.Address{a[0], {}}}, ErrBadCommittee},
		"repeated member":    {FundConfig{Committee: []common.Address{a[0], a[1], a[0]}}, ErrBadCommittee},
		"too large":          {FundConfig{Committee: make([]common.Address, MaxCommittee+1)}, ErrBadCommittee},
		"negative budget":    {FundConfig{Committee: a, Budget: big.NewInt(-1)}, ErrBadAmount},
		"budget above 2^256": {FundConfig{Committee: a, Budget: new(big.Int).Lsh(big.NewInt(1), 256)}, ErrBadAmount},
	} {
		if _, err := f.depositor.DeployFund(ctx, c.cfg); !errors.Is(err, c.want) {
			t.Errorf("DeployFund with %s = %v, want %v", name, err, c.want)
		}
	}
	for name, addr := range map[string]common.Address{
		"an account":         f.depositor.Account(),
		"the escrow":         f.d.Escrow(),
		"the token contract": f.d.Token(),
	} {
		if _, err := f.stranger.OpenFund(ctx, addr); !errors.Is(err, ErrNotFund) {
			t.Errorf("OpenFund on %s = %v, want ErrNotFund", name, err)
		}
	}
	dep, err := f.depositor.OpenFund(ctx, f.fund.Address())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dep.Deposit(ctx, new(big.Int)); !errors.Is(err, ErrBadAmount) {
		t.Errorf("Deposit of 0 = %v, want ErrBadAmount", err)
	}
	if _, err := dep.Deposit(ctx, tokens(76)); !errors.Is(err, ErrInsufficientFunds) {
		t.Errorf("Deposit beyond the balance = %v, want ErrInsufficientFunds", err)
	}
	wantBalance(t, f.stranger, f.fund.Address(), tokens(25), "fund")
}

// TestFundTokens: a fee-on-transfer token's deposit is refused, and a
// token whose transfers return nothing (USDT-style) pays out.
func TestFundTokens(t *testing.T) {
	f := newFundFixture(t, 1)
	ctx := testCtx(t)
	p := f.depositor
	member := f.committee[0]

	feeABI := testtoken.NewFeeToken()
	feeTok := deployOn(t, p, testtoken.FeeTokenMetaData.Bin, nil)
	if _, err := p.send(ctx, feeABI.Instance(p.be, feeTok), feeABI.PackMint(p.Account(), tokens(10))); err != nil {
		t.Fatal(err)
	}
	addr, err := p.DeployFund(ctx, FundConfig{Token: feeTok, Committee: []common.Address{addrOf(member)}, Budget: tokens(10)})
	if err != nil {
		t.Fatal(err)
	}
	feeFund, err := p.OpenFund(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if feeFund.Token() != feeTok {
		t.Fatalf("fund token %s, want %s", feeFund.Token(), feeTok)
	}
	if _, err := feeFund.Deposit(ctx, tokens(5)); !errors.Is(err, ErrFeeOnTransfer) {
		t.Fatalf("Deposit of a fee-on-transfer token = %v, want ErrFeeOnTransfer", err)
	}

	nrABI := testtoken.NewNoReturnToken()
	nrTok := deployOn(t, p, testtoken.NoReturnTokenMetaData.Bin, nil)
	if _, err := p.send(ctx, nrABI.Instance(p.be, nrTok), nrABI.PackMint(p.Account(), tokens(10))); err != nil {
		t.Fatal(err)
	}
	addr, err = p.DeployFund(ctx, FundConfig{Token: nrTok, Committee: []common.Address{addrOf(member)}, Budget: tokens(10)})
	if err != nil {
		t.Fatal(err)
	}
	nrFund, err := p.OpenFund(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nrFund.Deposit(ctx, tokens(6)); err != nil {
		t.Fatalf("Deposit of a no-return token: %v", err)
	}
	payee := addrOf(newKey(t))
	table := []PayoutEntry{{Account: payee, Amount: tokens(4)}}
	sig, err := SignPayout(member, f.d.ChainID(), addr, 1, table)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nrFund.SubmitPayout(ctx, 1, table, nil, [][]byte{sig}); err != nil {
		t.Fatalf("payout in a no-return token: %v", err)
	}
	st, err := nrFund.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bind.Call(nrABI.Instance(p.be, nrTok), nil, nrABI.PackBalanceOf(payee), nrABI.UnpackBalanceOf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Balance.Cmp(tokens(2)) != 0 || got.Cmp(tokens(4)) != 0 {
		t.Fatalf("fund holds %v, payee %v; want 2 and 4 tokens", st.Balance, got)
	}
}

// TestFundRefusesReentrancy: a token that calls back into the fund while
// it pays a recipient (here: a valid payout of the next epoch) is refused
// with ReentrantCall, and the first payout stands alone.
func TestFundRefusesReentrancy(t *testing.T) {
	f := newFundFixture(t, 1)
	ctx := testCtx(t)
	p := f.depositor
	member := f.committee[0]
	hookABI := testtoken.NewHookToken()
	tokAddr := deployOn(t, p, testtoken.HookTokenMetaData.Bin, nil)
	tok := hookABI.Instance(p.be, tokAddr)
	if _, err := p.send(ctx, tok, hookABI.PackMint(p.Account(), tokens(10))); err != nil {
		t.Fatal(err)
	}
	addr, err := p.DeployFund(ctx, FundConfig{Token: tokAddr, Committee: []common.Address{addrOf(member)}, Budget: tokens(10)})
	if err != nil {
		t.Fatal(err)
	}
	fund, err := p.OpenFund(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fund.Deposit(ctx, tokens(10)); err != nil {
		t.Fatal(err)
	}
	payee := addrOf(newKey(t))
	sign := func(epoch uint64, table []PayoutEntry) [][]byte {
		t.Helper()
		s, err := SignPayout(member, f.d.ChainID(), addr, epoch, table)
		if err != nil {
			t.Fatal(err)
		}
		return [][]byte{s}
	}
	second := []PayoutEntry{{Account: payee, Amount: tokens(3)}}
	accs, amts, err := splitTable(second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.send(ctx, tok, hookABI.PackSetHook(addr, fundABI.PackPayout(2, accs, amts, []common.Address{addrOf(member)}, sign(2, second)))); err != nil {
		t.Fatal(err)
	}
	first := []PayoutEntry{{Account: payee, Amount: tokens(4)}}
	if _, err := fund.SubmitPayout(ctx, 1, first, nil, sign(1, first)); err != nil {
		t.Fatalf("SubmitPayout: %v", err)
	}
	call := func(data []byte) []byte {
		out, err := tok.CallRaw(&bind.CallOpts{Context: ctx}, data)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	called, _ := hookABI.UnpackHookCalled(call(hookABI.PackHookCalled()))
	succeeded, _ := hookABI.UnpackHookSucceeded(call(hookABI.PackHookSucceeded()))
	result, _ := hookABI.UnpackHookResult(call(hookABI.PackHookResult()))
	if !called || succeeded {
		t.Fatalf("reentrant payout made %v, succeeded %v", called, succeeded)
	}
	v, err := fundABI.UnpackError(result)
	if err != nil {
		t.Fatalf("revert data %x: %v", result, err)
	}
	if err := fundError(v); !errors.Is(err, ErrReentrant) {
		t.Fatalf("reentrant payout refused with %v, want ErrReentrant", err)
	}
	st, err := fund.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := hookABI.UnpackBalanceOf(call(hookABI.PackBalanceOf(payee)))
	if st.LastEpoch != 1 || st.Balance.Cmp(tokens(6)) != 0 || got.Cmp(tokens(4)) != 0 {
		t.Fatalf("last epoch %d, fund %v, payee %v; want 1, 6 and 4 tokens", st.LastEpoch, st.Balance, got)
	}
}

// TestFundOverJSONRPC runs a fund through the dev chain served on
// loopback: refusals come back as the RPC's revert data.
func TestFundOverJSONRPC(t *testing.T) {
	d := newDev(t)
	url, err := d.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cfg := Config{RPCURL: url, PollInterval: 5 * time.Millisecond}
	p := openFunded(t, d, cfg, tokens(10))
	keys := []*ecdsa.PrivateKey{newKey(t), newKey(t), newKey(t)}
	committee := []common.Address{addrOf(keys[0]), addrOf(keys[1]), addrOf(keys[2])}
	addr, err := p.DeployFund(ctx, FundConfig{Committee: committee, Budget: tokens(5)})
	if err != nil {
		t.Fatalf("DeployFund over RPC: %v", err)
	}
	fund, err := p.OpenFund(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fund.Deposit(ctx, tokens(8)); err != nil {
		t.Fatalf("Deposit over RPC: %v", err)
	}
	payee := addrOf(newKey(t))
	table := []PayoutEntry{{Account: payee, Amount: tokens(5)}}
	var sigs [][]byte
	for _, k := range keys[:2] {
		s, err := SignPayout(k, d.ChainID(), addr, 1, table)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, s)
	}
	if _, err := fund.SubmitPayout(ctx, 1, table, nil, sigs[:1]); !errors.Is(err, ErrNoMajority) {
		t.Fatalf("payout by a minority over RPC = %v, want ErrNoMajority", err)
	}
	if _, err := fund.SubmitPayout(ctx, 1, table, nil, sigs); err != nil {
		t.Fatalf("SubmitPayout over RPC: %v", err)
	}
	if _, err := fund.SubmitPayout(ctx, 1, table, nil, sigs); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("replayed payout over RPC = %v, want ErrStaleEpoch", err)
	}
	wantBalance(t, p, payee, tokens(5), "payee")
	wantBalance(t, p, addr, tokens(3), "fund")
}
