package delta

import (
	"errors"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ipfs/go-cid"
)

// TestValidateRefusesBadNames: a name that is not UTF-8, holds a zero byte
// or is too long makes a delta invalid, wherever the name is. Sign refuses
// such a delta; a signed one (from an older or hostile replica) is refused
// by Decode, and DecodeSigned still authenticates it, so a receiver can
// record it as refused and apply its author's later deltas.
func TestValidateRefusesBadNames(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	author := make([]byte, 20)
	bad := map[string]string{"invalid UTF-8": "a\xffb", "zero byte": "a\x00b", "too long": strings.Repeat("n", MaxNameLen+1), "empty": ""}
	for what, name := range bad {
		ops := map[string]Op{
			"collection": {Kind: Delete, Collection: name, ID: "x"},
			"id":         {Kind: Delete, Collection: "c", ID: name},
			"field":      {Kind: Set, Collection: "c", ID: "x", Field: name, Value: []byte("1")},
			"put field":  {Kind: Put, Collection: "c", ID: "x", Fields: Fields{{name, []byte("1")}}},
			"base field": {Kind: Delete, Collection: "c", ID: "x", Bases: []Base{{Field: name, Author: author}}},
			"seen field": {Kind: Delete, Collection: "c", ID: "x", Seen: []Seen{{Field: name, Value: []byte("1"), Tag: Tag{Author: author}}}},
		}
		for where, op := range ops {
			t.Run(what+" "+where, func(t *testing.T) {
				d := &Delta{Seq: 1, HLC: 5, Parents: []cid.Cid{}, Ops: []Op{op}}
				verr := d.Validate()
				if !errors.Is(verr, ErrMalformed) {
					t.Fatalf("Validate: %v, want ErrMalformed", verr)
				}
				if len(verr.Error()) > 200 {
					t.Fatalf("error of %d bytes repeats the name: %.80s...", len(verr.Error()), verr)
				}
				if _, _, err := d.Sign(key); !errors.Is(err, ErrMalformed) {
					t.Fatalf("Sign: %v, want ErrMalformed", err)
				}
				block, id, err := d.SignUnvalidated(key)
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := Decode(block); !errors.Is(err, ErrMalformed) {
					t.Fatalf("Decode: %v, want ErrMalformed", err)
				}
				got, gotID, err := DecodeSigned(block)
				if err != nil {
					t.Fatalf("DecodeSigned: %v", err)
				}
				if got.Author != crypto.PubkeyToAddress(key.PublicKey) || !gotID.Equals(id) || got.Seq != 1 {
					t.Fatalf("DecodeSigned gave author %s seq %d cid %s", got.Author, got.Seq, gotID)
				}
				if got.Validate() == nil {
					t.Fatal("the decoded delta validates")
				}
			})
		}
	}
}

// TestPrepareRefusesOversizedDelta: a delta that would encode to more than
// MaxBlockSize is refused before it is signed; operations of MaxOpsSize
// with MaxParents parents fit.
func TestPrepareRefusesOversizedDelta(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	parents := make([]cid.Cid, MaxParents)
	for i := range parents {
		if parents[i], err = CID([]byte{byte(i), byte(i >> 8)}); err != nil {
			t.Fatal(err)
		}
	}
	op := Op{Kind: Set, Collection: "c", ID: "x", Field: "f"}
	op.Value = []byte(`"` + strings.Repeat("v", MaxOpsSize-op.Size()-16) + `"`)
	for op.Size() < MaxOpsSize {
		op.Value = append(op.Value[:1], append([]byte("v"), op.Value[1:]...)...)
	}
	if op.Size() != MaxOpsSize {
		t.Fatalf("op of %d bytes, want %d", op.Size(), MaxOpsSize)
	}
	d := &Delta{Seq: 1, HLC: 1<<64 - 1, Parents: parents, Ops: []Op{op}}
	block, _, err := d.Sign(key)
	if err != nil {
		t.Fatalf("MaxOpsSize of operations with MaxParents parents: %v", err)
	}
	if _, _, err := Decode(block); err != nil {
		t.Fatal(err)
	}
	op.Value = []byte(`"` + strings.Repeat("v", MaxBlockSize) + `"`)
	d = &Delta{Seq: 1, HLC: 5, Ops: []Op{op}}
	if _, _, err := d.Sign(key); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized delta: %v", err)
	}
}

// TestSequenceZeroIsNoDelta: receivers index every delta they process,
// refused ones too, by its sequence number, so a signed block without one
// is malformed, not merely invalid: DecodeSigned refuses it as well.
func TestSequenceZeroIsNoDelta(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	d := &Delta{Seq: 0, HLC: 5, Parents: []cid.Cid{}, Ops: []Op{{Kind: Delete, Collection: "c", ID: "x"}}}
	block, _, err := d.SignUnvalidated(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := DecodeSigned(block); !errors.Is(err, ErrMalformed) {
		t.Fatalf("DecodeSigned: %v, want ErrMalformed", err)
	}
}
