package payment

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/dpaas/dpaas/payment/contracts"
	"github.com/dpaas/dpaas/payment/internal/testtoken"
)

// escrowFixture: a payer with 100 tokens, a payee and a stranger with gas,
// a fund address and a panel of n arbiter keys.
type escrowFixture struct {
	d                      *DevChain
	payer, payee, stranger *Payments
	fund                   common.Address
	arbiters               []*ecdsa.PrivateKey
}

func newEscrowFixture(t testing.TB, n int) *escrowFixture {
	d := newDev(t)
	f := &escrowFixture{d: d, fund: addrOf(newKey(t))}
	f.payer = openFunded(t, d, Config{}, tokens(100))
	f.payee = openFunded(t, d, Config{}, nil)
	f.stranger = openFunded(t, d, Config{}, nil)
	for range n {
		f.arbiters = append(f.arbiters, newKey(t))
	}
	return f
}

func (f *escrowFixture) panel() []common.Address {
	out := make([]common.Address, len(f.arbiters))
	for i, k := range f.arbiters {
		out[i] = addrOf(k)
	}
	return out
}

func (f *escrowFixture) open(t testing.TB, amount *big.Int, feeBps uint16) DealID {
	t.Helper()
	id, err := f.payer.OpenEscrow(testCtx(t), EscrowDeal{
		Payee: f.payee.Account(), Amount: amount, FeeBps: feeBps, Fund: f.fund,
		Deadline: f.d.Now().Add(time.Hour), Arbiters: f.panel(),
	})
	if err != nil {
		t.Fatalf("OpenEscrow: %v", err)
	}
	return id
}

// sigs: the rulings of the arbiters with the given indexes.
func (f *escrowFixture) sigs(t testing.TB, deal DealID, bps uint16, idx ...int) [][]byte {
	t.Helper()
	var out [][]byte
	for _, i := range idx {
		s, err := SignRuling(f.arbiters[i], f.d.ChainID(), f.d.Escrow(), deal, bps)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func wantBalance(t testing.TB, p *Payments, who common.Address, want *big.Int, name string) {
	t.Helper()
	if got := balance(t, p, who); got.Cmp(want) != 0 {
		t.Fatalf("%s holds %v, want %v", name, got, want)
	}
}

func wantStatus(t testing.TB, p *Payments, deal DealID, want EscrowStatus) {
	t.Helper()
	info, err := p.EscrowState(testCtx(t), deal)
	if err != nil {
		t.Fatalf("EscrowState: %v", err)
	}
	if info.Status != want {
		t.Fatalf("deal status %v, want %v", info.Status, want)
	}
}

// milli is n thousandths of a token.
func milli(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e15)) }

func TestEscrowReleasePaysPayeeAndFund(t *testing.T) {
	f := newEscrowFixture(t, 3)
	ctx := testCtx(t)
	id := f.open(t, tokens(40), 250) // 2.5% fee
	info, err := f.stranger.EscrowState(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Payer != f.payer.Account() || info.Payee != f.payee.Account() || info.Fund != f.fund ||
		info.Amount.Cmp(tokens(40)) != 0 || info.FeeBps != 250 || info.Status != EscrowOpen || len(info.Arbiters) != 3 {
		t.Fatalf("state %+v", info)
	}
	wantBalance(t, f.payer, f.payer.Account(), tokens(60), "payer after open")
	wantBalance(t, f.payer, f.d.Escrow(), tokens(40), "escrow after open")
	if _, err := f.payee.Release(ctx, id); !errors.Is(err, ErrNotParty) {
		t.Fatalf("Release by the payee = %v, want ErrNotParty", err)
	}
	if _, err := f.payer.Release(ctx, id); err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantBalance(t, f.payer, f.payee.Account(), milli(39000), "payee")
	wantBalance(t, f.payer, f.fund, milli(1000), "fund")
	wantBalance(t, f.payer, f.d.Escrow(), new(big.Int), "escrow")
	wantStatus(t, f.payer, id, EscrowClosed)
	if _, err := f.payer.Release(ctx, id); !errors.Is(err, ErrDealClosed) {
		t.Fatalf("second Release = %v, want ErrDealClosed", err)
	}
	if _, err := f.payee.Refund(ctx, id); !errors.Is(err, ErrDealClosed) {
		t.Fatalf("Refund after release = %v, want ErrDealClosed", err)
	}
}

func TestEscrowRefund(t *testing.T) {
	f := newEscrowFixture(t, 1)
	ctx := testCtx(t)
	id := f.open(t, tokens(10), 100)
	if _, err := f.payer.Refund(ctx, id); !errors.Is(err, ErrNotParty) {
		t.Fatalf("Refund by the payer = %v, want ErrNotParty", err)
	}
	if _, err := f.payee.Refund(ctx, id); err != nil {
		t.Fatalf("Refund: %v", err)
	}
	wantBalance(t, f.payer, f.payer.Account(), tokens(100), "payer")
	wantBalance(t, f.payer, f.fund, new(big.Int), "fund")
	wantStatus(t, f.payer, id, EscrowClosed)
}

func TestEscrowClaimAfterDeadline(t *testing.T) {
	f := newEscrowFixture(t, 3)
	ctx := testCtx(t)
	id := f.open(t, tokens(20), 500)
	if _, err := f.payee.Claim(ctx, id); !errors.Is(err, ErrDeadline) {
		t.Fatalf("Claim before the deadline = %v, want ErrDeadline", err)
	}
	if err := f.d.AdjustTime(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := f.payer.Dispute(ctx, id); !errors.Is(err, ErrDeadline) {
		t.Fatalf("Dispute after the deadline = %v, want ErrDeadline", err)
	}
	if _, err := f.stranger.Claim(ctx, id); !errors.Is(err, ErrNotParty) {
		t.Fatalf("Claim by a stranger = %v, want ErrNotParty", err)
	}
	if _, err := f.payee.Claim(ctx, id); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	wantBalance(t, f.payer, f.payee.Account(), tokens(19), "payee")
	wantBalance(t, f.payer, f.fund, tokens(1), "fund")
}

func TestEscrowDisputeBlocksClaimAndRelease(t *testing.T) {
	f := newEscrowFixture(t, 3)
	ctx := testCtx(t)
	id := f.open(t, tokens(20), 0)
	if _, err := f.stranger.Dispute(ctx, id); !errors.Is(err, ErrNotParty) {
		t.Fatalf("Dispute by a stranger = %v, want ErrNotParty", err)
	}
	if _, err := f.payee.Settle(ctx, id, 5000, f.sigs(t, id, 5000, 0, 1)); !errors.Is(err, ErrNotDisputed) {
		t.Fatalf("Settle before a dispute = %v, want ErrNotDisputed", err)
	}
	if _, err := f.payee.Dispute(ctx, id); err != nil {
		t.Fatalf("Dispute: %v", err)
	}
	wantStatus(t, f.payer, id, EscrowDisputed)
	if _, err := f.payer.Release(ctx, id); !errors.Is(err, ErrDisputed) {
		t.Fatalf("Release while disputed = %v, want ErrDisputed", err)
	}
	if err := f.d.AdjustTime(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := f.payee.Claim(ctx, id); !errors.Is(err, ErrDisputed) {
		t.Fatalf("Claim while disputed = %v, want ErrDisputed", err)
	}
}

func TestEscrowSettleAllToPayee(t *testing.T) {
	f := newEscrowFixture(t, 3)
	ctx := testCtx(t)
	id := f.open(t, tokens(50), 200)
	if _, err := f.payer.Dispute(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Any instance may submit: the stranger does, with arbiters 2 and 0.
	if _, err := f.stranger.Settle(ctx, id, MaxBps, f.sigs(t, id, MaxBps, 2, 0)); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	wantBalance(t, f.payer, f.payee.Account(), tokens(49), "payee")
	wantBalance(t, f.payer, f.fund, tokens(1), "fund")
	wantBalance(t, f.payer, f.payer.Account(), tokens(50), "payer")
	wantStatus(t, f.payer, id, EscrowClosed)
	if _, err := f.stranger.Settle(ctx, id, MaxBps, f.sigs(t, id, MaxBps, 0, 1)); !errors.Is(err, ErrDealClosed) {
		t.Fatalf("second Settle = %v, want ErrDealClosed", err)
	}
}

func TestEscrowSettleSplit(t *testing.T) {
	f := newEscrowFixture(t, 5)
	ctx := testCtx(t)
	id := f.open(t, tokens(100), 250)
	if _, err := f.payee.Dispute(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Signatures made by the Payments helper of an arbiter instance too.
	arb := openFunded(t, f.d, Config{Key: f.arbiters[4]}, nil)
	s4, err := arb.SignRuling(id, 3000)
	if err != nil {
		t.Fatal(err)
	}
	sigs := append(f.sigs(t, id, 3000, 1, 3), s4)
	if _, err := f.payer.Settle(ctx, id, 3000, sigs); err != nil {
		t.Fatalf("Settle 30/70: %v", err)
	}
	// 30 to the payee side: 0.75 fee, 29.25 paid; 70 back to the payer.
	wantBalance(t, f.payer, f.payee.Account(), milli(29250), "payee")
	wantBalance(t, f.payer, f.fund, milli(750), "fund")
	wantBalance(t, f.payer, f.payer.Account(), tokens(70), "payer")
	wantBalance(t, f.payer, f.d.Escrow(), new(big.Int), "escrow")
}

func TestEscrowRulingDigestMatchesContract(t *testing.T) {
	f := newEscrowFixture(t, 1)
	id := f.open(t, tokens(1), 0)
	got, err := bind.Call(f.payer.escrow, &bind.CallOpts{Context: testCtx(t)}, escrowABI.PackRulingDigest(id, 1234), escrowABI.UnpackRulingDigest)
	if err != nil {
		t.Fatal(err)
	}
	if want := RulingDigest(f.d.ChainID(), f.d.Escrow(), id, 1234); common.Hash(got) != want {
		t.Fatalf("contract digest %x, Go digest %x", got, want)
	}
}

func TestEscrowSettleRefusals(t *testing.T) {
	f := newEscrowFixture(t, 3)
	ctx := testCtx(t)
	id := f.open(t, tokens(30), 0)
	other := f.open(t, tokens(30), 0)
	for _, d := range []DealID{id, other} {
		if _, err := f.payer.Dispute(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	outsider := newKey(t)
	outSig, err := SignRuling(outsider, f.d.ChainID(), f.d.Escrow(), id, 5000)
	if err != nil {
		t.Fatal(err)
	}
	otherChain, err := SignRuling(f.arbiters[1], new(big.Int).Add(f.d.ChainID(), big.NewInt(1)), f.d.Escrow(), id, 5000)
	if err != nil {
		t.Fatal(err)
	}
	otherContract, err := SignRuling(f.arbiters[1], f.d.ChainID(), f.d.Channels(), id, 5000)
	if err != nil {
		t.Fatal(err)
	}
	highS := f.sigs(t, id, 5000, 1)[0]
	s := new(big.Int).SetBytes(highS[32:64])
	n, _ := new(big.Int).SetString("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)
	s.Sub(n, s)
	s.FillBytes(highS[32:64])
	highS[64] ^= 1 // 27 <-> 28: the same signer with the high-s twin
	a0 := f.sigs(t, id, 5000, 0)[0]
	for name, sigs := range map[string][][]byte{
		"minority of the panel":           {a0},
		"duplicate signer":                {a0, a0},
		"signer outside the panel":        {a0, outSig},
		"replay of another deal's ruling": {a0, f.sigs(t, other, 5000, 1)[0]},
		"another chain":                   {a0, otherChain},
		"another contract":                {a0, otherContract},
		"another share":                   {a0, f.sigs(t, id, 6000, 1)[0]},
		"high-s twin":                     {a0, highS},
		"malformed":                       {a0, []byte{1, 2, 3}},
	} {
		if _, err := f.payee.Settle(ctx, id, 5000, sigs); !errors.Is(err, ErrBadRuling) {
			t.Errorf("Settle with %s = %v, want ErrBadRuling", name, err)
		}
	}
	wantStatus(t, f.payer, id, EscrowDisputed)
	if _, err := f.payee.Settle(ctx, id, MaxBps+1, nil); !errors.Is(err, ErrBadRuling) {
		t.Errorf("Settle above 100%% = %v, want ErrBadRuling", err)
	}
	if _, err := f.payee.EscrowState(ctx, common.Hash{1}); !errors.Is(err, ErrUnknownDeal) {
		t.Errorf("EscrowState of an unknown deal = %v, want ErrUnknownDeal", err)
	}
	if _, err := f.payer.Release(ctx, common.Hash{1}); !errors.Is(err, ErrUnknownDeal) {
		t.Errorf("Release of an unknown deal = %v, want ErrUnknownDeal", err)
	}
	if _, err := f.payee.Settle(ctx, common.Hash{1}, 5000, nil); !errors.Is(err, ErrUnknownDeal) {
		t.Errorf("Settle of an unknown deal = %v, want ErrUnknownDeal", err)
	}
	// The majority settles; the same signatures cannot settle again.
	good := f.sigs(t, id, 5000, 0, 2)
	if _, err := f.payee.Settle(ctx, id, 5000, good); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if _, err := f.payee.Settle(ctx, id, 5000, good); !errors.Is(err, ErrDealClosed) {
		t.Fatalf("replayed Settle = %v, want ErrDealClosed", err)
	}
	if _, err := f.payee.Settle(ctx, other, 5000, good); !errors.Is(err, ErrBadRuling) {
		t.Fatalf("Settle of another deal with this deal's ruling = %v, want ErrBadRuling", err)
	}
	wantBalance(t, f.payer, f.payee.Account(), tokens(15), "payee")
	wantBalance(t, f.payer, f.payer.Account(), tokens(55), "payer") // 100 - 2*30 + 15
}

func TestEscrowOpenRefusals(t *testing.T) {
	f := newEscrowFixture(t, 2)
	ctx := testCtx(t)
	deal := func() EscrowDeal {
		return EscrowDeal{Payee: f.payee.Account(), Amount: tokens(1), FeeBps: 10, Fund: f.fund,
			Deadline: f.d.Now().Add(time.Hour), Arbiters: f.panel()}
	}
	for name, c := range map[string]struct {
		mod  func(*EscrowDeal)
		want error
	}{
		"zero amount":         {func(d *EscrowDeal) { d.Amount = new(big.Int) }, ErrBadAmount},
		"fee above 100%":      {func(d *EscrowDeal) { d.FeeBps = MaxBps + 1 }, ErrBadDeal},
		"fee without fund":    {func(d *EscrowDeal) { d.Fund = common.Address{} }, ErrBadDeal},
		"no arbiters":         {func(d *EscrowDeal) { d.Arbiters = nil }, ErrBadDeal},
		"payee on the panel":  {func(d *EscrowDeal) { d.Arbiters = append(d.Arbiters, f.payee.Account()) }, ErrBadDeal},
		"duplicate arbiter":   {func(d *EscrowDeal) { d.Arbiters = append(d.Arbiters, d.Arbiters[0]) }, ErrBadDeal},
		"payee is the payer":  {func(d *EscrowDeal) { d.Payee = f.payer.Account() }, ErrBadDeal},
		"deadline passed":     {func(d *EscrowDeal) { d.Deadline = f.d.Now().Add(-time.Second) }, ErrDeadline},
		"more than the funds": {func(d *EscrowDeal) { d.Amount = tokens(101) }, ErrInsufficientFunds},
	} {
		d := deal()
		c.mod(&d)
		if _, err := f.payer.OpenEscrow(ctx, d); !errors.Is(err, c.want) {
			t.Errorf("OpenEscrow with %s = %v, want %v", name, err, c.want)
		}
	}
	wantBalance(t, f.payer, f.payer.Account(), tokens(100), "payer")
}

// deployOn deploys test contract bin with constructor args from p's account.
func deployOn(t testing.TB, p *Payments, bin string, args []byte) common.Address {
	t.Helper()
	opts := bind.NewKeyedTransactor(p.key, p.chainID)
	opts.Context = testCtx(t)
	addr, tx, err := bind.DeployContract(opts, common.FromHex(bin), p.be, args)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if _, err := waitReceipt(opts.Context, p.be, tx.Hash(), time.Millisecond, nil); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	return addr
}

func TestEscrowRefusesFeeOnTransferToken(t *testing.T) {
	f := newEscrowFixture(t, 1)
	ctx := testCtx(t)
	feeABI := testtoken.NewFeeToken()
	tok := deployOn(t, f.payer, testtoken.FeeTokenMetaData.Bin, nil)
	esc := deployOn(t, f.payer, contracts.EscrowMetaData.Bin, escrowABI.PackConstructor(tok))
	p, err := Open(ctx, Config{Dev: f.d, Key: f.payer.key, Token: tok, Escrow: esc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if _, err := p.send(ctx, feeABI.Instance(p.be, tok), feeABI.PackMint(p.Account(), tokens(10))); err != nil {
		t.Fatal(err)
	}
	_, err = p.OpenEscrow(ctx, EscrowDeal{Payee: f.payee.Account(), Amount: tokens(5), Deadline: f.d.Now().Add(time.Hour), Arbiters: f.panel()})
	if !errors.Is(err, ErrFeeOnTransfer) {
		t.Fatalf("OpenEscrow on a fee-on-transfer token = %v, want ErrFeeOnTransfer", err)
	}
	t.Logf("refusal: %v", err)
	wantBalance(t, p, p.Account(), tokens(10), "payer")
}

func TestEscrowRefusesReentrancy(t *testing.T) {
	f := newEscrowFixture(t, 1)
	ctx := testCtx(t)
	hookABI := testtoken.NewHookToken()
	tokAddr := deployOn(t, f.payer, testtoken.HookTokenMetaData.Bin, nil)
	escAddr := deployOn(t, f.payer, contracts.EscrowMetaData.Bin, escrowABI.PackConstructor(tokAddr))
	tok := hookABI.Instance(f.payer.be, tokAddr)
	// The token itself is the deal's payer, so its call back is a party's.
	exec := func(target common.Address, data []byte) *big.Int {
		t.Helper()
		r, err := f.payer.send(ctx, tok, hookABI.PackExec(target, data))
		if err != nil {
			t.Fatalf("exec: %v", err)
		}
		for _, l := range r.Logs {
			if ev, err := escrowABI.UnpackOpenedEvent(l); err == nil {
				return new(big.Int).SetBytes(ev.Id[:])
			}
		}
		return nil
	}
	if _, err := f.payer.send(ctx, tok, hookABI.PackMint(tokAddr, tokens(10))); err != nil {
		t.Fatal(err)
	}
	exec(tokAddr, tokenABI.PackApprove(escAddr, tokens(10)))
	idInt := exec(escAddr, escrowABI.PackOpen(f.payee.Account(), tokens(10), 0, common.Address{}, unixSeconds(f.d.Now().Add(time.Hour)), f.panel(), uint8(len(f.arbiters)), [32]byte{1}))
	if idInt == nil {
		t.Fatal("no Opened event")
	}
	var id DealID
	idInt.FillBytes(id[:])
	// On its transfer to the payee, the token calls release again.
	if _, err := f.payer.send(ctx, tok, hookABI.PackSetHook(escAddr, escrowABI.PackRelease(id))); err != nil {
		t.Fatal(err)
	}
	exec(escAddr, escrowABI.PackRelease(id))
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
		t.Fatalf("reentrant call made %v, succeeded %v", called, succeeded)
	}
	if err := escrowError(mustUnpackEscrowError(t, result)); !errors.Is(err, ErrReentrant) {
		t.Fatalf("reentrant release refused with %v, want ErrReentrant", err)
	}
	bal, _ := hookABI.UnpackBalanceOf(call(hookABI.PackBalanceOf(f.payee.Account())))
	if bal.Cmp(tokens(10)) != 0 {
		t.Fatalf("payee holds %v, want exactly %v", bal, tokens(10))
	}
}

func mustUnpackEscrowError(t testing.TB, raw []byte) any {
	t.Helper()
	v, err := escrowABI.UnpackError(raw)
	if err != nil {
		t.Fatalf("revert data %x: %v", raw, err)
	}
	return v
}

// TestEscrowOverJSONRPC runs a disputed deal through the dev chain served
// on loopback: the escrow address comes from dpaas_info, the panel from
// the Opened event over eth_getLogs, refusals from the RPC's revert data.
func TestEscrowOverJSONRPC(t *testing.T) {
	d := newDev(t)
	url, err := d.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	remote, err := DialDevChain(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	if remote.Escrow() != d.Escrow() || d.Info().Escrow != d.Escrow() || d.Escrow() == (common.Address{}) {
		t.Fatalf("dpaas_info escrow %s, Info %s, want %s", remote.Escrow(), d.Info().Escrow, d.Escrow())
	}
	cfg := Config{RPCURL: url, PollInterval: 5 * time.Millisecond}
	payer := openFunded(t, d, cfg, tokens(10))
	payee := openFunded(t, d, cfg, nil)
	if payer.EscrowContract() != d.Escrow() {
		t.Fatalf("Open over %s found escrow %s, want %s", url, payer.EscrowContract(), d.Escrow())
	}
	arbs := []*ecdsa.PrivateKey{newKey(t), newKey(t), newKey(t)}
	panel := []common.Address{addrOf(arbs[0]), addrOf(arbs[1]), addrOf(arbs[2])}
	id, err := payer.OpenEscrow(ctx, EscrowDeal{Payee: payee.Account(), Amount: tokens(4), Deadline: d.Now().Add(time.Hour), Arbiters: panel})
	if err != nil {
		t.Fatalf("OpenEscrow over RPC: %v", err)
	}
	if _, err := payee.Release(ctx, id); !errors.Is(err, ErrNotParty) {
		t.Fatalf("Release by the payee over RPC = %v, want ErrNotParty", err)
	}
	if _, err := payer.Dispute(ctx, id); err != nil {
		t.Fatal(err)
	}
	var sigs [][]byte
	for _, k := range arbs[:2] {
		s, err := SignRuling(k, d.ChainID(), d.Escrow(), id, 2500)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, s)
	}
	if _, err := payee.Settle(ctx, id, 2500, sigs[:1]); !errors.Is(err, ErrBadRuling) {
		t.Fatalf("Settle by a minority over RPC = %v, want ErrBadRuling", err)
	}
	if _, err := payee.Settle(ctx, id, 2500, sigs); err != nil {
		t.Fatalf("Settle over RPC: %v", err)
	}
	wantBalance(t, payer, payee.Account(), tokens(1), "payee")
	wantBalance(t, payer, payer.Account(), tokens(9), "payer")
}

// TestEscrowPanelOfList: a deal with a list of 5 arbiters and a panel of
// 3 settles with any 2 distinct arbiters of the list (a replacement
// included), not with 1, not with a signer off the list, not with a
// duplicate; the state reports the list and the panel size.
func TestEscrowPanelOfList(t *testing.T) {
	f := newEscrowFixture(t, 5)
	ctx := testCtx(t)
	openK := func(k int) DealID {
		t.Helper()
		id, err := f.payer.OpenEscrow(ctx, EscrowDeal{
			Payee: f.payee.Account(), Amount: tokens(10), Deadline: f.d.Now().Add(time.Hour),
			Arbiters: f.panel(), PanelSize: k,
		})
		if err != nil {
			t.Fatalf("OpenEscrow with a panel of %d: %v", k, err)
		}
		if _, err := f.payer.Dispute(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	id := openK(3)
	info, err := f.stranger.EscrowState(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if info.PanelSize != 3 || len(info.Arbiters) != 5 || info.Arbiters[4] != addrOf(f.arbiters[4]) {
		t.Fatalf("state: panel %d of %v", info.PanelSize, info.Arbiters)
	}
	outsider := newKey(t)
	outSig, err := SignRuling(outsider, f.d.ChainID(), f.d.Escrow(), id, 7000)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		sigs [][]byte
		want error
	}{
		"one of a panel of 3":  {f.sigs(t, id, 7000, 4), ErrBadRuling},
		"duplicate":            {f.sigs(t, id, 7000, 3, 3), ErrBadRuling},
		"signer off the list":  {append(f.sigs(t, id, 7000, 3), outSig), ErrBadRuling},
		"two, one disagreeing": {append(f.sigs(t, id, 7000, 0), f.sigs(t, id, 3000, 1)...), ErrBadRuling},
	} {
		if _, err := f.payee.Settle(ctx, id, 7000, c.sigs); !errors.Is(err, c.want) {
			t.Errorf("Settle with %s = %v, want %v", name, err, c.want)
		}
	}
	// Arbiters 1 and 4: one from the first three, one a replacement.
	if _, _, err := f.stranger.EscrowSettlement(ctx, id); !errors.Is(err, ErrUnknownDeal) {
		t.Fatalf("EscrowSettlement before settling = %v, want ErrUnknownDeal", err)
	}
	tx, err := f.payee.Settle(ctx, id, 7000, f.sigs(t, id, 7000, 4, 1))
	if err != nil {
		t.Fatalf("Settle by 2 of the list for a panel of 3: %v", err)
	}
	if gotTx, bps, err := f.stranger.EscrowSettlement(ctx, id); err != nil || gotTx != tx || bps != 7000 {
		t.Fatalf("EscrowSettlement = %s, %d, %v; want %s, 7000", gotTx, bps, err, tx)
	}
	if _, err := f.payee.Settle(ctx, id, 7000, f.sigs(t, id, 7000, 0, 2)); !errors.Is(err, ErrDealClosed) {
		t.Fatalf("second settlement = %v, want ErrDealClosed", err)
	}
	wantBalance(t, f.payer, f.payee.Account(), tokens(7), "payee")

	// A panel of 1 from the list: any one arbiter of the list settles.
	one := openK(1)
	if _, err := f.payee.Settle(ctx, one, 0, [][]byte{outSig}); !errors.Is(err, ErrBadRuling) {
		t.Fatalf("Settle by an outsider = %v, want ErrBadRuling", err)
	}
	if _, err := f.payee.Settle(ctx, one, 0, f.sigs(t, one, 0, 2)); err != nil {
		t.Fatalf("Settle by the third of the list for a panel of 1: %v", err)
	}
	wantBalance(t, f.payer, f.payer.Account(), tokens(100-10-10+3+10), "payer")
}

// TestEscrowDealIDFromSalt: a payer knows a deal's ID before opening it,
// and cannot open two deals with one salt; a panel larger than the list
// is refused.
func TestEscrowDealIDFromSalt(t *testing.T) {
	f := newEscrowFixture(t, 3)
	ctx := testCtx(t)
	salt := [32]byte{7, 7, 7}
	want := f.payer.EscrowDealID(salt)
	if want != EscrowDealID(f.d.ChainID(), f.d.Escrow(), f.payer.Account(), salt) {
		t.Fatal("EscrowDealID differs between the method and the function")
	}
	deal := EscrowDeal{Payee: f.payee.Account(), Amount: tokens(1), Deadline: f.d.Now().Add(time.Hour), Arbiters: f.panel(), Salt: salt}
	got, err := f.payer.OpenEscrow(ctx, deal)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("deal ID %s, predicted %s", got, want)
	}
	if _, err := f.payer.OpenEscrow(ctx, deal); !errors.Is(err, ErrBadDeal) {
		t.Fatalf("a second deal with the same salt = %v, want ErrBadDeal", err)
	}
	if f.stranger.EscrowDealID(salt) == want {
		t.Fatal("another payer's deal with the same salt has the same ID")
	}
	deal.Salt, deal.PanelSize = [32]byte{8}, 4
	if _, err := f.payer.OpenEscrow(ctx, deal); !errors.Is(err, ErrBadDeal) {
		t.Fatalf("a panel of 4 from 3 arbiters = %v, want ErrBadDeal", err)
	}
	wantBalance(t, f.payer, f.payer.Account(), tokens(99), "payer")
}

// TestRulingTypedDataHashesToDigest: the typed data a wallet signs for a
// ruling hashes, by go-ethereum's generic EIP-712 encoder, to RulingDigest.
func TestRulingTypedDataHashesToDigest(t *testing.T) {
	for _, bps := range []uint16{0, 1, 6000, MaxBps} {
		deal := DealID(crypto.Keccak256Hash([]byte{byte(bps), byte(bps >> 8)}))
		chain, escrow := big.NewInt(1337), common.HexToAddress("0x00000000000000000000000000000000000E5C40")
		var td apitypes.TypedData
		if err := json.Unmarshal(RulingTypedData(chain, escrow, deal, bps), &td); err != nil {
			t.Fatal(err)
		}
		got, _, err := apitypes.TypedDataAndHash(td)
		if err != nil {
			t.Fatal(err)
		}
		if want := RulingDigest(chain, escrow, deal, bps); common.BytesToHash(got) != want {
			t.Fatalf("%d bps: typed data hashes to %x, RulingDigest %x", bps, got, want)
		}
	}
}
