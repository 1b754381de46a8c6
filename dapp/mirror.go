package dapp

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/dpaas/dpaas/internal/mirror"
	"github.com/dpaas/dpaas/internal/nodekey"
	"github.com/dpaas/dpaas/internal/systopic"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/dpaas/dpaas/store"
)

// AttestationsCollection is the store collection that holds the probers'
// signed attestations, one document per epoch, prober and probed
// instance. Its validator, installed on every instance, accepts only
// attestations signed by the prober the document names, written or
// deleted by that prober's own instance.
const AttestationsCollection = "_replicas.attestations"

// HeartbeatTopic is the reserved pubsub topic of heartbeats.
const HeartbeatTopic = "dapp/replicas"

// challengeLength is the length of a challenged byte range.
const challengeLength = 4 << 10

// dirEntry is one instance in the directory.
type dirEntry struct {
	hb   mirror.Heartbeat
	raw  []byte // the signed heartbeat, passed on in directory answers
	seen time.Time
}

type attKey struct {
	epoch  uint64
	probed peer.ID
}

// mirrorEngine runs an instance's self-replication duties: heartbeats,
// the directory, probes and attestations. Its goroutines run in the
// Node's task group.
type mirrorEngine struct {
	n     *Node
	cfg   MirrorConfig
	appID string
	priv  crypto.PrivKey
	proto protocol.ID
	topic *pubsub.Topic
	coll  *store.Collection
	build atomic.Pointer[mirror.Build]

	kick    chan struct{} // send a heartbeat soon: a new peer
	hashed  chan struct{} // send a heartbeat now: the build is hashed
	started time.Time

	mu        sync.Mutex
	rnd       *rand.Rand
	dir       map[peer.ID]*dirEntry
	atts      map[string]mirror.Attestation // the collection, by document ID
	raws      map[string][]byte             // the same, signed
	probers   map[attKey]int                // how many attestations atts holds of each instance, by epoch
	periodic  time.Time                     // the last write of the attestations that only counted more
	lastWrite time.Time                     // the last write of any
	mine      map[attKey]*attState          // this instance's cumulative counts
	probing   map[peer.ID]bool              // probes under way
	rtt       map[peer.ID]time.Duration
	lastSent  time.Time
	ownRaw    []byte // the last heartbeat sent

	dirAsked  atomic.Int32  // directories merged (newcomers)
	malformed atomic.Uint64 // heartbeats, attestations and requests refused
	probes    atomic.Uint64 // probes made

	// Test hooks (export_test.go): a prober that reports every probe as
	// unreachable, and an instance that claims every blob of the set.
	reportDown atomic.Bool
	claimAll   atomic.Bool
}

func (n *Node) startMirror(ctx context.Context) error {
	m := &mirrorEngine{
		n:        n,
		cfg:      n.cfg.Mirror,
		appID:    n.cfg.appID.String(),
		proto:    protocol.ID("/dpaas/" + n.cfg.appID.String() + "/replicas/1.0.0"),
		coll:     n.store.Collection(AttestationsCollection),
		kick:     make(chan struct{}, 1),
		hashed:   make(chan struct{}, 1),
		started:  time.Now(),
		periodic: time.Now(),
		dir:      make(map[peer.ID]*dirEntry),
		probing:  make(map[peer.ID]bool),
		atts:     make(map[string]mirror.Attestation),
		probers:  make(map[attKey]int),
		raws:     make(map[string][]byte),
		mine:     make(map[attKey]*attState),
		rtt:      make(map[peer.ID]time.Duration),
	}
	if m.cfg.GatewayURL == "" {
		m.cfg.GatewayURL = n.http.url // the gateway's, announced unless told otherwise
	}
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	m.rnd = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	n.mirror = m
	b := buildInfo()
	m.build.Store(&b)
	if m.cfg.Disabled {
		return nil
	}
	var err error
	if m.priv, err = nodekey.Libp2p(n.key); err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	if m.topic, err = systopic.Join[*pubsub.Topic](n.ps, HeartbeatTopic); err != nil {
		return fmt.Errorf("dapp: open: heartbeats: %w", err)
	}
	// A heartbeat is signed by its peer: it goes in an unsigned pubsub
	// envelope (PublishSigned), and receivers check one signature.
	if err := m.topic.SetAuthenticator(m.authenticateHeartbeat); err != nil {
		return fmt.Errorf("dapp: open: heartbeats: %w", err)
	}
	if _, err := m.topic.SetValidator(m.validateHeartbeat); err != nil {
		return fmt.Errorf("dapp: open: heartbeats: %w", err)
	}
	sub, err := m.topic.Subscribe()
	if err != nil {
		return fmt.Errorf("dapp: open: heartbeats: %w", err)
	}
	events, err := n.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		sub.Close()
		return fmt.Errorf("dapp: open: subscribe to peer events: %w", err)
	}
	n.host.SetStreamHandler(m.proto, m.serve)
	n.closers = append(n.closers, func() error {
		n.host.RemoveStreamHandler(m.proto)
		return nil
	})
	// Watch first, then load, so no change falls between the two.
	watch := m.coll.Watch(n.tasks.Context())
	m.reload(ctx)
	n.tasks.Go(func(ctx context.Context) { m.hashBuild(ctx) })
	n.tasks.Go(func(ctx context.Context) { m.receive(ctx, sub) })
	n.tasks.Go(func(ctx context.Context) { m.watch(ctx, watch) })
	n.tasks.Go(func(ctx context.Context) { m.newcomers(ctx, events) })
	n.tasks.Go(func(ctx context.Context) { m.loop(ctx) })
	return nil
}

// buildInfo is what the running program knows of its own build.
func buildInfo() mirror.Build {
	b := mirror.Build{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	if bi, ok := debugBuildInfo(); ok {
		b.Module, b.Version = bi.module, bi.version
		b.Revision, b.Modified = bi.revision, bi.modified
	}
	return b
}

// hashBuild hashes the executable once, in the background, and announces
// the build as soon as it is known.
func (m *mirrorEngine) hashBuild(ctx context.Context) {
	sum, err := executableHash(ctx, m.cfg.Executable)
	if err != nil {
		if ctx.Err() == nil {
			m.n.log.Warn("dapp: cannot hash the executable; the instance stays unverified", "err", err)
		}
		return
	}
	b := *m.build.Load()
	b.SHA256 = sum
	m.build.Store(&b)
	signal(m.hashed)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (m *mirrorEngine) epochAt(t time.Time) uint64 {
	if t.UnixNano() < 0 {
		return 0
	}
	return uint64(t.UnixNano() / int64(m.cfg.Epoch))
}

// kickedBeats bounds the heartbeats a new instance sends ahead of its
// interval as its first connections come up (see newcomers).
const kickedBeats = 3

// loop sends heartbeats and probes every interval, and heartbeats sooner
// when kicked (a new peer in the first interval, the build hashed).
func (m *mirrorEngine) loop(ctx context.Context) {
	tick := time.NewTicker(m.cfg.Interval)
	defer tick.Stop()
	lastEpoch := m.epochAt(time.Now())
	m.prune(ctx, lastEpoch)
	m.heartbeat(ctx)
	kicked, ticks := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.hashed:
			m.heartbeat(ctx)
		case <-m.kick:
			// A new instance's connections come in bursts: kickedBeats
			// heartbeats at most, spaced by a twentieth of the interval
			// (100 ms at least), each checked by every instance.
			if kicked >= kickedBeats {
				continue
			}
			kicked++
			m.mu.Lock()
			wait := max(100*time.Millisecond, m.cfg.Interval/20) - time.Since(m.lastSent)
			m.mu.Unlock()
			if wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			m.heartbeat(ctx)
		case now := <-tick.C:
			probes := 0
			if ticks++; ticks >= m.beatTicks() {
				ticks = 0
				m.heartbeat(ctx)
				probes = m.cfg.Probes
			}
			m.expire(now)
			m.probeRound(ctx, probes)
			if e := m.epochAt(now); e != lastEpoch {
				lastEpoch = e
				m.prune(ctx, e)
			}
			m.refreshGroups()
		}
	}
}

// beatsPerInterval is how many heartbeats a DApp carries per Interval, at
// most, once it has more instances than that (see beatTicks).
const beatsPerInterval = 32

// beatTicks is how many Intervals apart this instance sends its
// heartbeats: 1 while the directory lists at most beatsPerInterval
// instances, and beyond that as many as keep the DApp at about
// beatsPerInterval heartbeats per Interval. Every instance checks every
// heartbeat, so one each per Interval would cost each instance N checks
// per Interval; this way the cost stays flat, and expiry (Expire
// heartbeat periods) stretches with the period. Instances whose
// directories differ in size by less than a factor Expire agree well
// enough: each expires the others after Expire of its own periods.
func (m *mirrorEngine) beatTicks() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.beatTicksLocked()
}

// beatTicksLocked is beatTicks with m.mu held.
func (m *mirrorEngine) beatTicksLocked() int {
	known := len(m.dir) + 1
	return max(1, (known+beatsPerInterval-1)/beatsPerInterval)
}

// beatPeriod is the time between two heartbeats of an instance, as this
// one estimates it from its directory.
func (m *mirrorEngine) beatPeriod() time.Duration {
	return time.Duration(m.beatTicks()) * m.cfg.Interval
}

// heartbeat signs and publishes the instance's heartbeat.
func (m *mirrorEngine) heartbeat(ctx context.Context) {
	n := m.n
	hb := mirror.Heartbeat{
		Peer: n.ID(), Account: n.Account(), Gateway: m.cfg.GatewayURL, Build: *m.build.Load(),
		Release: m.cfg.Release, Location: mirror.Location(m.cfg.Location), Time: time.Now().UnixNano(),
	}
	for _, a := range n.host.Addrs() {
		if len(hb.Addrs) < mirror.MaxAddrs && len(a.Bytes()) <= mirror.MaxAddrLen {
			hb.Addrs = append(hb.Addrs, a)
		}
	}
	hb.Blobs = m.claims(ctx)
	raw, err := mirror.SealHeartbeat(m.priv, m.appID, hb)
	if err != nil {
		n.log.Error("dapp: heartbeat", "err", err)
		return
	}
	m.mu.Lock()
	m.lastSent, m.ownRaw = time.Now(), raw
	m.mu.Unlock()
	if err := m.topic.PublishSigned(ctx, raw); err != nil && ctx.Err() == nil {
		n.log.Debug("dapp: publish heartbeat", "err", err)
	}
}

// claims is the sample of blobs the heartbeat says the instance holds.
func (m *mirrorEngine) claims(ctx context.Context) []cid.Cid {
	if m.claimAll.Load() {
		recs, err := blobSet{m.n.store.Collection(blobSetCollection)}.List(ctx)
		if err != nil {
			return nil
		}
		var out []cid.Cid
		for _, r := range recs {
			if !r.Burned && len(out) < mirror.MaxBlobs {
				out = append(out, r.CID)
			}
		}
		return out
	}
	m.mu.Lock()
	r := rand.New(rand.NewPCG(m.rnd.Uint64(), m.rnd.Uint64()))
	m.mu.Unlock()
	held, err := m.n.blobs.HeldSample(ctx, mirror.MaxBlobs, r)
	if err != nil {
		return nil
	}
	return held
}

func (m *mirrorEngine) validateHeartbeat(_ context.Context, msg *pubsub.Message) error {
	hb, ok := msg.Decoded.(mirror.Heartbeat)
	if !ok { // in a signed pubsub envelope
		var err error
		if hb, err = mirror.OpenHeartbeat(m.appID, msg.Data); err != nil {
			m.malformed.Add(1)
			return err
		}
		msg.Decoded = hb
	}
	if hb.Peer != msg.From {
		m.malformed.Add(1)
		return fmt.Errorf("dapp: heartbeat of %s published by %s", hb.Peer, msg.From)
	}
	return nil
}

// authenticateHeartbeat is the heartbeat topic's pubsub Authenticator: a
// heartbeat is signed by the peer it names, whose key it returns.
func (m *mirrorEngine) authenticateHeartbeat(payload []byte) ([]byte, any, error) {
	hb, err := mirror.OpenHeartbeat(m.appID, payload)
	if err == nil {
		var pub []byte
		if pub, err = mirror.PublicKeyOf(hb.Peer); err == nil {
			return pub, hb, nil
		}
	}
	m.malformed.Add(1)
	return nil, nil, err
}

// receive takes heartbeats from the topic into the directory.
func (m *mirrorEngine) receive(ctx context.Context, sub *pubsub.Subscription) {
	defer sub.Close()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if msg.From == m.n.ID() {
			continue
		}
		// validateHeartbeat opened these very bytes
		hb, ok := msg.Decoded.(mirror.Heartbeat)
		if !ok || hb.Peer != msg.From {
			continue // the validator counted it
		}
		m.learn(hb, msg.Data, time.Now())
	}
}

// newer reports whether hb is newer than the directory's entry of its peer.
func (m *mirrorEngine) newer(hb mirror.Heartbeat) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.dir[hb.Peer]
	return !ok || e.hb.Time < hb.Time
}

// learn records hb in the directory if it is newer than what is there.
func (m *mirrorEngine) learn(hb mirror.Heartbeat, raw []byte, seen time.Time) {
	if hb.Peer == m.n.ID() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.dir[hb.Peer]; ok && e.hb.Time >= hb.Time {
		return
	}
	m.dir[hb.Peer] = &dirEntry{hb: hb, raw: raw, seen: seen}
}

// expire drops the instances not heard from for Expire heartbeat periods.
func (m *mirrorEngine) expire(now time.Time) {
	limit := time.Duration(m.cfg.Expire) * m.beatPeriod()
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, e := range m.dir {
		if now.Sub(e.seen) > limit {
			delete(m.dir, p)
			delete(m.rtt, p)
		}
	}
}

// newcomers asks the first directorySources instances of the DApp that
// connect for their directories: a new instance learns of the others
// within a round trip or two, instead of a heartbeat period. Later
// connections are not asked: each answer lists every instance (a hundred
// heartbeats in a DApp of a hundred), and probes and peer exchange open
// connections all the time. The others learn of a new instance from its
// heartbeats: in its first Interval an instance kicks one on each new
// connection (kickedBeats at most), so that its own spreads through the
// topic as its mesh forms; an established instance does not (with peer
// exchange moving connections about, that would be a heartbeat every
// 100 ms, checked by every instance).
func (m *mirrorEngine) newcomers(ctx context.Context, events event.Subscription) {
	defer events.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events.Out():
			if !ok {
				return
			}
			id, ok := e.(event.EvtPeerIdentificationCompleted)
			if !ok || !slices.Contains(id.Protocols, m.proto) {
				continue
			}
			if time.Since(m.started) < m.cfg.Interval {
				signal(m.kick)
			}
			if m.dirAsked.Load() < directorySources {
				m.n.tasks.Go(func(ctx context.Context) { m.askDirectory(ctx, id.Peer) })
			}
		}
	}
}

// directorySources is how many instances' directories an instance merges
// into its own (see newcomers).
const directorySources = 4

// askDirectory merges p's directory into this one.
func (m *mirrorEngine) askDirectory(ctx context.Context, p peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	defer cancel()
	// over the connection that made p a newcomer, not a new one if that
	// one closed meanwhile
	a, _, err := m.ask(network.WithNoDial(ctx, "mirror directory"), p, mirror.Request{Directory: true}, nil)
	if err != nil {
		return
	}
	m.dirAsked.Add(1)
	now := time.Now()
	oldest := now.Add(-time.Duration(m.cfg.Expire) * m.beatPeriod())
	for _, raw := range a.Heartbeats {
		// Decoding is cheap, checking the signature is not: only a
		// heartbeat that would change the directory is checked.
		hb, err := mirror.DecodeHeartbeat(raw)
		if err != nil {
			m.malformed.Add(1)
			continue
		}
		if hb.Peer == m.n.ID() || !m.newer(hb) || time.Unix(0, hb.Time).Before(oldest) {
			continue
		}
		if hb, err = mirror.OpenHeartbeat(m.appID, raw); err != nil {
			m.malformed.Add(1)
			continue
		}
		// Passed on, so seen no later than it says it was sent.
		seen := now
		if t := time.Unix(0, hb.Time); t.Before(now) {
			seen = t
		}
		if seen.Before(oldest) {
			continue
		}
		m.learn(hb, raw, seen)
	}
}

// ask sends one request to p and reads the answer. It returns the stream's
// remote address too.
func (m *mirrorEngine) ask(ctx context.Context, p peer.ID, req mirror.Request, declared []multiaddr.Multiaddr) (mirror.Answer, netip.Addr, error) {
	b, err := mirror.EncodeRequest(req)
	if err != nil {
		return mirror.Answer{}, netip.Addr{}, err
	}
	s, err := m.n.host.NewStream(ctx, p, m.proto)
	if err != nil {
		return mirror.Answer{}, netip.Addr{}, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	observed := observedAddr(s.Conn(), declared)
	if err := mirror.WriteFrame(s, b); err != nil {
		_ = s.Reset()
		return mirror.Answer{}, observed, err
	}
	_ = s.CloseWrite()
	resp, err := mirror.ReadFrame(bufio.NewReader(s), mirror.MaxFrame)
	if err != nil {
		_ = s.Reset()
		return mirror.Answer{}, observed, err
	}
	a, err := mirror.DecodeAnswer(resp)
	if err != nil {
		m.malformed.Add(1)
		return mirror.Answer{}, observed, err
	}
	return a, observed, nil
}

// observedAddr is the IP address this instance reaches the peer of conn
// at: the address dialled, or the one its packets come from. On one host,
// TCP dials between loopback addresses leave from 127.0.0.1 whatever
// address the dialler listens on, so a loopback source address that the
// peer does not declare tells nothing and is left out.
func observedAddr(conn network.Conn, declared []multiaddr.Multiaddr) netip.Addr {
	ip, err := manet.ToIP(conn.RemoteMultiaddr())
	if err != nil {
		return netip.Addr{}
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	a = a.Unmap()
	if conn.Stat().Direction == network.DirInbound && a.IsLoopback() {
		for _, d := range declared {
			if dip, err := manet.ToIP(d); err == nil && dip.Equal(ip) {
				return a
			}
		}
		return netip.Addr{}
	}
	return a
}

// serve answers one request on the replicas protocol.
func (m *mirrorEngine) serve(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(m.cfg.ProbeTimeout + time.Second))
	b, err := mirror.ReadFrame(bufio.NewReader(s), 1024)
	if err != nil {
		_ = s.Reset()
		return
	}
	req, err := mirror.DecodeRequest(b)
	if err != nil {
		m.malformed.Add(1)
		_ = s.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(m.n.tasks.Context(), m.cfg.ProbeTimeout)
	defer cancel()
	var a mirror.Answer
	if req.Directory {
		a.Heartbeats = m.directory()
	} else {
		a.Seqs = storeSeqs(m.n.store)
		if req.Blob != nil {
			if c, err := cid.Cast(req.Blob); err == nil {
				if d, err := m.n.blobs.ProveRange(ctx, c, req.Offset, req.Length, req.Nonce); err == nil {
					a.Digest = d[:]
				}
			}
		}
	}
	out, err := mirror.EncodeAnswer(a)
	if err != nil {
		_ = s.Reset()
		return
	}
	_ = mirror.WriteFrame(s, out)
}

// directory is the signed heartbeats this instance can pass on, its own
// first.
func (m *mirrorEngine) directory() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	if m.ownRaw != nil {
		out = append(out, m.ownRaw)
	}
	for _, e := range m.dir {
		if len(out) == mirror.MaxDirectory {
			break
		}
		out = append(out, e.raw)
	}
	return out
}

func storeSeqs(s *store.Store) uint64 {
	var sum uint64
	for _, v := range s.Versions() {
		sum += v
	}
	return sum
}

// probeRound starts probes of up to probes random instances of the
// directory that are not being probed already (Probes in the rounds that
// send a heartbeat, none in the others: in a large DApp an instance
// probes once per heartbeat period, so that the DApp's probes, each a
// connection opened and an attestation every instance checks, stay
// about as many per Interval whatever its size), waits for them at most
// half an interval, then writes the attestations due. A probe still running
// then (an instance gone without closing its connections answers only at
// ProbeTimeout) is counted when it ends and written by a later round: a
// dead instance never delays the heartbeats, nor the probes of the others.
func (m *mirrorEngine) probeRound(ctx context.Context, probes int) {
	m.mu.Lock()
	var targets []mirror.Heartbeat
	for p, e := range m.dir {
		if !m.probing[p] {
			targets = append(targets, e.hb)
		}
	}
	slices.SortFunc(targets, func(a, b mirror.Heartbeat) int { return strings.Compare(string(a.Peer), string(b.Peer)) })
	m.rnd.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	if len(targets) > probes {
		targets = targets[:probes]
	}
	for _, hb := range targets {
		m.probing[hb.Peer] = true
	}
	m.mu.Unlock()
	ended := make(chan struct{}, len(targets))
	started := 0
	for _, hb := range targets {
		ok := m.n.tasks.Go(func(ctx context.Context) {
			r := m.probe(ctx, hb)
			now := time.Now()
			m.mu.Lock()
			delete(m.probing, hb.Peer)
			if ctx.Err() == nil { // closing: the probe was cut short, not failed
				m.countLocked(attKey{m.epochAt(now), hb.Peer}, r, now)
			}
			m.mu.Unlock()
			ended <- struct{}{}
		})
		if ok {
			started++
			continue
		}
		m.mu.Lock()
		delete(m.probing, hb.Peer)
		m.mu.Unlock()
	}
	wait := time.NewTimer(m.cfg.Interval / 2)
	defer wait.Stop()
	for range started {
		select {
		case <-ended:
			continue
		case <-wait.C:
		case <-ctx.Done():
			return
		}
		break
	}
	m.attest(ctx)
}

// probeResult is the outcome of one probe.
type probeResult struct {
	hb         mirror.Heartbeat
	outcome    int // 0 or a mirror.Fail reason
	challenged bool
	rtt        time.Duration
	observed   netip.Addr
}

// probe probes one instance.
func (m *mirrorEngine) probe(ctx context.Context, hb mirror.Heartbeat) probeResult {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	defer cancel()
	req := mirror.Request{Nonce: make([]byte, mirror.NonceSize)}
	_, _ = crand.Read(req.Nonce)
	var blob cid.Cid
	var size uint64
	// Challenge on a blob it claims that this instance holds too, so that
	// checking the answer never fetches (and keeps) data from others.
	var held []cid.Cid
	for _, c := range hb.Blobs {
		if ok, err := m.n.blobs.Has(ctx, c); err == nil && ok {
			held = append(held, c)
		}
	}
	if len(held) > 0 {
		m.mu.Lock()
		blob = held[m.rnd.IntN(len(held))]
		m.mu.Unlock()
		if st, err := m.n.blobs.Stat(ctx, blob); err == nil && st.Size > 0 {
			size = st.Size
			req.Blob = blob.Bytes()
			m.mu.Lock()
			req.Offset = m.rnd.Uint64N(size)
			m.mu.Unlock()
			req.Length = min(challengeLength, size-req.Offset)
		}
	}
	mine := storeSeqs(m.n.store)
	dialled := m.n.host.Network().Connectedness(hb.Peer) != network.Connected
	start := time.Now()
	a, observed, err := m.ask(ctx, hb.Peer, req, hb.Addrs)
	rtt := time.Since(start)
	if dialled {
		m.hangUp(hb.Peer)
	}
	m.probes.Add(1)
	outcome := 0
	switch {
	case err != nil:
		outcome = mirror.FailUnreachable
		m.n.log.Debug("dapp: probe failed", "peer", hb.Peer, "err", err)
	case mine > a.Seqs && mine-a.Seqs > m.cfg.MaxBehind:
		outcome = mirror.FailBehind
	case req.Blob != nil:
		want, cerr := m.expectedDigest(ctx, blob, req)
		if cerr != nil {
			// This instance could not read the range itself: the
			// challenge proves nothing either way.
			req.Blob = nil
		} else if !bytes.Equal(a.Digest, want[:]) {
			outcome = mirror.FailChallenge
		}
	}
	if m.reportDown.Load() {
		outcome = mirror.FailUnreachable
	}
	if err == nil {
		m.mu.Lock()
		m.rtt[hb.Peer] = rtt
		m.mu.Unlock()
	}
	return probeResult{hb: hb, outcome: outcome, challenged: req.Blob != nil, rtt: rtt, observed: observed}
}

// hangUp closes the connection a probe opened to p, unless the instance
// wants more peers than it has (peer exchange then keeps it) or p is
// probing this instance over it. In a DApp of more instances than an
// instance keeps connections to, most probes dial: left open, each would
// push the two instances over their bound, and peer exchange would trim
// another connection, from the mesh, in its place.
func (m *mirrorEngine) hangUp(p peer.ID) {
	if m.n.px == nil || !m.n.px.Satisfied() {
		return
	}
	conns := m.n.host.Network().ConnsToPeer(p)
	for _, c := range conns {
		for _, s := range c.GetStreams() {
			if s.Protocol() == m.proto && s.Stat().Direction == network.DirInbound {
				return
			}
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

// expectedDigest computes the challenge's answer from the copy held here.
func (m *mirrorEngine) expectedDigest(ctx context.Context, c cid.Cid, req mirror.Request) ([32]byte, error) {
	return m.n.blobs.ProveRange(ctx, c, req.Offset, req.Length, req.Nonce)
}

// attest writes the attestations due to the replicated collection, signed,
// in one batch; the probes' outcomes are counted as they end (countLocked).
//
// Every replica verifies every attestation written, and applies every
// delta, so writing each one every round would cost the DApp a signature
// check per instance, per probe, per replica: with tens of instances, more
// than everything else they do. An attestation is written at once when
// the probe's outcome differs from the one before (a failure shows at
// once), when it is the first of the probed instance's first quickProbers
// (a newcomer is attested as soon as it is probed), for a past epoch, and
// on the last round of its epoch. Otherwise, its counts stay here until
// the instance's next periodic write, every attestEvery, which takes all
// of them in one delta: one delta per instance per attestEvery in a
// steady DApp, instead of one per probe round. Writes at once are spaced
// like heartbeats, by the heartbeat period (beatTicks): in a large DApp
// they would otherwise come every round from every instance while many
// start, or while an overloaded DApp's probes time out and succeed in
// turn, each one more delta for every instance to check and apply, and
// the DApp would not recover. So the DApp carries about beatsPerInterval
// of them per Interval whatever its size, and a failure shows within a
// heartbeat period.
func (m *mirrorEngine) attest(ctx context.Context) {
	m.mu.Lock()
	due := m.dueLocked(time.Now())
	atts := make([]mirror.Attestation, len(due))
	for i, st := range due {
		atts[i] = st.a
	}
	m.mu.Unlock()
	if len(atts) == 0 {
		return
	}
	batch := m.n.store.Batch()
	for _, a := range atts {
		raw, err := mirror.SealAttestation(m.priv, m.appID, a)
		if err != nil {
			m.n.log.Error("dapp: attestation", "err", err)
			continue
		}
		batch.Put(m.coll, attestationID(a.Epoch, m.n.ID(), a.Probed), attestationDoc{Epoch: a.Epoch, A: raw})
	}
	if err := batch.Commit(ctx); err != nil && ctx.Err() == nil {
		m.n.log.Warn("dapp: record attestations", "err", err)
	}
}

// dueLocked marks written and returns the attestations to write now (see
// attest), and forgets those of epochs before the last. m.mu is held.
func (m *mirrorEngine) dueLocked(now time.Time) []*attState {
	e := m.epochAt(now)
	last := m.epochAt(now.Add(m.cfg.Interval)) != e
	every := max(m.cfg.Interval, m.cfg.Epoch/attestWrites)
	periodic := now.Sub(m.periodic) >= every
	if periodic {
		m.periodic = now
	}
	// spaced by the heartbeat period, but a round's timer firing a little
	// early does not put a write off for a whole round
	soon := now.Sub(m.lastWrite) >= time.Duration(m.beatTicksLocked())*m.cfg.Interval-m.cfg.Interval/2
	var due []*attState
	for k, st := range m.mine {
		if !st.dirty {
			continue
		}
		quick := soon && (st.written.IsZero() && m.probers[k] < quickProbers || st.outcome != st.writtenOutcome)
		if periodic || k.epoch < e || last || quick {
			st.dirty, st.written, st.writtenOutcome = false, now, st.outcome
			due = append(due, st)
		}
	}
	if len(due) > 0 {
		m.lastWrite = now
	}
	for old := range m.mine {
		if old.epoch+1 < e {
			delete(m.mine, old)
		}
	}
	return due
}

// attestWrites is how many times per epoch, at least, an attestation that
// changes is written (see attest).
const attestWrites = 12

// quickProbers is how many instances' first attestations of an instance
// are written as soon as they are made, each epoch (see attest).
const quickProbers = 3

// attState is one of this instance's attestations of the current or the
// last epoch: its cumulative counts, and what was last written of it.
type attState struct {
	a              mirror.Attestation
	outcome        int  // of the last probe
	dirty          bool // counts not written yet
	written        time.Time
	writtenOutcome int
}

// countLocked adds one probe's outcome to the attestation k. m.mu is held.
func (m *mirrorEngine) countLocked(k attKey, r probeResult, now time.Time) {
	hb, outcome, challenged, rtt, observed := r.hb, r.outcome, r.challenged, r.rtt, r.observed
	st, ok := m.mine[k]
	if !ok {
		// Resume the counts from the collection after a restart.
		st = &attState{a: m.atts[attestationID(k.epoch, m.n.ID(), hb.Peer)]}
		st.a.Prober, st.a.Probed, st.a.Epoch = m.n.ID(), hb.Peer, k.epoch
		m.mine[k] = st
	}
	a := &st.a
	a.Probes++
	switch outcome {
	case 0:
		a.OK++
	case mirror.FailUnreachable:
		a.Unreachable++
	case mirror.FailBehind:
		a.Behind++
	case mirror.FailChallenge:
		a.Failed++
	}
	if challenged {
		a.Challenges++
	}
	if outcome != mirror.FailUnreachable {
		a.RTTMicros = uint32(min(rtt.Microseconds(), 1<<31))
		if observed.IsValid() {
			a.Observed = observed
		}
	}
	a.Time = now.UnixNano()
	a.SHA256, a.Platform = hb.Build.SHA256, hb.Build.Platform()
	a.Location = hb.Location
	st.outcome, st.dirty = outcome, true
}

// attestationDoc is an attestation as a document of the collection.
type attestationDoc struct {
	Epoch uint64 `json:"epoch"`
	A     []byte `json:"a"` // the signed attestation
}

func attestationID(epoch uint64, prober, probed peer.ID) string {
	return strconv.FormatUint(epoch, 10) + "/" + prober.String() + "/" + probed.String()
}

func parseAttestationID(id string) (epoch uint64, prober, probed peer.ID, err error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 {
		return 0, "", "", fmt.Errorf("attestation ID %.80q: want epoch/prober/probed", id)
	}
	if epoch, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return 0, "", "", fmt.Errorf("attestation ID %.80q: epoch: %v", id, err)
	}
	if prober, err = peer.Decode(parts[1]); err != nil {
		return 0, "", "", fmt.Errorf("attestation ID %.80q: prober: %v", id, err)
	}
	if probed, err = peer.Decode(parts[2]); err != nil {
		return 0, "", "", fmt.Errorf("attestation ID %.80q: probed: %v", id, err)
	}
	if attestationID(epoch, prober, probed) != id {
		return 0, "", "", fmt.Errorf("attestation ID %.80q is not canonical", id)
	}
	return epoch, prober, probed, nil
}

// validateAttestation is the attestations collection's validator, the
// same on every replica: a document is put whole, by the instance of the
// prober it names, and holds that prober's signed attestation of the
// instance and epoch its ID names; only that instance deletes it.
func validateAttestation(appID string) store.Validator {
	return func(w store.Write) error {
		epoch, prober, probed, err := parseAttestationID(w.ID)
		if err != nil {
			return err
		}
		acct, err := mirror.AccountOf(prober)
		if err != nil {
			return err
		}
		if w.Author != acct {
			return fmt.Errorf("attestation %.80q written by %s, not by its prober's account %s", w.ID, w.Author, acct)
		}
		switch w.Kind {
		case "delete":
			return nil
		case "put":
		default:
			return fmt.Errorf("attestation %.80q: %s refused; attestations are put whole", w.ID, w.Kind)
		}
		if len(w.Fields) != 2 || w.Fields["epoch"] == nil || w.Fields["a"] == nil {
			return fmt.Errorf("attestation %.80q: want exactly the fields epoch and a", w.ID)
		}
		var e uint64
		if err := json.Unmarshal(w.Fields["epoch"], &e); err != nil || e != epoch {
			return fmt.Errorf("attestation %.80q: field epoch %.20s, want %d", w.ID, w.Fields["epoch"], epoch)
		}
		if len(w.Fields["a"]) > 2*mirror.MaxEnvelope {
			return fmt.Errorf("attestation %.80q: %d bytes over the bound", w.ID, len(w.Fields["a"]))
		}
		var raw []byte
		if err := json.Unmarshal(w.Fields["a"], &raw); err != nil {
			return fmt.Errorf("attestation %.80q: field a: %v", w.ID, err)
		}
		a, err := mirror.OpenAttestation(appID, raw)
		if err != nil {
			return err
		}
		if a.Prober != prober || a.Probed != probed || a.Epoch != epoch {
			return fmt.Errorf("attestation %.80q holds %s's attestation of %s in epoch %d", w.ID, a.Prober, a.Probed, a.Epoch)
		}
		return nil
	}
}

// reload reads the whole collection into the cache.
func (m *mirrorEngine) reload(ctx context.Context) {
	atts := make(map[string]mirror.Attestation)
	raws := make(map[string][]byte)
	for doc, err := range m.coll.Find(ctx) {
		if err != nil {
			m.n.log.Warn("dapp: load attestations", "err", err)
			break
		}
		if a, raw, ok := m.decodeDoc(doc.Data); ok {
			atts[doc.ID], raws[doc.ID] = a, raw
		}
	}
	m.mu.Lock()
	m.atts, m.raws = atts, raws
	clear(m.probers)
	for _, a := range atts {
		m.probers[attKey{a.Epoch, a.Probed}]++
	}
	m.mu.Unlock()
	m.refreshGroups()
}

func (m *mirrorEngine) decodeDoc(data []byte) (mirror.Attestation, []byte, bool) {
	var d attestationDoc
	if err := json.Unmarshal(data, &d); err != nil {
		m.malformed.Add(1)
		return mirror.Attestation{}, nil, false
	}
	// The collection's validator opened it, signature included, before the
	// store took it: decoding is enough.
	a, err := mirror.DecodeAttestation(d.A)
	if err != nil {
		m.malformed.Add(1)
		return mirror.Attestation{}, nil, false
	}
	return a, d.A, true
}

// watch keeps the cache in step with the collection.
func (m *mirrorEngine) watch(ctx context.Context, ch <-chan store.Change) {
	for c := range ch {
		if c.Lagged {
			m.reload(ctx)
			continue
		}
		if c.Deleted {
			m.mu.Lock()
			m.forgetLocked(c.ID)
			m.mu.Unlock()
			continue
		}
		if a, raw, ok := m.decodeDoc(c.Doc); ok {
			m.mu.Lock()
			m.forgetLocked(c.ID)
			m.atts[c.ID], m.raws[c.ID] = a, raw
			m.probers[attKey{a.Epoch, a.Probed}]++
			m.mu.Unlock()
		}
	}
}

// forgetLocked drops the attestation id from the cache. m.mu is held.
func (m *mirrorEngine) forgetLocked(id string) {
	a, ok := m.atts[id]
	if !ok {
		return
	}
	k := attKey{a.Epoch, a.Probed}
	if m.probers[k]--; m.probers[k] <= 0 {
		delete(m.probers, k)
	}
	delete(m.atts, id)
	delete(m.raws, id)
}

// prune deletes this instance's attestations of epochs more than
// KeepEpochs before e, and forgets everyone's.
func (m *mirrorEngine) prune(ctx context.Context, e uint64) {
	if e < uint64(m.cfg.KeepEpochs) {
		return
	}
	cutoff := e - uint64(m.cfg.KeepEpochs)
	var own []string
	m.mu.Lock()
	for id, a := range m.atts {
		if a.Epoch < cutoff {
			if a.Prober == m.n.ID() {
				own = append(own, id)
			}
			m.forgetLocked(id)
		}
	}
	m.mu.Unlock()
	for _, id := range own {
		if err := m.coll.Delete(ctx, id); err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) {
			m.n.log.Warn("dapp: prune attestation", "id", id, "err", err)
		}
	}
}

// attestations returns the cached attestations of epochs from..to.
func (m *mirrorEngine) attestations(from, to uint64) []mirror.Attestation {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []mirror.Attestation
	for _, a := range m.atts {
		if a.Epoch >= from && a.Epoch <= to {
			out = append(out, a)
		}
	}
	return out
}

func (m *mirrorEngine) rawAttestations(e uint64) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, a := range m.atts {
		if a.Epoch == e {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = m.raws[id]
	}
	return out
}

// window is the epochs Replica.Availability and Group are computed over.
func (m *mirrorEngine) window(now time.Time) (uint64, uint64) {
	e := m.epochAt(now)
	if e == 0 {
		return 0, 0
	}
	return e - 1, e
}

// refreshGroups recomputes the diversity groups blobs places copies by.
func (m *mirrorEngine) refreshGroups() {
	from, to := m.window(time.Now())
	atts := m.attestations(from, to)
	m.mu.Lock()
	members := m.membersLocked(atts)
	m.mu.Unlock()
	g := mirror.Groups(members)
	m.n.groups.Store(&g)
}

// membersLocked is what grouping knows of every instance: the addresses
// probers observed (attestations), the location it declares (directory).
func (m *mirrorEngine) membersLocked(atts []mirror.Attestation) []mirror.Member {
	by := make(map[peer.ID]*mirror.Member)
	get := func(p peer.ID) *mirror.Member {
		if x := by[p]; x != nil {
			return x
		}
		x := &mirror.Member{ID: p}
		by[p] = x
		return x
	}
	for _, a := range atts {
		x := get(a.Probed)
		if a.Observed.IsValid() && !slices.Contains(x.Observed, a.Observed) {
			x.Observed = append(x.Observed, a.Observed)
		}
		if x.Location == (mirror.Location{}) {
			x.Location = a.Location
		}
	}
	for p, e := range m.dir {
		get(p).Location = e.hb.Location
	}
	get(m.n.ID()).Location = mirror.Location(m.cfg.Location)
	out := make([]mirror.Member, 0, len(by))
	for _, x := range by {
		out = append(out, *x)
	}
	return out
}

// groupOf is blobs' Config.Group: the diversity group of p as of the last
// refresh, "" when unknown.
func (n *Node) groupOf(p peer.ID) string {
	if g := n.groups.Load(); g != nil {
		return (*g)[p]
	}
	return ""
}

// list builds the directory as Replicas.List returns it.
func (m *mirrorEngine) list(releases []mirror.Release) []Replica {
	n := m.n
	now := time.Now()
	from, to := m.window(now)
	atts := m.attestations(from, to)
	scores := mirror.Scores(atts, from, to)
	m.mu.Lock()
	groups := mirror.Groups(m.membersLocked(atts))
	self := mirror.Heartbeat{
		Peer: n.ID(), Account: n.Account(), Gateway: m.cfg.GatewayURL, Build: *m.build.Load(),
		Release: m.cfg.Release, Location: mirror.Location(m.cfg.Location), Time: m.lastSent.UnixNano(),
	}
	for _, a := range n.host.Addrs() {
		self.Addrs = append(self.Addrs, a)
	}
	entries := []dirEntry{{hb: self, seen: m.lastSent}}
	for _, e := range m.dir {
		entries = append(entries, *e)
	}
	rtts := make(map[peer.ID]time.Duration, len(m.rtt))
	for p, d := range m.rtt {
		rtts[p] = d
	}
	m.mu.Unlock()
	out := make([]Replica, 0, len(entries))
	for _, e := range entries {
		hb := e.hb
		r := Replica{
			ID: hb.Peer, Account: hb.Account, Gateway: hb.Gateway, Release: hb.Release,
			Build:    Build(hb.Build),
			Location: Location(hb.Location), LastSeen: e.seen, Self: hb.Peer == n.ID(),
			Group: groups[hb.Peer],
		}
		if r.Group == "" {
			r.Group = hb.Peer.String()
		}
		if addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: hb.Peer, Addrs: hb.Addrs}); err == nil {
			r.Addrs = addrs
		}
		r.VerifiedRelease, r.Verified = mirror.Verify(hb.Build, releases)
		sc := scores[hb.Peer]
		r.Availability, r.Probers = sc.Availability(), sc.Probers
		if !r.Self {
			r.RTT = rtts[hb.Peer]
			if r.RTT == 0 {
				r.RTT = n.host.Peerstore().LatencyEWMA(hb.Peer)
			}
		}
		out = append(out, r)
	}
	sortReplicas(out)
	return out
}
