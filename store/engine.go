package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/crdt"
	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/hlc"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The write path. One goroutine, the applier, owns the replica's mutable
// state (heads, versions, pending deltas) and is the only writer of
// documents: it gathers every local write waiting at that moment into one
// delta (or a few, for big batches), applies it to the documents, and hands
// the Pebble batch to Pebble's commit pipeline without waiting for the
// fsync. A second goroutine, the syncer, waits for each fsync in order and
// only then acknowledges the writers, tells watchers and pushes the delta
// to peers. So concurrent writers share both a signature and an fsync, and
// nothing leaves the replica before it is durable.

// userOp is one operation as a caller asked for it, before the applier
// adds what it observed (set tags, counter bases).
type userOp struct {
	kind   delta.Kind
	coll   string
	id     string
	field  string
	value  []byte
	amount int64
	fields delta.Fields
	size   int // bytes in a delta, without what the applier adds (writeSize)
}

type writeReq struct {
	ops  []userOp
	size int // bytes of ops in a delta, as the caller gave them (writeSize)
	done chan error
	own  chan *committed // a commit this write may wait for itself (ack.go)
	err  error
	// the one document ops touch, read by the writer before queueing
	// (usable if nothing wrote it since the commit numbered preAt)
	pre   *workDoc
	preAt uint64
}

// incoming is a verified remote delta.
type incoming struct {
	d     *delta.Delta
	id    cid.Cid
	block []byte
	from  peer.ID
	// invalid is why delta.Validate refuses the delta, which is signed by
	// its author (decodeRemote); applyOne refuses it
	invalid error
}

type remoteReq struct {
	in   []*incoming
	done chan remoteResult
}

type remoteResult struct {
	applied, rejected, dups, waiting int
	err                              error
}

// committed is a batch handed to the syncer.
type committed struct {
	batch   *pebble.Batch
	durable bool // wait for the fsync before acknowledging
	reqs    []*writeReq
	blocks  [][]byte
	changes []Change
	err     error
	owned   *ownedCommit // set when the one writer may wait itself (ack.go)
}

func (s *Store) runApplier() {
	defer s.wg.Done()
	defer close(s.synced)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	inflight, lastGroup := 0, 0
	var queue []*writeReq // writes received, not yet committed
	queuedOps, queuedBytes := 0, 0
	full := func() bool { return queuedOps >= maxGroupOps*s.cfg.MaxDeltaOps || queuedBytes >= maxGroupBytes }
	for {
		// While a commit waits for its fsync, hold new writes until as
		// many have gathered as that commit holds: writers then settle
		// into two groups that take turns, one being prepared while the
		// other is synced, and each group shares one delta, one signature
		// and one fsync. A lone writer never waits for anyone. The applier
		// keeps receiving writes while it holds them, so the next group
		// starts the moment it is complete, not when the disk next reports.
		for len(queue) > 0 && inflight < maxInflight && (inflight == 0 || len(queue) >= max(lastGroup, 2)) {
			// a group is bounded by operations and by bytes; the cutter
			// splits it into deltas that fit
			n, bytes, take := 0, 0, 0
			for take < len(queue) && (take == 0 || n+len(queue[take].ops) <= maxGroupOps*s.cfg.MaxDeltaOps && bytes+queue[take].size <= maxGroupBytes) {
				n += len(queue[take].ops)
				bytes += queue[take].size
				take++
			}
			reqs := queue[:take:take]
			queue = queue[take:]
			queuedOps -= n
			queuedBytes -= bytes
			if c := s.commitLocal(reqs); c > 0 {
				inflight += c
				lastGroup = len(reqs)
			}
		}
		if len(queue) == 0 {
			queue = nil
		}
		writes := s.writes
		if full() {
			writes = nil // enough for a whole group: let writers wait
		}
		select {
		case <-s.syncDone:
			inflight--
		case <-s.closing:
			for _, req := range queue {
				req.done <- s.errClosed("write")
			}
			for {
				select {
				case req := <-s.writes:
					req.done <- s.errClosed("write")
				default:
					return
				}
			}
		case req := <-writes:
			queue = append(queue, req)
			queuedOps += len(req.ops)
			queuedBytes += req.size
		gather:
			for !full() {
				select {
				case r := <-s.writes:
					queue = append(queue, r)
					queuedOps += len(r.ops)
					queuedBytes += r.size
				default:
					break gather
				}
			}
		case rr := <-s.remote:
			s.applyInbox() // deltas queued earlier may be rr's parents
			rr.done <- s.applyRemote(rr.in)
		case <-s.inbox.ready:
			s.applyInbox()
		case f := <-s.control:
			f()
		case <-tick.C:
			if len(s.future) > 0 {
				s.releaseFuture()
			}
			s.askForOrphans()
		}
	}
}

// maxGroupOps bounds a group of local writes, in deltas' worth of
// operations.
const maxGroupOps = 64

// maxInflight is how many local commits may wait for their fsync at once.
const maxInflight = 2

func (s *Store) runSyncer() {
	defer s.wg.Done()
	for c := range s.synced {
		err := c.err
		answered := false
		if c.batch != nil {
			if c.durable {
				var serr error
				serr, answered = s.syncWait(c)
				if err == nil {
					err = serr
				}
				s.syncDone <- struct{}{}
			}
			c.batch.Close()
		}
		for _, r := range c.reqs {
			if answered {
				break
			}
			if r.err != nil {
				r.done <- r.err
			} else {
				r.done <- err
			}
		}
		if err != nil {
			continue
		}
		s.notify(c.changes)
		if n := s.net.Load(); n != nil {
			for _, b := range c.blocks {
				n.queueDelta(b)
			}
		}
	}
}

// submit hands a write to the applier and waits until it is durable.
// size is what writeSize gave for ops.
func (s *Store) submit(ctx context.Context, op string, ops []userOp, size int) error {
	if s.closed.Load() {
		return s.errClosed(op)
	}
	req := &writeReq{ops: ops, size: size, done: make(chan error, 1), own: make(chan *committed, 1)}
	s.prefetchFor(req)
	select {
	case s.writes <- req:
	case <-s.closing:
		return s.errClosed(op)
	case <-ctx.Done():
		return fmt.Errorf("store: %s: %w", op, ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case c := <-req.own:
		if err, ok := s.waitOwn(c); ok {
			return err
		}
		return <-req.done // the syncer claimed the commit: it answers
	case <-ctx.Done():
		return fmt.Errorf("store: %s: %w", op, ctx.Err())
	case <-s.stopped:
		select {
		case err := <-req.done:
			return err
		default:
			return s.errClosed(op)
		}
	}
}

// prefetchFor reads the document a small write touches on the writer's
// goroutine, so that the applier, which every write goes through, need not.
// The applier uses it only if no commit wrote the document since (adopt).
func (s *Store) prefetchFor(req *writeReq) {
	if len(req.ops) == 0 || len(req.ops) > 8 {
		return
	}
	u := &req.ops[0]
	for i := range req.ops[1:] {
		if o := &req.ops[1+i]; o.coll != u.coll || o.id != u.id {
			return
		}
	}
	at := s.visible.Load()
	d := &workDoc{coll: u.coll, id: u.id}
	if (&workset{s: s}).load(d) == nil {
		req.pre, req.preAt = d, at
	}
}

// docBucket names the slot of written that stands for a document.
func (s *Store) docBucket(coll, id string) int {
	var h maphash.Hash
	h.SetSeed(s.bucketSeed)
	h.WriteString(coll)
	h.WriteByte(0)
	h.WriteString(id)
	return int(h.Sum64() % uint64(len(s.written)))
}

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

// indexOp is an index entry to set or delete. The entries one flush
// writes have distinct keys: each holds its document's ID and a
// document's old and new entries differ.
type indexOp struct {
	key []byte
	del bool
}

func indexKey(coll, field string, enc []byte, id string) []byte {
	k := make([]byte, 0, 3+len(coll)+len(field)+len(enc)+len(id))
	k = append(k, tIndex)
	k = append(k, coll...)
	k = append(k, 0)
	k = append(k, field...)
	k = append(k, 0)
	k = append(k, enc...)
	return append(k, id...)
}

func indexEntry(view []byte, field string) []byte {
	if view == nil {
		return nil
	}
	raw, ok := lookup(view, field)
	if !ok {
		return nil
	}
	enc, err := encodeValue(raw)
	if err != nil || enc[0] == typeOther {
		return nil
	}
	return enc
}

// appendIndexOps appends what changes in the index on field when a
// document goes from before to after.
func appendIndexOps(ops []indexOp, coll, field, id string, before, after []byte) []indexOp {
	old, neu := indexEntry(before, field), indexEntry(after, field)
	if string(old) == string(neu) && (old == nil) == (neu == nil) {
		return ops
	}
	if old != nil {
		ops = append(ops, indexOp{key: indexKey(coll, field, old, id), del: true})
	}
	if neu != nil {
		ops = append(ops, indexOp{key: indexKey(coll, field, neu, id)})
	}
	return ops
}

// buildOp completes a caller's operation with what the document's current
// state lets the writer observe.
func buildOp(u *userOp, st *crdt.Doc) delta.Op {
	op := delta.Op{Kind: u.kind, Collection: u.coll, ID: u.id, Field: u.field, Value: u.value, Amount: u.amount, Fields: u.fields}
	switch u.kind {
	case delta.Put, delta.Delete:
		op.Bases, op.Seen = st.Bases(""), st.Seen()
		if u.kind == delta.Put && op.Fields == nil {
			op.Fields = delta.Fields{}
		}
	case delta.Set, delta.Unset:
		op.Bases = st.Bases(u.field)
	case delta.Remove:
		op.Tags = st.Tags(u.field, u.value)
	}
	return op
}

// batchSizeHint guesses, slightly high, the bytes a commit of reqs writes:
// each operation goes into the document's state, its view, index entries
// and the delta, with their keys. Sizing the batch once saves Pebble's
// doublings, each a copy of everything so far.
func batchSizeHint(reqs []*writeReq) int {
	n := 0
	for _, r := range reqs {
		for i := range r.ops {
			op := &r.ops[i]
			m := len(op.coll) + len(op.id) + len(op.field) + len(op.value)
			for _, f := range op.fields {
				m += len(f.Name) + len(f.Value)
			}
			n += 4*m + 128
		}
	}
	return n
}

// commitLocal turns the waiting writes into deltas and commits them. It
// returns how many commits it handed to the syncer that wait for an fsync.
func (s *Store) commitLocal(reqs []*writeReq) int {
	if err := s.writesStopped(); err != nil {
		for _, r := range reqs {
			r.err = err
		}
		s.synced <- &committed{reqs: reqs, err: err}
		return 0
	}
	w := newWorkset(s)
	b := s.pdb.NewBatchWithSize(batchSizeHint(reqs))
	var ops []delta.Op
	cuts := &cutter{s: s, maxOps: s.cfg.MaxDeltaOps}
	fail := func(err error) {
		b.Close()
		for _, r := range reqs {
			r.err = err
		}
		s.synced <- &committed{reqs: reqs, err: err}
	}
	parallel := false
	if total, plain := s.plainWrites(reqs); plain && total >= parallelMin {
		var err error
		if ops, err = s.applyParallel(w, reqs, total, cuts.plan(reqs, total)); err != nil {
			fail(err)
			return 0
		}
		parallel = true
	}
	for _, r := range reqs {
		if parallel {
			break
		}
		w.adopt(r.pre, r.preAt)
		mark, cutMark := len(ops), cuts.mark()
		cuts.write(len(ops), r)
		var undo map[*workDoc][]byte
		for i := range r.ops {
			u := &r.ops[i]
			d, err := w.doc(u.coll, u.id)
			if err != nil {
				fail(err)
				return 0
			}
			v := s.validator(u.coll)
			if v != nil && undo == nil {
				undo = make(map[*workDoc][]byte)
			}
			if v != nil {
				if _, ok := undo[d]; !ok {
					snap, err := w.snapshot([]*workDoc{d})
					if err != nil {
						fail(err)
						return 0
					}
					undo[d] = snap[d]
				}
			}
			op := buildOp(u, d.state)
			if v != nil {
				if err := v(writeOf(s.author, &op, d.state.View())); err != nil {
					r.err = fmt.Errorf("store: write %s: %w: %w", docName(u.coll, u.id), ErrRejected, err)
					break
				}
			}
			d.state.Apply(cuts.place(len(ops), r.opSize(i)), &op)
			d.dirty = true
			ops = append(ops, op)
		}
		if r.err != nil {
			if err := restore(undo); err != nil {
				fail(err)
				return 0
			}
			ops = ops[:mark]
			cuts.rollback(cutMark)
		}
	}
	if len(ops) == 0 {
		b.Close()
		s.synced <- &committed{reqs: reqs}
		return 0
	}
	if k := cuts.overfull(ops); k >= 0 {
		// What the writes observed of their documents (set elements,
		// counter contributions) made delta k too big. Nothing is written
		// yet: commit the writes one by one, and refuse one that is too
		// big on its own.
		b.Close()
		if len(reqs) == 1 {
			reqs[0].err = fmt.Errorf("store: write %s: its operations with what they carry of the document's sets and counters take more than the %d bytes of a delta: %w",
				docName(reqs[0].ops[0].coll, reqs[0].ops[0].id), delta.MaxOpsSize, ErrTooLarge)
			s.synced <- &committed{reqs: reqs}
			return 0
		}
		n := 0
		for _, r := range reqs {
			// validators run again; the document the writer read may have
			// been changed in place by this attempt
			r.err, r.pre = nil, nil
			n += s.commitLocal([]*writeReq{r})
		}
		return n
	}
	if len(cuts.starts) == 1 && len(ops) <= signLaterMax {
		return s.commitSignLater(w, b, reqs, ops, cuts.hlcs[0])
	}
	// Sign the deltas (a chain: each names the one before) on another
	// core while this one writes the documents into the batch.
	type signed struct {
		d     *delta.Delta
		id    cid.Cid
		block []byte
	}
	var deltas []signed
	seq := s.vv[s.author]
	parents := s.sortedHeads()
	signing := make(chan error, 1)
	sign := func() {
		for k, start := range cuts.starts {
			end := len(ops)
			if k+1 < len(cuts.starts) {
				end = cuts.starts[k+1]
			}
			seq++
			d := &delta.Delta{Seq: seq, HLC: uint64(cuts.hlcs[k]), Parents: parents, Ops: ops[start:end]}
			block, id, err := d.Sign(s.key)
			if err != nil {
				signing <- err
				return
			}
			deltas = append(deltas, signed{d, id, block})
			parents = []cid.Cid{id}
		}
		signing <- nil
	}
	if len(w.list) >= 4 {
		go sign()
	} else {
		sign() // too little to overlap to be worth a goroutine
	}
	changes, err := w.flush(b)
	if serr := <-signing; err == nil {
		err = serr
	}
	blocks := make([][]byte, 0, len(deltas))
	for _, x := range deltas {
		if err == nil {
			err = s.writeDelta(b, x.d, x.id, x.block)
		}
		blocks = append(blocks, x.block)
	}
	if err == nil {
		err = s.writeMeta(b)
	}
	if err == nil {
		if err = s.write(func() error { return s.pdb.ApplyNoSyncWait(b, pebble.Sync) }); err != nil {
			fail(s.stopWrites(err))
			return 0
		}
	}
	if err != nil {
		fail(fmt.Errorf("store: commit: %w", err))
		return 0
	}
	s.committed()
	s.created.Add(uint64(len(blocks)))
	s.publishSnapshot()
	s.handOff(&committed{batch: b, durable: true, reqs: reqs, blocks: blocks, changes: changes})
	return 1
}

// signLaterMax is the largest group, in operations, that commitSignLater
// takes. Above it the signature is a small part of the commit and runs on
// another core while the documents are written, in one batch.
const signLaterMax = 64

// commitSignLater commits a small group of writes so that its signature,
// the largest cost of a small write, overlaps the fsync instead of
// preceding it. A first batch, synced, holds the documents, the author's
// version and the delta without its signature, under tPending. Once that
// batch is on its way to the disk, the applier signs the delta and a
// second batch, not synced, files it under its CID, in the log and among
// the heads, and drops the pending entry. Writers are acknowledged, and
// the delta pushed to peers, when the first batch is durable.
//
// A crash can lose the second batch but not the first (the log is
// replayed as a prefix, and the next synced batch comes after it). Open
// then finds the pending entry and signs it again: signatures are
// deterministic, so the block and its CID are the ones peers may have
// received.
func (s *Store) commitSignLater(w *workset, b *pebble.Batch, reqs []*writeReq, ops []delta.Op, at hlc.Timestamp) int {
	fail := func(err error) int {
		b.Close()
		for _, r := range reqs {
			r.err = err
		}
		s.synced <- &committed{reqs: reqs, err: err}
		return 0
	}
	d := &delta.Delta{Seq: s.vv[s.author] + 1, HLC: uint64(at), Parents: s.sortedHeads(), Ops: ops}
	unsigned, err := d.Prepare(s.key)
	if err != nil {
		return fail(fmt.Errorf("store: commit: %w", err))
	}
	changes, err := w.flush(b)
	if err != nil {
		return fail(fmt.Errorf("store: commit: %w", err))
	}
	order := s.order + 1
	if err := b.Set(s.space.Key(pendingKey(order)), unsigned, nil); err != nil {
		return fail(fmt.Errorf("store: commit: %w", err))
	}
	s.order = order
	s.noteVersion(s.author, d.Seq)
	err = s.writeMeta(b)
	if err == nil {
		err = s.write(func() error { return s.pdb.ApplyNoSyncWait(b, pebble.Sync) })
	}
	if err != nil {
		// The versions and the log position the batch took are in memory
		// only, ahead of the durable state.
		return fail(s.stopWrites(err))
	}
	// The documents are in and readers see them; what follows only files
	// the delta. If it fails, the pending entry stays for Open to finish.
	// Committing woke Pebble's log writer onto this processor, where it
	// would wait for the signature and the filing: moving it to another
	// one takes tens of microseconds on a virtual machine, and the other
	// one is often busy with writers. So let the log writer start the
	// write and fsync first; this goroutine resumes while they run. (An
	// execution trace of 16 writers showed the log writer waiting 85 µs at
	// the median between being woken and running, and 100 µs on average.)
	runtime.Gosched()
	block, id, err := d.SignPrepared(s.key, unsigned)
	if err == nil {
		err = s.fileSigned(d, id, block, order)
	}
	if err != nil {
		err = s.stopWrites(err)
	}
	s.committed()
	s.created.Add(1)
	s.publishSnapshot()
	s.handOff(&committed{batch: b, durable: true, reqs: reqs, blocks: [][]byte{block}, changes: changes, err: err})
	return 1
}

// fileSigned files the signed form of the pending delta at log position
// order and drops the pending entry, in a batch that is not synced: the
// entry, durable already, stands for it until the next synced batch.
func (s *Store) fileSigned(d *delta.Delta, id cid.Cid, block []byte, order uint64) error {
	b := s.pdb.NewBatch()
	defer b.Close()
	if err := s.fileDelta(b, d, id, block, order); err != nil {
		return err
	}
	if err := b.Delete(s.space.Key(pendingKey(order)), nil); err != nil {
		return err
	}
	if err := s.writeMeta(b); err != nil {
		return err
	}
	return s.write(func() error { return s.pdb.Apply(b, pebble.NoSync) })
}

// committed counts a commit whose writes readers now see.
func (s *Store) committed() {
	s.commits++
	s.visible.Store(s.commits)
}

// parallelMin is the size from which a commit without validators spreads
// its documents over every core.
const parallelMin = 256

// plainWrites counts the operations of reqs and reports whether none of
// them touches a collection with a validator (so none can be refused).
func (s *Store) plainWrites(reqs []*writeReq) (int, bool) {
	n := 0
	for _, r := range reqs {
		for i := range r.ops {
			if s.validator(r.ops[i].coll) != nil {
				return 0, false
			}
		}
		n += len(r.ops)
	}
	return n, true
}

// applyParallel applies the operations of reqs, which nobody can refuse,
// with each document's operations on one worker, in order, and each
// worker also rendering its documents. The result is exactly what the
// sequential path gives: every operation keeps its position and stamp.
func (s *Store) applyParallel(w *workset, reqs []*writeReq, total int, stamps []crdt.Stamp) ([]delta.Op, error) {
	us := make([]*userOp, 0, total)
	for _, r := range reqs {
		for i := range r.ops {
			us = append(us, &r.ops[i])
		}
	}
	type group struct {
		d   *workDoc
		pos []int
	}
	// one allocation for all the groups and one for all the documents
	// (there are at most total of each)
	var (
		groups = make([]*group, 0, total)
		gs     = make([]group, 0, total)
		docs   = make([]workDoc, 0, total)
		states = make([]crdt.Doc, 0, total) // the new documents' empty states
		byDoc  = make(map[docRef]*group, total)
	)
	for pos, u := range us {
		k := docRef{u.coll, u.id}
		g := byDoc[k]
		if g == nil {
			states = append(states, crdt.Doc{})
			docs = append(docs, workDoc{coll: u.coll, id: u.id, state: &states[len(states)-1]})
			gs = append(gs, group{d: &docs[len(docs)-1]})
			g = &gs[len(gs)-1]
			byDoc[k] = g
			groups = append(groups, g)
		}
		g.pos = append(g.pos, pos)
	}
	// each worker seeks its documents in key order through one iterator,
	// which Pebble serves much faster than as many point lookups
	order := slices.Clone(groups)
	slices.SortFunc(order, func(a, b *group) int {
		return compareBytes(docKey(tState, a.d.coll, a.d.id), docKey(tState, b.d.coll, b.d.id))
	})
	ops := make([]delta.Op, total)
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it, err := w.s.space.PrefixIter([]byte{tState})
			if err != nil {
				errs[wk] = err
				return
			}
			defer it.Close()
			var key []byte
			for gi := wk; gi < len(order); gi += workers {
				g := order[gi]
				if key, err = w.seekLoad(it, g.d, key); err != nil {
					errs[wk] = err
					return
				}
				for _, pos := range g.pos {
					op := buildOp(us[pos], g.d.state)
					g.d.state.Apply(stamps[pos], &op)
					ops[pos] = op
				}
				g.d.dirty = true
				if err := g.d.render(); err != nil {
					errs[wk] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	w.grow(len(groups))
	for _, g := range groups {
		w.add(g.d)
	}
	return ops, nil
}

func (s *Store) sortedHeads() []cid.Cid {
	out := make([]cid.Cid, 0, len(s.heads))
	for h := range s.heads {
		out = append(out, h)
	}
	sortCids(out)
	return out
}

func sortCids(cs []cid.Cid) {
	slices.SortFunc(cs, func(a, b cid.Cid) int { return compareBytes(a.Bytes(), b.Bytes()) })
}

func compareBytes(a, b []byte) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	}
	return 0
}

// writeDelta records an applied delta: its block, its place in the
// author's chain and the application order, and the new heads.
func (s *Store) writeDelta(b *pebble.Batch, d *delta.Delta, id cid.Cid, block []byte) error {
	s.order++
	return s.fileDelta(b, d, id, block, s.order)
}

// fileDelta records an applied delta at log position order: its block,
// its place under its CID and under its author, and the heads it changes.
func (s *Store) fileDelta(b *pebble.Batch, d *delta.Delta, id cid.Cid, block []byte, order uint64) error {
	sp := s.space
	if err := s.logDelta(b, d, id, block, order); err != nil {
		return err
	}
	if err := b.Set(sp.Key(cidKey(tBlock, id)), binary.BigEndian.AppendUint64(nil, order), nil); err != nil {
		return err
	}
	for _, p := range d.Parents {
		if _, ok := s.heads[p]; ok {
			delete(s.heads, p)
			if s.headsDirty[p] {
				delete(s.headsDirty, p) // born and gone in this batch
			} else {
				s.headsDirty[p] = false
			}
		}
	}
	s.heads[id] = struct{}{}
	s.headsDirty[id] = true
	s.noteVersion(d.Author, d.Seq)
	s.clock.Observe(hlc.Timestamp(d.HLC))
	return nil
}

// noteVersion raises an author's version: the highest sequence number of
// its deltas processed here, applied or refused. Since a delta is processed
// only after its parents, the author's earlier deltas are processed too.
func (s *Store) noteVersion(author common.Address, seq uint64) {
	if seq > s.vv[author] {
		s.vv[author] = seq
		s.vvDirty[author] = struct{}{}
	}
}

// writeRejected records a delta a validator refused. It is never applied
// and never gossiped, but it stays in its author's chain so that catch-up
// can hand it to peers that lack it: they refuse it too, by the same
// deterministic rule, and can then apply its author's later valid deltas.
func (s *Store) writeRejected(b *pebble.Batch, x *incoming, reason string) error {
	if err := b.Set(s.space.Key(cidKey(tReject, x.id)), []byte(reason), nil); err != nil {
		return err
	}
	s.order++
	if err := s.logDelta(b, x.d, x.id, x.block, s.order); err != nil {
		return err
	}
	s.noteVersion(x.d.Author, x.d.Seq)
	return nil
}

// logDelta puts a processed delta at place order of the log, where
// catch-up reads blocks in the order this replica processed them (a causal
// order), and indexes that place under its author and sequence number.
func (s *Store) logDelta(b *pebble.Batch, d *delta.Delta, id cid.Cid, block []byte, order uint64) error {
	sp := s.space
	if err := b.Set(sp.Key(logKey(order)), block, nil); err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(nil, order)
	v = append(v, id.Bytes()...)
	return b.Set(sp.Key(append(authorKey(d.Author, d.Seq), id.Bytes()...)), v, nil)
}

// writeMeta writes what the batch changed of the heads, the versions, the
// log position and the clock. Heads and versions are written once per
// batch, not once per delta: a catch-up batch of a thousand deltas in a
// chain changes one head, not a thousand.
func (s *Store) writeMeta(b *pebble.Batch) error {
	sp := s.space
	for h, live := range s.headsDirty {
		var err error
		if live {
			err = b.Set(sp.Key(cidKey(tHead, h)), nil, nil)
		} else {
			err = b.Delete(sp.Key(cidKey(tHead, h)), nil)
		}
		if err != nil {
			return err
		}
	}
	clear(s.headsDirty)
	for a := range s.vvDirty {
		if err := b.Set(sp.Key(append([]byte{tVersion}, a[:]...)), binary.BigEndian.AppendUint64(nil, s.vv[a]), nil); err != nil {
			return err
		}
	}
	clear(s.vvDirty)
	if err := b.Set(s.space.Key(metaOrder), binary.BigEndian.AppendUint64(nil, s.order), nil); err != nil {
		return err
	}
	return b.Set(s.space.Key(metaClock), binary.BigEndian.AppendUint64(nil, uint64(s.clock.Last())), nil)
}

// known reports whether a delta was applied or rejected here.
func (s *Store) known(id cid.Cid) (bool, error) {
	if ok, err := s.space.Has(cidKey(tBlock, id)); ok || err != nil {
		return ok, err
	}
	return s.space.Has(cidKey(tReject, id))
}

// applyRemote applies verified remote deltas whose parents are known,
// parks the others until their parents arrive, and holds those stamped too
// far in the future.
func (s *Store) applyRemote(in []*incoming) remoteResult {
	var res remoteResult
	if res.err = s.writesStopped(); res.err != nil {
		return res // catch-up fetches them again after a reopen
	}
	w := newWorkset(s)
	b := s.pdb.NewBatch()
	done := make(map[cid.Cid]bool)
	var blocks int
	queue := in
	now := hlc.FromTime(s.cfg.Clock().Add(s.cfg.MaxClockSkew))
	// The queue is applied in chunks of about maxWorkset documents: each
	// chunk's documents are read at once, in key order (prefetch), and
	// committed together, so memory stays bounded and no document of a
	// big catch-up costs a point lookup of its own.
	covered := 0 // deltas at the head of queue whose documents w holds
	for len(queue) > 0 {
		if covered == 0 {
			if len(w.list) >= maxWorkset {
				if err := s.commitWorkset(w, b); err != nil {
					res.err = err
					return res
				}
				w, b = newWorkset(s), s.pdb.NewBatch()
			}
			var err error
			if covered, err = w.prefetch(queue); err != nil {
				res.err = err
				break
			}
		}
		x := queue[0]
		queue = queue[1:]
		covered--
		if done[x.id] || s.pending[x.id] != nil && s.pending[x.id] != x || s.future[x.id] != nil && s.future[x.id] != x {
			res.dups++
			continue
		}
		// Everything processed from an author is at or below its version,
		// so a delta above it is new without a lookup (the common case of
		// a catch-up); at or below, it is new only from an author that
		// reused a sequence number.
		if x.d.Seq <= s.vv[x.d.Author] {
			if k, err := s.known(x.id); err != nil {
				res.err = err
				break
			} else if k {
				res.dups++
				continue
			}
		}
		if hlc.Timestamp(x.d.HLC) > now {
			if s.future[x.id] == nil {
				s.future[x.id] = x
				s.log.Info("store: holding a delta stamped in the future", "cid", x.id, "author", x.d.Author, "at", hlc.Timestamp(x.d.HLC).Wall())
			}
			res.waiting++
			continue
		}
		delete(s.future, x.id)
		missing := cid.Undef
		for _, p := range x.d.Parents {
			if _, head := s.heads[p]; head || done[p] {
				continue // a head is applied: no lookup (the usual parent of a pushed delta)
			}
			k, err := s.known(p)
			if err != nil {
				res.err = err
				break
			}
			if !k {
				missing = p
				break
			}
		}
		if res.err != nil {
			break
		}
		if missing.Defined() {
			if s.pending[x.id] == nil && len(s.pending) >= maxPending {
				// a flood of orphans: drop it; catch-up brings it back in order
				res.waiting++
				continue
			}
			// new, or released by one parent and now waiting for another
			s.pending[x.id] = x
			s.waiters[missing] = append(s.waiters[missing], x.id)
			res.waiting++
			continue
		}
		delete(s.pending, x.id)
		if err := s.applyOne(w, b, x); err != nil {
			var rej *rejection
			if !errors.As(err, &rej) {
				res.err = err
				break
			}
			s.rejected.Add(1)
			res.rejected++
			s.log.Warn("store: rejected a delta", "cid", x.id, "author", x.d.Author, "from", x.from, "reason", rej.Error())
			if err := s.writeRejected(b, x, rej.Error()); err != nil {
				res.err = err
				break
			}
		} else {
			res.applied++
			blocks++
			s.applied.Add(1)
		}
		done[x.id] = true
		for _, child := range s.waiters[x.id] {
			if c := s.pending[child]; c != nil {
				queue = append(queue, c)
			}
		}
		delete(s.waiters, x.id)
	}
	s.dups.Add(uint64(res.dups))
	s.pendingN.Store(int64(len(s.pending)))
	s.heldN.Store(int64(len(s.future)))
	if res.err != nil {
		b.Close()
		return res
	}
	res.err = s.commitWorkset(w, b)
	return res
}

// commitWorkset writes w's documents and the store's metadata into b,
// commits it without waiting for the fsync and hands it to the syncer,
// which acknowledges once it is durable. It closes b on error.
func (s *Store) commitWorkset(w *workset, b *pebble.Batch) error {
	changes, err := w.flush(b)
	if err == nil {
		err = s.writeMeta(b)
	}
	if err == nil {
		if err = s.write(func() error { return b.Commit(pebble.NoSync) }); err != nil {
			err = s.stopWrites(err)
		}
	}
	if err != nil {
		b.Close()
		return fmt.Errorf("store: apply: %w", err)
	}
	s.committed()
	s.publishSnapshot()
	s.synced <- &committed{batch: b, changes: changes}
	return nil
}

// maxPending bounds the remote deltas kept in memory while their parents
// are missing; more are dropped and fetched again by catch-up.
const maxPending = 1 << 16

// maxWorkset is about how many documents one remote batch reads and
// changes before it is committed and its memory released (at most twice
// as many, and the documents of one delta more).
const maxWorkset = 8192

type rejection struct{ reason string }

func (r *rejection) Error() string { return r.reason }

// applyOne validates and applies one remote delta.
func (s *Store) applyOne(w *workset, b *pebble.Batch, x *incoming) error {
	if x.invalid != nil {
		s.invalid.Add(1)
		return &rejection{reason: x.invalid.Error()}
	}
	var touched []*workDoc
	guarded := false
	for i := range x.d.Ops {
		op := &x.d.Ops[i]
		d, err := w.doc(op.Collection, op.ID)
		if err != nil {
			return err
		}
		touched = append(touched, d)
		if s.validator(op.Collection) != nil {
			guarded = true
		}
	}
	var undo map[*workDoc][]byte
	if guarded {
		var err error
		if undo, err = w.snapshot(touched); err != nil {
			return err
		}
	}
	for i := range x.d.Ops {
		op := &x.d.Ops[i]
		d := touched[i]
		if v := s.validator(op.Collection); v != nil {
			if err := v(writeOf(x.d.Author, op, d.state.View())); err != nil {
				if rerr := restore(undo); rerr != nil {
					return rerr
				}
				return &rejection{reason: fmt.Sprintf("op %d on %s: %v", i, docName(op.Collection, op.ID), err)}
			}
		}
		d.state.Apply(crdt.MakeStamp(x.d.HLC, x.d.Author, uint32(i)), op)
		d.dirty, d.remote = true, true
	}
	return s.writeDelta(b, x.d, x.id, x.block)
}

// releaseFuture retries held deltas whose time has come.
func (s *Store) releaseFuture() {
	now := hlc.FromTime(s.cfg.Clock().Add(s.cfg.MaxClockSkew))
	var due []*incoming
	for _, x := range s.future {
		if hlc.Timestamp(x.d.HLC) <= now {
			due = append(due, x)
		}
	}
	if len(due) == 0 {
		return
	}
	slices.SortFunc(due, func(a, b *incoming) int { return compareBytes(a.id.Bytes(), b.id.Bytes()) })
	if res := s.applyRemote(due); res.err != nil {
		s.log.Error("store: applying held deltas", "err", res.err)
	}
}

// applyRemoteWait runs applyRemote on the applier goroutine.
func (s *Store) applyRemoteWait(in []*incoming, stop <-chan struct{}) (remoteResult, error) {
	rr := &remoteReq{in: in, done: make(chan remoteResult, 1)}
	select {
	case s.remote <- rr:
	case <-s.closing:
		return remoteResult{}, s.errClosed("apply")
	case <-stop:
		return remoteResult{}, s.errClosed("apply")
	}
	select {
	case res := <-rr.done:
		return res, res.err
	case <-s.stopped:
		return remoteResult{}, s.errClosed("apply")
	}
}
