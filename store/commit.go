package store

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/crdt"
	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/hlc"
	"github.com/ipfs/go-cid"
)

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
	cuts := &cutter{s: s, maxOps: s.cfg.MaxDeltaOps}
	var ops []delta.Op
	var err error
	if total, plain := s.plainWrites(reqs); plain && total >= parallelMin {
		ops, err = s.applyParallel(w, reqs, total, cuts.plan(reqs, total))
	} else {
		ops, err = s.applyLocal(w, reqs, cuts)
	}
	if err != nil {
		return s.failCommit(b, reqs, err)
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
	return s.commitChain(w, b, reqs, ops, cuts)
}

// failCommit drops batch b and fails every write of reqs with err. It
// returns 0, the commits handed to the syncer that wait for an fsync.
func (s *Store) failCommit(b *pebble.Batch, reqs []*writeReq, err error) int {
	b.Close()
	for _, r := range reqs {
		r.err = err
	}
	s.synced <- &committed{reqs: reqs, err: err}
	return 0
}

// applyLocal applies reqs to their documents in w one write at a time,
// running validators, and returns the operations of the deltas to sign.
// A write a validator refuses gets its error and leaves no trace; an
// error returned fails them all.
func (s *Store) applyLocal(w *workset, reqs []*writeReq, cuts *cutter) ([]delta.Op, error) {
	var ops []delta.Op
	for _, r := range reqs {
		w.adopt(r.pre, r.preAt)
		mark, cutMark := len(ops), cuts.mark()
		cuts.write(len(ops), r)
		var undo map[*workDoc][]byte
		for i := range r.ops {
			u := &r.ops[i]
			d, err := w.doc(u.coll, u.id)
			if err != nil {
				return nil, err
			}
			v := s.validator(u.coll)
			if v != nil {
				if undo == nil {
					undo = make(map[*workDoc][]byte)
				}
				if _, ok := undo[d]; !ok {
					snap, err := w.snapshot([]*workDoc{d})
					if err != nil {
						return nil, err
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
				return nil, err
			}
			ops = ops[:mark]
			cuts.rollback(cutMark)
		}
	}
	return ops, nil
}

// commitChain signs ops as the chain of deltas cuts delimits (each names
// the one before) on another core while this one writes the documents
// into b, then commits b, synced.
func (s *Store) commitChain(w *workset, b *pebble.Batch, reqs []*writeReq, ops []delta.Op, cuts *cutter) int {
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
	if err != nil {
		return s.failCommit(b, reqs, fmt.Errorf("store: commit: %w", err))
	}
	if err := s.write(func() error { return s.pdb.ApplyNoSyncWait(b, pebble.Sync) }); err != nil {
		return s.failCommit(b, reqs, s.stopWrites(err))
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
	d := &delta.Delta{Seq: s.vv[s.author] + 1, HLC: uint64(at), Parents: s.sortedHeads(), Ops: ops}
	unsigned, err := d.Prepare(s.key)
	if err != nil {
		return s.failCommit(b, reqs, fmt.Errorf("store: commit: %w", err))
	}
	changes, err := w.flush(b)
	if err != nil {
		return s.failCommit(b, reqs, fmt.Errorf("store: commit: %w", err))
	}
	order := s.order + 1
	if err := b.Set(s.space.Key(pendingKey(order)), unsigned, nil); err != nil {
		return s.failCommit(b, reqs, fmt.Errorf("store: commit: %w", err))
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
		return s.failCommit(b, reqs, s.stopWrites(err))
	}
	// The documents are in and readers see them; what follows only files
	// the delta. If it fails, the pending entry stays for Open to finish.
	// Committing woke Pebble's log writer onto this processor, where it
	// would wait for the signature and the filing: moving it to another
	// one takes tens of microseconds on a virtual machine, and the other
	// one is often busy with writers. So let the log writer start the
	// write and fsync first; this goroutine resumes while they run.
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
