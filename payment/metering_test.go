package payment

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/internal/meter"
)

const testApp = "payment-test"

// newHost starts a libp2p host on loopback whose identity is key, as a
// dpaas node's is.
func newHost(t testing.TB, key *ecdsa.PrivateKey) host.Host {
	t.Helper()
	pk, err := p2pcrypto.UnmarshalSecp256k1PrivateKey(crypto.FromECDSA(key))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Identity(pk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	if err := a.Connect(testCtx(t), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// meteredPair is a provider and a consumer on one dev chain, each with its
// own libp2p host, connected, the consumer holding a channel to the
// provider.
type meteredPair struct {
	dev                *DevChain
	provider, consumer *Payments
	pHost, cHost       host.Host
	channel            *Channel
}

func newMeteredPair(t testing.TB, autoPay *big.Int) meteredPair {
	t.Helper()
	d := newDev(t)
	kp, kc := newKey(t), newKey(t)
	hp, hc := newHost(t, kp), newHost(t, kc)
	connect(t, hc, hp)
	provider := openFunded(t, d, Config{Key: kp, Host: hp, AppID: testApp}, nil)
	consumer := openFunded(t, d, Config{Key: kc, Host: hc, AppID: testApp, AutoPayLimit: autoPay}, tokens(10))
	ch, err := consumer.OpenChannel(testCtx(t), provider.Account(), tokens(5), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return meteredPair{dev: d, provider: provider, consumer: consumer, pHost: hp, cHost: hc, channel: ch}
}

// TestMeteringBetweenTwoNodes: after a consumer uses 1,000 units at a
// price, the provider holds vouchers worth exactly that and redeems them;
// when the consumer stops paying (its auto-pay limit reached), the
// provider refuses service past its credit limit.
func TestMeteringBetweenTwoNodes(t *testing.T) {
	price := big.NewInt(3e12)
	units := func(n int64) *big.Int { return new(big.Int).Mul(price, big.NewInt(n)) }
	mp := newMeteredPair(t, units(1000))
	ctx := testCtx(t)
	m, err := mp.provider.NewMeter(MeterConfig{Price: price, Every: 100, CreditLimit: units(300)})
	if err != nil {
		t.Fatal(err)
	}
	consumer := mp.cHost.ID()
	account := mp.consumer.Account()

	// Serve 1,000 units in requests of 10. Like a real provider, when the
	// consumer is at its credit limit, wait for its payment to land.
	for served := 0; served < 1000; {
		err := m.Charge(consumer, 10)
		if errors.Is(err, ErrCreditExceeded) {
			waitFor(t, "a payment", func() bool { return mp.provider.Unpaid(account).Cmp(units(290)) <= 0 })
			continue
		}
		if err != nil {
			t.Fatalf("Charge: %v", err)
		}
		served += 10
	}
	waitFor(t, "vouchers for 1,000 units", func() bool { return mp.provider.PaidBy(account).Cmp(units(1000)) == 0 })
	if err := m.Settle(ctx, consumer); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if got := mp.provider.Charged(account); got.Cmp(units(1000)) != 0 {
		t.Fatalf("charged %v, want %v", got, units(1000))
	}
	best, ok := mp.provider.Best(mp.channel.ID())
	if !ok || best.Amount.Cmp(units(1000)) != 0 {
		t.Fatalf("best voucher %v, want %v", best.Amount, units(1000))
	}
	if _, err := mp.provider.Redeem(ctx, mp.channel.ID()); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if got := balance(t, mp.provider, mp.provider.Account()); got.Cmp(units(1000)) != 0 {
		t.Fatalf("provider redeemed %v, want exactly %v", got, units(1000))
	}

	// The consumer's limit is reached: it stops paying, and the provider
	// stops serving once 300 units are unpaid.
	extra := 0
	for {
		err := m.Charge(consumer, 10)
		if errors.Is(err, ErrCreditExceeded) {
			t.Logf("refused after %d more units: %v", extra, err)
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		extra += 10
		if extra > 300 {
			t.Fatalf("served %d units unpaid past a 300-unit credit limit", extra)
		}
	}
	if extra != 300 {
		t.Fatalf("served %d unpaid units, want exactly the 300-unit credit limit", extra)
	}
	if got := mp.provider.PaidBy(account); got.Cmp(units(1000)) != 0 {
		t.Fatalf("consumer paid %v past its auto-pay limit", got)
	}
	waitFor(t, "a refusal by the consumer", func() bool { return mp.consumer.Stats().MeterRefused > 0 })
	if err := m.Settle(ctx, consumer); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), ErrAutoPayLimit.Error()) {
		t.Fatalf("Settle past the limit = %v, want ErrRefused for the auto-pay limit", err)
	}
	// Raising the limit lets the consumer settle its debt.
	mp.consumer.SetAutoPayLimit(mp.provider.Account(), units(2000))
	if err := m.Settle(ctx, consumer); err != nil {
		t.Fatalf("Settle after raising the limit: %v", err)
	}
	if got := mp.provider.PaidBy(account); got.Cmp(units(1300)) != 0 {
		t.Fatalf("paid %v after settling, want %v", got, units(1300))
	}
}

func TestMeteringRefusesMalformedRequests(t *testing.T) {
	mp := newMeteredPair(t, tokens(1))
	ctx := testCtx(t)
	st, err := mp.pHost.NewStream(ctx, mp.cHost.ID(), meter.ProtocolID(testApp))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte{5, 9, 9, 9, 9, 9}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := st.Read(buf); err == nil {
		t.Fatal("stream still answers after a malformed request")
	}
	st.Reset()
	waitFor(t, "the malformed request to be counted", func() bool { return mp.consumer.Stats().BadRequests == 1 })
	if mp.consumer.Stats().MeterRequests != 0 {
		t.Fatal("a malformed request was handled")
	}
}

func TestNewMeterNeedsHost(t *testing.T) {
	d := newDev(t)
	p := openFunded(t, d, Config{}, nil)
	if _, err := p.NewMeter(MeterConfig{Price: big.NewInt(1)}); !errors.Is(err, ErrNoMetering) {
		t.Fatalf("NewMeter without host = %v", err)
	}
}

// BenchmarkVoucherRoundTrip measures one metered payment end to end on
// loopback: the provider asks over libp2p, the consumer signs and stores
// the next voucher, the provider verifies and stores it. Reports p50/p99.
//
//	go test ./payment -run '^$' -bench VoucherRoundTrip -benchtime 2000x
func BenchmarkVoucherRoundTrip(b *testing.B) {
	mp := newMeteredPair(b, tokens(5))
	ctx := context.Background()
	m, err := mp.provider.NewMeter(MeterConfig{Price: big.NewInt(1), Every: 1 << 62, CreditLimit: tokens(5)})
	if err != nil {
		b.Fatal(err)
	}
	consumer := mp.cHost.ID()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		if err := m.Charge(consumer, 1); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := m.Settle(ctx, consumer); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func TestMeteringWithoutChannel(t *testing.T) {
	d := newDev(t)
	kp, kc := newKey(t), newKey(t)
	hp, hc := newHost(t, kp), newHost(t, kc)
	connect(t, hc, hp)
	provider := openFunded(t, d, Config{Key: kp, Host: hp, AppID: testApp}, nil)
	consumer := openFunded(t, d, Config{Key: kc, Host: hc, AppID: testApp, AutoPayLimit: tokens(1)}, nil)
	m, err := provider.NewMeter(MeterConfig{Price: big.NewInt(1), Every: 5, CreditLimit: big.NewInt(10)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := m.Charge(hc.ID(), 1); err != nil {
			t.Fatalf("Charge %d within credit: %v", i, err)
		}
	}
	if err := m.Charge(hc.ID(), 1); !errors.Is(err, ErrCreditExceeded) {
		t.Fatalf("Charge past credit = %v", err)
	}
	err = m.Settle(testCtx(t), hc.ID())
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no channel") {
		t.Fatalf("Settle with no channel = %v", err)
	}
	if got := provider.Unpaid(consumer.Account()); got.Cmp(big.NewInt(10)) != 0 {
		t.Fatalf("unpaid %v, want 10", got)
	}
}
