package store

import (
	"context"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/delta"
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
			if s.causal.Held() > 0 {
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
