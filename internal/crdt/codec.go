package crdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/ethereum/go-ethereum/common"
)

// The state encoding is a compact binary form written for every change of
// a document, so it must be cheap: stamps, which repeat (a Put gives every
// field the same one), are stored once in a table and referred to by
// index. Map entries are written in sorted order, so equal states encode to
// equal bytes.
//
//	version(1) stamps(n, n×32) clear dead touch fields counters sets logs
const codecVersion = 1

var errCorrupt = errors.New("crdt: corrupt state")

type encoder struct {
	stamps []Stamp
	index  map[Stamp]int
	body   []byte
}

// encoders recycles the scratch space of Encode, which runs for every
// document a commit touches.
var encoders = sync.Pool{New: func() any {
	return &encoder{stamps: make([]Stamp, 0, 8), body: make([]byte, 0, 256)}
}}

// release returns e to the pool, unless a large document grew it.
func (e *encoder) release() {
	if cap(e.body) > 64<<10 || cap(e.stamps) > 1024 {
		return
	}
	e.stamps, e.body, e.index = e.stamps[:0], e.body[:0], nil
	encoders.Put(e)
}

func (e *encoder) uvarint(v uint64) { e.body = binary.AppendUvarint(e.body, v) }

func (e *encoder) bytes(b []byte) {
	e.uvarint(uint64(len(b)))
	e.body = append(e.body, b...)
}

// stamp writes the index of s in the stamp table, adding it if new. Most
// documents have a handful of distinct stamps, found faster by looking
// through them than by hashing 32 bytes; a map takes over beyond that.
func (e *encoder) stamp(s Stamp) {
	if e.index == nil {
		for i := range e.stamps {
			if e.stamps[i] == s {
				e.uvarint(uint64(i))
				return
			}
		}
		if len(e.stamps) < linearStamps {
			e.uvarint(uint64(len(e.stamps)))
			e.stamps = append(e.stamps, s)
			return
		}
		e.index = make(map[Stamp]int, 2*len(e.stamps))
		for i, t := range e.stamps {
			e.index[t] = i
		}
	}
	i, ok := e.index[s]
	if !ok {
		i = len(e.stamps)
		e.index[s] = i
		e.stamps = append(e.stamps, s)
	}
	e.uvarint(uint64(i))
}

// linearStamps is the stamp table size up to which stamp searches it.
const linearStamps = 16

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedAuthors(m map[common.Address]PN) []common.Address {
	keys := make([]common.Address, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return string(keys[i][:]) < string(keys[j][:]) })
	return keys
}

func (e *encoder) pns(m map[common.Address]PN) {
	e.uvarint(uint64(len(m)))
	for _, a := range sortedAuthors(m) {
		e.body = append(e.body, a[:]...)
		e.uvarint(m[a].P)
		e.uvarint(m[a].N)
	}
}

// Encode returns the deterministic encoding of the whole state; equal
// states encode to equal bytes.
func (d *Doc) Encode() ([]byte, error) { return d.AppendEncode(nil) }

// AppendEncode appends the encoding of Encode to dst, which it grows once.
func (d *Doc) AppendEncode(dst []byte) ([]byte, error) {
	e := encoders.Get().(*encoder)
	defer e.release()
	e.stamp(d.Clear)
	e.stamp(d.Dead)
	e.stamp(d.Touch)
	e.uvarint(uint64(len(d.Fields)))
	for _, f := range d.Fields {
		r := f.Register
		e.bytes([]byte(f.Name))
		e.stamp(r.Stamp)
		if r.Value == nil {
			e.uvarint(0)
		} else {
			e.uvarint(1)
			e.bytes(r.Value)
		}
	}
	e.uvarint(uint64(len(d.Counters)))
	for _, name := range sortedKeys(d.Counters) {
		c := d.Counters[name]
		e.bytes([]byte(name))
		e.stamp(c.Last)
		e.pns(c.Contrib)
		e.pns(c.Base)
	}
	e.uvarint(uint64(len(d.Sets)))
	for _, name := range sortedKeys(d.Sets) {
		s := d.Sets[name]
		e.bytes([]byte(name))
		e.stamp(s.Last)
		e.uvarint(uint64(len(s.Elems)))
		for _, elem := range sortedKeys(s.Elems) {
			e.bytes([]byte(elem))
			tags := s.Elems[elem]
			e.uvarint(uint64(len(tags)))
			for _, t := range tags {
				e.stamp(t)
			}
		}
	}
	e.uvarint(uint64(len(d.Logs)))
	for _, name := range sortedKeys(d.Logs) {
		log := d.Logs[name]
		e.bytes([]byte(name))
		e.uvarint(uint64(len(log)))
		for _, en := range log {
			e.stamp(en.Stamp)
			e.bytes(en.Value)
		}
	}
	out := slices.Grow(dst, 1+binary.MaxVarintLen64+32*len(e.stamps)+len(e.body))
	out = append(out, codecVersion)
	out = binary.AppendUvarint(out, uint64(len(e.stamps)))
	for _, s := range e.stamps {
		out = append(out, s[:]...)
	}
	return append(out, e.body...), nil
}

type decoder struct {
	b      []byte
	stamps []Stamp
	err    error
}

func (r *decoder) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length that must fit in what is left (each item takes at
// least min bytes), so corrupt input cannot make us allocate wildly.
func (r *decoder) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.err = errCorrupt
		return 0
	}
	return int(n)
}

func (r *decoder) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = errCorrupt
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *decoder) bytes() []byte { return r.take(r.count(1)) }

func (r *decoder) stamp() Stamp {
	i := r.uvarint()
	if r.err == nil && i >= uint64(len(r.stamps)) {
		r.err = errCorrupt
	}
	if r.err != nil {
		return Stamp{}
	}
	return r.stamps[i]
}

func (r *decoder) pns() map[common.Address]PN {
	n := r.count(22)
	if n == 0 {
		return nil
	}
	m := make(map[common.Address]PN, n)
	for range n {
		a := common.BytesToAddress(r.take(common.AddressLength))
		m[a] = PN{P: r.uvarint(), N: r.uvarint()}
	}
	return m
}

// Decode reads a state written by Encode. The state keeps references into
// b, which the caller must not change afterwards.
func Decode(b []byte) (*Doc, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, fmt.Errorf("crdt: decode: unknown state version: %w", errCorrupt)
	}
	r := &decoder{b: b[1:]}
	ns := r.count(32)
	r.stamps = make([]Stamp, ns)
	for i := range ns {
		copy(r.stamps[i][:], r.take(32))
	}
	d := &Doc{Clear: r.stamp(), Dead: r.stamp(), Touch: r.stamp()}
	if n := r.count(3); n > 0 {
		d.Fields = make([]Field, 0, n)
		for range n {
			name := string(r.bytes())
			reg := Register{Stamp: r.stamp()}
			if r.uvarint() == 1 {
				reg.Value = r.bytes()
			}
			if k := len(d.Fields); k > 0 && d.Fields[k-1].Name >= name {
				return nil, fmt.Errorf("crdt: decode: fields out of order: %w", errCorrupt)
			}
			d.Fields = append(d.Fields, Field{Name: name, Register: reg})
		}
	}
	if n := r.count(4); n > 0 {
		d.Counters = make(map[string]*Counter, n)
		for range n {
			name := string(r.bytes())
			c := &Counter{Last: r.stamp(), Contrib: r.pns(), Base: r.pns()}
			if c.Contrib == nil {
				c.Contrib = make(map[common.Address]PN)
			}
			d.Counters[name] = c
		}
	}
	if n := r.count(3); n > 0 {
		d.Sets = make(map[string]*Set, n)
		for range n {
			name := string(r.bytes())
			s := &Set{Last: r.stamp(), Elems: make(map[string][]Stamp)}
			for range r.count(2) {
				elem := string(r.bytes())
				nt := r.count(1)
				tags := make([]Stamp, nt)
				for i := range nt {
					tags[i] = r.stamp()
				}
				s.Elems[elem] = tags
			}
			d.Sets[name] = s
		}
	}
	if n := r.count(2); n > 0 {
		d.Logs = make(map[string][]Entry, n)
		for range n {
			name := string(r.bytes())
			ne := r.count(2)
			log := make([]Entry, ne)
			for i := range ne {
				log[i] = Entry{Stamp: r.stamp(), Value: r.bytes()}
			}
			d.Logs[name] = log
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errCorrupt
	}
	if r.err != nil {
		return nil, fmt.Errorf("crdt: decode: %w", r.err)
	}
	return d, nil
}
