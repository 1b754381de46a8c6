package blockxfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// admission admits streams of the blocks protocol within the limits.
type admission struct {
	mu     sync.Mutex
	total  int
	byPeer map[peer.ID]int
}

func (a *admission) admit(p peer.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total >= maxDirectStreams || a.byPeer[p] >= maxDirectStreamsPerPeer {
		return false
	}
	if a.byPeer == nil {
		a.byPeer = make(map[peer.ID]int)
	}
	a.total++
	a.byPeer[p]++
	return true
}

func (a *admission) leave(p peer.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.byPeer[p]--; a.byPeer[p] <= 0 {
		delete(a.byPeer, p)
	}
}

// Serve answers the requests of one stream of the blocks protocol until
// the asker closes it, goes idle or errs: the stream handler of the
// protocol. A malformed request resets the stream and is counted
// (Hooks.BadRequest).
func (x *Direct) Serve(st network.Stream) {
	h := &x.cfg.Hooks
	p := st.Conn().RemotePeer()
	if x.banned(p) || !h.Enter() {
		_ = st.Reset()
		return
	}
	defer h.Exit()
	if !x.admit.admit(p) {
		_ = st.Reset()
		return
	}
	defer x.admit.leave(p)
	// Close must not wait for an idle stream.
	stop := context.AfterFunc(x.cfg.Context, func() { _ = st.Reset() })
	defer stop()

	br := bufio.NewReaderSize(st, 4<<10)
	bw := bufio.NewWriterSize(st, 32<<10)
	var hdr [binary.MaxVarintLen64]byte
	var out bytes.Buffer // one answer
	warned := false
	for {
		_ = st.SetReadDeadline(time.Now().Add(directIdle))
		c, err := ReadCID(br)
		if err != nil {
			if errors.Is(err, ErrMalformed) || errors.Is(err, ErrBadCID) {
				h.BadRequest()
				h.Logger.Debug("blobs: bad blocks request", "peer", p, "err", err)
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
		found, rerr := x.cfg.Blocks.WriteBlock(c, &out, func(n int) error {
			size = n
			out.Grow(binary.MaxVarintLen64 + n)
			out.Write(appendAnswer(hdr[:0], n, true))
			return nil
		})
		if rerr != nil {
			if !warned { // once per stream: the asker controls how often
				warned = true
				h.Logger.Warn("blobs: cannot read a block to serve it", "cid", c, "err", rerr)
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
			h.Served(uint64(size))
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
