package delta

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// A hand-written decoder for the one shape encodeDelta writes. It accepts
// exactly the blocks the generic decoder (decMode) accepts and that encode
// back to themselves, which is what a received block must be (canonical
// dag-cbor: one encoding per delta, so one CID): minimal heads, definite
// lengths, the keys encodeDelta writes in its order, optional entries only
// when not empty or zero. The tests hold it to that on random deltas and
// on mutations of them. It decodes without reflection and without encoding
// the delta again, which were most of a received delta's decoding cost.

// maxElems is the generic decoder's bound on array and map lengths.
const maxElems = MaxOps + 16

type decoder struct {
	b   []byte // a private copy of the block: byte fields alias it
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("delta: decode: "+format+": %w", append(args, ErrMalformed)...)
	}
}

// head reads a data item's head: its major type and argument, which must
// take the fewest bytes that hold it.
func (d *decoder) head() (major byte, n uint64) {
	if d.err != nil {
		return 0, 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated at byte %d", d.off)
		return 0, 0
	}
	ib := d.b[d.off]
	d.off++
	major, ai := ib&0xe0, ib&0x1f
	var size int
	switch {
	case ai < 24:
		return major, uint64(ai)
	case ai == 24:
		size = 1
	case ai == 25:
		size = 2
	case ai == 26:
		size = 4
	case ai == 27:
		size = 8
	default:
		d.fail("byte %d: indefinite length or reserved head %#x", d.off-1, ib)
		return 0, 0
	}
	if len(d.b)-d.off < size {
		d.fail("truncated at byte %d", d.off)
		return 0, 0
	}
	p := d.b[d.off : d.off+size]
	d.off += size
	switch size {
	case 1:
		n = uint64(p[0])
	case 2:
		n = uint64(binary.BigEndian.Uint16(p))
	case 4:
		n = uint64(binary.BigEndian.Uint32(p))
	default:
		n = binary.BigEndian.Uint64(p)
	}
	if headLen(n) != 1+size {
		d.fail("byte %d: %d in a longer head than needed", d.off-size-1, n)
		return 0, 0
	}
	return major, n
}

// expect reads a head of the given major type and returns its argument.
func (d *decoder) expect(major byte, what string) uint64 {
	m, n := d.head()
	if d.err == nil && m != major {
		d.fail("%s: major type %d, want %d", what, m>>5, major>>5)
	}
	return n
}

func (d *decoder) uint(what string) uint64 { return d.expect(cborUint, what) }

// int reads a CBOR integer that fits an int64.
func (d *decoder) int(what string) int64 {
	m, n := d.head()
	if d.err != nil {
		return 0
	}
	if n > math.MaxInt64 || m != cborUint && m != cborNeg {
		d.fail("%s: not an int64", what)
		return 0
	}
	if m == cborNeg {
		return -1 - int64(n)
	}
	return int64(n)
}

// bytes reads a byte string; the result aliases the decoder's copy.
func (d *decoder) bytes(what string) []byte {
	n := d.expect(cborBytes, what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("%s: %d bytes past the end", what, n)
		return nil
	}
	p := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return p
}

// text reads a text string; its bytes are not checked for UTF-8 (Validate
// does that, after the block is authenticated, as with decMode).
func (d *decoder) text(what string) string {
	n := d.expect(cborText, what)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("%s: %d bytes past the end", what, n)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

// count reads the head of an array or a map and bounds its length by what
// is left of the block (every element takes a byte at least).
func (d *decoder) count(major byte, what string) int {
	n := d.expect(major, what)
	if d.err != nil {
		return 0
	}
	if n > maxElems || n > uint64(len(d.b)-d.off) {
		d.fail("%s: %d elements", what, n)
		return 0
	}
	return int(n)
}

// keys reads a map of one-letter keys, calling fn to read each key's
// value, and returns how many it held: want lists, in order, the keys it
// may hold; a key out of order, unknown or repeated is malformed.
func (d *decoder) keys(what, want string, fn func(k byte)) int {
	n := d.count(cborMap, what)
	last := -1
	for range n {
		if d.err != nil {
			return n
		}
		if l := d.expect(cborText, what+" key"); d.err == nil && l != 1 {
			d.fail("%s: a key of %d bytes", what, l)
		}
		if d.err != nil {
			return n
		}
		if d.off >= len(d.b) {
			d.fail("truncated at byte %d", d.off)
			return n
		}
		k := d.b[d.off]
		d.off++
		i := strings.IndexByte(want, k)
		if i <= last {
			d.fail("%s: key %q unknown, repeated or out of order", what, k)
			return n
		}
		last = i
		fn(k)
	}
	return n
}

// decodeCanonical decodes a block that must be a delta in its canonical
// encoding, without checking the signature.
func decodeCanonical(block []byte) (*wire, error) {
	d := &decoder{b: bytes.Clone(block)}
	var w wire
	var has [6]bool // a h o p s z
	d.keys("delta", "ahopsz", func(k byte) {
		switch k {
		case 'a':
			w.Author, has[0] = d.bytes("author"), true
		case 'h':
			w.HLC, has[1] = d.uint("hlc"), true
		case 'o':
			w.Ops, has[2] = d.ops(), true
		case 'p':
			w.Parents, has[3] = d.parents(), true
		case 's':
			w.Seq, has[4] = d.uint("seq"), true
		case 'z':
			w.Sig, has[5] = d.bytes("signature"), true
			if d.err == nil && len(w.Sig) == 0 {
				d.fail("empty signature entry")
			}
		}
	})
	if d.err == nil && !(has[0] && has[1] && has[2] && has[3] && has[4]) {
		d.fail("a delta needs the entries a, h, o, p and s")
	}
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d bytes after the delta", len(d.b)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	return &w, nil
}

func (d *decoder) ops() []Op {
	n := d.count(cborArray, "operations")
	ops := make([]Op, n)
	for i := range ops {
		if d.err != nil {
			return nil
		}
		d.op(&ops[i])
	}
	return ops
}

// op decodes one operation: F b c d f g k n s v, the optional ones only
// when not empty or zero (as encoder.op writes them).
func (d *decoder) op(op *Op) {
	var c, id, kind bool
	d.keys("operation", "Fbcdfgknsv", func(k byte) {
		switch k {
		case 'F':
			op.Fields = d.fields()
			if d.err == nil && len(op.Fields) == 0 {
				d.fail("operation: empty fields entry")
			}
		case 'b':
			op.Bases = list(d, "bases", d.base)
		case 'c':
			op.Collection, c = d.text("collection"), true
		case 'd':
			op.ID, id = d.text("document ID"), true
		case 'f':
			op.Field = d.text("field")
			if d.err == nil && op.Field == "" {
				d.fail("operation: empty field entry")
			}
		case 'g':
			op.Tags = list(d, "tags", d.tag)
		case 'k':
			k := d.uint("kind")
			if d.err == nil && k > math.MaxUint8 {
				d.fail("kind %d", k)
			}
			op.Kind, kind = Kind(k), true
		case 'n':
			op.Amount = d.int("amount")
			if d.err == nil && op.Amount == 0 {
				d.fail("operation: zero amount entry")
			}
		case 's':
			op.Seen = list(d, "seen", d.seen)
		case 'v':
			op.Value = d.bytes("value")
			if d.err == nil && len(op.Value) == 0 {
				d.fail("operation: empty value entry")
			}
		}
	})
	if d.err == nil && !(c && id && kind) {
		d.fail("an operation needs the entries c, d and k")
	}
}

// list decodes an operation's array of bases, tags or seen elements,
// which the encoder writes only when it is not empty.
func list[T any](d *decoder, what string, elem func(*T)) []T {
	n := d.count(cborArray, what)
	out := make([]T, n)
	for i := range out {
		if d.err != nil {
			return nil
		}
		elem(&out[i])
	}
	if d.err == nil && n == 0 {
		d.fail("operation: empty %s entry", what)
	}
	return out
}

func (d *decoder) base(b *Base) {
	entries := d.keys("base", "afnp", func(k byte) {
		switch k {
		case 'a':
			b.Author = d.bytes("base author")
		case 'f':
			b.Field = d.text("base field")
		case 'n':
			b.N = d.uint("base n")
		case 'p':
			b.P = d.uint("base p")
		}
	})
	d.complete(entries, 4, "base")
}

func (d *decoder) seen(s *Seen) {
	entries := d.keys("seen", "fgv", func(k byte) {
		switch k {
		case 'f':
			s.Field = d.text("seen field")
		case 'g':
			d.tag(&s.Tag)
		case 'v':
			s.Value = d.bytes("seen value")
		}
	})
	d.complete(entries, 3, "seen")
}

// complete fails unless a map that keys read, of distinct known keys,
// held all want of them (encoder writes every entry of a base, a seen
// element and a tag).
func (d *decoder) complete(entries, want int, what string) {
	if d.err == nil && entries != want {
		d.fail("%s: %d entries, want %d", what, entries, want)
	}
}

func (d *decoder) tag(t *Tag) {
	entries := d.keys("tag", "ait", func(k byte) {
		switch k {
		case 'a':
			t.Author = d.bytes("tag author")
		case 'i':
			i := d.uint("tag index")
			if d.err == nil && i > math.MaxUint32 {
				d.fail("tag index %d", i)
			}
			t.Index = uint32(i)
		case 't':
			t.HLC = d.uint("tag hlc")
		}
	})
	d.complete(entries, 3, "tag")
}

// fields decodes a Put's fields: a map from name to value bytes, names in
// dag-cbor order (shorter first, then bytewise), each once; they are
// returned sorted bytewise, as Fields are.
func (d *decoder) fields() Fields {
	n := d.count(cborMap, "fields")
	fs := make(Fields, 0, n)
	for range n {
		if d.err != nil {
			return nil
		}
		name := d.text("field name")
		value := d.bytes("field value")
		if d.err != nil {
			return nil
		}
		if k := len(fs); k > 0 {
			prev := fs[k-1].Name
			if cmp.Or(cmp.Compare(len(prev), len(name)), strings.Compare(prev, name)) >= 0 {
				d.fail("fields: %.40q after %.40q", name, prev)
				return nil
			}
		}
		fs = append(fs, Field{Name: name, Value: value})
	}
	slices.SortFunc(fs, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
	return fs
}

// parents decodes the parents: dag-cbor links (tag 42, a zero byte and
// the CID's bytes).
func (d *decoder) parents() []cbor.Tag {
	n := d.count(cborArray, "parents")
	ps := make([]cbor.Tag, n)
	for i := range ps {
		if t := d.expect(cborTag, "parent"); d.err == nil && t != 42 {
			d.fail("parent %d: tag %d", i, t)
		}
		ps[i] = cbor.Tag{Number: 42, Content: d.bytes("parent")}
		if d.err != nil {
			return nil
		}
	}
	return ps
}
