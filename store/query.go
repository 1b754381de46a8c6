package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/kv"
)

// Doc is one document returned by Find.
type Doc struct {
	ID   string
	Data json.RawMessage // the document, a JSON object with sorted keys
	sort []byte
}

// Decode decodes the document into dst as encoding/json does.
func (d Doc) Decode(dst any) error { return json.Unmarshal(d.Data, dst) }

// Cursor returns a token for After: the next page starts after this
// document, under the same query.
func (d Doc) Cursor() string {
	b := binary.AppendUvarint(nil, uint64(len(d.sort)))
	b = append(b, d.sort...)
	b = append(b, d.ID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// QueryOption narrows, orders or pages a query.
type QueryOption func(*query)

type cond struct {
	field string
	op    string
	encs  [][]byte // encoded operand(s)
}

type query struct {
	conds   []cond
	orderBy string
	desc    bool
	limit   int
	after   *Doc
	err     error
}

// Where keeps the documents whose field (a dotted path for nested objects)
// compares to value with op: == != < <= > >= in prefix. For in, value is a
// slice; for prefix, a string. Ordered comparisons only match values of the
// same JSON type (numbers with numbers, strings with strings, booleans with
// booleans); != also matches documents without the field.
func Where(field, op string, value any) QueryOption {
	return func(q *query) {
		c := cond{field: field, op: op}
		if field == "" {
			q.fail(fmt.Errorf("store: where: empty field: %w", ErrInvalid))
			return
		}
		switch op {
		case "==", "!=", "<", "<=", ">", ">=":
			enc, err := encodeAny(value)
			if err != nil {
				q.fail(fmt.Errorf("store: where %s %s: %v: %w", field, op, err, ErrInvalid))
				return
			}
			c.encs = [][]byte{enc}
		case "in":
			raw, err := json.Marshal(value)
			var vals []json.RawMessage
			if err == nil {
				err = json.Unmarshal(raw, &vals)
			}
			if err != nil {
				q.fail(fmt.Errorf("store: where %s in: value must be a slice: %w", shortName(field), ErrInvalid))
				return
			}
			for _, v := range vals {
				enc, err := encodeValue(v)
				if err != nil {
					q.fail(fmt.Errorf("store: where %s in: %v: %w", shortName(field), err, ErrInvalid))
					return
				}
				if !slices.ContainsFunc(c.encs, func(e []byte) bool { return bytes.Equal(e, enc) }) {
					c.encs = append(c.encs, enc)
				}
			}
		case "prefix":
			str, ok := value.(string)
			if !ok {
				q.fail(fmt.Errorf("store: where %s prefix: value must be a string: %w", shortName(field), ErrInvalid))
				return
			}
			enc := append([]byte{typeString}, appendEscaped(nil, []byte(str))...)
			c.encs = [][]byte{enc}
		default:
			q.fail(fmt.Errorf("store: where %s: unknown operator %s: %w", shortName(field), shortName(op), ErrInvalid))
			return
		}
		q.conds = append(q.conds, c)
	}
}

// OrderBy sorts by field, ascending, or descending when field starts with
// "-". Documents without the field come first (last when descending); ties
// are broken by ID. Without OrderBy, documents come in ID order.
func OrderBy(field string) QueryOption {
	desc := len(field) > 0 && field[0] == '-'
	if desc {
		field = field[1:]
	}
	return func(q *query) {
		if field == "" {
			q.fail(fmt.Errorf("store: order by: empty field: %w", ErrInvalid))
		}
		q.orderBy, q.desc = field, desc
	}
}

// Limit returns at most n documents.
func Limit(n int) QueryOption {
	return func(q *query) {
		if n < 0 {
			q.fail(fmt.Errorf("store: limit %d: %w", n, ErrInvalid))
		}
		q.limit = n
	}
}

// After starts after the document whose Cursor is given.
func After(cursor string) QueryOption {
	return func(q *query) {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		var n uint64
		var k int
		if err == nil {
			n, k = binary.Uvarint(b)
		}
		if err != nil || k <= 0 || uint64(len(b)-k) < n {
			q.fail(fmt.Errorf("store: after: bad cursor: %w", ErrInvalid))
			return
		}
		q.after = &Doc{sort: b[k : k+int(n)], ID: string(b[k+int(n):])}
	}
}

func (q *query) fail(err error) {
	if q.err == nil {
		q.err = err
	}
}

func encodeAny(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return encodeValue(raw)
}

func class(t byte) byte {
	if t == typeTrue {
		return typeFalse
	}
	return t
}

func (c *cond) matchEnc(enc []byte, ok bool) bool {
	if c.op == "!=" {
		return !ok || !bytes.Equal(enc, c.encs[0])
	}
	if !ok {
		return false
	}
	switch c.op {
	case "==":
		return bytes.Equal(enc, c.encs[0])
	case "in":
		for _, e := range c.encs {
			if bytes.Equal(enc, e) {
				return true
			}
		}
		return false
	case "prefix":
		return enc[0] == typeString && bytes.HasPrefix(enc, c.encs[0])
	}
	o := c.encs[0]
	if class(enc[0]) != class(o[0]) || enc[0] == typeOther {
		return false
	}
	cmp := bytes.Compare(enc, o)
	switch c.op {
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}

func (c *cond) match(view []byte) bool {
	raw, ok := lookup(view, c.field)
	var enc []byte
	if ok {
		var err error
		if enc, err = encodeValue(raw); err != nil {
			ok = false
		}
	}
	return c.matchEnc(enc, ok)
}

func (q *query) match(view []byte) bool {
	for i := range q.conds {
		if !q.conds[i].match(view) {
			return false
		}
	}
	return true
}

func (q *query) sortKey(view []byte) []byte {
	if q.orderBy == "" {
		return nil
	}
	raw, ok := lookup(view, q.orderBy)
	if !ok {
		return nil
	}
	enc, err := encodeValue(raw)
	if err != nil {
		return nil
	}
	return enc
}

// before reports whether a sorts before b in the query's order.
func (q *query) before(a, b *Doc) bool {
	c := bytes.Compare(a.sort, b.sort)
	if c == 0 {
		c = compareBytes([]byte(a.ID), []byte(b.ID))
	}
	if q.desc {
		return c > 0
	}
	return c < 0
}

func (s *Store) indexedFields(coll string) map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.indexes[coll]
}

// Index declares a secondary index on field (a dotted path) and builds it
// from the documents already held. Declarations persist. Queries use an
// index when one of their conditions is on an indexed field and return the
// same results as without it. Index every field on every replica that
// queries it; indexes are local and never replicated.
func (c *Collection) Index(ctx context.Context, field string) error {
	if c.err != nil {
		return fmt.Errorf("store: index: %w", c.err)
	}
	if err := checkName("field", field); err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	if c.s.indexedFields(c.name)[field] {
		return nil
	}
	done := make(chan error, 1)
	f := func() { done <- c.s.buildIndex(c.name, field) }
	select {
	case c.s.control <- f:
	case <-c.s.closing:
		return c.s.errClosed("index")
	case <-ctx.Done():
		return fmt.Errorf("store: index: %w", ctx.Err())
	}
	select {
	case err := <-done:
		return err
	case <-c.s.stopped:
		return c.s.errClosed("index")
	}
}

// buildIndex runs on the applier goroutine, so no write interleaves.
func (s *Store) buildIndex(coll, field string) error {
	if s.indexedFields(coll)[field] {
		return nil
	}
	it, err := s.space.PrefixIter(docKey(tState, coll, ""))
	if err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	b := s.pdb.NewBatch()
	for it.First(); it.Valid(); it.Next() {
		id := string(s.space.Strip(it.Key())[len(coll)+2:])
		view, err := recordView(it.Value())
		if err != nil {
			it.Close()
			b.Close()
			return fmt.Errorf("store: index: document %s: %w", docName(coll, id), err)
		}
		if enc := indexEntry(view, field); enc != nil {
			if err := b.Set(s.space.Key(indexKey(coll, field, enc, id)), nil, nil); err != nil {
				break
			}
		}
		if b.Len() > 16<<20 {
			if err := s.write(func() error { return b.Commit(pebble.NoSync) }); err != nil {
				it.Close()
				return fmt.Errorf("store: index: %w", err)
			}
			b = s.pdb.NewBatch()
		}
	}
	if err := it.Close(); err != nil {
		b.Close()
		return fmt.Errorf("store: index: %w", err)
	}
	decl := append([]byte{tIdxDecl}, coll...)
	decl = append(append(decl, 0), field...)
	if err := b.Set(s.space.Key(decl), nil, nil); err != nil {
		b.Close()
		return fmt.Errorf("store: index: %w", err)
	}
	if err := s.write(func() error { return b.Commit(pebble.Sync) }); err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	s.mu.Lock()
	next := make(map[string]bool, len(s.indexes[coll])+1)
	for f := range s.indexes[coll] {
		next[f] = true
	}
	next[field] = true
	s.indexes[coll] = next
	s.mu.Unlock()
	return nil
}

// indexRanges returns the index key ranges that hold every document
// matching c, or ok=false when c cannot use an index.
func indexRanges(sp *kv.Space, coll string, c *cond) (ranges [][2][]byte, equality bool, ok bool) {
	base := indexKey(coll, c.field, nil, "")
	for _, e := range c.encs {
		if e[0] == typeOther {
			return nil, false, false
		}
	}
	full := func(b []byte) []byte { return sp.Key(append(slices.Clone(base), b...)) }
	switch c.op {
	case "==":
		p := full(c.encs[0])
		return [][2][]byte{{p, kv.PrefixEnd(p)}}, true, true
	case "in":
		for _, e := range c.encs {
			p := full(e)
			ranges = append(ranges, [2][]byte{p, kv.PrefixEnd(p)})
		}
		return ranges, false, true
	case "prefix":
		p := full(c.encs[0])
		return [][2][]byte{{p, kv.PrefixEnd(p)}}, false, true
	case "<", "<=", ">", ">=":
		e := c.encs[0]
		lo, hi := full([]byte{class(e[0])}), full([]byte{class(e[0]) + 1})
		if e[0] == typeFalse || e[0] == typeTrue {
			hi = full([]byte{typeTrue + 1})
		}
		switch c.op {
		case "<":
			hi = full(e)
		case "<=":
			hi = kv.PrefixEnd(full(e))
		case ">":
			lo = kv.PrefixEnd(full(e))
		case ">=":
			lo = full(e)
		}
		return [][2][]byte{{lo, hi}}, false, true
	}
	return nil, false, false
}

// Find returns the documents matching the query. Iteration stops at the
// first error, which is yielded with a zero Doc.
func (c *Collection) Find(ctx context.Context, opts ...QueryOption) iter.Seq2[Doc, error] {
	return func(yield func(Doc, error) bool) {
		q := &query{}
		for _, o := range opts {
			o(q)
		}
		if c.err != nil {
			q.fail(fmt.Errorf("store: find: %w", c.err))
		}
		if q.err == nil && c.s.closed.Load() {
			q.err = c.s.errClosed("find")
		}
		if q.err != nil {
			yield(Doc{}, q.err)
			return
		}
		if err := c.find(ctx, q, yield); err != nil {
			yield(Doc{}, err)
		}
	}
}

// find streams when the order allows it and sorts otherwise.
func (c *Collection) find(ctx context.Context, q *query, yield func(Doc, error) bool) error {
	s := c.s
	sp := s.space
	n := 0
	var all []Doc
	streaming := q.orderBy == ""
	emit := func(id string, view []byte) (bool, error) {
		if !q.match(view) {
			return true, nil
		}
		d := Doc{ID: id, Data: view, sort: q.sortKey(view)}
		if q.after != nil && !q.before(q.after, &d) {
			return true, nil
		}
		if !streaming {
			all = append(all, d)
			return true, nil
		}
		if !yield(d, nil) {
			return false, nil
		}
		n++
		return q.limit == 0 || n < q.limit, nil
	}
	indexed := s.indexedFields(c.name)
	views := &viewReader{sp: sp, coll: c.name}
	defer views.close()
	for i := range q.conds {
		cd := &q.conds[i]
		if !indexed[cd.field] {
			continue
		}
		ranges, equality, ok := indexRanges(sp, c.name, cd)
		if !ok {
			continue
		}
		ids, err := c.indexIDs(ctx, ranges, equality && streaming, func(id string) (bool, error) {
			view, err := views.get(id)
			if err != nil {
				return false, fmt.Errorf("store: find: index entry without document %s: %w", docName(c.name, id), err)
			}
			return emit(id, view)
		})
		if err != nil {
			return err
		}
		if ids == nil { // streamed already
			return nil
		}
		for _, id := range ids {
			view, err := views.get(id)
			if err != nil {
				return fmt.Errorf("store: find: index entry without document %s: %w", docName(c.name, id), err)
			}
			more, err := emit(id, view)
			if err != nil || !more {
				return err
			}
		}
		return c.finish(q, all, yield)
	}
	it, err := sp.PrefixIter(docKey(tState, c.name, ""))
	if err != nil {
		return fmt.Errorf("store: find: %w", err)
	}
	defer it.Close()
	if q.after != nil && streaming {
		it.SeekGE(sp.Key(docKey(tState, c.name, q.after.ID)))
	} else {
		it.First()
	}
	skip := len(c.name) + 2
	for k := 0; it.Valid(); it.Next() {
		if k++; k%4096 == 0 && ctx.Err() != nil {
			return fmt.Errorf("store: find: %w", ctx.Err())
		}
		id := sp.Strip(it.Key())[skip:]
		view, err := recordView(it.Value())
		if err != nil {
			return fmt.Errorf("store: find: document %s: %w", docName(c.name, string(id)), err)
		}
		if view == nil {
			continue // deleted
		}
		more, err := emit(string(id), view)
		if err != nil || !more {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store: find: %w", err)
	}
	return c.finish(q, all, yield)
}

// indexIDs walks index ranges. With stream, it calls each for every ID in
// order (a single equality range is already in ID order) and returns nil;
// otherwise it returns the sorted, de-duplicated IDs.
func (c *Collection) indexIDs(ctx context.Context, ranges [][2][]byte, stream bool, each func(string) (bool, error)) ([]string, error) {
	sp := c.s.space
	var ids []string
	for _, r := range ranges {
		it, err := sp.DB().Pebble().NewIter(&pebble.IterOptions{LowerBound: r[0], UpperBound: r[1]})
		if err != nil {
			return nil, fmt.Errorf("store: find: %w", err)
		}
		for it.First(); it.Valid(); it.Next() {
			id := c.indexKeyID(it.Key())
			if stream {
				more, err := each(id)
				if err != nil || !more {
					it.Close()
					return nil, err
				}
				continue
			}
			ids = append(ids, id)
			if len(ids)%4096 == 0 && ctx.Err() != nil {
				it.Close()
				return nil, fmt.Errorf("store: find: %w", ctx.Err())
			}
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("store: find: %w", err)
		}
	}
	if stream {
		return nil, nil
	}
	sort.Strings(ids)
	ids = slices.Compact(ids)
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// indexKeyID extracts the document ID from a full index key.
func (c *Collection) indexKeyID(full []byte) string {
	k := c.s.space.Strip(full)[1+len(c.name)+1:]
	i := bytes.IndexByte(k, 0)
	v := k[i+1:]
	return string(v[keyValueLen(v):])
}

func (c *Collection) finish(q *query, all []Doc, yield func(Doc, error) bool) error {
	if q.orderBy == "" {
		return nil
	}
	sort.Slice(all, func(i, j int) bool { return q.before(&all[i], &all[j]) })
	for i, d := range all {
		if q.limit > 0 && i >= q.limit {
			return nil
		}
		if !yield(d, nil) {
			return nil
		}
	}
	return nil
}

// Count returns how many documents match the conditions of q (its limit
// and order are ignored).
func (c *Collection) Count(ctx context.Context, opts ...QueryOption) (int, error) {
	q := &query{}
	for _, o := range opts {
		o(q)
	}
	if q.err != nil {
		return 0, q.err
	}
	if len(q.conds) == 1 && q.after == nil && c.err == nil && c.s.indexedFields(c.name)[q.conds[0].field] {
		if ranges, _, ok := indexRanges(c.s.space, c.name, &q.conds[0]); ok {
			n := 0
			_, err := c.indexIDs(ctx, ranges, true, func(string) (bool, error) { n++; return true, nil })
			return n, err
		}
	}
	n := 0
	for _, err := range c.Find(ctx, append(opts, func(q *query) { q.limit, q.orderBy = 0, "" })...) {
		if err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// Group is one group of an aggregation: the documents whose field by has
// value Key. Sum, Min, Max and Avg are over the numeric values of field of
// (zero when of is empty or no document of the group has a number there).
type Group struct {
	Key   any
	Count int
	Sum   float64
	Min   float64
	Max   float64
	Avg   float64
	n     int
}

// Aggregate groups the documents matching the conditions of q by the value
// of field by, and for each group counts them and, when of is not empty,
// sums and bounds the numbers in field of. Documents without field by
// belong to no group. Groups are ordered by key.
func (c *Collection) Aggregate(ctx context.Context, by, of string, opts ...QueryOption) ([]Group, error) {
	q := &query{}
	for _, o := range opts {
		o(q)
	}
	if q.err != nil {
		return nil, q.err
	}
	if c.err != nil {
		return nil, fmt.Errorf("store: aggregate: %w", c.err)
	}
	groups := make(map[string]*Group)
	if of == "" && len(q.conds) == 0 && c.s.indexedFields(c.name)[by] {
		// counting index entries never reads a document
		sp := c.s.space
		p := sp.Key(indexKey(c.name, by, nil, ""))
		it, err := sp.DB().Pebble().NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: kv.PrefixEnd(p)})
		if err != nil {
			return nil, fmt.Errorf("store: aggregate: %w", err)
		}
		var last []byte
		var g *Group
		for it.First(); it.Valid(); it.Next() {
			v := it.Key()[len(p):]
			v = v[:keyValueLen(v)]
			if g == nil || !bytes.Equal(v, last) {
				last = slices.Clone(v)
				g = &Group{Key: decodeKeyValue(last)}
				groups[string(last)] = g
			}
			g.Count++
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("store: aggregate: %w", err)
		}
		return sortedGroups(groups), nil
	}
	for d, err := range c.Find(ctx, append(opts, func(q *query) { q.limit, q.orderBy = 0, "" })...) {
		if err != nil {
			return nil, err
		}
		raw, ok := lookup(d.Data, by)
		if !ok {
			continue
		}
		k, err := encodeValue(raw)
		if err != nil {
			continue
		}
		g := groups[string(k)]
		if g == nil {
			g = &Group{Key: decodeKeyValue(k)}
			groups[string(k)] = g
		}
		g.Count++
		if of == "" {
			continue
		}
		if raw, ok := lookup(d.Data, of); ok {
			if enc, err := encodeValue(raw); err == nil && enc[0] == typeNumber {
				f := decodeKeyValue(enc).(float64)
				if g.n == 0 || f < g.Min {
					g.Min = f
				}
				if g.n == 0 || f > g.Max {
					g.Max = f
				}
				g.Sum += f
				g.n++
				g.Avg = g.Sum / float64(g.n)
			}
		}
	}
	return sortedGroups(groups), nil
}

func sortedGroups(m map[string]*Group) []Group {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Group, len(keys))
	for i, k := range keys {
		out[i] = *m[k]
	}
	return out
}

// viewReader reads documents by ID in ascending order through one
// iterator: its seeks move forward through blocks it already holds, where
// one Get per document would set up a lookup in every level each time.
type viewReader struct {
	sp   *kv.Space
	coll string
	it   *pebble.Iterator
}

func (r *viewReader) get(id string) ([]byte, error) {
	if r.it == nil {
		it, err := r.sp.PrefixIter(docKey(tState, r.coll, ""))
		if err != nil {
			return nil, err
		}
		r.it = it
	}
	k := r.sp.Key(docKey(tState, r.coll, id))
	if !r.it.SeekGE(k) || !bytes.Equal(r.it.Key(), k) {
		if err := r.it.Error(); err != nil {
			return nil, err
		}
		return nil, kv.ErrNotFound
	}
	view, err := recordView(r.it.Value())
	if err != nil {
		return nil, err
	}
	if view == nil {
		return nil, kv.ErrNotFound
	}
	return bytes.Clone(view), nil
}

func (r *viewReader) close() {
	if r.it != nil {
		r.it.Close()
	}
}
