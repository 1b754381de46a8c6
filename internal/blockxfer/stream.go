package blockxfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/internal/frame"
)

// errClosing is what a stream fails with when the component is closing
// and its answers cannot be read.
var errClosing = errors.New("blobs: closed")

// blockStream is a stream of the blocks protocol to one replica, shared
// by the fetches of one reader.
type blockStream struct {
	x     *Direct
	peer  peer.ID
	st    network.Stream
	owner *Source // the reader that opened it; others may borrow it

	wmu sync.Mutex // orders requests: queued and written under it
	bw  *bufio.Writer

	mu      sync.Mutex
	pending []*blockWant // asked, not yet answered, in order
	err     error        // set once the stream has failed or closed

	misses   atomic.Int32 // blocks the peer said it lacks
	inflight atomic.Int32 // requests asked through get, not yet answered
}

// blockWant is one block asked on a blockStream; data, held and err are
// set when done is closed.
type blockWant struct {
	done chan struct{}
	data []byte
	held bool
	err  error
}

func newBlockStream(x *Direct, p peer.ID, st network.Stream) *blockStream {
	d := &blockStream{x: x, peer: p, st: st, bw: bufio.NewWriterSize(st, 4<<10)}
	if !x.cfg.Tasks.Go(func(context.Context) { d.readLoop() }) {
		d.fail(errClosing)
	}
	return d
}

// get asks for c and waits for the answer: the block's bytes, not yet
// checked against c, or held false when the peer does not hold it.
func (d *blockStream) get(ctx context.Context, c cid.Cid) ([]byte, bool, error) {
	d.inflight.Add(1)
	defer d.inflight.Add(-1)
	w := &blockWant{done: make(chan struct{})}
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
		_ = d.st.SetReadDeadline(time.Now().Add(d.x.cfg.Stall))
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
func (d *blockStream) readLoop() {
	br := bufio.NewReaderSize(d.st, 32<<10)
	for {
		data, held, err := ReadAnswer(br)
		if err != nil {
			d.fail(err)
			return
		}
		// Counted as received, whether its asker still wants it or not.
		d.x.cfg.Hooks.Fetched(uint64(len(data)))
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
			_ = d.st.SetReadDeadline(time.Now().Add(d.x.cfg.Stall))
		}
		d.mu.Unlock()
		w.data, w.held = data, held
		close(w.done)
	}
}

// fail ends the stream: every request still pending fails with err.
func (d *blockStream) fail(err error) {
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
		h := &d.x.cfg.Hooks
		h.BadBlocks(1)
		h.Logger.Warn("blobs: dropping a blocks stream", "peer", d.peer, "err", err)
	}
}

// close ends the stream once the reader is done with it.
func (d *blockStream) close() { d.fail(errStreamDone) }
