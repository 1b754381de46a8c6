package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/storesync"
	"github.com/ethereum/go-ethereum/common"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Catch-up: a replica that is behind (exchange) asks a peer for every
// delta it lacks, on a stream of internal/storesync's frames, and applies
// them as they come; the peer serves them from its log in the order it
// applied them, a causal order.

func (n *network) catchUps() {
	defer n.s.netWG.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case p := <-n.want:
			n.mu.Lock()
			settled := n.queued[p]
			delete(n.queued, p)
			n.mu.Unlock()
			if err := n.catchUp(p, settled); err != nil && n.ctx.Err() == nil {
				n.s.log.Debug("store: catch-up", "peer", p, "err", err)
			}
		}
	}
}

// catchUp asks p for everything this replica lacks (settled: that p held
// an AnnounceInterval ago) and applies it as it streams in: frames are
// verified in parallel, batches applied in order.
func (n *network) catchUp(p peer.ID, settled bool) (err error) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Minute)
	defer cancel()
	start := time.Now()
	// only over a connection already open (see source)
	str, err := n.h.NewStream(lpnet.WithNoDial(lpnet.WithAllowLimitedConn(ctx, "store sync"), "store sync"), p, n.proto)
	if err != nil {
		return fmt.Errorf("store: catch-up from %s: %w", p, err)
	}
	defer str.Close()
	stopReset := context.AfterFunc(ctx, func() { str.Reset() })
	defer stopReset()
	r := &storesync.Request{Versions: versionsOf(n.s.snap.Load().vv)}
	if settled {
		r.Settled = uint32(min(n.s.cfg.AnnounceInterval.Milliseconds(), math.MaxUint32))
	}
	req, err := storesync.Encode(r)
	if err != nil {
		return err
	}
	if err := storesync.WriteFrame(str, req); err != nil {
		return fmt.Errorf("store: catch-up from %s: %w", p, err)
	}
	if err := str.CloseWrite(); err != nil {
		return fmt.Errorf("store: catch-up from %s: %w", p, err)
	}
	// Most catch-ups are a neighbour's answer that it has nothing this
	// replica lacks (exchange): the header is read with a small buffer,
	// and the large one is only made for a stream of deltas.
	small := bufio.NewReaderSize(str, 512)
	hb, err := storesync.ReadFrame(small)
	if err != nil {
		return fmt.Errorf("store: catch-up from %s: header: %w", p, err)
	}
	hdr, err := storesync.DecodeHeader(hb)
	if err != nil {
		return fmt.Errorf("store: catch-up from %s: %w", p, err)
	}
	if hdr.Total == 0 {
		return nil
	}
	if settled {
		n.found.Store(true) // exchange keeps its pace
	}
	// a catch-up that has work replaces the peer's status
	n.s.setSync(p, func(st *SyncStatus) { *st = SyncStatus{Peer: p, Started: start, Total: hdr.Total} })
	defer func() {
		n.s.setSync(p, func(st *SyncStatus) { st.Finished, st.Err = time.Now(), err })
	}()
	n.s.log.Info("store: catching up", "peer", p, "deltas", hdr.Total)
	applied, err := n.receiveStream(ctx, p, bufio.NewReaderSize(small, 256<<10))
	if err != nil {
		return err
	}
	n.s.catchUps.Add(1)
	n.s.log.Info("store: caught up", "peer", p, "applied", applied, "total", hdr.Total, "took", time.Since(start))
	return ctx.Err()
}

// frames is a batch of a catch-up stream: its frames, then the deltas
// verified from them, and the error that ended the stream after them.
type frames struct {
	raw [][]byte
	in  []*incoming
	err error
}

// receiveStream applies the deltas of a catch-up stream from p as they come
// and returns how many were applied. Reader, verifier and applier are
// each their own goroutine and pass batches in order: the stream keeps
// flowing while frames are verified, and frames are verified while
// earlier ones are applied. Batches are cut at catchUpBatch bytes and at
// most two wait between stages, so that what a catch-up holds in memory
// (the frames and their decoded deltas, several times their size) is
// bounded whatever the number of documents it brings.
func (n *network) receiveStream(ctx context.Context, p peer.ID, r *bufio.Reader) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	raw := make(chan frames, 2)
	verified := make(chan frames, 2)
	var stages sync.WaitGroup
	defer stages.Wait()
	defer cancel() // runs first: unblocks the reader and the verifier
	stages.Add(2)
	go func() {
		defer stages.Done()
		readFrames(ctx, r, raw)
	}()
	go func() {
		defer stages.Done()
		n.verifyFrames(ctx, p, raw, verified)
	}()
	lastLog := time.Now()
	var applied uint64
	for b := range verified {
		if len(b.in) > 0 {
			res, err := n.s.applyRemoteWait(b.in, ctx.Done())
			if err != nil {
				return applied, err
			}
			applied += uint64(res.applied)
			n.s.setSync(p, func(st *SyncStatus) { st.Applied = applied })
		}
		if time.Since(lastLog) > 2*time.Second {
			lastLog = time.Now()
			n.s.log.Info("store: catch-up progress", "peer", p, "applied", applied)
		}
		if b.err != nil {
			if errors.Is(b.err, io.EOF) {
				break
			}
			return applied, fmt.Errorf("store: catch-up from %s: %w", p, b.err)
		}
	}
	return applied, nil
}

// readFrames reads a catch-up stream into batches on out until the
// stream ends (the last batch carries why) or ctx does, then closes out.
func readFrames(ctx context.Context, r *bufio.Reader, out chan<- frames) {
	defer close(out)
	const size = 1024
	for {
		b := frames{raw: make([][]byte, 0, size)}
		bytes := 0
		for len(b.raw) < size && bytes < catchUpBatch {
			f, err := storesync.ReadFrame(r)
			if err != nil {
				b.err = err
				break
			}
			b.raw = append(b.raw, f)
			bytes += len(f)
			if r.Buffered() == 0 && len(b.raw) >= 64 {
				break // do not sit on frames while the network is slow
			}
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
		if b.err != nil {
			return
		}
	}
}

// verifyFrames verifies each batch from in and passes it on to out,
// counting the frames it refuses, until in closes or ctx ends; then it
// closes out.
func (n *network) verifyFrames(ctx context.Context, p peer.ID, in <-chan frames, out chan<- frames) {
	defer close(out)
	for b := range in {
		b.in = verifyAll(b.raw, p)
		n.s.setSync(p, func(st *SyncStatus) { st.Received += uint64(len(b.raw)) })
		if bad := len(b.raw) - len(b.in); bad > 0 {
			n.s.rejected.Add(uint64(bad))
			n.s.log.Warn("store: refused deltas from a catch-up stream", "peer", p, "count", bad)
		}
		b.raw = nil
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
	}
}

// catchUpBatch is the size in bytes from which a catch-up stream's frames
// are verified and applied as one batch (one frame may be bigger).
const catchUpBatch = 1 << 20

// verifyAll decodes and checks frames on every core, keeping their order
// and dropping the bad ones. A few big frames (deltas of many operations)
// are spread over the cores as well as many small ones.
func verifyAll(frames [][]byte, from peer.ID) []*incoming {
	out := make([]*incoming, len(frames))
	bytes := 0
	for _, f := range frames {
		bytes += len(f)
	}
	workers := min(runtime.GOMAXPROCS(0), len(frames), max(1, len(frames)/32, bytes/(64<<10)))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(frames); i += workers {
				if x, err := decodeRemote(frames[i], from); err == nil {
					out[i] = x
				}
			}
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(out, func(x *incoming) bool { return x == nil })
}

// serve answers a catch-up request with every delta the requester lacks,
// in the order this replica applied them.
func (n *network) serve(str lpnet.Stream) {
	if !n.enter() {
		str.Reset()
		return
	}
	defer n.handlers.Done()
	defer str.Close()
	stop := context.AfterFunc(n.ctx, func() { str.Reset() })
	defer stop()
	_ = str.SetReadDeadline(time.Now().Add(30 * time.Second))
	rf, err := storesync.ReadFrame(bufio.NewReader(str))
	if err != nil {
		str.Reset()
		return
	}
	req, err := storesync.DecodeRequest(rf)
	if err != nil {
		n.s.log.Warn("store: malformed catch-up request", "peer", str.Conn().RemotePeer(), "err", err)
		str.Reset()
		return
	}
	have := make(map[common.Address]uint64, len(req.Versions))
	for _, v := range req.Versions {
		have[common.BytesToAddress(v.Author)] = v.Seq
	}
	todo, err := n.s.lacking(have)
	if err != nil {
		n.s.log.Warn("store: catch-up request", "peer", str.Conn().RemotePeer(), "err", err)
		str.Reset()
		return
	}
	if req.Settled > 0 {
		// A neighbour comparing versions (exchange): what this replica
		// processed since is probably on its way to it by gossip. The log
		// is in causal order, so a prefix of it is a whole history.
		last := n.settledOrder(time.Duration(req.Settled) * time.Millisecond)
		todo = todo[:sort.Search(len(todo), func(i int) bool { return todo[i] > last })]
	}
	hdr, _ := storesync.Encode(&storesync.Header{Total: uint64(len(todo))})
	if len(todo) == 0 { // the usual answer to a neighbour's exchange
		if err := storesync.WriteFrame(str, hdr); err != nil {
			str.Reset()
		}
		return
	}
	w := bufio.NewWriterSize(str, 256<<10)
	if err := storesync.WriteFrame(w, hdr); err != nil {
		str.Reset()
		return
	}
	err = n.s.readLog(todo, func(block []byte) error {
		if err := storesync.WriteFrame(w, block); err != nil {
			return err
		}
		n.s.served.Add(1)
		return nil
	})
	if err != nil {
		str.Reset()
		return
	}
	if err := w.Flush(); err != nil {
		str.Reset()
	}
}

// lacking returns, in ascending order, the log positions of every delta
// processed here that a replica holding the versions have lacks.
func (s *Store) lacking(have map[common.Address]uint64) ([]uint64, error) {
	var todo []uint64
	for a, v := range s.snap.Load().vv {
		seq := v.Load()
		if seq <= have[a] {
			continue
		}
		it, err := s.space.Iter(authorKey(a, have[a]+1), authorKey(a, seq+1))
		if err != nil {
			return nil, err
		}
		for it.First(); it.Valid(); it.Next() {
			if v := it.Value(); len(v) >= 8 {
				todo = append(todo, binary.BigEndian.Uint64(v))
			}
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	slices.Sort(todo)
	return todo, nil
}

// readLog calls f with the block at each of the ascending log positions
// todo. It walks the log with one iterator, stepping over short gaps and
// seeking over long ones, so a large catch-up is a sequential read.
func (s *Store) readLog(todo []uint64, f func(block []byte) error) error {
	if len(todo) == 0 {
		return nil
	}
	it, err := s.space.Iter(logKey(todo[0]), logKey(todo[len(todo)-1]+1))
	if err != nil {
		return err
	}
	defer it.Close()
	valid := it.First()
	for _, want := range todo {
		for steps := 0; valid; steps++ {
			at := binary.BigEndian.Uint64(s.space.Strip(it.Key())[1:])
			if at >= want {
				break
			}
			if steps == 16 {
				valid = it.SeekGE(s.space.Key(logKey(want)))
				continue
			}
			valid = it.Next()
		}
		if !valid || binary.BigEndian.Uint64(s.space.Strip(it.Key())[1:]) != want {
			if err := it.Error(); err != nil {
				return err
			}
			return fmt.Errorf("store: log position %d is missing: %w", want, kv.ErrNotFound)
		}
		if err := f(it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}
