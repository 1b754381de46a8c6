package payment

import (
	"context"
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/voucher"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-ethereum's process-wide transaction sender cache, started
		// once per process and never stopped.
		goleak.IgnoreTopFunction("github.com/ethereum/go-ethereum/core.(*txSenderCacher).cache"),
		// goleveldb's memory-pool drainer, which lingers up to a second
		// after the simulated node's database closes.
		goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"),
	)
}

func balance(t testing.TB, p *Payments, who common.Address) *big.Int {
	t.Helper()
	b, err := p.Balance(testCtx(t), who)
	if err != nil {
		t.Fatalf("Balance: %v", err)
	}
	return b
}

func TestOpenWithoutChain(t *testing.T) {
	_, err := Open(context.Background(), Config{})
	if !errors.Is(err, ErrNoChain) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open with no chain = %v, want ErrNoChain and ErrInvalidConfig", err)
	}
	if err.Error() != "payment: no chain: set Config.RPCURL or Config.Dev" {
		t.Fatalf("error text %q", err)
	}
}

func TestTransferAndBalances(t *testing.T) {
	d := newDev(t)
	a := openFunded(t, d, Config{}, tokens(100))
	b := openFunded(t, d, Config{}, nil)
	ctx := testCtx(t)

	incoming, err := b.WatchTransfers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := a.Transfer(ctx, b.Account(), tokens(30))
	if err != nil {
		t.Fatalf("Transfer: %v", err)
	}
	if got := balance(t, a, a.Account()); got.Cmp(tokens(70)) != 0 {
		t.Fatalf("payer balance %v, want %v", got, tokens(70))
	}
	if got := balance(t, a, b.Account()); got.Cmp(tokens(30)) != 0 {
		t.Fatalf("payee balance %v, want %v", got, tokens(30))
	}
	select {
	case tr := <-incoming:
		if tr.Tx != tx || tr.From != a.Account() || tr.To != b.Account() || tr.Amount.Cmp(tokens(30)) != 0 {
			t.Fatalf("watched %+v, want tx %s of %v", tr, tx, tokens(30))
		}
	case <-ctx.Done():
		t.Fatal("incoming transfer never reported")
	}

	_, err = a.Transfer(ctx, b.Account(), tokens(71))
	if !errors.Is(err, ErrInsufficientFunds) {
		t.Fatalf("Transfer beyond balance = %v, want ErrInsufficientFunds", err)
	}
	t.Logf("beyond balance: %v", err)
	if got := balance(t, a, a.Account()); got.Cmp(tokens(70)) != 0 {
		t.Fatalf("failed transfer moved tokens: balance %v", got)
	}
	if _, err := a.Transfer(ctx, b.Account(), big.NewInt(0)); !errors.Is(err, ErrBadAmount) {
		t.Fatalf("zero transfer = %v, want ErrBadAmount", err)
	}
	if s := a.Stats(); s.Transfers != 1 {
		t.Fatalf("Stats.Transfers = %d, want 1", s.Transfers)
	}
}

func TestConfirmations(t *testing.T) {
	d := newDev(t)
	a := openFunded(t, d, Config{Confirmations: 3}, tokens(1))
	ctx := testCtx(t)
	tx, err := a.Transfer(ctx, common.Address{1}, big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.be.TransactionReceipt(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	head, err := a.be.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head < r.BlockNumber.Uint64()+2 {
		t.Fatalf("returned at head %d for a tx in block %d with 3 confirmations", head, r.BlockNumber)
	}
}

// TestChannelHundredVouchers: 100 vouchers, the latest redeemed pays
// exactly their sum, and the payer reclaims the rest after expiry.
func TestChannelHundredVouchers(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	d := newDev(t)
	payer := openFunded(t, d, Config{}, tokens(1000))
	payee := openFunded(t, d, Config{}, nil)
	ctx := testCtx(t)

	deposit := tokens(500)
	ch, err := payer.OpenChannel(ctx, payee.Account(), deposit, time.Hour)
	if err != nil {
		t.Fatalf("OpenChannel: %v", err)
	}
	sum := new(big.Int)
	for i := 0; i < 100; i++ {
		amount := new(big.Int).Mul(big.NewInt(rng.Int64N(1000)+1), big.NewInt(1e15)) // up to 1 token
		v, err := ch.Pay(amount)
		if err != nil {
			t.Fatalf("Pay %d: %v", i, err)
		}
		sum.Add(sum, amount)
		if v.Amount.Cmp(sum) != 0 {
			t.Fatalf("voucher %d carries %v, want cumulative %v", i, v.Amount, sum)
		}
		if err := payee.Accept(ctx, v); err != nil {
			t.Fatalf("Accept %d: %v", i, err)
		}
	}
	if _, err := payee.Redeem(ctx, ch.ID()); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if got := balance(t, payee, payee.Account()); got.Cmp(sum) != 0 {
		t.Fatalf("payee got %v, want the vouchers' sum %v", got, sum)
	}
	if _, err := payee.Redeem(ctx, ch.ID()); !errors.Is(err, ErrNothingToRedeem) {
		t.Fatalf("second Redeem = %v, want ErrNothingToRedeem", err)
	}
	if _, err := payer.Reclaim(ctx, ch.ID()); !errors.Is(err, ErrNotExpired) {
		t.Fatalf("Reclaim before expiry = %v, want ErrNotExpired", err)
	}
	if err := d.AdjustTime(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := payer.Reclaim(ctx, ch.ID()); err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	want := new(big.Int).Sub(tokens(1000), sum)
	if got := balance(t, payer, payer.Account()); got.Cmp(want) != 0 {
		t.Fatalf("payer holds %v after reclaim, want %v", got, want)
	}
	st, err := payer.ChannelState(ctx, ch.ID())
	if err != nil {
		t.Fatal(err)
	}
	if st.Redeemed.Cmp(sum) != 0 || st.Deposit.Cmp(sum) != 0 {
		t.Fatalf("channel state after reclaim %+v, want deposit = redeemed = %v", st, sum)
	}
}

// TestVoucherRefusals: replayed or lower vouchers, vouchers for another
// channel, signed by another key, beyond the deposit or after expiry are
// refused off-chain by Accept and on-chain by the contract.
func TestVoucherRefusals(t *testing.T) {
	d := newDev(t)
	payer := openFunded(t, d, Config{}, tokens(100))
	payee := openFunded(t, d, Config{ExpiryMargin: -1}, nil)
	other := openFunded(t, d, Config{}, tokens(100))
	ctx := testCtx(t)

	ch, err := payer.OpenChannel(ctx, payee.Account(), tokens(10), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := payer.OpenChannel(ctx, payee.Account(), tokens(10), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	toOther, err := payer.OpenChannel(ctx, other.Account(), tokens(10), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := ch.Pay(tokens(1))
	v2, _ := ch.Pay(tokens(1))
	if err := payee.Accept(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if _, err := payee.Redeem(ctx, ch.ID()); err != nil {
		t.Fatal(err)
	}
	vOther, _ := toOther.Pay(tokens(1))
	swapped := v2
	swapped.Channel = ch2.ID()
	forged, err := signWith(other.key, payer.domain, ch.ID(), tokens(3))
	if err != nil {
		t.Fatal(err)
	}
	beyond, err := signWith(payer.key, payer.domain, ch.ID(), tokens(11))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Pay(tokens(9)); !errors.Is(err, ErrAboveDeposit) {
		t.Fatalf("Pay beyond deposit = %v, want ErrAboveDeposit", err)
	}

	cases := []struct {
		name string
		v    Voucher
		want error
	}{
		{"replayed", v2, ErrNotAboveBest},
		{"lower", v1, ErrNotAboveBest},
		{"another channel's signature", swapped, ErrBadSignature},
		{"channel paying someone else", vOther, ErrNotPayee},
		{"another key", forged, ErrBadSignature},
		{"beyond deposit", beyond, ErrAboveDeposit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := payee.Accept(ctx, tc.v); !errors.Is(err, tc.want) {
				t.Fatalf("Accept = %v, want %v", err, tc.want)
			}
			_, err := payee.redeemVoucher(ctx, tc.v)
			if !errors.Is(err, tc.want) {
				t.Fatalf("contract redeem = %v, want %v", err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}

	// After expiry, even a fresh, higher voucher is refused both ways.
	v3, err := ch.Pay(tokens(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AdjustTime(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(ctx, v3); !errors.Is(err, ErrExpired) {
		t.Fatalf("Accept after expiry = %v, want ErrExpired", err)
	}
	if _, err := payee.redeemVoucher(ctx, v3); !errors.Is(err, ErrExpired) {
		t.Fatalf("contract redeem after expiry = %v, want ErrExpired", err)
	}
	if _, err := ch.Pay(tokens(1)); !errors.Is(err, ErrExpired) {
		t.Fatalf("Pay after expiry = %v, want ErrExpired", err)
	}
	if s := payee.Stats(); s.VouchersRejected != uint64(len(cases))+1 || s.VouchersAccepted != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestUnknownChannelAndForeignChain(t *testing.T) {
	d := newDev(t)
	payer := openFunded(t, d, Config{}, tokens(10))
	payee := openFunded(t, d, Config{}, nil)
	ctx := testCtx(t)
	v, err := signWith(payer.key, payer.domain, common.Hash{7}, big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(ctx, v); !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("Accept unknown channel = %v", err)
	}
	foreign, _ := signWith(payer.key, voucher.NewDomain(big.NewInt(1), payer.cfg.Channels), common.Hash{7}, big.NewInt(1))
	if err := payee.Accept(ctx, foreign); !errors.Is(err, ErrWrongDomain) {
		t.Fatalf("Accept other chain = %v", err)
	}
}

func TestTopUp(t *testing.T) {
	d := newDev(t)
	payer := openFunded(t, d, Config{}, tokens(10))
	payee := openFunded(t, d, Config{}, nil)
	ctx := testCtx(t)
	ch, err := payer.OpenChannel(ctx, payee.Account(), tokens(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ch.Pay(tokens(1))
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := ch.TopUp(ctx, tokens(3), 2*time.Hour); err != nil {
		t.Fatalf("TopUp: %v", err)
	}
	v, err = ch.Pay(tokens(2))
	if err != nil {
		t.Fatal(err)
	}
	// The payee's cached deposit is stale; Accept must re-read it.
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatalf("Accept after top-up: %v", err)
	}
	st, err := payee.ChannelState(ctx, ch.ID())
	if err != nil {
		t.Fatal(err)
	}
	if st.Deposit.Cmp(tokens(4)) != 0 || !st.Expiry.Equal(ch.Expiry()) {
		t.Fatalf("state %+v, channel expiry %s", st, ch.Expiry())
	}
	// Past the first expiry, the payee's cached expiry is stale too.
	if err := d.AdjustTime(90 * time.Minute); err != nil {
		t.Fatal(err)
	}
	v, err = ch.Pay(big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatalf("Accept past the first expiry after extension: %v", err)
	}
	if _, err := payee.Redeem(ctx, ch.ID()); err != nil {
		t.Fatalf("Redeem past the first expiry after extension: %v", err)
	}
}

// TestVouchersSurviveRestart: the payee's best voucher and the payer's
// channel persist in Pebble across Close and Open.
func TestVouchersSurviveRestart(t *testing.T) {
	d := newDev(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	payerDir := t.TempDir()
	payeeKey, payerKey := newKey(t), newKey(t)

	open := func(dir string, key any) (*Payments, *kv.DB) {
		db, err := kv.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := db.Space("payment")
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Dev: d, Space: sp}
		cfg.Key = payeeKey
		if key == payerKey {
			cfg.Key = payerKey
		}
		p, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p, db
	}
	if err := d.Fund(ctx, addrOf(payerKey), tokens(10)); err != nil {
		t.Fatal(err)
	}
	if err := d.Fund(ctx, addrOf(payeeKey), nil); err != nil {
		t.Fatal(err)
	}
	payer, payerDB := open(payerDir, payerKey)
	payee, payeeDB := open(dir, payeeKey)
	ch, err := payer.OpenChannel(ctx, payee.Account(), tokens(5), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		v, err := ch.Pay(tokens(1))
		if err != nil {
			t.Fatal(err)
		}
		if err := payee.Accept(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{payer, payee, payerDB, payeeDB} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := payee.Accept(ctx, Voucher{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close = %v, want ErrClosed", err)
	}

	payer, payerDB = open(payerDir, payerKey)
	payee, payeeDB = open(dir, payeeKey)
	defer func() {
		payer.Close()
		payee.Close()
		payerDB.Close()
		payeeDB.Close()
	}()
	best, ok := payee.Best(ch.ID())
	if !ok || best.Amount.Cmp(tokens(3)) != 0 {
		t.Fatalf("best after restart = %v, %v; want %v", best.Amount, ok, tokens(3))
	}
	if got := payee.PaidBy(payer.Account()); got.Cmp(tokens(3)) != 0 {
		t.Fatalf("PaidBy after restart %v", got)
	}
	ch2, ok := payer.Channel(ch.ID())
	if !ok || ch2.Paid().Cmp(tokens(3)) != 0 {
		t.Fatalf("payer channel after restart: %v", ok)
	}
	// The restored payer continues the cumulative sequence.
	v, err := ch2.Pay(tokens(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatal(err)
	}
	if _, err := payee.Redeem(ctx, ch.ID()); err != nil {
		t.Fatal(err)
	}
	if got := balance(t, payee, payee.Account()); got.Cmp(tokens(4)) != 0 {
		t.Fatalf("payee balance %v, want %v", got, tokens(4))
	}
}

// TestJSONRPCOverHTTP runs the whole flow through the dev chain served on
// loopback, as a second process would see it: the RPC code path, not the
// in-process one.
func TestJSONRPCOverHTTP(t *testing.T) {
	d := newDev(t)
	url, err := d.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{RPCURL: url, PollInterval: 5 * time.Millisecond}
	payer := openFunded(t, d, cfg, tokens(10))
	payee := openFunded(t, d, cfg, nil)
	if payer.rpc == nil || payer.Token() != d.Token() || payer.ChannelsContract() != d.Channels() {
		t.Fatalf("Open over %s did not discover the contracts", url)
	}
	ctx := testCtx(t)
	if _, err := payer.Transfer(ctx, payee.Account(), tokens(1)); err != nil {
		t.Fatalf("Transfer over RPC: %v", err)
	}
	if _, err := payer.Transfer(ctx, payee.Account(), tokens(100)); !errors.Is(err, ErrInsufficientFunds) {
		t.Fatalf("Transfer beyond balance over RPC = %v, want ErrInsufficientFunds", err)
	}
	ch, err := payer.OpenChannel(ctx, payee.Account(), tokens(5), time.Hour)
	if err != nil {
		t.Fatalf("OpenChannel over RPC: %v", err)
	}
	v, err := ch.Pay(tokens(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatalf("Accept over RPC: %v", err)
	}
	if _, err := payee.redeemVoucher(ctx, v); err != nil {
		t.Fatalf("redeem over RPC: %v", err)
	}
	if _, err := payee.redeemVoucher(ctx, v); !errors.Is(err, ErrNotAboveBest) {
		t.Fatalf("replayed redeem over RPC = %v, want ErrNotAboveBest", err)
	}
	if got := balance(t, payee, payee.Account()); got.Cmp(tokens(3)) != 0 {
		t.Fatalf("payee balance %v, want %v", got, tokens(3))
	}
}

func TestDigestMatchesContract(t *testing.T) {
	d := newDev(t)
	p := openFunded(t, d, Config{}, nil)
	ctx := testCtx(t)
	sep, err := callBytes32(ctx, p, channelsABI.PackDOMAINSEPARATOR())
	if err != nil {
		t.Fatal(err)
	}
	if sep != p.domain.Separator() {
		t.Fatalf("domain separator: contract %s, Go %s", sep, p.domain.Separator())
	}
	id, amount := common.Hash{0xab}, new(big.Int).Lsh(big.NewInt(1), 255)
	dig, err := callBytes32(ctx, p, channelsABI.PackVoucherDigest(id, amount))
	if err != nil {
		t.Fatal(err)
	}
	if dig != p.domain.Digest(id, amount) {
		t.Fatalf("voucher digest: contract %s, Go %s", dig, p.domain.Digest(id, amount))
	}
}

func TestCloseTwice(t *testing.T) {
	d := newDev(t)
	p, err := Open(context.Background(), Config{Dev: d})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := p.Balance(context.Background(), p.Account()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Balance after Close = %v", err)
	}
}

func TestCollector(t *testing.T) {
	d := newDev(t)
	a := openFunded(t, d, Config{}, tokens(1))
	if _, err := a.Transfer(testCtx(t), common.Address{1}, big.NewInt(1)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(a.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 10 {
		t.Fatalf("gathered %d metric families, want 10", len(mfs))
	}
	for _, mf := range mfs {
		if mf.GetName() == "dpaas_payment_transfers_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 1 {
				t.Fatalf("transfers counter %v, want 1", v)
			}
			return
		}
	}
	t.Fatal("no dpaas_payment_transfers_total")
}
