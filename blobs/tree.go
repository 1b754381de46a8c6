package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/dpaas/dpaas/internal/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// treeWorkers bounds the nodes of a directory tree fetched at once.
const treeWorkers = 8

// fetchAll brings every block of the session's DAG here: a file by reading
// it (with the read-ahead of a reader), a directory by listing it and
// reading each of its entries, treeWorkers at a time. The blocks come from
// the holders of the session's root first, bitswap otherwise. read counts
// the bytes read and blocks fetched, for a watchdog. A root that is not
// UnixFS is ErrNotFile. It closes the session.
func (ses *session) fetchAll(ctx context.Context, read *atomic.Int64) error {
	defer ses.close()
	nd, err := decodeNode(ses.root)
	if err != nil {
		// Not UnixFS: the caller fetches the graph as it is.
		return fmt.Errorf("%w: %w", ErrNotFile, err)
	}
	if nd.typ != TypeDir {
		return ses.fetchFile(ctx, ses.root, nd.typ, read)
	}
	t := &treeFetch{ses: ses, read: read, seen: map[cid.Cid]struct{}{}}
	t.ctx, t.cancel = context.WithCancel(ctx)
	defer t.cancel()
	t.cond = sync.NewCond(&t.mu)
	t.push(ses.root.Cid())
	var wg sync.WaitGroup
	for range treeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.work()
		}()
	}
	wg.Wait()
	if t.err != nil {
		return t.err
	}
	return ctx.Err()
}

// treeFetch is the shared state of the workers of fetchAll: a queue of the
// nodes to fetch, and how many are queued or being worked on.
type treeFetch struct {
	ses    *session
	read   *atomic.Int64
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []cid.Cid
	pending int
	seen    map[cid.Cid]struct{}
	err     error
}

// push queues c unless it was queued before.
func (t *treeFetch) push(c cid.Cid) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[c]; ok {
		return
	}
	t.seen[c] = struct{}{}
	t.queue = append(t.queue, c)
	t.pending++
	t.cond.Signal()
}

// work takes nodes off the queue until none is left or one fails.
func (t *treeFetch) work() {
	for {
		t.mu.Lock()
		for len(t.queue) == 0 && t.pending > 0 && t.err == nil {
			t.cond.Wait()
		}
		if len(t.queue) == 0 || t.err != nil {
			t.mu.Unlock()
			return
		}
		c := t.queue[len(t.queue)-1]
		t.queue = t.queue[:len(t.queue)-1]
		t.mu.Unlock()

		err := t.one(c)

		t.mu.Lock()
		t.pending--
		if err != nil && t.err == nil {
			t.err = err
			t.cancel()
		}
		t.cond.Broadcast()
		t.mu.Unlock()
	}
}

// one fetches node c and, for a file, its blocks, or, for a directory,
// queues its entries.
func (t *treeFetch) one(c cid.Cid) error {
	blk, err := t.ses.get.GetBlock(t.ctx, c)
	if err != nil {
		return err
	}
	t.read.Add(int64(len(blk.RawData())))
	nd, err := decodeNode(blk)
	if err != nil {
		return err
	}
	if nd.typ != TypeDir {
		return t.ses.fetchFile(t.ctx, blk, nd.typ, t.read)
	}
	ents, err := t.ses.list(t.ctx, blk)
	if err != nil {
		return err
	}
	for _, e := range ents {
		t.push(e.CID)
	}
	return nil
}

// fetchFile brings the blocks of the file (or symlink) whose root block,
// already here, is blk.
func (ses *session) fetchFile(ctx context.Context, blk blocks.Block, typ EntryType, read *atomic.Int64) error {
	if typ != TypeFile || blk.Cid().Type() == cid.Raw {
		return nil
	}
	fr, err := unixfs.NewReader(ctx, blk, ses.get)
	if err != nil {
		return errors.Join(ErrNotFile, err)
	}
	defer fr.Close()
	_, err = io.Copy(countingDiscard{read}, fr)
	return err
}
