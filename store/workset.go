package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/crdt"
	"github.com/dpaas/dpaas/internal/kv"
)

// adopt puts a document the writer read into the workset, unless a commit
// after the writer's read may have changed it (documents share slots, so
// this errs only towards reading again).
func (w *workset) adopt(d *workDoc, at uint64) {
	if d == nil || w.docs[docRef{d.coll, d.id}] != nil || w.s.written[w.s.docBucket(d.coll, d.id)] > at {
		return
	}
	w.add(d)
}

// workDoc is a document being changed in the current batch.
type workDoc struct {
	coll, id string
	state    *crdt.Doc
	before   []byte // view when loaded
	dirty    bool
	remote   bool
	// set by render, when a worker already encoded the final state
	rendered  bool
	enc, view []byte
}

// workset caches the documents a batch touches; reads fall through to
// Pebble, which already holds every earlier batch.
type workset struct {
	s    *Store
	docs map[docRef]*workDoc
	list []*workDoc
}

// docRef names a document: its collection and id.
type docRef struct{ coll, id string }

func newWorkset(s *Store) *workset { return &workset{s: s, docs: make(map[docRef]*workDoc)} }

func (w *workset) doc(coll, id string) (*workDoc, error) {
	if d := w.docs[docRef{coll, id}]; d != nil {
		return d, nil
	}
	d := &workDoc{coll: coll, id: id}
	if err := w.load(d); err != nil {
		return nil, err
	}
	w.add(d)
	return d, nil
}

// load reads a document's state from Pebble; safe for concurrent use.
func (w *workset) load(d *workDoc) error {
	d.state = new(crdt.Doc)
	raw, err := w.s.space.Get(docKey(tState, d.coll, d.id))
	switch {
	case err == nil:
		view, st, err := decodeRecord(raw)
		if err != nil {
			return fmt.Errorf("store: document %s: %w", docName(d.coll, d.id), err)
		}
		d.state, d.before = st, view
	case !errors.Is(err, kv.ErrNotFound):
		return fmt.Errorf("store: document %s: %w", docName(d.coll, d.id), err)
	}
	return nil
}

// seekLoad is load through an iterator, for documents taken in key order.
// key is scratch space for the document's key, returned for reuse.
// A document not found keeps d.state if the caller set it (to an empty
// document), or gets a new empty one.
func (w *workset) seekLoad(it *pebble.Iterator, d *workDoc, key []byte) ([]byte, error) {
	if d.state == nil {
		d.state = new(crdt.Doc)
	}
	k := append(append(key[:0], w.s.space.Prefix()...), tState)
	k = append(append(append(k, d.coll...), 0), d.id...)
	if !it.SeekGE(k) || string(it.Key()) != string(k) {
		return k, it.Error()
	}
	view, st, err := decodeRecord(slices.Clone(it.Value())) // both alias the bytes
	if err != nil {
		return k, fmt.Errorf("store: document %s: %w", docName(d.coll, d.id), err)
	}
	d.state, d.before = st, view
	return k, nil
}

// prefetchMin is the number of documents from which prefetch reads them
// through one iterator rather than one lookup each.
const prefetchMin = 64

// prefetch loads the documents that the deltas at the head of in touch,
// in key order through one iterator: for a catch-up, where most documents
// are new, that costs a fraction of one point lookup per document. It
// stops after the delta that takes it past maxWorkset documents and
// returns how many deltas of in it covered, so that applyRemote can
// prefetch the next ones when it gets to them.
func (w *workset) prefetch(in []*incoming) (int, error) {
	var docs []*workDoc
	seen := make(map[docRef]bool)
	covered := 0
	for _, x := range in {
		covered++
		for i := range x.d.Ops {
			op := &x.d.Ops[i]
			k := docRef{op.Collection, op.ID}
			if w.docs[k] == nil && !seen[k] {
				seen[k] = true
				docs = append(docs, &workDoc{coll: op.Collection, id: op.ID})
			}
		}
		if len(docs) >= maxWorkset {
			break
		}
	}
	if len(docs) < prefetchMin {
		return covered, nil
	}
	slices.SortFunc(docs, func(a, b *workDoc) int {
		return compareBytes(docKey(tState, a.coll, a.id), docKey(tState, b.coll, b.id))
	})
	it, err := w.s.space.PrefixIter([]byte{tState})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var key []byte
	w.grow(len(docs))
	for _, d := range docs {
		if key, err = w.seekLoad(it, d, key); err != nil {
			return 0, err
		}
		w.add(d)
	}
	return covered, nil
}

func (w *workset) add(d *workDoc) {
	w.docs[docRef{d.coll, d.id}] = d
	w.list = append(w.list, d)
}

// grow makes room for n more documents.
func (w *workset) grow(n int) {
	if len(w.docs) == 0 {
		w.docs = make(map[docRef]*workDoc, n)
	}
	w.list = slices.Grow(w.list, n)
}

// render encodes the final record ahead of flush: enc is the record, view
// the part of it readers get.
func (d *workDoc) render() error {
	view := d.state.View()
	rec, err := appendRecord(make([]byte, 0, binary.MaxVarintLen32+2*len(view)+128), view, d.state)
	if err != nil {
		return err
	}
	d.enc, d.rendered = rec, true
	d.view, _, _ = splitRecord(rec)
	return nil
}

// snapshot encodes the state of docs so a rejected write can be undone.
func (w *workset) snapshot(keys []*workDoc) (map[*workDoc][]byte, error) {
	out := make(map[*workDoc][]byte, len(keys))
	for _, d := range keys {
		if _, ok := out[d]; ok {
			continue
		}
		b, err := d.state.Encode()
		if err != nil {
			return nil, err
		}
		out[d] = b
	}
	return out, nil
}

// restore puts back the states snapshot took. They were encoded a moment
// ago, so a decode error is a bug; it is returned, and the caller drops
// the whole batch rather than go on with a document it could not undo.
func restore(snap map[*workDoc][]byte) error {
	for d, b := range snap {
		st, err := crdt.Decode(b)
		if err != nil {
			return fmt.Errorf("store: undo a refused write to %s: %w", docName(d.coll, d.id), err)
		}
		d.state = st
	}
	return nil
}

// flush writes every changed document's record and index entries.
func (w *workset) flush(b *pebble.Batch) ([]Change, error) {
	changes := make([]Change, 0, len(w.list))
	sp := w.s.space
	// Index entries are written after the records, in key order: the
	// memtable inserts keys that follow the one before much faster than
	// keys that alternate between two ranges (records are in key order
	// already when they were prefetched).
	var index []indexOp
	for _, d := range w.list {
		if !d.dirty {
			continue
		}
		if !d.rendered {
			if err := d.render(); err != nil {
				return nil, err
			}
		}
		enc, view := d.enc, d.view
		d.rendered, d.enc, d.view = false, nil, nil
		w.s.written[w.s.docBucket(d.coll, d.id)] = w.s.commits + 1
		if err := b.Set(sp.Key(docKey(tState, d.coll, d.id)), enc, nil); err != nil {
			return nil, err
		}
		for field := range w.s.indexedFields(d.coll) {
			index = appendIndexOps(index, d.coll, field, d.id, d.before, view)
		}
		if string(view) != string(d.before) {
			changes = append(changes, Change{Collection: d.coll, ID: d.id, Doc: view, Deleted: view == nil, Remote: d.remote})
		}
		d.before = view
		d.dirty = false
	}
	slices.SortFunc(index, func(a, b indexOp) int { return compareBytes(a.key, b.key) })
	for _, op := range index {
		var err error
		if op.del {
			err = b.Delete(sp.Key(op.key), nil)
		} else {
			err = b.Set(sp.Key(op.key), nil, nil)
		}
		if err != nil {
			return nil, err
		}
	}
	return changes, nil
}
