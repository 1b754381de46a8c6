package store

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/delta"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestPeekAuthorSeq checks peekAuthorSeq against the decoder on signed
// deltas with sequence numbers of every encoded length, that it declines
// a sequence number whose bytes also read as a shorter one, and that it
// refuses what is not a signed delta.
func TestPeekAuthorSeq(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	seqs := []uint64{1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1, 0x6173}
	for range 200 {
		seqs = append(seqs, rng.Uint64()>>rng.IntN(64)|1)
	}
	for _, seq := range seqs {
		d := &delta.Delta{Seq: seq, HLC: rng.Uint64() >> 1, Ops: []delta.Op{{Kind: delta.Put, Collection: "c", ID: "x", Fields: delta.Fields{}}}}
		block, _, err := d.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := delta.Decode(block)
		if err != nil {
			t.Fatal(err)
		}
		a, s, ok := peekAuthorSeq(block)
		if !ok || a != got.Author || s != got.Seq {
			t.Fatalf("seq %d: peek gave %s %d %v, want %s %d", seq, a, s, ok, got.Author, got.Seq)
		}
		if _, _, ok := peekAuthorSeq(block[:len(block)-1]); ok {
			t.Fatalf("seq %d: a truncated block peeked", seq)
		}
	}
	// 0x61731818 is encoded 1a 61 73 18 18, whose end also reads as the
	// key "s" and the one-byte number 0x18
	d := &delta.Delta{Seq: 0x61731818, Ops: []delta.Op{{Kind: delta.Put, Collection: "c", ID: "x", Fields: delta.Fields{}}}}
	block, _, err := d.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, s, ok := peekAuthorSeq(block); ok {
		t.Fatalf("an ambiguous sequence number peeked as %d", s)
	}
	for _, b := range [][]byte{nil, {0xa6}, make([]byte, 200)} {
		if _, _, ok := peekAuthorSeq(b); ok {
			t.Fatalf("peeked %x", b)
		}
	}
}
