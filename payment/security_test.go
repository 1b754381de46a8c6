package payment

import (
	"errors"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/voucher"
	"github.com/dpaas/dpaas/payment/contracts"
	"github.com/dpaas/dpaas/payment/internal/testtoken"
)

// TestAcceptCountsOnlyAboveRedeemed: a voucher is worth only what it adds
// above the amount redeemed on-chain. A fresh payee instance with the same
// key and an empty store refuses an already redeemed voucher and credits
// only the new part of a higher one; it learns of redemptions made by
// another instance from the contract's events; and the held best voucher
// and the credit survive a restart of a Payments given a directory.
func TestAcceptCountsOnlyAboveRedeemed(t *testing.T) {
	d := newDev(t)
	ctx := testCtx(t)
	payer := openFunded(t, d, Config{}, tokens(100))
	payeeKey := newKey(t)
	dir := t.TempDir()
	first := openFunded(t, d, Config{Key: payeeKey, Dir: dir}, nil)

	ch, err := payer.OpenChannel(ctx, first.Account(), tokens(10), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v5, _ := ch.Pay(tokens(5))
	if err := first.Accept(ctx, v5); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Redeem(ctx, ch.ID()); err != nil {
		t.Fatal(err)
	}
	v8, _ := ch.Pay(tokens(3))
	if err := first.Accept(ctx, v8); err != nil {
		t.Fatal(err)
	}
	if got := first.PaidBy(payer.Account()); got.Cmp(tokens(8)) != 0 {
		t.Fatalf("first instance: PaidBy %v, want %v", got, tokens(8))
	}

	// A second instance, same key, empty store.
	fresh := openFunded(t, d, Config{Key: payeeKey}, nil)
	if err := fresh.Accept(ctx, v5); !errors.Is(err, ErrNotAboveBest) {
		t.Fatalf("fresh instance: Accept of a redeemed voucher = %v, want ErrNotAboveBest", err)
	}
	if got := fresh.PaidBy(payer.Account()); got.Sign() != 0 {
		t.Fatalf("fresh instance: PaidBy %v after a redeemed voucher, want 0", got)
	}

	// The first instance restarts from its directory and redeems v8.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	first = openFunded(t, d, Config{Key: payeeKey, Dir: dir}, nil)
	if best, ok := first.Best(ch.ID()); !ok || best.Amount.Cmp(tokens(8)) != 0 {
		t.Fatalf("after restart: best %v, %v; want %v", best.Amount, ok, tokens(8))
	}
	if got := first.PaidBy(payer.Account()); got.Cmp(tokens(8)) != 0 {
		t.Fatalf("after restart: PaidBy %v, want %v", got, tokens(8))
	}
	if err := first.Accept(ctx, v5); !errors.Is(err, ErrNotAboveBest) {
		t.Fatalf("after restart: Accept of a lower voucher = %v, want ErrNotAboveBest", err)
	}
	if _, err := first.Redeem(ctx, ch.ID()); err != nil {
		t.Fatal(err)
	}

	// The fresh instance hears of that redemption from the events (its
	// cached facts alone still say 5 redeemed) and refuses v8.
	waitFor(t, "the fresh instance to see the redemption", func() bool {
		r := fresh.redeemedAmount(ch.ID())
		return r != nil && r.Cmp(tokens(8)) == 0
	})
	if err := fresh.Accept(ctx, v8); !errors.Is(err, ErrNotAboveBest) {
		t.Fatalf("fresh instance: Accept of a voucher another instance redeemed = %v, want ErrNotAboveBest", err)
	}
	v9, _ := ch.Pay(tokens(1))
	if err := fresh.Accept(ctx, v9); err != nil {
		t.Fatal(err)
	}
	if got := fresh.PaidBy(payer.Account()); got.Cmp(tokens(1)) != 0 {
		t.Fatalf("fresh instance: PaidBy %v, want only the new %v", got, tokens(1))
	}
	if _, err := fresh.Redeem(ctx, ch.ID()); err != nil {
		t.Fatal(err)
	}
	if got := balance(t, fresh, fresh.Account()); got.Cmp(tokens(9)) != 0 {
		t.Fatalf("payee balance %v, want %v", got, tokens(9))
	}

	// The first instance, down while the fresh one redeemed v9, restarts
	// holding v8: a voucher for 10 adds 1, not 2.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	first = openFunded(t, d, Config{Key: payeeKey, Dir: dir}, nil)
	v10, _ := ch.Pay(tokens(1))
	if err := first.Accept(ctx, v10); err != nil {
		t.Fatal(err)
	}
	if got := first.PaidBy(payer.Account()); got.Cmp(tokens(9)) != 0 {
		t.Fatalf("restarted instance: PaidBy %v, want 8 before and 1 new: %v", got, tokens(9))
	}
}

// TestPayeeRedeemsBeforeExpiry: a payee that never calls Redeem is still
// paid: inside the expiry margin its Payments redeems the best voucher on
// its own, retrying while it fails (here: no gas yet), then refuses new
// vouchers; after the expiry the payer reclaims only the rest.
func TestPayeeRedeemsBeforeExpiry(t *testing.T) {
	d := newDev(t)
	ctx := testCtx(t)
	payer := openFunded(t, d, Config{}, tokens(10))
	payee, err := Open(ctx, Config{Dev: d, Key: newKey(t), ExpiryMargin: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer payee.Close()

	ch, err := payer.OpenChannel(ctx, payee.Account(), tokens(9), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ch.Pay(tokens(2))
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := d.AdjustTime(55 * time.Minute); err != nil {
		t.Fatal(err)
	}
	// Inside the margin: no more vouchers, and the payee tries to redeem,
	// which fails while it has no gas.
	late, err := ch.Pay(tokens(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(ctx, late); !errors.Is(err, ErrExpired) {
		t.Fatalf("Accept inside the margin = %v, want ErrExpired", err)
	}
	waitFor(t, "a failed automatic redemption", func() bool { return payee.Stats().AutoRedeemFailed > 0 })
	if err := d.Fund(ctx, payee.Account(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the automatic redemption", func() bool { return payee.Stats().AutoRedeemed == 1 })

	if err := d.AdjustTime(10 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := payer.Reclaim(ctx, ch.ID()); err != nil {
		t.Fatal(err)
	}
	if got := balance(t, payee, payee.Account()); got.Cmp(tokens(2)) != 0 {
		t.Fatalf("payee balance %v, want %v", got, tokens(2))
	}
	if got := balance(t, payer, payer.Account()); got.Cmp(tokens(8)) != 0 {
		t.Fatalf("payer balance %v, want %v", got, tokens(8))
	}
	if s := payee.Stats(); s.RedeemMissed != 0 || s.Redeemed != 1 {
		t.Fatalf("payee stats %+v", s)
	}
}

// TestExpiryMissedIsReported: a channel that expires with an unredeemed
// voucher (the margin jumped over) is counted and logged once.
func TestExpiryMissedIsReported(t *testing.T) {
	d := newDev(t)
	ctx := testCtx(t)
	payer := openFunded(t, d, Config{}, tokens(10))
	payee := openFunded(t, d, Config{}, nil)
	ch, err := payer.OpenChannel(ctx, payee.Account(), tokens(9), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ch.Pay(tokens(2))
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := d.AdjustTime(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missed redemption to be reported", func() bool { return payee.Stats().RedeemMissed == 1 })
	if s := payee.Stats(); s.AutoRedeemed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestExpiryMaxUint64: an on-chain expiry of 2^64-1 decodes as a time far
// in the future, not as -1, and vouchers on such a channel are accepted.
func TestExpiryMaxUint64(t *testing.T) {
	d := newDev(t)
	ctx := testCtx(t)
	payer := openFunded(t, d, Config{}, tokens(10))
	payee := openFunded(t, d, Config{}, nil)
	if _, err := payer.send(ctx, payer.token, tokenABI.PackApprove(payer.cfg.Channels, tokens(5))); err != nil {
		t.Fatal(err)
	}
	r, err := payer.send(ctx, payer.channels, channelsABI.PackOpen(payee.Account(), tokens(5), math.MaxUint64))
	if err != nil {
		t.Fatal(err)
	}
	var id common.Hash
	for _, l := range r.Logs {
		if ev, err := channelsABI.UnpackOpenedEvent(l); err == nil {
			id = ev.Id
		}
	}
	st, err := payee.ChannelState(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExpiryUnix != math.MaxUint64 || !st.Expiry.After(time.Now().AddDate(1000, 0, 0)) {
		t.Fatalf("expiry %s (%d), want far future (2^64-1)", st.Expiry, st.ExpiryUnix)
	}
	v, err := signVoucher(payer, id, tokens(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatalf("Accept on a channel that never expires: %v", err)
	}
	if _, err := payee.Redeem(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The held record round-trips the saturated expiry.
	h, err := decodeHeld(id, mustEncode(t, payee, id))
	if err != nil || !h.ch.Expiry.Equal(st.Expiry) {
		t.Fatalf("record expiry %v (%v), want %v", h.ch.Expiry, err, st.Expiry)
	}
}

func mustEncode(t *testing.T, p *Payments, id common.Hash) []byte {
	t.Helper()
	p.mu.Lock()
	h := p.best[id]
	p.mu.Unlock()
	b, err := h.encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signVoucher(payer *Payments, id common.Hash, amount *big.Int) (Voucher, error) {
	return signWith(payer.key, payer.domain, id, amount)
}

// TestNoReturnToken: channels work with a token whose transfer and
// transferFrom return nothing (USDT-style): open, redeem and reclaim move
// exactly the right amounts. Before the safe-transfer pattern, open
// reverted.
func TestNoReturnToken(t *testing.T) {
	d := newDev(t)
	ctx := testCtx(t)
	deployer := newKey(t)
	if err := d.Fund(ctx, addrOf(deployer), nil); err != nil {
		t.Fatal(err)
	}
	opts := bind.NewKeyedTransactor(deployer, d.ChainID())
	opts.Context = ctx
	be := d.backend()
	usdt, tx, err := bind.DeployContract(opts, common.FromHex(testtoken.NoReturnTokenMetaData.Bin), be, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitReceipt(ctx, be, tx.Hash(), time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	chans, tx, err := bind.DeployContract(opts, common.FromHex(contracts.ChannelsMetaData.Bin), be,
		channelsABI.PackConstructor(usdt))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitReceipt(ctx, be, tx.Hash(), time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}

	cfg := Config{Token: usdt, Channels: chans}
	payer := openFunded(t, d, cfg, nil)
	payee := openFunded(t, d, cfg, nil)
	if _, err := payer.send(ctx, payer.token, testtoken.NewNoReturnToken().PackMint(payer.Account(), tokens(10))); err != nil {
		t.Fatal(err)
	}
	if _, err := payer.Transfer(ctx, payee.Account(), tokens(1)); err != nil {
		t.Fatalf("Transfer of a no-return token: %v", err)
	}
	ch, err := payer.OpenChannel(ctx, payee.Account(), tokens(5), time.Hour)
	if err != nil {
		t.Fatalf("OpenChannel with a no-return token: %v", err)
	}
	v, _ := ch.Pay(tokens(2))
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatal(err)
	}
	if _, err := payee.Redeem(ctx, ch.ID()); err != nil {
		t.Fatalf("Redeem with a no-return token: %v", err)
	}
	if err := d.AdjustTime(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := payer.Reclaim(ctx, ch.ID()); err != nil {
		t.Fatalf("Reclaim with a no-return token: %v", err)
	}
	if got := balance(t, payee, payee.Account()); got.Cmp(tokens(3)) != 0 {
		t.Fatalf("payee holds %v, want %v", got, tokens(3))
	}
	if got := balance(t, payer, payer.Account()); got.Cmp(tokens(7)) != 0 {
		t.Fatalf("payer holds %v, want %v", got, tokens(7))
	}
	if got := balance(t, payer, chans); got.Sign() != 0 {
		t.Fatalf("contract keeps %v, want 0", got)
	}
	// A token refusal (beyond the balance) still reverts the opening.
	if _, err := payer.OpenChannel(ctx, payee.Account(), tokens(100), time.Hour); !errors.Is(err, ErrReverted) {
		t.Fatalf("OpenChannel beyond the balance = %v, want ErrReverted", err)
	}
}

// TestHeldRecordV1: a best-voucher record written before the credit was
// stored still loads, its voucher counted in full as it was then.
func TestHeldRecordV1(t *testing.T) {
	key := newKey(t)
	d := voucher.NewDomain(big.NewInt(1337), common.Address{1})
	v, err := signWith(key, d, common.Hash{2}, big.NewInt(500))
	if err != nil {
		t.Fatal(err)
	}
	h := &heldVoucher{v: v, credited: big.NewInt(200), ch: voucher.Channel{
		ID: common.Hash{2}, Payer: addrOf(key), Payee: common.Address{3}, Deposit: big.NewInt(900), Expiry: time.Unix(1e9, 0),
	}}
	rec, err := h.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeHeld(common.Hash{2}, rec)
	if err != nil || got.credited.Cmp(big.NewInt(200)) != 0 || !got.ch.Expiry.Equal(h.ch.Expiry) || got.ch.Deposit.Cmp(h.ch.Deposit) != 0 {
		t.Fatalf("record round trip: %+v, %v", got, err)
	}
	old, err := decodeHeld(common.Hash{2}, rec[:heldRecordSizeV1])
	if err != nil || old.credited.Cmp(big.NewInt(500)) != 0 {
		t.Fatalf("v1 record: credited %v, %v; want the voucher's 500", old.credited, err)
	}
	if _, err := decodeHeld(common.Hash{2}, rec[:heldRecordSizeV1+1]); err == nil {
		t.Fatal("a record of a wrong length loaded")
	}
}
