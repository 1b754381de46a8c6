package delta

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// TestEncoderMatchesGenericEncoding checks the hand-written encoder against
// the generic deterministic dag-cbor encoder on random deltas whose sizes
// and numbers straddle every CBOR header boundary.
func TestEncoderMatchesGenericEncoding(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for i := range 1000 {
		d := randomDelta(t, r)
		for k := range d.Ops {
			e := &encoder{}
			e.op(&d.Ops[k])
			if got := d.Ops[k].Size(); got != len(e.b) {
				t.Fatalf("delta %d op %d: Size %d, encoded %d bytes", i, k, got, len(e.b))
			}
		}
		for _, withSig := range []bool{false, true} {
			want, err := encMode.Marshal(d.toWire(withSig))
			if err != nil {
				t.Fatal(err)
			}
			if got := encodeDelta(d, withSig); !bytes.Equal(got, want) {
				k := 0
				for k < len(got) && k < len(want) && got[k] == want[k] {
					k++
				}
				lo := max(k-40, 0)
				t.Fatalf("delta %d (sig %v): encodings differ at byte %d of %d/%d\n got …%x\nwant …%x", i, withSig, k, len(got), len(want), got[lo:min(k+40, len(got))], want[lo:min(k+40, len(want))])
			}
		}
	}
}

// randomDelta makes a random delta whose sizes and numbers straddle every
// CBOR header boundary, signed (Sig, random bytes) or not.
func randomDelta(t testing.TB, r *rand.Rand) *Delta {
	lengths := []int{0, 1, 23, 24, 255, 256, 1000, 65535, 65536}
	numbers := []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1}
	str := func() string {
		n := 1 + r.IntN(12)
		if r.IntN(20) == 0 {
			n = lengths[r.IntN(len(lengths)-2)+1]
		}
		return strings.Repeat(string(rune('a'+r.IntN(26))), n)
	}
	num := func() uint64 {
		if r.IntN(2) == 0 {
			return numbers[r.IntN(len(numbers))]
		}
		return r.Uint64() >> r.IntN(64)
	}
	raw := func() []byte { return []byte(`"` + str() + `"`) }
	addr := func() []byte {
		a := make([]byte, 20)
		for i := range a {
			a[i] = byte(r.IntN(256))
		}
		return a
	}
	d := &Delta{Seq: num(), HLC: num()}
	copy(d.Author[:], addr())
	for range r.IntN(4) {
		p, err := CID(addr())
		if err != nil {
			t.Fatal(err)
		}
		d.Parents = append(d.Parents, p)
	}
	if d.Parents == nil {
		d.Parents = []cid.Cid{}
	}
	for range 1 + r.IntN(4) {
		op := Op{Kind: Kind(1 + r.IntN(int(kindEnd-1))), Collection: str(), ID: str()}
		if r.IntN(2) == 0 {
			op.Field = str()
		}
		if r.IntN(2) == 0 {
			op.Value = raw()
		}
		if r.IntN(3) == 0 {
			op.Amount = int64(num())
			if r.IntN(2) == 0 {
				op.Amount = -op.Amount - 1
			}
		}
		if r.IntN(2) == 0 {
			op.Fields = Fields{}
			for range r.IntN(30) {
				op.Fields = append(op.Fields, Field{str(), raw()})
			}
			op.Fields = SortFields(op.Fields)
		}
		for range r.IntN(3) {
			op.Tags = append(op.Tags, Tag{HLC: num(), Author: addr(), Index: uint32(num())})
		}
		for range r.IntN(3) {
			op.Bases = append(op.Bases, Base{Field: str(), Author: addr(), P: num(), N: num()})
		}
		for range r.IntN(3) {
			op.Seen = append(op.Seen, Seen{Field: str(), Value: raw(), Tag: Tag{HLC: num(), Author: addr(), Index: uint32(num())}})
		}
		d.Ops = append(d.Ops, op)
	}
	if r.IntN(2) == 0 {
		d.Sig = addr()
	}
	return d
}
