package delta

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// genericDecode is what decoding was before dec.go, and the definition of
// what a received block may be: whatever the generic dag-cbor decoder
// reads and the encoder writes back to the same bytes.
func genericDecode(block []byte) (*Delta, error) {
	var w wire
	if err := decMode.Unmarshal(block, &w); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	d, err := fromWire(&w)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(encodeDelta(d, true), block) {
		return nil, fmt.Errorf("not canonical: %w", ErrMalformed)
	}
	return d, nil
}

// decodersAgree fails t unless the hand-written decoder and the generic
// one both refuse block, as malformed, or both accept it as the same delta.
func decodersAgree(t testing.TB, block []byte) {
	t.Helper()
	want, werr := genericDecode(block)
	got, gerr := decodeUnverified(block)
	switch {
	case (werr == nil) != (gerr == nil):
		t.Fatalf("block %x:\ngeneric decoder: %v\nhand-written:    %v", block, werr, gerr)
	case gerr != nil:
		if !isMalformed(gerr) {
			t.Fatalf("block %x: error %v does not wrap ErrMalformed", block, gerr)
		}
	case !reflect.DeepEqual(got, want):
		t.Fatalf("block %x:\ngeneric decoder: %+v\nhand-written:    %+v", block, want, got)
	}
}

func isMalformed(err error) bool {
	for e := err; e != nil; {
		if e == ErrMalformed {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// mutate changes block at random: a byte flipped, replaced, inserted or
// removed, a cut, or a head widened to a longer, non-minimal form.
func mutate(r *rand.Rand, block []byte) []byte {
	b := bytes.Clone(block)
	if len(b) == 0 {
		return []byte{byte(r.IntN(256))}
	}
	i := r.IntN(len(b))
	switch r.IntN(6) {
	case 0:
		b[i] ^= 1 << r.IntN(8)
	case 1:
		b[i] = byte(r.IntN(256))
	case 2:
		b = append(b[:i], append([]byte{byte(r.IntN(256))}, b[i:]...)...)
	case 3:
		b = append(b[:i], b[i+1:]...)
	case 4:
		b = b[:i]
	default:
		// a small head (argument under 24) written in two bytes
		if ai := b[i] & 0x1f; ai < 24 && b[i]>>5 != 7 {
			b = append(b[:i], append([]byte{b[i]&0xe0 | 24, ai}, b[i+1:]...)...)
		}
	}
	return b
}

// The hand-written decoder accepts what the generic decoder accepts and
// finds canonical, and decodes it to the same delta: random deltas
// straddling every header boundary, signed or not, and thousands of
// mutations of them.
func TestDecoderMatchesGenericDecoding(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	accepted := 0
	for range 300 {
		d := randomDelta(t, r)
		block := encodeDelta(d, true)
		decodersAgree(t, block)
		for range 30 {
			m := mutate(r, block)
			if r.IntN(4) == 0 {
				m = mutate(r, m)
			}
			decodersAgree(t, m)
			if _, err := decodeUnverified(m); err == nil {
				accepted++
			}
		}
	}
	t.Logf("%d mutations still canonical deltas", accepted)
}

// FuzzDecoderMatchesGeneric: the same, on whatever the fuzzer makes.
//
//	go test -run '^$' -fuzz FuzzDecoderMatchesGeneric -fuzztime 60s ./internal/delta
func FuzzDecoderMatchesGeneric(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		f.Add(encodeDelta(randomDelta(f, r), r.IntN(2) == 0))
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, block []byte) {
		decodersAgree(t, block)
	})
}

// BenchmarkDecode: decoding a small delta (one Put of two fields, two
// parents), as a pushed Put arrives, without the signature check; the
// generic decoder with its canonical check beside it.
//
//	go test -run '^$' -bench BenchmarkDecode ./internal/delta
func BenchmarkDecode(b *testing.B) {
	p1, _ := CID([]byte("one"))
	p2, _ := CID([]byte("two"))
	d := &Delta{Seq: 7, HLC: 1 << 40, Parents: []cid.Cid{p1, p2}, Sig: bytes.Repeat([]byte{1}, 65), Ops: []Op{{
		Kind: Put, Collection: "live", ID: "p17",
		Fields: Fields{{Name: "from", Value: []byte(`"a"`)}, {Name: "to", Value: bytes.Repeat([]byte("b"), 102)}},
	}}}
	block := encodeDelta(d, true)
	for _, c := range []struct {
		name string
		dec  func([]byte) (*Delta, error)
	}{{"hand-written", decodeUnverified}, {"generic", genericDecode}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.dec(block); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
