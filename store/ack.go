package store

import "sync/atomic"

// Acknowledging a lone writer. The syncer waits for each durable commit's
// fsync in order and then acknowledges its writers, tells watchers and
// pushes the delta to peers. For a commit that holds one write, that made
// the syncer a hop between the disk and the writer: Pebble's log writer
// woke the syncer, which woke the writer, and on a loaded machine each
// wake-up waits for a processor, on every sequential Put.
//
// So the applier hands such a commit to its writer too, and whichever of
// the writer and the syncer claims it first waits for the fsync. The
// writer, woken by Pebble directly, returns at once and tells the syncer,
// which then does the rest in order as before. A writer that has given
// up (its context ended) never claims, and the syncer waits and
// acknowledges as for any other commit. Acknowledgements still follow
// durability: a commit is synced only after every commit before it, as
// writes reach the log in commit order.

// ownedCommit is what a committed batch carries when its one writer may
// wait for its fsync itself.
type ownedCommit struct {
	claim  atomic.Int32 // claimFree, then claimWriter or claimSyncer
	waited chan error   // the writer's result, once it claimed and waited
}

const (
	claimFree = iota
	claimWriter
	claimSyncer
)

// handOff passes a committed batch to the syncer, and to its writer as
// well when it holds exactly one write that nothing refused.
func (s *Store) handOff(c *committed) {
	if c.durable && c.batch != nil && c.err == nil && len(c.reqs) == 1 && c.reqs[0].err == nil && c.reqs[0].own != nil {
		c.owned = &ownedCommit{waited: make(chan error, 1)}
		c.reqs[0].own <- c // buffered, and one commit per write: never blocks
	}
	s.synced <- c
}

// waitOwn runs on a writer handed its commit: it waits for the fsync
// unless the syncer claimed the commit first, in which case the syncer
// acknowledges the writer as usual (ok false).
func (s *Store) waitOwn(c *committed) (err error, ok bool) {
	if !c.owned.claim.CompareAndSwap(claimFree, claimWriter) {
		return nil, false
	}
	if serr := c.batch.SyncWait(); serr != nil {
		err = s.stopWrites(serr)
	}
	c.owned.waited <- err
	return err, true
}

// syncWait runs on the syncer: it waits for c's fsync, or, if c's writer
// claimed it, for the writer's result. It reports whether the writer was
// already answered.
func (s *Store) syncWait(c *committed) (err error, answered bool) {
	if c.owned != nil && !c.owned.claim.CompareAndSwap(claimFree, claimSyncer) {
		return <-c.owned.waited, true
	}
	if serr := c.batch.SyncWait(); serr != nil {
		err = s.stopWrites(serr)
	}
	return err, false
}
