package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/causal"
	"github.com/dpaas/dpaas/internal/crdt"
	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/hlc"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

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

// applyRemote applies verified remote deltas in causal order: those whose
// parents are settled at once, the others once their parents arrive (the
// rules are internal/causal's); those stamped too far in the future wait
// for their time.
func (s *Store) applyRemote(in []*incoming) remoteResult {
	var res remoteResult
	if res.err = s.writesStopped(); res.err != nil {
		return res // catch-up fetches them again after a reopen
	}
	defer s.causal.EndBatch()
	w := newWorkset(s)
	b := s.pdb.NewBatch()
	queue := in
	now := uint64(hlc.FromTime(s.cfg.Clock().Add(s.cfg.MaxClockSkew)))
	// The queue is applied in chunks of about maxWorkset documents: each
	// chunk's documents are read at once, in key order (prefetch), and
	// committed together, so memory stays bounded and no document of a
	// big catch-up costs a point lookup of its own.
	covered := 0 // deltas at the head of queue whose documents w holds
	for len(queue) > 0 && res.err == nil {
		if covered == 0 {
			if len(w.list) >= maxWorkset {
				if res.err = s.commitWorkset(w, b); res.err != nil {
					return res
				}
				w, b = newWorkset(s), s.pdb.NewBatch()
			}
			if covered, res.err = w.prefetch(queue); res.err != nil {
				break
			}
		}
		x := queue[0]
		queue = queue[1:]
		covered--
		dec, err := s.causal.Admit(x.causal(), x, now, (*heldView)(s))
		if err != nil {
			res.err = err
			break
		}
		switch dec.Verdict {
		case causal.Duplicate:
			res.dups++
			continue
		case causal.Hold:
			if !dec.Again {
				s.log.Info("store: holding a delta stamped in the future", "cid", x.id, "author", x.d.Author, "at", hlc.Timestamp(x.d.HLC).Wall())
			}
			res.waiting++
			continue
		case causal.Park, causal.Drop:
			res.waiting++
			continue
		}
		res.err = s.settle(w, b, x, &res)
		queue = append(queue, s.causal.Delivered(x.id)...)
	}
	s.dups.Add(uint64(res.dups))
	s.pendingN.Store(int64(s.causal.Parked()))
	s.heldN.Store(int64(s.causal.Held()))
	if res.err != nil {
		b.Close()
		return res
	}
	res.err = s.commitWorkset(w, b)
	return res
}

// settle applies x, or files it as refused, in b.
func (s *Store) settle(w *workset, b *pebble.Batch, x *incoming, res *remoteResult) error {
	err := s.applyOne(w, b, x)
	if err == nil {
		res.applied++
		s.applied.Add(1)
		return nil
	}
	var rej *rejection
	if !errors.As(err, &rej) {
		return err
	}
	s.rejected.Add(1)
	res.rejected++
	s.log.Warn("store: rejected a delta", "cid", x.id, "author", x.d.Author, "from", x.from, "reason", rej.Error())
	return s.writeRejected(b, x, rej.Error())
}

// causal is what the causal-delivery rules read of x.
func (x *incoming) causal() causal.Delta {
	return causal.Delta{ID: x.id, Author: x.d.Author, Seq: x.d.Seq, HLC: x.d.HLC, Parents: x.d.Parents}
}

// heldView is the Store as the causal-delivery rules read it (on the
// applier, which owns heads and versions).
type heldView Store

func (h *heldView) Version(a common.Address) uint64 { return h.vv[a] }

func (h *heldView) Head(id cid.Cid) bool {
	_, ok := h.heads[id]
	return ok
}

func (h *heldView) Known(id cid.Cid) (bool, error) { return (*Store)(h).known(id) }

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
	due := s.causal.Due(uint64(hlc.FromTime(s.cfg.Clock().Add(s.cfg.MaxClockSkew))))
	if len(due) == 0 {
		return
	}
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
