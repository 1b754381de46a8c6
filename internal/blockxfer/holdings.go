package blockxfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dpaas/dpaas/internal/frame"
)

// Holdings protocol: the asker writes a CID in one frame (internal/frame),
// the answerer one byte: HoldNone, HoldPending or HoldComplete.
const (
	HoldNone     byte = 0 // not kept
	HoldPending  byte = 1 // kept, not yet whole
	HoldComplete byte = 2 // whole
)

// MaxCIDLen bounds the CID of a holdings or blocks request.
const MaxCIDLen = 256

var (
	// ErrMalformed is wrapped when a request's CID frame is empty or
	// longer than MaxCIDLen.
	ErrMalformed = errors.New("blockxfer: malformed request")
	// ErrBadCID is wrapped when a request's bytes are not a CID.
	ErrBadCID = errors.New("blockxfer: not a CID")
)

// ReadCID reads a CID in one frame: io.EOF when the stream ends cleanly
// before it, ErrMalformed for an empty or overlong frame, ErrBadCID for
// bytes that are not a CID.
func ReadCID(r frame.Reader) (cid.Cid, error) {
	buf, err := frame.ReadFrame(r, MaxCIDLen)
	if errors.Is(err, frame.ErrTooLarge) {
		return cid.Undef, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err != nil {
		return cid.Undef, err
	}
	if len(buf) == 0 {
		return cid.Undef, fmt.Errorf("%w: CID length 0", ErrMalformed)
	}
	c, err := cid.Cast(buf)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %w", ErrBadCID, err)
	}
	return c, nil
}

// ServeHolds answers the one holdings question of st with what holds
// says of its CID, within timeout. It returns the error of a request that
// could not be read (the caller counts it and resets st); it does not
// close st.
func ServeHolds(st network.Stream, timeout time.Duration, holds func(cid.Cid) byte) error {
	_ = st.SetDeadline(time.Now().Add(timeout))
	c, err := ReadCID(bufio.NewReaderSize(st, 16))
	if err != nil {
		return err
	}
	_, _ = st.Write([]byte{holds(c)})
	return nil
}

// AskHolds asks p, over an open connection only, whether it keeps c; ok
// is false when p could not be asked (it does not speak proto, is gone,
// stays silent for timeout, or answers something else).
func AskHolds(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, c cid.Cid, timeout time.Duration) (answer byte, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := h.NewStream(network.WithNoDial(ctx, "holdings"), p, proto)
	if err != nil {
		return HoldNone, false
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(timeout))
	if err := frame.WriteFrame(st, c.Bytes()); err != nil {
		_ = st.Reset()
		return HoldNone, false
	}
	if err := st.CloseWrite(); err != nil {
		_ = st.Reset()
		return HoldNone, false
	}
	var ans [1]byte
	if _, err := io.ReadFull(st, ans[:]); err != nil {
		_ = st.Reset()
		return HoldNone, false
	}
	switch a := ans[0]; a {
	case HoldNone, HoldPending, HoldComplete:
		return a, true
	default:
		return HoldNone, false
	}
}
