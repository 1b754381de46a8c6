package peerex

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/dpaas/dpaas/internal/addrbook"
	"github.com/dpaas/dpaas/internal/group"
)

// Defaults of Config.
const (
	DefaultTarget  = 8
	DefaultMaxWait = time.Minute
	DefaultTag     = "dapp"
)

const (
	// firstRound is the wait between rounds while something changes; it
	// doubles up to MaxWait while nothing does.
	firstRound = 250 * time.Millisecond
	// maxDialing bounds the dials in flight at once.
	maxDialing   = 4
	dialTimeout  = 5 * time.Second
	ioTimeout    = 10 * time.Second
	touchEvery   = time.Minute
	leftHold     = 30 * time.Second
	trimmedHold  = 10 * time.Minute
	maxRoundPull = 1 // random members asked per round
	// walks and walkLength: a joining instance's record goes on this many
	// random walks of this many steps; each ends in a dial of it from an
	// instance far from where it joined, so a DApp that grows by joins
	// through ever newer instances keeps a small diameter.
	walks      = 3
	walkLength = 6
)

// ErrClosed is returned by calls on a closed Exchange.
var ErrClosed = errors.New("peerex: closed")

// Config configures New.
type Config struct {
	Host host.Host
	// Protocol is the exchange's protocol ID; it must carry the AppID
	// (/dpaas/<appid>/px/1.0.0), since speaking it is what makes a peer an
	// instance of the DApp here.
	Protocol protocol.ID
	Book     *addrbook.Book
	// Target is how many instances to keep connections to; the exchange
	// dials more while it has fewer. Default 8.
	Target int
	// Max is the most instances it stays connected to; beyond, it closes
	// connections, keeping the graph diverse. Default 2*Target.
	Max int
	// MaxWait is the longest wait between two rounds; default one minute.
	MaxWait time.Duration
	// Tag protects connected instances in the connection manager;
	// default "dapp".
	Tag    string
	Logger *slog.Logger
}

// Stats counts the exchange's work.
type Stats struct {
	Peers     int    // connected instances of the DApp
	Dials     uint64 // dials of instances from the address book
	Exchanges uint64 // records received from peers, answered or asked
	Malformed uint64 // messages and records refused: undecodable, forged, too big
	Trimmed   uint64 // connections closed over Max
	Walks     uint64 // walks of joining instances started here
	WalkDials uint64 // walks that ended here in a dial of the joining instance
}

// Exchange runs peer exchange for one instance. Safe for concurrent use.
type Exchange struct {
	cfg   Config
	log   *slog.Logger
	tasks *group.Group
	wake  chan struct{}

	mu        sync.Mutex
	self      addrbook.Record
	selfAddrs string
	dialing   map[peer.ID]bool
	exploring bool // a dial at the end of a walk is in flight
	warned    bool
	lastTouch time.Time

	verified map[[32]byte]addrbook.Record // records whose signature was checked, by hash

	peers                                   atomic.Int64
	dials, exchanges, malformed, trimmedCnt atomic.Uint64
	walks, walkDials                        atomic.Uint64
}

// New starts the exchange on cfg.Host: it answers the protocol, watches
// the instances that connect and leave, and keeps between Target and Max
// of them connected, dialling from the book. Close stops it.
func New(cfg Config) (*Exchange, error) {
	if cfg.Host == nil || cfg.Book == nil || cfg.Protocol == "" {
		return nil, errors.New("peerex: Host, Book and Protocol are required")
	}
	cfg.Target = cmp.Or(cfg.Target, DefaultTarget)
	cfg.Max = cmp.Or(cfg.Max, 2*cfg.Target)
	if cfg.Target < 1 || cfg.Max < cfg.Target {
		return nil, fmt.Errorf("peerex: Target %d and Max %d: want 1 <= Target <= Max", cfg.Target, cfg.Max)
	}
	cfg.MaxWait = cmp.Or(cfg.MaxWait, DefaultMaxWait)
	cfg.Tag = cmp.Or(cfg.Tag, DefaultTag)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	x := &Exchange{
		cfg:      cfg,
		log:      cfg.Logger,
		tasks:    group.New(context.Background()),
		wake:     make(chan struct{}, 1),
		verified: make(map[[32]byte]addrbook.Record),
		dialing:  make(map[peer.ID]bool),
	}
	if _, err := x.ownRecord(); err != nil {
		return nil, err
	}
	sub, err := cfg.Host.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerConnectednessChanged),
	})
	if err != nil {
		return nil, fmt.Errorf("peerex: subscribe to peer events: %w", err)
	}
	cfg.Host.SetStreamHandler(cfg.Protocol, x.serve)
	x.tasks.Go(func(ctx context.Context) { x.watch(ctx, sub) })
	x.tasks.Go(x.run)
	return x, nil
}

// Close stops the exchange, waits for its goroutines and writes the book.
func (x *Exchange) Close() error {
	x.cfg.Host.RemoveStreamHandler(x.cfg.Protocol)
	x.tasks.Stop()
	x.cfg.Book.Touch(x.members()...)
	return x.cfg.Book.Flush()
}

// Satisfied reports whether the last round counted Target instances or
// more connected.
func (x *Exchange) Satisfied() bool { return int(x.peers.Load()) >= x.cfg.Target }

// Stats reports what the exchange did.
func (x *Exchange) Stats() Stats {
	return Stats{
		Peers:     int(x.peers.Load()),
		Dials:     x.dials.Load(),
		Exchanges: x.exchanges.Load(),
		Malformed: x.malformed.Load(),
		Trimmed:   x.trimmedCnt.Load(),
		Walks:     x.walks.Load(),
		WalkDials: x.walkDials.Load(),
	}
}

func (x *Exchange) poke() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// watch follows connections: an instance that identified itself is
// protected and asked for the instances it knows; one that left is
// unprotected and not re-dialled at once.
func (x *Exchange) watch(ctx context.Context, sub event.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch e := e.(type) {
			case event.EvtPeerIdentificationCompleted:
				if slices.Contains(e.Protocols, x.cfg.Protocol) {
					x.cfg.Host.ConnManager().Protect(e.Peer, x.cfg.Tag)
					p := e.Peer
					x.tasks.Go(func(ctx context.Context) {
						if x.pull(ctx, p) > 0 {
							x.poke() // dial what it told of now
						}
					})
					x.poke()
				}
			case event.EvtPeerConnectednessChanged:
				if e.Connectedness != network.Connected {
					x.cfg.Host.ConnManager().Unprotect(e.Peer, x.cfg.Tag)
					x.cfg.Book.Hold(e.Peer, leftHold)
					x.poke()
				}
			}
		}
	}
}

func (x *Exchange) run(ctx context.Context) {
	wait := firstRound
	for {
		if x.round(ctx) {
			wait = firstRound
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-x.wake:
			wait = firstRound
		case <-t.C:
			wait = min(2*wait, x.cfg.MaxWait)
		}
		t.Stop()
	}
}

// member reports whether p, connected, speaks the DApp's exchange.
func (x *Exchange) member(p peer.ID) bool {
	ok, err := x.cfg.Host.Peerstore().SupportsProtocols(p, x.cfg.Protocol)
	return err == nil && len(ok) > 0
}

func (x *Exchange) members() []peer.ID {
	var out []peer.ID
	for _, p := range x.cfg.Host.Network().Peers() {
		if x.member(p) {
			out = append(out, p)
		}
	}
	return out
}

// round is one pass of upkeep; it reports whether it learnt something
// that calls for another round soon.
func (x *Exchange) round(ctx context.Context) bool {
	members := x.members()
	x.peers.Store(int64(len(members)))
	x.warnIfAlone(len(members))
	now := time.Now()
	x.mu.Lock()
	touch := now.Sub(x.lastTouch) > touchEvery
	if touch {
		x.lastTouch = now
	}
	x.mu.Unlock()
	if touch {
		x.cfg.Book.Touch(members...)
	}
	// What changed since the last round (instances verified, failures)
	// is written now, so an instance killed soon after it joined still
	// finds the DApp again from its book.
	if err := x.cfg.Book.Flush(); err != nil {
		x.log.Warn("peerex: writing the address book", "err", err)
	}
	switch {
	case len(members) > x.cfg.Max:
		x.trim(members)
	case len(members) < x.cfg.Target:
		x.dialMore(members)
	}
	learnt := 0
	for _, i := range rand.Perm(len(members))[:min(maxRoundPull, len(members))] {
		learnt += x.pull(ctx, members[i])
	}
	return learnt > 0 && len(members) < x.cfg.Target
}

func (x *Exchange) warnIfAlone(n int) {
	others := x.cfg.Book.Stats().Verified - n
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case n <= 1 && others > 0 && !x.warned:
		x.warned = true
		x.log.Warn("peerex: connected to few instances of the DApp while others are known; dialling them",
			"connected", n, "known", others)
	case n >= 2:
		x.warned = false
	}
}

// dialMore dials instances from the book, diverse ones first, until
// Target would be reached, with at most maxDialing dials in flight.
func (x *Exchange) dialMore(members []peer.ID) {
	connected := make(map[peer.ID]bool, len(members))
	have := make(map[string]int)
	for _, p := range members {
		connected[p] = true
		have[netGroup(x.cfg.Host.Peerstore().Addrs(p))]++
	}
	x.mu.Lock()
	want := min(x.cfg.Target-len(members), maxDialing) - len(x.dialing)
	x.mu.Unlock()
	if want <= 0 {
		return
	}
	self := x.cfg.Host.ID()
	due := x.cfg.Book.Due(func(p peer.ID) bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		return p == self || connected[p] || x.dialing[p] ||
			x.cfg.Host.Network().Connectedness(p) == network.Connected
	})
	rand.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for _, e := range Choose(due, have, want) {
		if !x.startDial(e, nil) {
			return
		}
	}
}

// startDial dials e in the background unless it is being dialled; done,
// if not nil, runs when the dial ends.
func (x *Exchange) startDial(e addrbook.Entry, done func()) bool {
	x.mu.Lock()
	if x.dialing[e.ID] {
		x.mu.Unlock()
		return false
	}
	x.dialing[e.ID] = true
	x.mu.Unlock()
	x.cfg.Book.Dialing(e.ID)
	ok := x.tasks.Go(func(ctx context.Context) {
		defer func() {
			x.mu.Lock()
			delete(x.dialing, e.ID)
			x.mu.Unlock()
			if done != nil {
				done()
			}
			x.poke()
		}()
		x.dial(ctx, e)
	})
	if !ok {
		x.mu.Lock()
		delete(x.dialing, e.ID)
		x.mu.Unlock()
	}
	return ok
}

func (x *Exchange) dial(ctx context.Context, e addrbook.Entry) {
	x.dials.Add(1)
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	// A connection proves nothing yet: the peer is verified when it
	// exchanges records (takeMessage). Connect may return before identify
	// when the peer dialled first, so a connection to a peer that turns
	// out not to run the DApp is not held against anyone; its candidate
	// ages out.
	err := x.cfg.Host.Connect(dctx, peer.AddrInfo{ID: e.ID, Addrs: e.Addrs})
	if err != nil {
		if ctx.Err() == nil {
			x.cfg.Book.DialFailed(e.ID)
			x.log.Debug("peerex: dial failed", "peer", e.ID, "verified", e.Verified, "err", err)
		}
		return
	}
	x.log.Debug("peerex: connected to an instance from the address book", "peer", e.ID, "verified", e.Verified)
}

// trimGrace is how long a connection stays before it may be trimmed.
// Connections come and go for more than the exchange: another instance's
// probe, a catch-up, a walk; one closed as soon as it is over the bound
// would fail what opened it, and trimming the instances kept instead
// would churn the mesh. Most go within seconds; the others are trimmed
// once older than this.
const trimGrace = 15 * time.Second

// trim closes connections to instances over Max, from the most crowded
// network groups first, so the instances kept stay diverse; those
// connected for less than trimGrace are left for later rounds.
func (x *Exchange) trim(members []peer.ID) {
	byGroup := make(map[string][]peer.ID)
	old := 0
	for _, p := range members {
		if !x.connectedFor(p, trimGrace) {
			continue
		}
		g := netGroup(x.cfg.Host.Peerstore().Addrs(p))
		byGroup[g] = append(byGroup[g], p)
		old++
	}
	for range min(old, len(members)-x.cfg.Max) {
		var top string
		for g, ps := range byGroup {
			if len(ps) > len(byGroup[top]) {
				top = g
			}
		}
		ps := byGroup[top]
		i := rand.IntN(len(ps))
		p := ps[i]
		byGroup[top] = slices.Delete(ps, i, i+1)
		x.cfg.Host.ConnManager().Unprotect(p, x.cfg.Tag)
		x.cfg.Book.Hold(p, trimmedHold)
		_ = x.cfg.Host.Network().ClosePeer(p)
		x.trimmedCnt.Add(1)
	}
}

// connectedFor reports whether a connection to p has been open for at
// least d.
func (x *Exchange) connectedFor(p peer.ID, d time.Duration) bool {
	for _, c := range x.cfg.Host.Network().ConnsToPeer(p) {
		if time.Since(c.Stat().Opened) >= d {
			return true
		}
	}
	return false
}

// Choose picks up to n entries of due (in the order given, which the
// caller shuffles), each time one from the network group least
// represented among have and those already picked; verified entries
// before candidates. Pure.
func Choose(due []addrbook.Entry, have map[string]int, n int) []addrbook.Entry {
	count := make(map[string]int, len(have))
	for g, c := range have {
		count[g] = c
	}
	var out []addrbook.Entry
	used := make([]bool, len(due))
	for len(out) < n {
		best := -1
		for i, e := range due {
			if used[i] {
				continue
			}
			if best < 0 {
				best = i
				continue
			}
			b := due[best]
			if e.Verified != b.Verified {
				if e.Verified {
					best = i
				}
				continue
			}
			if count[netGroup(e.Addrs)] < count[netGroup(b.Addrs)] {
				best = i
			}
		}
		if best < 0 {
			break
		}
		used[best] = true
		count[netGroup(due[best].Addrs)]++
		out = append(out, due[best])
	}
	return out
}

// netGroup names the network an instance is in, by its first address with
// an IP: the /24 of IPv4, the /48 of IPv6.
func netGroup(addrs []multiaddr.Multiaddr) string {
	for _, a := range addrs {
		if len(a) == 0 {
			continue
		}
		c := a[0]
		switch c.Protocol().Code {
		case multiaddr.P_IP4:
			b := c.RawValue()
			if len(b) == 4 {
				return fmt.Sprintf("ip4:%d.%d.%d", b[0], b[1], b[2])
			}
		case multiaddr.P_IP6:
			b := c.RawValue()
			if len(b) == 16 {
				return fmt.Sprintf("ip6:%x", b[:6])
			}
		case multiaddr.P_DNS, multiaddr.P_DNS4, multiaddr.P_DNS6:
			return "dns:" + c.Value()
		}
	}
	return ""
}

// ownRecord returns the instance's signed record, sealed again when its
// addresses changed.
func (x *Exchange) ownRecord() (addrbook.Record, error) {
	var addrs []multiaddr.Multiaddr
	for _, a := range x.cfg.Host.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err != nil {
			addrs = append(addrs, a)
		}
	}
	key := fmt.Sprint(addrs)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.self.Envelope != nil && key == x.selfAddrs {
		return x.self, nil
	}
	pk := x.cfg.Host.Peerstore().PrivKey(x.cfg.Host.ID())
	if pk == nil {
		return addrbook.Record{}, errors.New("peerex: the host's private key is not in its peerstore")
	}
	if len(addrs) == 0 {
		return addrbook.Record{}, errors.New("peerex: the host has no address to advertise")
	}
	r, err := addrbook.Seal(pk, addrs)
	if err != nil {
		return addrbook.Record{}, err
	}
	x.self, x.selfAddrs = r, key
	return r, nil
}

// serve answers an exchange: the asker's own record comes in, the
// instance's own and those of the instances it is connected to go out.
func (x *Exchange) serve(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(ioTimeout))
	remote := s.Conn().RemotePeer()
	b, err := ReadFrame(bufio.NewReader(s))
	var m Message
	if err == nil {
		m, err = x.takeMessage(b, remote)
	}
	if err == nil && m.Walk > 0 {
		err = x.walked(remote, m)
	}
	if err != nil {
		x.refused(remote, err)
		_ = s.Reset()
		return
	}
	x.exchanges.Add(1)
	if m.Walk > 0 {
		return
	}
	if m.Join {
		x.startWalks(remote, m.Records[0])
	}
	out, err := x.answer(remote)
	if err == nil {
		err = WriteFrame(s, out)
	}
	if err != nil {
		x.log.Debug("peerex: answering", "peer", remote, "err", err)
		_ = s.Reset()
	}
}

func (x *Exchange) refused(from peer.ID, err error) {
	if errors.Is(err, ErrMalformed) || errors.Is(err, addrbook.ErrBadRecord) {
		x.malformed.Add(1)
		x.log.Warn("peerex: refused a malformed exchange", "peer", from, "err", err)
		return
	}
	x.log.Debug("peerex: exchange failed", "peer", from, "err", err)
}

// takeMessage decodes a message whose first record must be the sender's
// own; the connection it came on proved the sender's key, and it speaks
// the DApp's exchange, so the sender is verified.
func (x *Exchange) takeMessage(b []byte, from peer.ID) (Message, error) {
	m, err := Decode(b)
	if err != nil {
		return Message{}, err
	}
	r, err := x.parseRecord(m.Records[0])
	if err != nil {
		return Message{}, err
	}
	if r.ID != from {
		return Message{}, fmt.Errorf("peerex: first record is %s's, not the sender's: %w", r.ID, ErrMalformed)
	}
	if x.cfg.Book.MarkGood(r) {
		x.poke() // a round writes the book at once
	}
	return m, nil
}

// startWalks sends the record of joiner, which just joined through this
// instance, on random walks from up to `walks` distinct instances it is
// connected to.
func (x *Exchange) startWalks(joiner peer.ID, rec []byte) {
	members := x.members()
	rand.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	n := 0
	for _, p := range members {
		if n == walks {
			return
		}
		if p != joiner {
			n++
			x.walks.Add(1)
			x.tasks.Go(func(ctx context.Context) { x.forward(ctx, p, rec, walkLength) })
		}
	}
}

// walked takes one step of a walk that from passed on: pass it on again,
// or at its end dial the joining instance, which adds a link across the
// DApp (up to Max; one such dial at a time).
func (x *Exchange) walked(from peer.ID, m Message) error {
	r, err := x.parseRecord(m.Records[1])
	if err != nil {
		return err
	}
	if r.ID == x.cfg.Host.ID() {
		return nil
	}
	members := x.members()
	if m.Walk > 1 {
		var next []peer.ID
		for _, p := range members {
			if p != from && p != r.ID {
				next = append(next, p)
			}
		}
		if len(next) > 0 {
			to := next[rand.IntN(len(next))]
			x.tasks.Go(func(ctx context.Context) { x.forward(ctx, to, m.Records[1], m.Walk-1) })
			return nil
		}
	}
	if len(members) >= x.cfg.Max || x.cfg.Host.Network().Connectedness(r.ID) == network.Connected {
		return nil
	}
	x.mu.Lock()
	busy := x.exploring
	x.exploring = true
	x.mu.Unlock()
	if busy {
		return nil
	}
	e, ok := x.cfg.Book.Get(r.ID)
	if !ok {
		if _, err := x.cfg.Book.AddCandidate(r, from); err == nil {
			e, ok = x.cfg.Book.Get(r.ID)
		}
	}
	if !ok || time.Now().Before(e.NextDial) || !x.startDial(e, func() {
		x.mu.Lock()
		x.exploring = false
		x.mu.Unlock()
	}) {
		x.mu.Lock()
		x.exploring = false
		x.mu.Unlock()
		return nil
	}
	x.walkDials.Add(1)
	return nil
}

// forward passes a joining instance's record on to p, walk steps to go.
func (x *Exchange) forward(ctx context.Context, p peer.ID, rec []byte, walk uint8) {
	self, err := x.ownRecord()
	if err != nil {
		return
	}
	b, err := Encode(Message{Records: [][]byte{self.Envelope, rec}, Walk: walk})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	s, err := x.cfg.Host.NewStream(network.WithNoDial(ctx, "peer exchange walk"), p, x.cfg.Protocol)
	if err != nil {
		x.log.Debug("peerex: walk", "peer", p, "err", err)
		return
	}
	defer s.Close()
	defer context.AfterFunc(ctx, func() { _ = s.Reset() })()
	_ = s.SetDeadline(time.Now().Add(ioTimeout))
	if err := WriteFrame(s, b); err != nil {
		_ = s.Reset()
	}
}

// answer is the instance's own record and those of a random sample of
// the other instances it is connected to.
func (x *Exchange) answer(to peer.ID) ([]byte, error) {
	self, err := x.ownRecord()
	if err != nil {
		return nil, err
	}
	recs := [][]byte{self.Envelope}
	members := x.members()
	rand.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	for _, p := range members {
		if len(recs) == MaxRecords {
			break
		}
		if p == to {
			continue
		}
		if e, ok := x.cfg.Book.Get(p); ok && e.Verified {
			recs = append(recs, e.Envelope)
		}
	}
	return Encode(Message{Records: recs})
}

// pull asks p for the instances it knows and enters them in the book as
// candidates. It returns how many were new.
func (x *Exchange) pull(ctx context.Context, p peer.ID) int {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	n, err := x.ask(ctx, p)
	if err != nil {
		x.refused(p, err)
	}
	return n
}

func (x *Exchange) ask(ctx context.Context, p peer.ID) (int, error) {
	self, err := x.ownRecord()
	if err != nil {
		return 0, err
	}
	// An instance with one connection or none is joining (or rejoining):
	// it asks to be sent on walks.
	req, err := Encode(Message{Records: [][]byte{self.Envelope}, Join: len(x.members()) <= 1})
	if err != nil {
		return 0, err
	}
	s, err := x.cfg.Host.NewStream(network.WithNoDial(ctx, "peer exchange"), p, x.cfg.Protocol)
	if err != nil {
		return 0, fmt.Errorf("peerex: open stream: %w", err)
	}
	defer s.Close()
	// Close must not wait for a slow peer's deadline.
	defer context.AfterFunc(ctx, func() { _ = s.Reset() })()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	if err := WriteFrame(s, req); err != nil {
		_ = s.Reset()
		return 0, err
	}
	_ = s.CloseWrite()
	b, err := ReadFrame(bufio.NewReader(s))
	if err != nil {
		_ = s.Reset()
		return 0, err
	}
	m, err := x.takeMessage(b, p)
	if err != nil {
		_ = s.Reset()
		return 0, err
	}
	x.exchanges.Add(1)
	var learnt int
	var bad error
	for _, rb := range m.Records[1:] {
		r, err := x.parseRecord(rb)
		if err != nil {
			bad = err
			continue
		}
		if r.ID == x.cfg.Host.ID() {
			continue
		}
		if isNew, err := x.cfg.Book.AddCandidate(r, p); err != nil {
			if errors.Is(err, addrbook.ErrDistrusted) {
				break
			}
		} else if isNew {
			learnt++
		}
	}
	return learnt, bad
}

// maxVerified bounds the cache of checked records (about 0.5 KiB each);
// past it, the cache starts over.
const maxVerified = 4096

// parseRecord is addrbook.ParseRecord with the records already checked
// remembered by the hash of their bytes. Instances keep handing out the
// same signed records round after round, and checking a signature costs
// a hundred times more than hashing the record: with 24 instances, the
// checks were a quarter of an idle instance's CPU.
func (x *Exchange) parseRecord(b []byte) (addrbook.Record, error) {
	if len(b) > addrbook.MaxRecordSize {
		return addrbook.ParseRecord(b) // refuses it
	}
	h := sha256.Sum256(b)
	x.mu.Lock()
	r, ok := x.verified[h]
	x.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := addrbook.ParseRecord(b)
	if err != nil {
		return r, err
	}
	x.mu.Lock()
	if len(x.verified) >= maxVerified {
		clear(x.verified)
	}
	x.verified[h] = r
	x.mu.Unlock()
	return r, nil
}
