// Package crdt is the deterministic merge core of the store: the state of
// one document and the pure function that applies an operation to it.
//
// There is no I/O here and no clock: the result of applying a set of
// operations depends only on the operations, never on the order they
// arrive in, provided the caller keeps two promises:
//
//  1. every operation is applied exactly once (the store applies each delta
//     once, by CID);
//  2. a delta is applied only after all of its parents (causal delivery),
//     so a Remove never arrives before the Add it removes.
//
// # Merge rules
//
// Each operation has a Stamp: the delta's HLC, then its author, then the
// operation's index in the delta. Stamps are totally ordered.
//
//   - Fields are last-writer-wins registers ordered by Stamp.
//   - Put and Delete set the document's clear mark: every field and log
//     entry stamped before it is gone. A Delete tombstones the document; a
//     write stamped after the Delete revives it.
//   - Counters (Inc) are PN-counters. Put, Delete and Set reset the
//     contributions they observed (carried in the operation as Bases);
//     increments they did not observe survive, as in an observed-remove set.
//   - Sets (Add/Remove) are add-wins observed-remove sets: Remove deletes the
//     instances of the element it observed; a concurrent Add survives.
//   - Logs (Append) keep every entry stamped at or after the clear mark,
//     read in Stamp order.
//
// An empty set, and a counter with no increment since its last reset, read
// as absent fields.
//
// A field name holds one kind of value at a time for display: the kind
// written last (by Stamp) wins, except that a counter adds to a numeric
// register it was incremented after.
package crdt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dpaas/dpaas/internal/delta"
	"github.com/ethereum/go-ethereum/common"
)

// Stamp orders operations: 8 bytes HLC (big-endian), 20 bytes author,
// 4 bytes operation index. Byte order is the merge order.
type Stamp [32]byte

// MakeStamp builds the stamp of operation index of a delta.
func MakeStamp(hlc uint64, author common.Address, index uint32) Stamp {
	var s Stamp
	binary.BigEndian.PutUint64(s[:8], hlc)
	copy(s[8:28], author[:])
	binary.BigEndian.PutUint32(s[28:], index)
	return s
}

// StampOfTag converts an observed-element tag of a delta to a Stamp.
func StampOfTag(t delta.Tag) Stamp {
	return MakeStamp(t.HLC, common.BytesToAddress(t.Author), t.Index)
}

// Tag converts a stamp to the form deltas carry.
func (s Stamp) Tag() delta.Tag {
	return delta.Tag{HLC: s.HLC(), Author: bytes.Clone(s[8:28]), Index: binary.BigEndian.Uint32(s[28:])}
}

// HLC returns the timestamp part.
func (s Stamp) HLC() uint64 { return binary.BigEndian.Uint64(s[:8]) }

// Author returns the author part.
func (s Stamp) Author() common.Address { return common.BytesToAddress(s[8:28]) }

// Less reports whether s orders before t.
func (s Stamp) Less(t Stamp) bool { return bytes.Compare(s[:], t[:]) < 0 }

// Register is one last-writer-wins field; a nil Value means unset.
type Register struct {
	Stamp Stamp  `cbor:"s"`
	Value []byte `cbor:"v,omitempty"`
}

// PN is an author's positive and negative counter contributions.
type PN struct {
	P uint64 `cbor:"p,omitempty"`
	N uint64 `cbor:"n,omitempty"`
}

// Counter is a PN-counter with per-author reset bases.
type Counter struct {
	Last    Stamp                 `cbor:"l"`
	Contrib map[common.Address]PN `cbor:"c,omitempty"`
	Base    map[common.Address]PN `cbor:"b,omitempty"`
}

// Value is the sum of contributions above the bases.
func (c *Counter) Value() int64 {
	var v int64
	for a, pn := range c.Contrib {
		b := c.Base[a]
		v += int64(pn.P-min(b.P, pn.P)) - int64(pn.N-min(b.N, pn.N))
	}
	return v
}

// live reports whether some contribution is above its reset base; a
// counter reset by a Put or Delete and not incremented since reads as
// absent.
func (c *Counter) live() bool {
	for a, pn := range c.Contrib {
		if b := c.Base[a]; pn.P > b.P || pn.N > b.N {
			return true
		}
	}
	return false
}

// Set is an add-wins observed-remove set: element JSON → its live add tags.
type Set struct {
	Last  Stamp              `cbor:"l"`
	Elems map[string][]Stamp `cbor:"e,omitempty"`
}

// Field is a named register of a document.
type Field struct {
	Name string
	Register
}

func cmpFieldName(f Field, name string) int { return strings.Compare(f.Name, name) }

// field returns the index of name in d.Fields, or where it would go.
func (d *Doc) field(name string) (int, bool) {
	return slices.BinarySearchFunc(d.Fields, name, cmpFieldName)
}

// Entry is one log entry.
type Entry struct {
	Stamp Stamp  `cbor:"s"`
	Value []byte `cbor:"v"`
}

// Doc is the merged state of one document. The zero value is an absent
// document. It is not safe for concurrent use.
type Doc struct {
	Clear    Stamp               `cbor:"c"`
	Dead     Stamp               `cbor:"d"`
	Touch    Stamp               `cbor:"t"`
	Fields   []Field             `cbor:"f,omitempty"` // sorted by name, unique
	Counters map[string]*Counter `cbor:"n,omitempty"`
	Sets     map[string]*Set     `cbor:"s,omitempty"`
	Logs     map[string][]Entry  `cbor:"l,omitempty"`
}

func maxStamp(a *Stamp, b Stamp) {
	if a.Less(b) {
		*a = b
	}
}

// Alive reports whether the document exists: its latest event is not a
// Delete.
func (d *Doc) Alive() bool { return d.Dead.Less(d.Touch) }

// Apply merges one operation stamped s into the document.
func (d *Doc) Apply(s Stamp, op *delta.Op) {
	switch op.Kind {
	case delta.Put, delta.Delete:
		maxStamp(&d.Clear, s)
		if op.Kind == delta.Delete {
			maxStamp(&d.Dead, s)
		} else {
			maxStamp(&d.Touch, s)
		}
		d.clearBelow()
		d.reset(op.Bases)
		d.unsee(op.Seen)
		d.setFields(s, op.Fields)
	case delta.Set, delta.Unset:
		maxStamp(&d.Touch, s)
		d.setField(s, op.Field, op.Value)
		d.reset(op.Bases)
	case delta.Inc:
		maxStamp(&d.Touch, s)
		c := d.counter(op.Field)
		maxStamp(&c.Last, s)
		a := s.Author()
		pn := c.Contrib[a]
		if op.Amount >= 0 {
			pn.P += uint64(op.Amount)
		} else {
			pn.N += uint64(-op.Amount)
		}
		c.Contrib[a] = pn
	case delta.Add:
		maxStamp(&d.Touch, s)
		set := d.set(op.Field)
		maxStamp(&set.Last, s)
		tags := set.Elems[string(op.Value)]
		i, found := slices.BinarySearchFunc(tags, s, cmpStamp)
		if !found {
			set.Elems[string(op.Value)] = slices.Insert(tags, i, s)
		}
	case delta.Remove:
		maxStamp(&d.Touch, s)
		set := d.set(op.Field)
		maxStamp(&set.Last, s)
		for _, t := range op.Tags {
			set.removeTag(string(op.Value), StampOfTag(t))
		}
	case delta.Append:
		maxStamp(&d.Touch, s)
		if s.Less(d.Clear) {
			return
		}
		if d.Logs == nil {
			d.Logs = make(map[string][]Entry)
		}
		log := d.Logs[op.Field]
		i, found := slices.BinarySearchFunc(log, s, func(e Entry, s Stamp) int { return cmpStamp(e.Stamp, s) })
		if !found {
			d.Logs[op.Field] = slices.Insert(log, i, Entry{Stamp: s, Value: op.Value})
		}
	}
}

func cmpStamp(a, b Stamp) int { return bytes.Compare(a[:], b[:]) }

func (d *Doc) setField(s Stamp, name string, v []byte) {
	if s.Less(d.Clear) {
		return
	}
	i, found := d.field(name)
	if found {
		if !d.Fields[i].Stamp.Less(s) {
			return
		}
		d.Fields[i].Register = Register{Stamp: s, Value: v}
		return
	}
	d.Fields = slices.Insert(d.Fields, i, Field{Name: name, Register: Register{Stamp: s, Value: v}})
}

// setFields sets every field of a Put. Into a document without fields,
// the usual case (the Put cleared the older ones), they go in one sorted
// pass.
func (d *Doc) setFields(s Stamp, fields delta.Fields) {
	if len(d.Fields) > 0 || s.Less(d.Clear) || !sortedUnique(fields) {
		for _, f := range fields {
			d.setField(s, f.Name, f.Value)
		}
		return
	}
	d.Fields = slices.Grow(d.Fields[:0], len(fields))
	for _, f := range fields {
		d.Fields = append(d.Fields, Field{Name: f.Name, Register: Register{Stamp: s, Value: f.Value}})
	}
}

// sortedUnique reports whether fs is sorted by name without repeats, as
// checked deltas are.
func sortedUnique(fs delta.Fields) bool {
	for i := 1; i < len(fs); i++ {
		if fs[i-1].Name >= fs[i].Name {
			return false
		}
	}
	return true
}

func (d *Doc) clearBelow() {
	d.Fields = slices.DeleteFunc(d.Fields, func(f Field) bool { return f.Stamp.Less(d.Clear) })
	for name, log := range d.Logs {
		i, _ := slices.BinarySearchFunc(log, d.Clear, func(e Entry, s Stamp) int { return cmpStamp(e.Stamp, s) })
		if i == len(log) {
			delete(d.Logs, name)
		} else if i > 0 {
			d.Logs[name] = slices.Clone(log[i:])
		}
	}
}

func (d *Doc) reset(bases []delta.Base) {
	for _, b := range bases {
		c := d.counter(b.Field)
		a := common.BytesToAddress(b.Author)
		cur := c.Base[a]
		if c.Base == nil {
			c.Base = make(map[common.Address]PN)
		}
		c.Base[a] = PN{P: max(cur.P, b.P), N: max(cur.N, b.N)}
	}
}

func (d *Doc) unsee(seen []delta.Seen) {
	for _, e := range seen {
		if set := d.Sets[e.Field]; set != nil {
			set.removeTag(string(e.Value), StampOfTag(e.Tag))
		}
	}
}

func (set *Set) removeTag(elem string, t Stamp) {
	tags := set.Elems[elem]
	if i, found := slices.BinarySearchFunc(tags, t, cmpStamp); found {
		tags = slices.Delete(tags, i, i+1)
		if len(tags) == 0 {
			delete(set.Elems, elem)
		} else {
			set.Elems[elem] = tags
		}
	}
}

func (d *Doc) counter(name string) *Counter {
	if d.Counters == nil {
		d.Counters = make(map[string]*Counter)
	}
	c := d.Counters[name]
	if c == nil {
		c = &Counter{Contrib: make(map[common.Address]PN)}
		d.Counters[name] = c
	}
	if c.Contrib == nil {
		c.Contrib = make(map[common.Address]PN)
	}
	return c
}

func (d *Doc) set(name string) *Set {
	if d.Sets == nil {
		d.Sets = make(map[string]*Set)
	}
	s := d.Sets[name]
	if s == nil {
		s = &Set{}
		d.Sets[name] = s
	}
	if s.Elems == nil {
		s.Elems = make(map[string][]Stamp)
	}
	return s
}

// Bases returns the counter contributions a reset of field (or of every
// counter when field is "") must carry.
func (d *Doc) Bases(field string) []delta.Base {
	var out []delta.Base
	for name, c := range d.Counters {
		if field != "" && name != field {
			continue
		}
		for a, pn := range c.Contrib {
			out = append(out, delta.Base{Field: name, Author: bytes.Clone(a[:]), P: pn.P, N: pn.N})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Field != out[j].Field {
			return out[i].Field < out[j].Field
		}
		return bytes.Compare(out[i].Author, out[j].Author) < 0
	})
	return out
}

// Tags returns the live add tags of elem (canonical JSON) in a set field,
// for a Remove.
func (d *Doc) Tags(field string, elem []byte) []delta.Tag {
	set := d.Sets[field]
	if set == nil {
		return nil
	}
	var out []delta.Tag
	for _, s := range set.Elems[string(elem)] {
		out = append(out, s.Tag())
	}
	return out
}

// Seen returns every live set element instance, for a Put or Delete.
func (d *Doc) Seen() []delta.Seen {
	var out []delta.Seen
	names := make([]string, 0, len(d.Sets))
	for name := range d.Sets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		set := d.Sets[name]
		elems := make([]string, 0, len(set.Elems))
		for e := range set.Elems {
			elems = append(elems, e)
		}
		sort.Strings(elems)
		for _, e := range elems {
			for _, s := range set.Elems[e] {
				out = append(out, delta.Seen{Field: name, Value: []byte(e), Tag: s.Tag()})
			}
		}
	}
	return out
}

// View renders the document as a JSON object with sorted keys, or nil when
// it does not exist.
func (d *Doc) View() []byte {
	if !d.Alive() {
		return nil
	}
	if len(d.Counters)+len(d.Sets)+len(d.Logs) == 0 {
		// only registers, already in name order, in a buffer sized once
		// (names with characters to escape may still grow it)
		n := 2
		for _, f := range d.Fields {
			n += len(f.Name) + len(f.Value) + 4
		}
		b := make([]byte, 0, n)
		b = append(b, '{')
		for _, f := range d.Fields {
			if f.Value == nil {
				continue // unset
			}
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.Name)
			b = append(b, ':')
			b = append(b, f.Value...)
		}
		return append(b, '}')
	}
	b := make([]byte, 0, 64)
	b = append(b, '{')
	sorted := make([]string, 0, len(d.Fields)+len(d.Counters)+len(d.Sets)+len(d.Logs))
	for _, f := range d.Fields {
		sorted = append(sorted, f.Name)
	}
	for n := range d.Counters {
		sorted = append(sorted, n)
	}
	for n := range d.Sets {
		sorted = append(sorted, n)
	}
	for n := range d.Logs {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	sorted = slices.Compact(sorted) // a name can hold several kinds
	first := true
	for _, name := range sorted {
		v := d.fieldView(name)
		if v == nil {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, name)
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, '}')
}

// appendJSONString appends name as a JSON string, as encoding/json writes
// it; names that need no escaping, nearly all, skip encoding/json.
func appendJSONString(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			k, _ := json.Marshal(name)
			return append(b, k...)
		}
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"')
}

// fieldView picks the kind written last and renders it.
func (d *Doc) fieldView(name string) []byte {
	var reg Register
	i, hasReg := d.field(name)
	if hasReg {
		reg = d.Fields[i].Register
	}
	var (
		best    Stamp
		kind    byte // 'r' register, 'c' counter, 's' set, 'l' log
		present bool
	)
	consider := func(s Stamp, k byte) {
		if !present || best.Less(s) {
			best, kind, present = s, k, true
		}
	}
	if hasReg {
		consider(reg.Stamp, 'r')
	}
	if c := d.Counters[name]; c != nil && c.live() {
		consider(c.Last, 'c')
	}
	if s := d.Sets[name]; s != nil && len(s.Elems) > 0 {
		consider(s.Last, 's')
	}
	if l := d.Logs[name]; len(l) > 0 {
		consider(l[len(l)-1].Stamp, 'l')
	}
	switch kind {
	case 'r':
		return reg.Value
	case 'c':
		v := d.Counters[name].Value()
		if hasReg && reg.Value != nil {
			if n, ok := number(reg.Value); ok {
				if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
					return strconv.AppendInt(nil, int64(n)+v, 10)
				}
				return strconv.AppendFloat(nil, n+float64(v), 'g', -1, 64)
			}
		}
		return strconv.AppendInt(nil, v, 10)
	case 's':
		set := d.Sets[name]
		elems := make([]string, 0, len(set.Elems))
		for e := range set.Elems {
			elems = append(elems, e)
		}
		sort.Strings(elems)
		return jsonArray(elems)
	case 'l':
		log := d.Logs[name]
		vals := make([]string, len(log))
		for i, e := range log {
			vals[i] = string(e.Value)
		}
		return jsonArray(vals)
	}
	return nil
}

func number(v []byte) (float64, bool) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return f, err == nil
}

func jsonArray(vals []string) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v)
	}
	b.WriteByte(']')
	return b.Bytes()
}
