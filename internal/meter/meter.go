package meter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dpaas/dpaas/internal/frame"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Errors.
var (
	ErrMalformed = errors.New("meter: malformed message")
	ErrClosed    = errors.New("meter: closed")
)

const (
	version = 1
	// MaxMessage bounds every message body.
	MaxMessage = 1024
	// MaxReason bounds a refusal reason.
	MaxReason = 256
	// IdleTimeout is how long a server keeps a silent stream open.
	IdleTimeout = 2 * time.Minute
)

// ProtocolID is the metering protocol of the DApp appID.
func ProtocolID(appID string) protocol.ID {
	return protocol.ID("/dpaas/" + appID + "/payment/meter/1.0.0")
}

// Request asks a payer to bring its cumulative payment to the asker up to
// Total (smallest token unit).
type Request struct {
	Total *big.Int
}

// Response is a voucher or, when Refusal is not empty, a refusal.
type Response struct {
	Voucher []byte
	Refusal string
}

// AppendRequest appends the body of r.
func AppendRequest(b []byte, r Request) ([]byte, error) {
	if r.Total == nil || r.Total.Sign() < 0 || r.Total.BitLen() > 256 {
		return nil, fmt.Errorf("meter: request total %v: %w", r.Total, ErrMalformed)
	}
	var buf [33]byte
	buf[0] = version
	r.Total.FillBytes(buf[1:])
	return append(b, buf[:]...), nil
}

// DecodeRequest parses a request body.
func DecodeRequest(b []byte) (Request, error) {
	if len(b) != 33 || b[0] != version {
		return Request{}, fmt.Errorf("meter: request of %d bytes: %w", len(b), ErrMalformed)
	}
	return Request{Total: new(big.Int).SetBytes(b[1:])}, nil
}

// AppendResponse appends the body of r.
func AppendResponse(b []byte, r Response) ([]byte, error) {
	if r.Refusal != "" {
		reason := r.Refusal
		if len(reason) > MaxReason {
			reason = reason[:MaxReason]
		}
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
		b = append(b, version, 1)
		return append(b, reason...), nil
	}
	if len(r.Voucher) == 0 || len(r.Voucher) > MaxMessage-2 {
		return nil, fmt.Errorf("meter: response voucher of %d bytes: %w", len(r.Voucher), ErrMalformed)
	}
	b = append(b, version, 0)
	return append(b, r.Voucher...), nil
}

// DecodeResponse parses a response body.
func DecodeResponse(b []byte) (Response, error) {
	if len(b) < 3 || len(b) > MaxMessage || b[0] != version {
		return Response{}, fmt.Errorf("meter: response of %d bytes: %w", len(b), ErrMalformed)
	}
	switch b[1] {
	case 0:
		return Response{Voucher: append([]byte(nil), b[2:]...)}, nil
	case 1:
		if len(b)-2 > MaxReason || !utf8.Valid(b[2:]) {
			return Response{}, fmt.Errorf("meter: refusal reason: %w", ErrMalformed)
		}
		return Response{Refusal: string(b[2:])}, nil
	}
	return Response{}, fmt.Errorf("meter: response status %d: %w", b[1], ErrMalformed)
}

func writeFrame(w io.Writer, body []byte) error { return frame.WriteFrame(w, body) }

// readFrame reads one frame (internal/frame) of 1 to MaxMessage bytes.
func readFrame(r *bufio.Reader) ([]byte, error) {
	b, err := frame.ReadFrame(r, MaxMessage)
	if errors.Is(err, frame.ErrTooLarge) {
		return nil, fmt.Errorf("meter: %w: %w", err, ErrMalformed)
	}
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("meter: empty frame: %w", ErrMalformed)
	}
	return b, nil
}

// Handler answers a request from peer from. It runs on the stream's
// goroutine; ctx ends when the server closes.
type Handler func(ctx context.Context, from peer.ID, req Request) Response

// Server answers metering requests on a host.
type Server struct {
	h      host.Host
	id     protocol.ID
	handle Handler
	// OnMalformed, if set, is called for every malformed request.
	onMalformed func(peer.ID, error)

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	active map[network.Stream]struct{}
	wg     sync.WaitGroup
}

// Serve registers handle for protocol id on h. onMalformed (may be nil)
// hears about every malformed request, which also ends its stream.
func Serve(h host.Host, id protocol.ID, handle Handler, onMalformed func(peer.ID, error)) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{h: h, id: id, handle: handle, onMalformed: onMalformed, ctx: ctx, cancel: cancel, active: make(map[network.Stream]struct{})}
	h.SetStreamHandler(id, s.serve)
	return s
}

func (s *Server) serve(st network.Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = st.Reset()
		return
	}
	s.active[st] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.active, st)
		s.mu.Unlock()
		s.wg.Done()
	}()
	from := st.Conn().RemotePeer()
	r := bufio.NewReader(st)
	for {
		_ = st.SetReadDeadline(time.Now().Add(IdleTimeout))
		body, err := readFrame(r)
		if err != nil {
			if errors.Is(err, ErrMalformed) && s.onMalformed != nil {
				s.onMalformed(from, err)
			}
			_ = st.Reset()
			return
		}
		req, err := DecodeRequest(body)
		if err != nil {
			if s.onMalformed != nil {
				s.onMalformed(from, err)
			}
			_ = st.Reset()
			return
		}
		resp := s.handle(s.ctx, from, req)
		out, err := AppendResponse(nil, resp)
		if err != nil {
			out, _ = AppendResponse(nil, Response{Refusal: err.Error()})
		}
		_ = st.SetWriteDeadline(time.Now().Add(IdleTimeout))
		if err := writeFrame(st, out); err != nil {
			_ = st.Reset()
			return
		}
	}
}

// Close unregisters the protocol, resets open streams and waits for
// their handlers to return.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.h.RemoveStreamHandler(s.id)
	s.cancel()
	for st := range s.active {
		_ = st.Reset()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Client asks peers for payments, keeping one stream per peer.
type Client struct {
	h  host.Host
	id protocol.ID

	mu      sync.Mutex
	closed  bool
	streams map[peer.ID]*clientStream
}

type clientStream struct {
	mu sync.Mutex // one request at a time on a stream
	st network.Stream
	r  *bufio.Reader
}

// NewClient returns a client for protocol id on h.
func NewClient(h host.Host, id protocol.ID) *Client {
	return &Client{h: h, id: id, streams: make(map[peer.ID]*clientStream)}
}

// Ask sends req to p and waits for the response. It reuses the stream of
// an earlier Ask, and opens a new one once if that stream turns out dead.
func (c *Client) Ask(ctx context.Context, p peer.ID, req Request) (Response, error) {
	body, err := AppendRequest(nil, req)
	if err != nil {
		return Response{}, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Response{}, ErrClosed
	}
	cs := c.streams[p]
	if cs == nil {
		cs = &clientStream{}
		c.streams[p] = cs
	}
	c.mu.Unlock()

	cs.mu.Lock()
	defer cs.mu.Unlock()
	for attempt := 0; ; attempt++ {
		reused := cs.st != nil
		if !reused {
			st, err := c.h.NewStream(ctx, p, c.id)
			if err != nil {
				return Response{}, fmt.Errorf("meter: ask %s: %w", p, err)
			}
			cs.st, cs.r = st, bufio.NewReader(st)
		}
		resp, err := roundTrip(ctx, cs, body)
		if err == nil {
			return resp, nil
		}
		_ = cs.st.Reset()
		cs.st, cs.r = nil, nil
		if !reused || attempt > 0 || ctx.Err() != nil || errors.Is(err, ErrMalformed) {
			return Response{}, fmt.Errorf("meter: ask %s: %w", p, err)
		}
	}
}

func roundTrip(ctx context.Context, cs *clientStream, body []byte) (Response, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(IdleTimeout)
	}
	st := cs.st // the caller may drop cs.st while the AfterFunc still runs
	_ = st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeFrame(st, body); err != nil {
		return Response{}, err
	}
	out, err := readFrame(cs.r)
	if err != nil {
		return Response{}, err
	}
	return DecodeResponse(out)
}

// Close resets every stream; later Asks fail with ErrClosed.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	streams := c.streams
	c.streams = nil
	c.mu.Unlock()
	for _, cs := range streams {
		cs.mu.Lock()
		if cs.st != nil {
			_ = cs.st.Reset()
			cs.st = nil
		}
		cs.mu.Unlock()
	}
}
