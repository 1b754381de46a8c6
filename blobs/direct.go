package blobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dpaas/dpaas/internal/frame"
	"github.com/ipfs/boxo/blockservice"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Direct block transfer between replicas of one DApp.
//
// Bitswap is how an instance trades blocks with any IPFS peer, and it stays
// the fallback for every block. But between two replicas of a DApp, one of
// which holds a whole file, most of what bitswap does is overhead: want
// lists, message assembly and protobuf copies, per-peer send delays. So a
// reader first looks for replicas that hold its file in full (the holdings
// protocol, asked of the connected peers, then of the providers Routing
// names) and asks up to maxHolders of them for the file's blocks, over one
// stream of the blocks protocol each, pipelined, as the read-ahead window
// needs them.
//
// Blocks protocol: the asker writes requests, each a uvarint length and a
// CID. The answerer answers every request in order with a uvarint, 0 when
// it does not hold the block, else the block's length plus one, followed by
// the block's bytes. Either side may end the stream at any time.
//
// Every block received is hashed against the CID asked for: a mismatch bans
// the peer, like a forged bitswap block, and the reader goes on over
// bitswap. A block the peer does not hold, a stream that fails or a peer
// that stops answering are not errors of the read: that block, and those
// after it, come over bitswap.

const (
	// maxBlockSize bounds a block read from the blocks protocol (bitswap
	// refuses larger ones too).
	maxBlockSize = 2 << 20
	// directIdle bounds how long a blocks stream may wait for the next
	// request, or for the answer being written to leave.
	directIdle = 30 * time.Second
	// Streams of the blocks protocol one replica serves at once, in all and
	// to one peer.
	maxDirectStreams        = 64
	maxDirectStreamsPerPeer = 4
	// directHoldersAsked bounds how many peers a reader asks at once
	// whether they hold its file.
	directHoldersAsked = 8
	// maxHolders is how many holders of a file one reader streams from.
	maxHolders = 3
	// providerSearch bounds the search for holders through Routing.
	providerSearch = 30 * time.Second
	// maxClaimsAsked bounds how many connected peers a reader asks whether
	// they keep its file; with more connected, it cannot tell that nobody
	// does, and waits.
	maxClaimsAsked = 64
	// directMaxMisses is how many blocks a replica that said it holds the
	// whole file may say it lacks before its stream is dropped.
	directMaxMisses = 4
)

// holderWait bounds how long Open waits for the search for holders to end.
// Tests lengthen it.
var holderWait = 500 * time.Millisecond

// haveWait is how long, with IPFSBitswap, a search that found no replica
// and no provider lets connected IPFS peers say HAVE for the root before
// Open reports that nobody has it.
var haveWait = 2 * time.Second

// directStall is how long a blocks stream may leave its oldest request
// unanswered before it is dropped and its requests go to bitswap. Tests
// shorten it.
var directStall = 15 * time.Second

var (
	errMalformed  = errors.New("malformed request")
	errForged     = errors.New("blobs: peer answered with a block whose hash does not match")
	errBadAnswer  = errors.New("blobs: malformed answer on the blocks protocol")
	errStreamDone = errors.New("blobs: blocks stream closed")
)

// directServer admits streams of the blocks protocol within the limits.
type directServer struct {
	mu     sync.Mutex
	total  int
	byPeer map[peer.ID]int
}

func (d *directServer) admit(p peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total >= maxDirectStreams || d.byPeer[p] >= maxDirectStreamsPerPeer {
		return false
	}
	if d.byPeer == nil {
		d.byPeer = make(map[peer.ID]int)
	}
	d.total++
	d.byPeer[p]++
	return true
}

func (d *directServer) leave(p peer.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total--
	if d.byPeer[p]--; d.byPeer[p] <= 0 {
		delete(d.byPeer, p)
	}
}

// serveBlocks answers the requests of one stream of the blocks protocol
// until the asker closes it, goes idle or errs.
func (s *Store) serveBlocks(st network.Stream) {
	p := st.Conn().RemotePeer()
	if s.Banned(p) || !s.enter() {
		_ = st.Reset()
		return
	}
	defer s.exit()
	if !s.directSrv.admit(p) {
		_ = st.Reset()
		return
	}
	defer s.directSrv.leave(p)
	// Close must not wait for an idle stream.
	stop := context.AfterFunc(s.ctx, func() { _ = st.Reset() })
	defer stop()

	br := bufio.NewReaderSize(st, 4<<10)
	bw := bufio.NewWriterSize(st, 32<<10)
	var hdr [binary.MaxVarintLen64]byte
	var out bytes.Buffer // one answer
	warned := false
	for {
		_ = st.SetReadDeadline(time.Now().Add(directIdle))
		c, err := readCID(br)
		if err != nil {
			if errors.Is(err, errMalformed) || errors.Is(err, ErrInvalidCID) {
				s.metrics.badRequest.Add(1)
				s.cfg.Logger.Debug("blobs: bad blocks request", "peer", p, "err", err)
				_ = st.Reset()
				return
			}
			if errors.Is(err, io.EOF) && bw.Flush() == nil {
				_ = st.Close()
				return
			}
			_ = st.Reset()
			return
		}
		// The block's bytes are copied out of the database into a buffer
		// this stream reuses, and only then written: a reader that is slow
		// to take them must not hold a database iterator (and with it
		// memtables and files) open.
		out.Reset()
		size := 0
		found, rerr := s.blocks.WriteBlock(c, &out, func(n int) error {
			size = n
			out.Grow(binary.MaxVarintLen64 + n)
			out.Write(appendAnswer(hdr[:0], n, true))
			return nil
		})
		if rerr != nil {
			if !warned { // once per stream: the asker controls how often
				warned = true
				s.cfg.Logger.Warn("blobs: cannot read a block to serve it", "cid", c, "err", rerr)
			}
			found = false
		}
		if !found {
			out.Reset()
			out.Write(appendAnswer(hdr[:0], 0, false))
		}
		_ = st.SetWriteDeadline(time.Now().Add(directIdle))
		_, werr := bw.Write(out.Bytes())
		if werr == nil && found {
			s.metrics.directServed.Add(uint64(size))
		}
		if werr == nil && br.Buffered() == 0 {
			werr = bw.Flush() // nothing more asked yet: send what is ready
		}
		if werr != nil {
			_ = st.Reset()
			return
		}
	}
}

// directStream is a stream of the blocks protocol to one replica, shared
// by the fetches of one reader.
type directStream struct {
	s     *Store
	peer  peer.ID
	st    network.Stream
	owner *getter // the reader that opened it; others may borrow it

	wmu sync.Mutex // orders requests: queued and written under it
	bw  *bufio.Writer

	mu      sync.Mutex
	pending []*directWant // asked, not yet answered, in order
	err     error         // set once the stream has failed or closed

	misses   atomic.Int32 // blocks the peer said it lacks
	inflight atomic.Int32 // requests asked through get, not yet answered
}

// directWant is one block asked on a directStream; data, held and err are
// set when done is closed.
type directWant struct {
	done chan struct{}
	data []byte
	held bool
	err  error
}

func newDirectStream(s *Store, p peer.ID, st network.Stream) *directStream {
	d := &directStream{s: s, peer: p, st: st, bw: bufio.NewWriterSize(st, 4<<10)}
	if !s.goTracked(d.readLoop) {
		d.fail(ErrClosed)
	}
	return d
}

// get asks for c and waits for the answer: the block's bytes, not yet
// checked against c, or held false when the peer does not hold it.
func (d *directStream) get(ctx context.Context, c cid.Cid) ([]byte, bool, error) {
	d.inflight.Add(1)
	defer d.inflight.Add(-1)
	w := &directWant{done: make(chan struct{})}
	d.wmu.Lock()
	d.mu.Lock()
	if d.err != nil {
		err := d.err
		d.mu.Unlock()
		d.wmu.Unlock()
		return nil, false, err
	}
	if len(d.pending) == 0 {
		// An answer is now due: the stream must make progress.
		_ = d.st.SetReadDeadline(time.Now().Add(directStall))
	}
	d.pending = append(d.pending, w)
	d.mu.Unlock()
	_ = d.st.SetWriteDeadline(time.Now().Add(directIdle))
	err := frame.WriteFrame(d.bw, c.Bytes())
	if err == nil {
		err = d.bw.Flush()
	}
	d.wmu.Unlock()
	if err != nil {
		d.fail(err)
	}
	select {
	case <-w.done:
		return w.data, w.held, w.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// readLoop takes the answers in order until the stream ends.
func (d *directStream) readLoop() {
	br := bufio.NewReaderSize(d.st, 32<<10)
	for {
		data, held, err := readAnswer(br)
		if err != nil {
			d.fail(err)
			return
		}
		// Counted as received, whether its asker still wants it or not.
		d.s.metrics.directFetched.Add(uint64(len(data)))
		d.mu.Lock()
		if len(d.pending) == 0 {
			d.mu.Unlock()
			d.fail(fmt.Errorf("%w: an answer nobody asked for", errBadAnswer))
			return
		}
		w := d.pending[0]
		d.pending[0] = nil
		d.pending = d.pending[1:]
		if len(d.pending) == 0 {
			_ = d.st.SetReadDeadline(time.Time{}) // idle: nothing is due
		} else {
			_ = d.st.SetReadDeadline(time.Now().Add(directStall))
		}
		d.mu.Unlock()
		w.data, w.held = data, held
		close(w.done)
	}
}

// readAnswer decodes one answer of the blocks protocol, an optional frame
// (internal/frame): the block's bytes, or held false when the peer does
// not hold it. A malformed answer fails with errBadAnswer; a failing
// reader with its own error.
func readAnswer(r *bufio.Reader) ([]byte, bool, error) {
	data, held, err := frame.ReadOptional(r, maxBlockSize)
	if errors.Is(err, frame.ErrTooLarge) {
		return nil, false, fmt.Errorf("%w: %w", errBadAnswer, err)
	}
	return data, held, err
}

// appendAnswer appends the answer for a block of size bytes, not its bytes;
// held false appends the answer "not held".
func appendAnswer(b []byte, size int, held bool) []byte {
	return frame.AppendOptionalHeader(b, size, held)
}

// fail ends the stream: every request still pending fails with err.
func (d *directStream) fail(err error) {
	d.mu.Lock()
	if d.err != nil {
		d.mu.Unlock()
		return
	}
	d.err = err
	pending := d.pending
	d.pending = nil
	d.mu.Unlock()
	_ = d.st.Reset()
	for _, w := range pending {
		w.err = err
		close(w.done)
	}
	if errors.Is(err, errBadAnswer) {
		d.s.metrics.badBlocks.Add(1)
		d.s.cfg.Logger.Warn("blobs: dropping a blocks stream", "peer", d.peer, "err", err)
	}
}

// close ends the stream once the reader is done with it.
func (d *directStream) close() { d.fail(errStreamDone) }

// getter is the block source of one reader: the local blockstore, then the
// replicas found holding the whole file, over the blocks protocol, then
// bitswap. With several holders each block goes to the one with the fewest
// requests unanswered, so a faster holder serves more, as download mirrors
// share a file.
type getter struct {
	s    *Store
	sess *blockservice.Session
	root cid.Cid

	mu      sync.Mutex
	streams []*directStream // to holders, in the order found
	closed  bool
}

// pick returns the stream with the fewest requests unanswered, or nil.
// A reader that found no holder of its own (its search ran before the
// holders connected, typically) borrows the streams of the other readers
// of the same blob.
func (g *getter) pick() *directStream {
	if d := g.pickOwn(); d != nil {
		return d
	}
	var best *directStream
	for _, o := range g.s.readersOf(g.root) {
		if o == g {
			continue
		}
		if d := o.pickOwn(); d != nil && (best == nil || d.inflight.Load() < best.inflight.Load()) {
			best = d
		}
	}
	return best
}

func (g *getter) pickOwn() *directStream {
	g.mu.Lock()
	defer g.mu.Unlock()
	var best *directStream
	for _, d := range g.streams {
		if best == nil || d.inflight.Load() < best.inflight.Load() {
			best = d
		}
	}
	return best
}

// addReader and removeReader keep the readers of each blob, whose holder
// streams the others may borrow.
func (s *Store) addReader(g *getter) {
	s.readersMu.Lock()
	defer s.readersMu.Unlock()
	s.readers[g.root] = append(s.readers[g.root], g)
}

func (s *Store) removeReader(g *getter) {
	s.readersMu.Lock()
	defer s.readersMu.Unlock()
	rs := s.readers[g.root]
	for i, x := range rs {
		if x == g {
			rs = append(rs[:i:i], rs[i+1:]...)
			break
		}
	}
	if len(rs) == 0 {
		delete(s.readers, g.root)
	} else {
		s.readers[g.root] = rs
	}
}

func (s *Store) readersOf(root cid.Cid) []*getter {
	s.readersMu.Lock()
	defer s.readersMu.Unlock()
	return append([]*getter(nil), s.readers[root]...)
}

// add puts d among the streams, unless the reader is closed.
func (g *getter) add(d *directStream) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.streams = append(g.streams, d)
	return true
}

// drop takes d out of the streams.
func (g *getter) drop(d *directStream) {
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
func (g *getter) holders() []*directStream {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*directStream(nil), g.streams...)
}

// close ends every blocks stream; none is added afterwards.
func (g *getter) close() {
	g.mu.Lock()
	streams := g.streams
	g.streams, g.closed = nil, true
	g.mu.Unlock()
	for _, d := range streams {
		d.close()
	}
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
func (s *Store) joinFetch(c cid.Cid) (f *blockFetch, mine bool) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if f, ok := s.fetching[c]; ok {
		return f, false
	}
	f = &blockFetch{done: make(chan struct{})}
	s.fetching[c] = f
	return f, true
}

// endFetch publishes the outcome of the fetch f of c to those waiting on it.
func (s *Store) endFetch(c cid.Cid, f *blockFetch, blk blocks.Block, err error) {
	s.fetchMu.Lock()
	delete(s.fetching, c)
	s.fetchMu.Unlock()
	f.blk, f.err = blk, err
	close(f.done)
}

// GetBlock returns block c: from the local blockstore, else from peers. The
// readers of one Store (replication included) share fetches: a block that
// another reader is fetching is waited for, not asked for a second time,
// so a blob read while it replicates crosses the network once.
func (g *getter) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	s := g.s
	for {
		if blk, err := s.guarded.Get(ctx, c); err == nil {
			return blk, nil
		}
		f, mine := s.joinFetch(c)
		if mine {
			blk, err := g.fetch(ctx, c)
			s.endFetch(c, f, blk, err)
			return blk, err
		}
		s.metrics.sharedFetches.Add(1)
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
// when there is one, else over bitswap. Only one fetch of c runs at a time
// (joinFetch).
func (g *getter) fetch(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	// The block may have arrived since the caller looked: the fetch that
	// brought it ended just before this one began.
	if blk, err := g.s.guarded.Get(ctx, c); err == nil {
		return blk, nil
	}
	if d := g.pick(); d != nil {
		data, held, err := d.get(ctx, c)
		if err == nil && held {
			if blk, ok := g.verify(d, c, data); ok {
				if err := g.s.guarded.Put(ctx, blk); err != nil {
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
	return g.sess.GetBlock(ctx, c)
}

// verify checks that data hashes to c. A peer that answers with other bytes
// is banned and its stream dropped.
func (g *getter) verify(d *directStream, c cid.Cid, data []byte) (blocks.Block, bool) {
	sum, err := c.Prefix().Sum(data)
	if err == nil && sum.Equals(c) {
		blk, err := blocks.NewBlockWithCid(data, c)
		return blk, err == nil
	}
	d.owner.drop(d)
	d.fail(errForged)
	g.s.metrics.badBlocks.Add(1)
	if g.s.liars != nil {
		g.s.liars.BanNow(d.peer, "answered a blocks request with bytes of another hash")
	}
	return nil, false
}

// findHolder looks for replicas that hold root in full and opens a blocks
// stream to each of the first maxHolders: among the connected peers of the
// DApp first, then, when none of them holds it and there is a Routing,
// among the providers it names. connected is called once the connected
// peers have answered. Until a stream is up, and if none is, the reader
// fetches over bitswap.
//
// The search also tells whether anyone claims the blob at all: a connected
// replica that keeps it (whole or still fetching), a provider record, or,
// with IPFSBitswap, a connected IPFS peer that says HAVE for the root. When
// no one does, nobody is called with what was tried, once the search is
// over.
func (g *getter) findHolder(ctx context.Context, root cid.Cid, connected func(), nobody func(tried string)) {
	s := g.s
	h := s.cfg.Host
	// Peers known to speak the protocol first, then those whose protocols
	// are not known yet (identification still under way).
	var candidates, unknown []peer.ID
	others := 0 // connected peers that are not replicas of the DApp
	for _, p := range h.Network().Peers() {
		if s.Banned(p) {
			continue
		}
		if protos, err := h.Peerstore().SupportsProtocols(p, s.blocksProto); err == nil && len(protos) > 0 {
			candidates = append(candidates, p)
		} else if known, err := h.Peerstore().GetProtocols(p); err == nil && len(known) == 0 {
			unknown = append(unknown, p)
		} else {
			others++
		}
	}
	candidates = append(candidates, unknown...)
	unasked := 0
	if len(candidates) > maxClaimsAsked {
		unasked = len(candidates) - maxClaimsAsked
		candidates = candidates[:maxClaimsAsked]
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// With IPFSBitswap, peers outside the DApp may hold the blob: a HAVE
	// (or the block) for the root from any of them is a claim.
	var have <-chan struct{}
	if s.cfg.IPFSBitswap && s.liars != nil {
		var unwatch func()
		have, unwatch = s.liars.WatchHave(root)
		defer unwatch()
	}
	type answer struct {
		p     peer.ID
		state pinState
		ok    bool
	}
	found := make(chan answer, len(candidates))
	for _, p := range candidates {
		if !s.goTracked(func() {
			st, ok := s.repl.peerState(ctx, p, root)
			found <- answer{p, st, ok}
		}) {
			found <- answer{p: p} // closing: not asked
		}
	}
	opened, claimed, replicas := 0, false, 0
	for range candidates {
		a := <-found
		if a.ok {
			replicas++
		} else if s.cfg.IPFSBitswap {
			others++ // not a replica after all; bitswap may ask it
		}
		if a.ok && a.state != pinNone {
			claimed = true
		}
		if a.ok && a.state == pinComplete && opened < maxHolders {
			if !g.open(ctx, a.p) {
				connected()
				return
			}
			opened++
		}
	}
	connected()
	tried := fmt.Sprintf("%d connected replicas asked", replicas)
	if unasked > 0 {
		claimed = true // cannot tell: some were not asked
	}
	if opened > 0 || (claimed && s.cfg.Routing == nil) {
		return
	}
	if s.cfg.Routing != nil {
		tried += ", provider records searched"
		rctx, rcancel := context.WithTimeout(ctx, providerSearch)
		defer rcancel()
		for ai := range s.cfg.Routing.FindProvidersAsync(rctx, root, directHoldersAsked) {
			if ai.ID == h.ID() || s.Banned(ai.ID) {
				continue
			}
			claimed = true
			if slices.Contains(candidates, ai.ID) {
				continue
			}
			if err := h.Connect(rctx, ai); err != nil || !s.repl.peerHolds(rctx, ai.ID, root) {
				continue
			}
			if !g.open(rctx, ai.ID) {
				return
			}
			if opened++; opened == maxHolders {
				return
			}
		}
	}
	if claimed || ctx.Err() != nil {
		return
	}
	if have != nil && s.cfg.IPFSBitswap && others > 0 {
		tried += fmt.Sprintf(", %d IPFS peers given %v to say HAVE", others, haveWait)
		t := time.NewTimer(haveWait)
		defer t.Stop()
		select {
		case <-have:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	nobody(tried)
}

// open opens a blocks stream to p, a holder of the file, and adds it. It
// reports false once the reader is closed.
func (g *getter) open(ctx context.Context, p peer.ID) bool {
	st, err := g.s.cfg.Host.NewStream(network.WithNoDial(ctx, "blocks"), p, g.s.blocksProto)
	if err != nil {
		return true
	}
	d := newDirectStream(g.s, p, st)
	d.owner = g
	if !g.add(d) {
		d.close()
		return false
	}
	return true
}
