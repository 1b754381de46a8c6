package govmsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
)

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func randomString(rng *rand.Rand) string {
	const alphabet = "abc xyz€ñ\"\\\n🚕"
	r := []rune(alphabet)
	var sb strings.Builder
	for range rng.IntN(20) {
		sb.WriteRune(r[rng.IntN(len(r))])
	}
	return sb.String()
}

func randomMessages(rng *rand.Rand) []Message {
	var hash common.Hash
	copy(hash[:], randomBytes(rng, 32))
	addr := common.BytesToAddress(randomBytes(rng, 20))
	b := &Ballot{Proposal: hash, Voter: addr, Time: rng.Uint64(), Reason: randomString(rng)}
	for range rng.IntN(5) {
		b.Choice = append(b.Choice, rng.Uint32())
	}
	p := &Proposal{Author: addr, Title: randomString(rng), Body: randomString(rng), Kind: "ranked-choice",
		Start: rng.Uint64(), End: rng.Uint64(), Electorate: "members", Snapshot: rng.Uint64(),
		Quorum: new(big.Int).SetBytes(randomBytes(rng, rng.IntN(33))), Threshold: uint16(rng.Uint32()), Created: rng.Uint64()}
	for range rng.IntN(4) {
		p.Choices = append(p.Choices, randomString(rng))
	}
	for range rng.IntN(3) {
		p.Actions = append(p.Actions, Action{Kind: "set-param", Name: randomString(rng), Value: randomBytes(rng, rng.IntN(40))})
	}
	g := &Delegation{Delegator: addr, Delegate: common.BytesToAddress(randomBytes(rng, 20)), Time: rng.Uint64()}
	c := &Closing{Proposal: hash, Root: common.BytesToHash(randomBytes(rng, 32))}
	k := &Case{Deal: hash, Party: addr, Time: rng.Uint64()}
	e := &Evidence{Deal: hash, Party: addr, Text: randomString(rng), Docs: []string{randomString(rng)}, Blobs: []string{}, Time: rng.Uint64()}
	cb := &CaseBallot{Deal: hash, Arbiter: addr, PayeeBps: uint16(rng.Uint32()), Ruling: randomBytes(rng, rng.IntN(70)), Time: rng.Uint64()}
	return []Message{b, p, g, c, k, e, cb}
}

func testDomain(rng *rand.Rand) Domain {
	var app [32]byte
	copy(app[:], randomBytes(rng, 32))
	return NewDomain(new(big.Int).SetUint64(rng.Uint64()>>1+1), app)
}

// TestDigestMatchesGeth checks every hash against go-ethereum's generic
// EIP-712 encoder, fed the JSON a wallet would sign.
func TestDigestMatchesGeth(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for range 200 {
		d := testDomain(rng)
		for _, m := range randomMessages(rng) {
			raw, err := json.Marshal(m.TypedData(d))
			if err != nil {
				t.Fatal(err)
			}
			var td apitypes.TypedData
			if err := json.Unmarshal(raw, &td); err != nil {
				t.Fatal(err)
			}
			want, _, err := apitypes.TypedDataAndHash(td)
			if err != nil {
				t.Fatalf("seed %d: geth refuses %s: %v", seed, raw, err)
			}
			if got := m.Digest(d); !bytes.Equal(got[:], want) {
				t.Fatalf("seed %d: %T digest %x, geth %x\n%s", seed, m, got, want, raw)
			}
		}
	}
}

func TestTypedDataRoundTrip(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for range 100 {
		d := testDomain(rng)
		for _, m := range randomMessages(rng) {
			raw, _ := json.Marshal(m.TypedData(d))
			got, err := ParseTypedData(raw, d)
			if err != nil {
				t.Fatalf("seed %d: %v\n%s", seed, err, raw)
			}
			if got.Digest(d) != m.Digest(d) {
				t.Fatalf("seed %d: %T parsed back to another message: %+v, want %+v", seed, m, got, m)
			}
		}
	}
}

func TestSignRecover(t *testing.T) {
	key, _ := crypto.GenerateKey()
	who := crypto.PubkeyToAddress(key.PublicKey)
	d := NewDomain(big.NewInt(1337), [32]byte{1})
	b := &Ballot{Voter: who, Choice: []uint32{1}, Time: 5}
	sig, err := Sign(key, b.Digest(d))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(b.Digest(d), sig, who); err != nil {
		t.Fatal(err)
	}
	other := NewDomain(big.NewInt(1337), [32]byte{2})
	if err := Verify(b.Digest(other), sig, who); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another DApp's domain: %v", err)
	}
	b.Choice[0] = 2
	if err := Verify(b.Digest(d), sig, who); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed choice: %v", err)
	}
	// v as 0/1 is accepted; a high-s twin is not.
	low := bytes.Clone(sig)
	low[64] -= 27
	b.Choice[0] = 1
	if err := Verify(b.Digest(d), low, who); err != nil {
		t.Fatalf("v 0/1: %v", err)
	}
	high := bytes.Clone(sig)
	s := new(big.Int).SetBytes(high[32:64])
	s.Sub(crypto.S256().Params().N, s)
	s.FillBytes(high[32:64])
	high[64] ^= 1
	if _, err := Recover(b.Digest(d), high); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("high s: %v", err)
	}
	for _, bad := range [][]byte{nil, sig[:64], append(bytes.Clone(sig), 0)} {
		if _, err := Recover(b.Digest(d), bad); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%d bytes: %v", len(bad), err)
		}
	}
}

func TestParseTypedDataRefuses(t *testing.T) {
	d := NewDomain(big.NewInt(1337), [32]byte{7})
	b := &Ballot{Proposal: common.Hash{1}, Voter: common.Address{2}, Choice: []uint32{0}, Time: 9, Reason: "ok"}
	good, _ := json.Marshal(b.TypedData(d))
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	msg := func(m map[string]any) map[string]any { return m["message"].(map[string]any) }
	cases := map[string]struct {
		data []byte
		want error
	}{
		"other chain":        {edit(func(m map[string]any) { m["domain"].(map[string]any)["chainId"] = "1" }), ErrWrongDomain},
		"other app":          {edit(func(m map[string]any) { m["domain"].(map[string]any)["salt"] = common.Hash{8}.Hex() }), ErrWrongDomain},
		"other name":         {edit(func(m map[string]any) { m["domain"].(map[string]any)["name"] = "x" }), ErrWrongDomain},
		"verifying contract": {edit(func(m map[string]any) { m["domain"].(map[string]any)["verifyingContract"] = common.Address{}.Hex() }), ErrWrongDomain},
		"missing member":     {edit(func(m map[string]any) { delete(msg(m), "reason") }), ErrMalformed},
		"null member":        {edit(func(m map[string]any) { msg(m)["time"] = nil }), ErrMalformed},
		"unknown member":     {edit(func(m map[string]any) { msg(m)["extra"] = 1 }), ErrMalformed},
		"other types": {edit(func(m map[string]any) {
			m["types"].(map[string]any)["Ballot"] = []any{map[string]any{"name": "voter", "type": "address"}}
		}), ErrMalformed},
		"unknown primary":  {edit(func(m map[string]any) { m["primaryType"] = "Mail" }), ErrMalformed},
		"negative time":    {edit(func(m map[string]any) { msg(m)["time"] = "-1" }), ErrMalformed},
		"fractional time":  {edit(func(m map[string]any) { msg(m)["time"] = 1.5 }), ErrMalformed},
		"choice too large": {edit(func(m map[string]any) { msg(m)["choice"] = []any{"4294967296"} }), ErrMalformed},
		"huge":             {append(good, bytes.Repeat([]byte(" "), MaxTypedData)...), ErrMalformed},
		"trailing data":    {append(bytes.Clone(good), []byte("{}")...), ErrMalformed},
		"not json":         {[]byte("{"), ErrMalformed},
		"invalid utf-8":    {bytes.Replace(good, []byte(`"ok"`), []byte("\"\xff\""), 1), ErrMalformed},
	}
	for name, tc := range cases {
		if _, err := ParseTypedData(tc.data, d); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Numbers may come as JSON numbers or hex strings, as wallets write them.
	alt := edit(func(m map[string]any) { msg(m)["time"] = 9; m["domain"].(map[string]any)["chainId"] = 1337 })
	got, err := ParseTypedData(alt, d)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("numbers as numbers: %+v, %v", got, err)
	}
}

func FuzzParseTypedData(f *testing.F) {
	d := NewDomain(big.NewInt(1337), [32]byte{7})
	rng := rand.New(rand.NewPCG(1, 1))
	for _, m := range randomMessages(rng) {
		raw, _ := json.Marshal(m.TypedData(d))
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseTypedData(data, d)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrWrongDomain) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		// What parses writes back to a message with the same digest.
		raw, _ := json.Marshal(m.TypedData(d))
		again, err := ParseTypedData(raw, d)
		if err != nil || again.Digest(d) != m.Digest(d) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func BenchmarkVerifyBallot(b *testing.B) {
	key, _ := crypto.GenerateKey()
	who := crypto.PubkeyToAddress(key.PublicKey)
	d := NewDomain(big.NewInt(1337), [32]byte{1})
	ballot := &Ballot{Proposal: common.Hash{3}, Voter: who, Choice: []uint32{1, 2}, Time: 5, Reason: "because"}
	sig, _ := Sign(key, ballot.Digest(d))
	b.ResetTimer()
	for range b.N {
		if err := Verify(ballot.Digest(d), sig, who); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ballots/s")
}
