package blockxfer

import (
	"context"
	"fmt"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Source is the block source of one reader: the local block store, then
// the replicas found holding the whole file (FindHolders), over the blocks
// protocol, then its fallback. With several holders each block goes to
// the one with the fewest requests unanswered, so a faster holder serves
// more, as download mirrors share a file. Safe for concurrent use.
type Source struct {
	x        *Direct
	fallback BlockGetter
	root     cid.Cid

	mu      sync.Mutex
	streams []*blockStream // to holders, in the order found
	closed  bool
}

// NewSource returns the block source of a reader of the DAG under root,
// with fallback for the blocks no holder gives it. The caller must Close
// it.
func (x *Direct) NewSource(root cid.Cid, fallback BlockGetter) *Source {
	g := &Source{x: x, fallback: fallback, root: root}
	x.readersMu.Lock()
	defer x.readersMu.Unlock()
	x.readers[root] = append(x.readers[root], g)
	return g
}

// Close ends every holder stream of g, none is added afterwards, and the
// other readers no longer borrow them. Calling it again does nothing.
func (g *Source) Close() {
	g.x.removeReader(g)
	g.mu.Lock()
	streams := g.streams
	g.streams, g.closed = nil, true
	g.mu.Unlock()
	for _, d := range streams {
		d.close()
	}
}

// Holders returns the replicas g streams blocks from.
func (g *Source) Holders() []peer.ID {
	var ps []peer.ID
	for _, d := range g.holders() {
		ps = append(ps, d.peer)
	}
	return ps
}

func (x *Direct) removeReader(g *Source) {
	x.readersMu.Lock()
	defer x.readersMu.Unlock()
	rs := x.readers[g.root]
	for i, o := range rs {
		if o == g {
			rs = append(rs[:i:i], rs[i+1:]...)
			break
		}
	}
	if len(rs) == 0 {
		delete(x.readers, g.root)
	} else {
		x.readers[g.root] = rs
	}
}

func (x *Direct) readersOf(root cid.Cid) []*Source {
	x.readersMu.Lock()
	defer x.readersMu.Unlock()
	return append([]*Source(nil), x.readers[root]...)
}

// pick returns the stream with the fewest requests unanswered, or nil.
// A reader that found no holder of its own (its search ran before the
// holders connected, typically) borrows the streams of the other readers
// of the same blob.
func (g *Source) pick() *blockStream {
	if d := g.pickOwn(); d != nil {
		return d
	}
	var best *blockStream
	for _, o := range g.x.readersOf(g.root) {
		if o == g {
			continue
		}
		if d := o.pickOwn(); d != nil && (best == nil || d.inflight.Load() < best.inflight.Load()) {
			best = d
		}
	}
	return best
}

func (g *Source) pickOwn() *blockStream {
	g.mu.Lock()
	defer g.mu.Unlock()
	var best *blockStream
	for _, d := range g.streams {
		if best == nil || d.inflight.Load() < best.inflight.Load() {
			best = d
		}
	}
	return best
}

// add puts d among the streams, unless the reader is closed.
func (g *Source) add(d *blockStream) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.streams = append(g.streams, d)
	return true
}

// drop takes d out of the streams.
func (g *Source) drop(d *blockStream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, x := range g.streams {
		if x == d {
			g.streams = append(g.streams[:i:i], g.streams[i+1:]...)
			return
		}
	}
}

// holders returns the streams in use.
func (g *Source) holders() []*blockStream {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*blockStream(nil), g.streams...)
}

// blockFetch is one block being fetched from peers; blk and err are set
// when done is closed.
type blockFetch struct {
	done chan struct{}
	blk  blocks.Block
	err  error
}

// joinFetch returns the fetch of c under way, or, when there is none,
// registers a new one and reports mine: the caller must fetch the block and
// end the fetch with endFetch.
func (x *Direct) joinFetch(c cid.Cid) (f *blockFetch, mine bool) {
	x.fetchMu.Lock()
	defer x.fetchMu.Unlock()
	if f, ok := x.fetching[c]; ok {
		return f, false
	}
	f = &blockFetch{done: make(chan struct{})}
	x.fetching[c] = f
	return f, true
}

// endFetch publishes the outcome of the fetch f of c to those waiting on it.
func (x *Direct) endFetch(c cid.Cid, f *blockFetch, blk blocks.Block, err error) {
	x.fetchMu.Lock()
	delete(x.fetching, c)
	x.fetchMu.Unlock()
	f.blk, f.err = blk, err
	close(f.done)
}

// GetBlock returns block c: from the local block store, else from peers.
// The readers of one Direct share fetches: a block that another reader is
// fetching is waited for, not asked for a second time, so a blob read
// while it replicates crosses the network once.
func (g *Source) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	x := g.x
	for {
		if blk, err := x.cfg.Blocks.Get(ctx, c); err == nil {
			return blk, nil
		}
		f, mine := x.joinFetch(c)
		if mine {
			blk, err := g.fetch(ctx, c)
			x.endFetch(c, f, blk, err)
			return blk, err
		}
		x.cfg.Hooks.SharedFetch()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err == nil {
			return f.blk, nil
		}
		// Its reader gave up on it (a seek, a close, its context): fetch
		// it ourselves, unless ours has ended too.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// fetch brings block c from peers: from a holder over the blocks protocol
// when there is one, else from the fallback. Only one fetch of c runs at a
// time (joinFetch).
func (g *Source) fetch(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	// The block may have arrived since the caller looked: the fetch that
	// brought it ended just before this one began.
	if blk, err := g.x.cfg.Blocks.Get(ctx, c); err == nil {
		return blk, nil
	}
	if d := g.pick(); d != nil {
		data, held, err := d.get(ctx, c)
		if err == nil && held {
			if blk, ok := g.verify(d, c, data); ok {
				if err := g.x.cfg.Blocks.Put(ctx, blk); err != nil {
					return nil, fmt.Errorf("blobs: store block %s: %w", c, err)
				}
				return blk, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case err != nil:
			d.owner.drop(d) // the stream is gone
		case !held && d.misses.Add(1) >= directMaxMisses:
			// It said it holds the whole file: asking it first only
			// delays every block.
			d.owner.drop(d)
			d.close()
		}
	}
	return g.fallback.GetBlock(ctx, c)
}

// verify checks that data hashes to c. A peer that answers with other bytes
// is banned and its stream dropped.
func (g *Source) verify(d *blockStream, c cid.Cid, data []byte) (blocks.Block, bool) {
	sum, err := c.Prefix().Sum(data)
	if err == nil && sum.Equals(c) {
		blk, err := blocks.NewBlockWithCid(data, c)
		return blk, err == nil
	}
	d.owner.drop(d)
	d.fail(errForged)
	g.x.cfg.Hooks.BadBlocks(1)
	if g.x.cfg.Liars != nil {
		g.x.cfg.Liars.BanNow(d.peer, "answered a blocks request with bytes of another hash")
	}
	return nil, false
}
