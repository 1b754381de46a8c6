package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ethereum/go-ethereum/common"
)

// Collection is a named set of JSON documents with string IDs. It is safe
// for concurrent use.
type Collection struct {
	s         *Store
	name      string
	err       error // set when the name is unusable
	validator atomic.Pointer[Validator]
}

// Collection returns the collection called name, creating nothing until
// the first write. Names must be non-empty and contain no zero byte; the
// methods of a collection with a bad name return ErrInvalid.
func (s *Store) Collection(name string) *Collection {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.colls[name]; c != nil {
		return c
	}
	c := &Collection{s: s, name: name}
	if err := checkName("collection", name); err != nil {
		c.err = err
	}
	s.colls[name] = c
	return c
}

// Name returns the collection's name.
func (c *Collection) Name() string { return c.name }

// checkName applies the rule every replica applies to names
// (delta.CheckName): 1 to MaxNameLen bytes of UTF-8 without a zero byte.
func checkName(what, name string) error {
	if err := delta.CheckName(name); err != nil {
		return fmt.Errorf("store: %s %s must be 1 to %d bytes of UTF-8 without a zero byte: %w: %w", what, shortName(name), MaxNameLen, ErrInvalid, err)
	}
	return nil
}

// Write is one operation as a validator sees it.
type Write struct {
	Author     common.Address
	Collection string
	ID         string
	Kind       string // put, delete, set, unset, inc, add, remove, append
	Field      string
	Value      json.RawMessage            // set, add, remove, append
	Amount     int64                      // inc
	Fields     map[string]json.RawMessage // put
	// Before is the document as this replica holds it just before the
	// operation, nil when absent. Replicas may hold different versions of
	// a document concurrently, so a validator that must give the same
	// answer everywhere should only rely on fields that never change once
	// written (an owner, a creation time) and on the operation itself.
	Before json.RawMessage
}

// Validator decides whether an operation may be applied. It must be a
// deterministic function of its argument: every replica runs it on every
// delta before applying it, and a delta any of whose operations is refused
// is applied nowhere.
type Validator func(w Write) error

func writeOf(author common.Address, op *delta.Op, before []byte) Write {
	w := Write{Author: author, Collection: op.Collection, ID: op.ID, Kind: op.Kind.String(), Field: op.Field, Amount: op.Amount, Before: before}
	if op.Value != nil {
		w.Value = json.RawMessage(op.Value)
	}
	if op.Fields != nil {
		w.Fields = make(map[string]json.RawMessage, len(op.Fields))
		for _, f := range op.Fields {
			w.Fields[f.Name] = json.RawMessage(f.Value)
		}
	}
	return w
}

// SetValidator installs v as the collection's validator (nil removes it)
// and returns a function that removes it again. Install validators before
// the store receives deltas, identically on every replica.
func (c *Collection) SetValidator(v Validator) (remove func()) {
	if v == nil {
		c.validator.Store(nil)
		return func() {}
	}
	c.validator.Store(&v)
	return func() { c.validator.CompareAndSwap(&v, nil) }
}

func (s *Store) validator(coll string) Validator {
	s.mu.Lock()
	c := s.colls[coll]
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	if v := c.validator.Load(); v != nil {
		return *v
	}
	return nil
}

// Op is one change to a document, for Update.
type Op struct {
	kind   delta.Kind
	field  string
	value  any
	amount int64
}

// Set writes a field (last writer wins).
func Set(field string, value any) Op { return Op{kind: delta.Set, field: field, value: value} }

// Unset removes a field.
func Unset(field string) Op { return Op{kind: delta.Unset, field: field} }

// Inc adds n (which may be negative) to a counter field.
func Inc(field string, n int64) Op { return Op{kind: delta.Inc, field: field, amount: n} }

// Add adds value to a set field. Sets are add-wins: an Add concurrent with
// a Remove of the same value survives it.
func Add(field string, value any) Op { return Op{kind: delta.Add, field: field, value: value} }

// Remove removes value from a set field.
func Remove(field string, value any) Op { return Op{kind: delta.Remove, field: field, value: value} }

// Append appends value to a log field; logs read in timestamp order.
func Append(field string, value any) Op { return Op{kind: delta.Append, field: field, value: value} }

func (c *Collection) checkID(op, id string) error {
	if c.err != nil {
		return fmt.Errorf("store: %s: %w", op, c.err)
	}
	if err := checkName("document id", id); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// docFields splits a struct or map into its top-level JSON fields.
func docFields(doc any) (delta.Fields, error) {
	raw, ok := doc.(json.RawMessage)
	if ok {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("document is not valid JSON: %w", ErrInvalid)
		}
		raw = bytes.Clone(raw) // fields alias it; the caller may reuse its buffer
	} else {
		var err error
		raw, err = json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("document is not JSON: %v: %w", err, ErrInvalid)
		}
	}
	out, err := splitObject(raw)
	if err != nil {
		return nil, err
	}
	// Field values are registers, compared whole and queried through
	// encodeValue, so they need no canonical form; compact is enough.
	for i, f := range out {
		if err := delta.CheckName(f.Name); err != nil {
			return nil, fmt.Errorf("field name %s must be 1 to %d bytes of UTF-8 without a zero byte: %w: %w", shortName(f.Name), MaxNameLen, ErrInvalid, err)
		}
		if !isCompact(f.Value) {
			var buf bytes.Buffer
			if err := json.Compact(&buf, f.Value); err != nil {
				return nil, fmt.Errorf("field %s: %v: %w", shortName(f.Name), err, ErrInvalid)
			}
			out[i].Value = buf.Bytes()
		}
	}
	return out, nil
}

// fieldNames interns field names: documents of a collection repeat the
// same few names, which then cost no allocation per write. The table only
// grows, up to a bound, and only with short names. Readers load it with
// one atomic read (a read lock's shared counter cost more, bouncing
// between cores); an addition copies it, which happens once per name.
var fieldNames = newInternTable()

const (
	internMax     = 4096 // names held at most
	internMaxName = 64   // longest name interned
)

type internTable struct {
	mu    sync.Mutex // serialises additions
	names atomic.Pointer[map[string]string]
}

func newInternTable() *internTable {
	t := &internTable{}
	m := map[string]string{}
	t.names.Store(&m)
	return t
}

// get returns b as a string, the interned one when there is one.
func (t *internTable) get(b []byte) string {
	if len(b) > internMaxName {
		return string(b)
	}
	m := *t.names.Load()
	if s, ok := m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(m) < internMax {
		t.mu.Lock()
		cur := *t.names.Load()
		if _, ok := cur[s]; !ok && len(cur) < internMax {
			next := make(map[string]string, len(cur)+1)
			for k, v := range cur {
				next[k] = v
			}
			next[s] = s
			t.names.Store(&next)
		}
		t.mu.Unlock()
	}
	return s
}

var errNotObject = fmt.Errorf("document must be a JSON object: %w", ErrInvalid)

// splitObject splits valid JSON that must be an object into its members,
// as json.Unmarshal into a map of RawMessage would (the last of duplicate
// names wins, names are decoded and made valid UTF-8), without decoding
// the values. The members come sorted by name; the values alias raw.
func splitObject(raw []byte) (delta.Fields, error) {
	notObject := errNotObject
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, notObject
	}
	out := make(delta.Fields, 0, 4)
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return out, nil
	}
	for i < len(raw) {
		// a member: "name" : value (the input is valid JSON)
		end := skipString(raw, i)
		if end < 0 {
			return nil, notObject
		}
		name := raw[i+1 : end-1]
		var key string
		if bytes.IndexByte(name, '\\') >= 0 || !utf8.Valid(name) {
			var unquoted string // escapes to the heap: only here
			if err := json.Unmarshal(raw[i:end], &unquoted); err != nil {
				return nil, notObject
			}
			key = unquoted
		} else {
			key = fieldNames.get(name)
		}
		i = skipSpace(raw, end)
		i = skipSpace(raw, i+1) // the colon
		start := i
		if i = skipValue(raw, i); i < 0 {
			return nil, notObject
		}
		out = append(out, delta.Field{Name: key, Value: raw[start:i]})
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] == '}' {
			break
		}
		i = skipSpace(raw, i+1) // the comma
	}
	return delta.SortFields(out), nil
}

func (c *Collection) putOp(id string, doc any) (userOp, error) {
	if err := c.checkID("put", id); err != nil {
		return userOp{}, err
	}
	fields, err := docFields(doc)
	if err != nil {
		return userOp{}, fmt.Errorf("store: put %s: %w", docName(c.name, id), err)
	}
	return userOp{kind: delta.Put, coll: c.name, id: id, fields: fields}, nil
}

func (c *Collection) updateOps(id string, ops []Op) ([]userOp, error) {
	if err := c.checkID("update", id); err != nil {
		return nil, err
	}
	out := make([]userOp, 0, len(ops))
	for _, o := range ops {
		if o.kind == 0 {
			return nil, fmt.Errorf("store: update %s: zero Op: %w", docName(c.name, id), ErrInvalid)
		}
		if err := checkName("field", o.field); err != nil {
			return nil, fmt.Errorf("store: update %s: %w", docName(c.name, id), err)
		}
		u := userOp{kind: o.kind, coll: c.name, id: id, field: o.field, amount: o.amount}
		if o.kind != delta.Unset && o.kind != delta.Inc {
			v, err := canonicalJSON(o.value)
			if err != nil {
				return nil, fmt.Errorf("store: update %s: field %s: %v: %w", docName(c.name, id), shortName(o.field), err, ErrInvalid)
			}
			u.value = v
		}
		out = append(out, u)
	}
	return out, nil
}

// Put replaces document id with doc (a struct, a map or a
// json.RawMessage holding a JSON object). It returns once the write is
// durable.
func (c *Collection) Put(ctx context.Context, id string, doc any) error {
	u, err := c.putOp(id, doc)
	if err != nil {
		return err
	}
	ops := []userOp{u}
	size, err := writeSize("put", ops, MaxWriteSize)
	if err != nil {
		return err
	}
	return c.s.submit(ctx, "put", ops, size)
}

// Update applies ops to document id, creating it if absent, atomically.
func (c *Collection) Update(ctx context.Context, id string, ops ...Op) error {
	us, err := c.updateOps(id, ops)
	if err != nil {
		return err
	}
	if len(us) == 0 {
		return nil
	}
	size, err := writeSize("update", us, MaxWriteSize)
	if err != nil {
		return err
	}
	return c.s.submit(ctx, "update", us, size)
}

// Delete deletes (burns) document id. A later write revives it.
func (c *Collection) Delete(ctx context.Context, id string) error {
	if err := c.checkID("delete", id); err != nil {
		return err
	}
	ops := []userOp{{kind: delta.Delete, coll: c.name, id: id}}
	size, err := writeSize("delete", ops, MaxWriteSize)
	if err != nil {
		return err
	}
	return c.s.submit(ctx, "delete", ops, size)
}

// Get decodes document id into dst (as encoding/json does), or returns
// ErrNotFound when it is absent or deleted.
func (c *Collection) Get(ctx context.Context, id string, dst any) error {
	raw, err := c.GetRaw(ctx, id)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("store: get %s: %w", docName(c.name, id), err)
	}
	return nil
}

// GetRaw returns document id as a JSON object with sorted keys.
func (c *Collection) GetRaw(ctx context.Context, id string) (json.RawMessage, error) {
	if err := c.checkID("get", id); err != nil {
		return nil, err
	}
	if c.s.closed.Load() {
		return nil, c.s.errClosed("get")
	}
	rec, err := c.s.space.Get(docKey(tState, c.name, id))
	if errors.Is(err, kv.ErrNotFound) {
		return nil, fmt.Errorf("store: get %s: %w", docName(c.name, id), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", docName(c.name, id), err)
	}
	view, err := recordView(rec)
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", docName(c.name, id), err)
	}
	if view == nil {
		return nil, fmt.Errorf("store: get %s: %w", docName(c.name, id), ErrNotFound)
	}
	return view, nil
}

// Batch gathers writes to many documents that commit together, as few
// deltas as possible, with one fsync. It is not safe for concurrent use.
// Each write added is at most MaxWriteSize and the whole batch at most
// MaxBatchSize; a batch that does not fit in one delta is committed as
// several, atomically here (peers apply them one by one).
type Batch struct {
	s    *Store
	ops  []userOp
	size int
	err  error
}

// add checks a write and adds it to the batch.
func (b *Batch) add(verb string, us []userOp) {
	n, err := writeSize(verb, us, MaxWriteSize)
	if err == nil && b.size+n > MaxBatchSize {
		err = fmt.Errorf("store: batch: %d bytes with %s %s, over the %d-byte limit: %w", b.size+n, verb, docName(us[0].coll, us[0].id), MaxBatchSize, ErrTooLarge)
	}
	if err != nil {
		b.err = err
		return
	}
	b.ops = append(b.ops, us...)
	b.size += n
}

// Batch starts a batch.
func (s *Store) Batch() *Batch { return &Batch{s: s} }

// Put adds a Put to the batch.
func (b *Batch) Put(coll *Collection, id string, doc any) {
	if b.err != nil {
		return
	}
	u, err := coll.putOp(id, doc)
	if err != nil {
		b.err = err
		return
	}
	b.add("put", []userOp{u})
}

// Update adds an Update to the batch.
func (b *Batch) Update(coll *Collection, id string, ops ...Op) {
	if b.err != nil {
		return
	}
	us, err := coll.updateOps(id, ops)
	if err != nil {
		b.err = err
		return
	}
	if len(us) > 0 {
		b.add("update", us)
	}
}

// Delete adds a Delete to the batch.
func (b *Batch) Delete(coll *Collection, id string) {
	if b.err != nil {
		return
	}
	if err := coll.checkID("delete", id); err != nil {
		b.err = err
		return
	}
	b.add("delete", []userOp{{kind: delta.Delete, coll: coll.name, id: id}})
}

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Commit writes the batch and returns once it is durable. The first
// invalid or oversized write added makes Commit fail without writing
// anything; a validator refusing any operation refuses the whole batch.
func (b *Batch) Commit(ctx context.Context) error {
	if b.err != nil {
		return b.err
	}
	if len(b.ops) == 0 {
		return nil
	}
	ops, size := b.ops, b.size
	b.ops, b.size = nil, 0
	return b.s.submit(ctx, "batch", ops, size)
}

// isCompact reports whether raw JSON has no whitespace outside strings.
func isCompact(raw []byte) bool {
	in := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\n' || c == '\t' || c == '\r'):
			return false
		}
	}
	return true
}
