package delta

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
)

func sample(t testing.TB) ([]byte, *Delta) {
	t.Helper()
	key, err := crypto.HexToECDSA("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	if err != nil {
		t.Fatal(err)
	}
	parent, err := CID([]byte("parent"))
	if err != nil {
		t.Fatal(err)
	}
	d := &Delta{Seq: 3, HLC: 1 << 40, Parents: []cid.Cid{parent}, Ops: []Op{
		{Kind: Put, Collection: "rides", ID: "r1", Fields: Fields{{"from", []byte(`"A"`)}, {"n", []byte(`2`)}}},
		{Kind: Inc, Collection: "rides", ID: "r1", Field: "views", Amount: -4},
		{Kind: Remove, Collection: "rides", ID: "r1", Field: "tags", Value: []byte(`"x"`),
			Tags: []Tag{{HLC: 9, Author: make([]byte, 20), Index: 1}}},
	}}
	block, _, err := d.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	return block, d
}

func TestSignDecodeRoundTrip(t *testing.T) {
	block, d := sample(t)
	got, id, err := Decode(block)
	if err != nil {
		t.Fatal(err)
	}
	if got.Author != d.Author || got.Seq != 3 || got.HLC != d.HLC || len(got.Ops) != 3 || got.Ops[1].Amount != -4 {
		t.Fatalf("decoded %+v, want %+v", got, d)
	}
	if !got.Parents[0].Equals(d.Parents[0]) {
		t.Fatalf("parent %s, want %s", got.Parents[0], d.Parents[0])
	}
	want, _ := CID(block)
	if !id.Equals(want) || id.Prefix().Codec != 0x71 {
		t.Fatalf("cid %s is not the dag-cbor CID of the block", id)
	}
	again, id2, err := got.Encode()
	if err != nil || !bytes.Equal(again, block) || !id2.Equals(id) {
		t.Fatalf("re-encoding differs: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	block, d := sample(t)
	other, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	forged := *d
	forged.Seq = 4 // changed after signing
	forgedBlock, _, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	impostor := *d
	impostor.Sig = nil
	h, _ := impostor.SigningHash()
	impostor.Sig, _ = crypto.Sign(h, other) // signed by someone else, claims d.Author
	impostorBlock, _, err := impostor.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := cbor.Unmarshal(block, &generic); err != nil {
		t.Fatal(err)
	}
	nonCanonical, _ := cbor.Marshal(generic) // default options sort differently/keep tags generic
	badKind := *d
	badKind.Ops = []Op{{Kind: 99, Collection: "c", ID: "x"}}
	badKindBlock, _ := encMode.Marshal(badKind.toWire(true))
	badJSON := *d
	badJSON.Ops = []Op{{Kind: Set, Collection: "c", ID: "x", Field: "f", Value: []byte("{nope")}}
	badJSONBlock, _ := encMode.Marshal(badJSON.toWire(true))

	cases := []struct {
		name  string
		block []byte
		want  error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", block[:len(block)/2], ErrMalformed},
		{"trailing bytes", append(bytes.Clone(block), 0), ErrMalformed},
		{"tampered after signing", forgedBlock, ErrBadSignature},
		{"signed by another key", impostorBlock, ErrBadSignature},
		{"unknown op kind", badKindBlock, ErrMalformed},
		{"value not JSON", badJSONBlock, ErrMalformed},
		{"oversized", make([]byte, MaxBlockSize+1), ErrMalformed},
	}
	if !bytes.Equal(nonCanonical, block) {
		cases = append(cases, struct {
			name  string
			block []byte
			want  error
		}{"non-canonical", nonCanonical, ErrMalformed})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Decode(c.block)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode error %v, want %v", err, c.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	block, _ := sample(f)
	f.Add(block)
	f.Add([]byte{0xa0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, id, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		again, id2, err := d.Encode()
		if err != nil || !bytes.Equal(again, b) || !id.Equals(id2) {
			t.Fatalf("accepted block does not re-encode to itself: %v", err)
		}
	})
}

func TestSignMatchesGenericEncoding(t *testing.T) {
	block, d := sample(t)
	generic, _, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(block, generic) {
		t.Fatalf("Sign's block differs from the generic encoding")
	}
	if err := d.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestPreparedSignsAgainIdentically is what the store's recovery relies
// on: the unsigned bytes of a delta, stored and decoded again after a
// crash, sign to the same block and CID as the first time.
func TestPreparedSignsAgainIdentically(t *testing.T) {
	block, d := sample(t)
	key, err := crypto.HexToECDSA("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	if err != nil {
		t.Fatal(err)
	}
	d.Sig = nil
	unsigned, err := d.Prepare(key)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := DecodeTrusted(unsigned)
	if err != nil {
		t.Fatalf("decode unsigned: %v", err)
	}
	if stored.Sig != nil || stored.Author != d.Author {
		t.Fatalf("decoded unsigned delta has sig %x, author %s", stored.Sig, stored.Author)
	}
	again, err := stored.Prepare(key)
	if err != nil || !bytes.Equal(again, unsigned) {
		t.Fatalf("prepared again: %v, same bytes %v", err, bytes.Equal(again, unsigned))
	}
	signed, id, err := stored.SignPrepared(key, again)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := CID(block)
	if !bytes.Equal(signed, block) || !id.Equals(want) {
		t.Fatalf("signing again gave %s, first signing %s", id, want)
	}
	if _, _, err := Decode(signed); err != nil {
		t.Fatalf("re-signed block does not decode: %v", err)
	}
}
