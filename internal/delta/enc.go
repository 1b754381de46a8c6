package delta

import (
	"encoding/binary"
	"math"
	"slices"
)

// A hand-written encoder for the one shape a delta has. It produces exactly
// the bytes that the generic dag-cbor encoding (encMode) gives, which the
// tests check on random deltas, at a fraction of the cost: signing a
// delta and checking that a received block is canonical both encode it
// whole, and reflection and map-key sorting dominated both.

// CBOR major types, shifted into place.
const (
	cborUint  = 0 << 5
	cborNeg   = 1 << 5
	cborBytes = 2 << 5
	cborText  = 3 << 5
	cborArray = 4 << 5
	cborMap   = 5 << 5
	cborTag   = 6 << 5
)

type encoder struct{ b []byte }

func (e *encoder) head(major byte, n uint64) {
	switch {
	case n < 24:
		e.b = append(e.b, major|byte(n))
	case n <= math.MaxUint8:
		e.b = append(e.b, major|24, byte(n))
	case n <= math.MaxUint16:
		e.b = append(e.b, major|25)
		e.b = binary.BigEndian.AppendUint16(e.b, uint16(n))
	case n <= math.MaxUint32:
		e.b = append(e.b, major|26)
		e.b = binary.BigEndian.AppendUint32(e.b, uint32(n))
	default:
		e.b = append(e.b, major|27)
		e.b = binary.BigEndian.AppendUint64(e.b, n)
	}
}

func (e *encoder) uint(n uint64) { e.head(cborUint, n) }

func (e *encoder) int(n int64) {
	if n >= 0 {
		e.head(cborUint, uint64(n))
	} else {
		e.head(cborNeg, uint64(-(n + 1)))
	}
}

func (e *encoder) bytes(p []byte) {
	e.head(cborBytes, uint64(len(p)))
	e.b = append(e.b, p...)
}

func (e *encoder) text(s string) {
	e.head(cborText, uint64(len(s)))
	e.b = append(e.b, s...)
}

// key writes a one-letter map key.
func (e *encoder) key(k byte) { e.b = append(e.b, cborText|1, k) }

// encodeDelta encodes d as its dag-cbor block, with or without the
// signature entry.
func encodeDelta(d *Delta, withSig bool) []byte {
	size := 128 + 40*len(d.Parents)
	for i := range d.Ops {
		size += d.Ops[i].sizeHint()
	}
	e := &encoder{b: make([]byte, 0, size)}
	n := uint64(5)
	if withSig && len(d.Sig) > 0 {
		n = 6
	}
	e.head(cborMap, n)
	e.key('a')
	e.bytes(d.Author[:])
	e.key('h')
	e.uint(d.HLC)
	e.key('o')
	e.head(cborArray, uint64(len(d.Ops)))
	for i := range d.Ops {
		e.op(&d.Ops[i])
	}
	e.key('p')
	e.head(cborArray, uint64(len(d.Parents)))
	for _, p := range d.Parents {
		raw := p.Bytes()
		e.head(cborTag, 42)
		e.head(cborBytes, uint64(len(raw)+1))
		e.b = append(e.b, 0)
		e.b = append(e.b, raw...)
	}
	e.key('s')
	e.uint(d.Seq)
	if n == 6 {
		e.key('z')
		e.bytes(d.Sig)
	}
	return e.b
}

func (op *Op) sizeHint() int {
	n := 32 + len(op.Collection) + len(op.ID) + len(op.Field) + len(op.Value)
	for _, f := range op.Fields {
		n += 6 + len(f.Name) + len(f.Value)
	}
	n += len(op.Tags)*40 + len(op.Bases)*60
	for _, s := range op.Seen {
		n += 50 + len(s.Field) + len(s.Value)
	}
	return n
}

// op encodes one operation. Keys are all one letter, so dag-cbor's
// length-first order is byte order: F b c d f g k n s v.
func (e *encoder) op(op *Op) {
	n := uint64(3) // c d k
	if len(op.Fields) > 0 {
		n++
	}
	if len(op.Bases) > 0 {
		n++
	}
	if op.Field != "" {
		n++
	}
	if len(op.Tags) > 0 {
		n++
	}
	if op.Amount != 0 {
		n++
	}
	if len(op.Seen) > 0 {
		n++
	}
	if len(op.Value) > 0 {
		n++
	}
	e.head(cborMap, n)
	if len(op.Fields) > 0 {
		e.key('F')
		e.fields(op.Fields)
	}
	if len(op.Bases) > 0 {
		e.key('b')
		e.head(cborArray, uint64(len(op.Bases)))
		for i := range op.Bases {
			b := &op.Bases[i]
			e.head(cborMap, 4) // a f n p
			e.key('a')
			e.bytes(b.Author)
			e.key('f')
			e.text(b.Field)
			e.key('n')
			e.uint(b.N)
			e.key('p')
			e.uint(b.P)
		}
	}
	e.key('c')
	e.text(op.Collection)
	e.key('d')
	e.text(op.ID)
	if op.Field != "" {
		e.key('f')
		e.text(op.Field)
	}
	if len(op.Tags) > 0 {
		e.key('g')
		e.head(cborArray, uint64(len(op.Tags)))
		for i := range op.Tags {
			e.tag(&op.Tags[i])
		}
	}
	e.key('k')
	e.uint(uint64(op.Kind))
	if op.Amount != 0 {
		e.key('n')
		e.int(op.Amount)
	}
	if len(op.Seen) > 0 {
		e.key('s')
		e.head(cborArray, uint64(len(op.Seen)))
		for i := range op.Seen {
			s := &op.Seen[i]
			e.head(cborMap, 3) // f g v
			e.key('f')
			e.text(s.Field)
			e.key('g')
			e.tag(&s.Tag)
			e.key('v')
			e.bytes(s.Value)
		}
	}
	if len(op.Value) > 0 {
		e.key('v')
		e.bytes(op.Value)
	}
}

func (e *encoder) tag(t *Tag) {
	e.head(cborMap, 3) // a i t
	e.key('a')
	e.bytes(t.Author)
	e.key('i')
	e.uint(uint64(t.Index))
	e.key('t')
	e.uint(t.HLC)
}

// fields encodes a Put's fields with keys in dag-cbor order: shorter
// first, then bytewise. fs is sorted bytewise, so each length's names are
// in order already: one pass per distinct length, shortest first.
func (e *encoder) fields(fs Fields) {
	e.head(cborMap, uint64(len(fs)))
	var lens [16]int
	seen := lens[:0]
	for _, f := range fs {
		if !slices.Contains(seen, len(f.Name)) {
			seen = append(seen, len(f.Name))
		}
	}
	slices.Sort(seen)
	for _, n := range seen {
		for _, f := range fs {
			if len(f.Name) == n {
				e.text(f.Name)
				e.bytes(f.Value)
			}
		}
	}
}

// headLen is the length of a CBOR head holding n.
func headLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

func strLen(n int) int { return headLen(uint64(n)) + n }

func tagSize(t *Tag) int {
	return 1 + 2 + strLen(len(t.Author)) + 2 + headLen(uint64(t.Index)) + 2 + headLen(t.HLC)
}

// Size is the number of bytes op takes in a delta's encoding, computed
// without encoding it. A delta's operations whose Sizes add up to at most
// MaxOpsSize fit in one block.
func (op *Op) Size() int {
	keys, n := uint64(3), 0 // c d k
	if len(op.Fields) > 0 {
		keys++
		n += 2 + headLen(uint64(len(op.Fields)))
		for _, f := range op.Fields {
			n += strLen(len(f.Name)) + strLen(len(f.Value))
		}
	}
	if len(op.Bases) > 0 {
		keys++
		n += 2 + headLen(uint64(len(op.Bases)))
		for i := range op.Bases {
			b := &op.Bases[i]
			n += 1 + 2 + strLen(len(b.Author)) + 2 + strLen(len(b.Field)) + 2 + headLen(b.N) + 2 + headLen(b.P)
		}
	}
	n += 2 + strLen(len(op.Collection)) + 2 + strLen(len(op.ID))
	if op.Field != "" {
		keys++
		n += 2 + strLen(len(op.Field))
	}
	if len(op.Tags) > 0 {
		keys++
		n += 2 + headLen(uint64(len(op.Tags)))
		for i := range op.Tags {
			n += tagSize(&op.Tags[i])
		}
	}
	n += 2 + headLen(uint64(op.Kind))
	if op.Amount != 0 {
		keys++
		a := uint64(op.Amount)
		if op.Amount < 0 {
			a = uint64(-(op.Amount + 1))
		}
		n += 2 + headLen(a)
	}
	if len(op.Seen) > 0 {
		keys++
		n += 2 + headLen(uint64(len(op.Seen)))
		for i := range op.Seen {
			s := &op.Seen[i]
			n += 1 + 2 + strLen(len(s.Field)) + 2 + tagSize(&s.Tag) + 2 + strLen(len(s.Value))
		}
	}
	if len(op.Value) > 0 {
		keys++
		n += 2 + strLen(len(op.Value))
	}
	return headLen(keys) + n
}
