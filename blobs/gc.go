package blobs

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// GCResult says what one garbage collection did.
type GCResult struct {
	Kept       int    // blocks reachable from a pin, an open reader or an Add
	Freed      int    // blocks deleted
	FreedBytes uint64 // their bytes
}

// gcBatch is how many deletions one GC batch commits at once.
const gcBatch = 1024

// GC frees every block that no pin and no open reader needs. It runs by
// itself after a Burn, a failed Add and a restart after a crash; call it to
// reclaim space at a time of your choosing.
//
// GC marks the blocks reachable from every pinned root (fetched or not) and
// from the root of every open reader, then deletes the rest; what it kept
// only for a reader (of a blob unpinned or burned) it collects, by itself,
// once the last such reader closes. It holds the GC
// lock exclusively: Adds in progress finish first, and blocks arriving from
// the network wait until it is done. Deletions commit in batches, each only
// of unreachable blocks, so a crash leaves a consistent store.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	if !s.enter() {
		return GCResult{}, fmt.Errorf("blobs: gc: %w", ErrClosed)
	}
	defer s.exit()
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	start := time.Now()

	var roots []cid.Cid
	if err := s.eachPin(func(c cid.Cid, _ pin) error {
		roots = append(roots, c)
		return nil
	}); err != nil {
		return GCResult{}, fmt.Errorf("blobs: gc: %w", err)
	}
	roots = append(roots, s.leasedRoots()...)

	marked := make(map[string]struct{})
	for _, root := range roots {
		err := s.walkLocal(ctx, root, false, func(c cid.Cid, held bool, _ []byte) error {
			if held {
				marked[string(c.Hash())] = struct{}{}
			}
			return nil
		})
		if err != nil {
			return GCResult{}, fmt.Errorf("blobs: gc: mark %s: %w", root, err)
		}
	}

	var res GCResult
	res.Kept = len(marked)
	var doomed []multihash.Multihash
	flush := func(sync bool) error {
		if len(doomed) == 0 && !sync {
			return nil
		}
		if err := s.blocks.DeleteMany(doomed, sync); err != nil {
			return err
		}
		doomed = doomed[:0]
		return nil
	}
	err := s.blocks.Each(ctx, func(mh multihash.Multihash, size int) error {
		if _, ok := marked[string(mh)]; ok {
			return nil
		}
		doomed = append(doomed, mh)
		res.Freed++
		res.FreedBytes += uint64(size)
		if len(doomed) >= gcBatch {
			return flush(false)
		}
		return nil
	})
	if err == nil {
		err = flush(true)
	}
	if err != nil {
		return res, fmt.Errorf("blobs: gc: sweep: %w", err)
	}
	// No Add runs while GC holds the lock, so every marker left is from an
	// Add that failed or crashed, and its blocks are gone now.
	if err := s.clearAddMarkers(); err != nil {
		return res, fmt.Errorf("blobs: gc: %w", err)
	}
	s.metrics.gcRuns.Add(1)
	s.metrics.gcFreed.Add(res.FreedBytes)
	s.cfg.Logger.Debug("blobs: gc", "kept", res.Kept, "freed", res.Freed, "bytes", res.FreedBytes, "took", time.Since(start))
	return res, nil
}

func (s *Store) clearAddMarkers() error {
	it, err := s.space.PrefixIter(prefixAdds)
	if err != nil {
		return err
	}
	b := s.space.NewBatch()
	for ok := it.First(); ok; ok = it.Next() {
		if err := b.Delete(s.space.Strip(it.Key())); err != nil {
			_ = it.Close()
			_ = b.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		_ = b.Close()
		return err
	}
	if b.Len() == 0 {
		return b.Close()
	}
	return b.Commit(true)
}

// requestGC asks the background collector for a run soon.
func (s *Store) requestGC() {
	select {
	case s.gcKick <- struct{}{}:
	default:
	}
}

// gcLoop runs GC whenever it is requested, until the Store closes.
func (s *Store) gcLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.gcKick:
		}
		if _, err := s.GC(s.ctx); err != nil && s.ctx.Err() == nil {
			s.cfg.Logger.Warn("blobs: background gc failed", "err", err)
		}
	}
}

// blockCount returns how many blocks are stored, for tests and metrics.
func (s *Store) blockCount(ctx context.Context) (int, error) {
	n := 0
	err := s.blocks.Each(ctx, func(multihash.Multihash, int) error {
		n++
		return nil
	})
	return n, err
}
