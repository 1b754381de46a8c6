package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/storesync"
	"github.com/dpaas/dpaas/internal/systopic"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TopicName is the store's pubsub topic (namespaced by AppID by pubsub).
const TopicName = "store/deltas"

// ProtocolID returns the catch-up stream protocol of an app.
func ProtocolID(appID string) protocol.ID {
	return protocol.ID("/dpaas/" + appID + "/store/sync/1.0.0")
}

// SyncStatus is the progress of the latest catch-up from one peer.
type SyncStatus struct {
	Peer     peer.ID
	Started  time.Time
	Finished time.Time // zero while running
	Total    uint64    // deltas the peer said it would send
	Received uint64
	Applied  uint64
	Err      error // why the last catch-up ended early, if it did
}

// Done reports whether the catch-up has finished.
func (st SyncStatus) Done() bool { return !st.Finished.IsZero() }

// SyncStatus returns the progress of the latest catch-up from each peer.
func (s *Store) SyncStatus() []SyncStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SyncStatus, 0, len(s.syncs))
	for _, st := range s.syncs {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b SyncStatus) int { return compareBytes([]byte(a.Peer), []byte(b.Peer)) })
	return out
}

func (s *Store) setSync(p peer.ID, f func(*SyncStatus)) {
	s.mu.Lock()
	st := s.syncs[p.String()]
	if st == nil {
		st = &SyncStatus{Peer: p}
		s.syncs[p.String()] = st
	}
	f(st)
	s.mu.Unlock()
}

type network struct {
	s      *Store
	h      host.Host
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	proto  protocol.ID
	ctx    context.Context
	cancel context.CancelFunc
	notify *lpnet.NotifyBundle

	unvalidate func()

	want chan peer.ID
	out  chan []byte // durable local deltas to push

	mu       sync.Mutex
	queued   map[peer.ID]bool // catch-ups queued; true: an exchange's (settled)
	found    atomic.Bool      // an exchange brought deltas since the last turn
	marks    [16]logMark      // recent log positions, for settled answers
	markNext int              // where the next mark goes in marks
	handlers sync.WaitGroup
	closed   bool
}

// startNetwork joins the store's topic and starts its goroutines. ctx is
// Open's: a cancelled Open starts nothing; once started, the network runs
// until Close, whatever becomes of ctx.
func startNetwork(ctx context.Context, s *Store) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	// The store's topic is reserved: applications cannot join it.
	topic, err := systopic.Join[*pubsub.Topic](s.cfg.PubSub, TopicName)
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	nctx, cancel := context.WithCancel(context.Background())
	n := &network{
		s: s, h: s.cfg.Host, topic: topic, sub: sub, proto: ProtocolID(s.cfg.AppID),
		ctx: nctx, cancel: cancel, want: make(chan peer.ID, 256), out: make(chan []byte, 4096), queued: make(map[peer.ID]bool),
	}
	// Pushed deltas are signed by their authors, who publish them: the
	// delta's signature names the sender, and pubsub checks no other.
	if err := topic.SetAuthenticator(authenticatePush); err != nil {
		sub.Close()
		cancel()
		return fmt.Errorf("store: open: %w", err)
	}
	unvalidate, err := topic.SetValidator(n.validate)
	if err != nil {
		sub.Close()
		cancel()
		return fmt.Errorf("store: open: %w", err)
	}
	n.unvalidate = unvalidate
	s.net.Store(n)
	n.h.SetStreamHandler(n.proto, n.serve)
	n.notify = &lpnet.NotifyBundle{ConnectedF: func(_ lpnet.Network, c lpnet.Conn) { n.wantSync(c.RemotePeer()) }}
	n.h.Network().Notify(n.notify)
	s.netWG.Add(4)
	go n.publish()
	go n.receive()
	go n.exchange()
	go n.catchUps()
	for _, p := range n.h.Network().Peers() {
		n.wantSync(p)
	}
	return nil
}

func (n *network) close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.h.Network().StopNotify(n.notify)
	n.h.RemoveStreamHandler(n.proto)
	n.unvalidate()
	n.cancel()
	n.sub.Close()
	n.handlers.Wait()
}

// enter tracks a stream handler so close can wait for it.
func (n *network) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.handlers.Add(1)
	return true
}

// queueDelta hands a durable local delta to the publisher without ever
// blocking the write path; if the queue is full the delta is left to the
// announcements and catch-up.
func (n *network) queueDelta(block []byte) {
	select {
	case n.out <- block:
	default:
		n.s.log.Debug("store: push queue full; peers will catch up")
	}
}

func (n *network) publish() {
	defer n.s.netWG.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case b := <-n.out:
			n.publishDelta(b)
		}
	}
}

func (n *network) publishDelta(block []byte) {
	if n.ctx.Err() != nil {
		return
	}
	msg, err := storesync.Encode(&storesync.Message{Delta: block})
	if err != nil {
		return
	}
	err = n.topic.PublishSigned(n.ctx, msg)
	if errors.Is(err, pubsub.ErrTooLarge) {
		err = n.announceTooLarge(block)
	}
	if err != nil && n.ctx.Err() == nil {
		n.s.log.Debug("store: push delta", "err", err)
	}
}

// announceTooLarge sends its neighbours, in place of a delta too large
// for a pubsub message, its author's version: they catch up from this
// replica at once, instead of when one next compares versions with it
// (exchange), and the others have it from them by exchange.
func (n *network) announceTooLarge(block []byte) error {
	d, _, err := delta.Decode(block)
	if err != nil {
		return err
	}
	v := storesync.Version{Author: d.Author.Bytes(), Seq: d.Seq}
	msg, err := storesync.Encode(&storesync.Message{Announce: &storesync.Announce{Versions: []storesync.Version{v}}})
	if err != nil {
		return err
	}
	return n.topic.Publish(n.ctx, msg)
}

// source is the peer to catch up from for what p published: p when this
// replica is connected to it, else a random neighbour on the topic (gossip
// brought p's message through one). Catch-ups never dial (catchUp): a
// replica of a large DApp hears from many it is not connected to, and a
// connection opened for a catch-up would be over the bound of peer
// exchange, and trimmed, and opened again by the next.
func (n *network) source(p peer.ID) peer.ID {
	if n.h.Network().Connectedness(p) == lpnet.Connected {
		return p
	}
	if peers := n.topic.Peers(); len(peers) > 0 {
		return peers[rand.N(len(peers))]
	}
	return p
}

// wantSync queues a catch-up from p, unless one is queued already; it
// reports whether it queued one.
func (n *network) wantSync(p peer.ID) bool { return n.queueSync(p, false) }

// queueSync queues a catch-up from p; settled asks p only for what it held
// an AnnounceInterval ago (exchange). A catch-up for everything replaces
// a settled one queued.
func (n *network) queueSync(p peer.ID, settled bool) bool {
	if p == n.h.ID() {
		return false
	}
	n.mu.Lock()
	was, queued := n.queued[p]
	if queued && was && !settled {
		n.queued[p] = false
	}
	if n.closed || queued {
		n.mu.Unlock()
		return false
	}
	n.queued[p] = settled
	n.mu.Unlock()
	select {
	case n.want <- p:
		return true
	default:
		n.mu.Lock()
		delete(n.queued, p)
		n.mu.Unlock()
		return false
	}
}

// receive drains the store's subscription. Deltas were verified by
// validate, before GossipSub forwarded them, and applied there or queued
// for the applier (inbox.go); versions are compared with neighbours over
// streams (exchange).
func (n *network) receive() {
	defer n.s.netWG.Done()
	for {
		if _, err := n.sub.Next(n.ctx); err != nil {
			return
		}
	}
}

// pushedDelta is a delta pushedDelta by its author, as authenticatePush decoded it.
type pushedDelta struct {
	block []byte
	d     *delta.Delta
	id    cid.Cid
}

// authenticatePush is the store topic's pubsub Authenticator: it recovers
// the author of a pushedDelta delta (publishDelta), who is its sender.
func authenticatePush(payload []byte) ([]byte, any, error) {
	msg, err := storesync.DecodeMessage(payload)
	if err != nil {
		return nil, nil, err
	}
	if msg.Delta == nil {
		return nil, nil, errors.New("store: an unsigned envelope holds no delta")
	}
	d, id, pub, err := delta.DecodeSignedKey(msg.Delta)
	if err != nil {
		return nil, nil, err
	}
	return pub, &pushedDelta{block: msg.Delta, d: d, id: id}, nil
}

// validate runs in GossipSub's validation step, before a message is
// delivered or forwarded: a delta is verified and applied here, so a
// malformed, forged or refused delta is never passed on to other peers.
func (n *network) validate(_ context.Context, m *pubsub.Message) error {
	// The decoded delta is for this validator alone (the store's
	// subscription reads nothing): GossipSub keeps its recent messages,
	// with what they carry, for gossip, and a decoded delta is several
	// times its block. A writer filling the store held every delta of the
	// last seconds decoded.
	p, pushed := m.Decoded.(*pushedDelta)
	m.Decoded = nil
	if m.From == n.h.ID() {
		return nil
	}
	if pushed {
		// Pushed by its author, and authenticated (authenticatePush).
		return n.validateDelta(m, p.block, func() (*incoming, error) {
			return &incoming{d: p.d, id: p.id, block: p.block, from: m.From, invalid: p.d.Validate()}, nil
		})
	}
	msg, err := storesync.DecodeMessage(m.Data)
	if err != nil {
		n.s.rejected.Add(1)
		n.s.log.Warn("store: malformed gossip message", "from", m.From, "err", err)
		return err
	}
	if msg.Announce != nil {
		// A delta too large to push (announceTooLarge): its author's
		// neighbours catch up from it at once, and pass it on by
		// exchange. The announcement itself goes no further, so a
		// peer announcing versions it does not hold costs only its own
		// neighbours a catch-up each.
		if len(msg.Announce.Versions) == 1 && n.behind(msg.Announce.Versions) {
			n.wantSync(n.source(m.From))
		}
		return pubsub.ErrIgnore
	}
	return n.validateDelta(m, msg.Delta, func() (*incoming, error) { return decodeRemote(msg.Delta, m.From) })
}

// validateDelta applies, or queues for the applier, a delta that gossip
// brought in m, decoded and authenticated by decode.
func (n *network) validateDelta(m *pubsub.Message, block []byte, decode func() (*incoming, error)) error {
	// A delta already here (often: one that a catch-up brought first) was
	// checked when it came; hashing it is much cheaper than recovering its
	// signer again.
	if id, err := delta.CID(block); err == nil && !n.s.surelyNew(block) {
		if ok, err := n.s.space.Has(cidKey(tBlock, id)); err == nil && ok {
			n.s.dups.Add(1)
			return nil
		}
		if ok, err := n.s.space.Has(cidKey(tReject, id)); err == nil && ok {
			return errRefused // refused here before: never passed on
		}
	}
	x, err := decode()
	if err != nil {
		n.s.rejected.Add(1)
		n.s.log.Warn("store: refused a delta", "from", m.From, "err", err)
		return err
	}
	if n.s.offerRemote(x) {
		return nil // valid whatever the applier finds: it applies it with others (inbox.go)
	}
	res, err := n.s.applyRemoteWait([]*incoming{x}, n.ctx.Done())
	if err != nil {
		return pubsub.ErrIgnore // closing: neither accept nor blame
	}
	if res.rejected > 0 {
		return errRefused
	}
	if res.waiting > 0 && n.s.Stats().Pending > 0 {
		n.wantSync(n.source(m.From))
	}
	return nil
}

var errRefused = errors.New("store: delta refused by a validator")

// exchange compares the replica's versions with one neighbour, a random
// peer of the store's topic, at each of its turns: it asks the neighbour
// for the deltas it lacks, as a catch-up does (catchup.go), but only
// those the neighbour held an AnnounceInterval before (what gossip should
// have brought by now), and the neighbour answers with nothing when it
// has nothing more, in a stream of two small frames. Turns come every
// AnnounceInterval, on average, while exchanges find deltas, and twice as
// far apart after each that finds none, up to maxExchangeWait intervals
// (at a random point between half and one and a half of the wait, so
// replicas started together do not keep in step).
//
// Versions used to be gossiped to the whole DApp each interval. Every
// replica then decoded every announcement, each naming every author, and
// a DApp of N cost each replica O(N) per interval however announcements
// were thinned out; when an overloaded DApp's gossip dropped messages,
// thinning failed and it never recovered. An exchange costs each replica
// one stream it opens and about one it serves per turn whatever N. A
// delta gossip lost is most often found at once anyway: the author's next
// delta arrives without its parent, and the replica catches up from the
// peer that sent it. The exchange finds the others, the last deltas of a
// burst: from any neighbour that holds them, within a few turns, and a
// delta that only its writer holds reaches a neighbour as soon as one
// picks the writer, then spreads from neighbour to neighbour in a number
// of turns that grows with the logarithm of N.
func (n *network) exchange() {
	defer n.s.netWG.Done()
	iv := n.s.cfg.AnnounceInterval
	wait := iv
	t := time.NewTimer(wait/2 + rand.N(wait+1))
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		peers := n.topic.Peers()
		asked := len(peers) > 0 && n.queueSync(peers[rand.N(len(peers))], true)
		if asked {
			n.s.announces.Add(1)
		} else {
			n.s.announcesSkipped.Add(1)
		}
		wait = nextExchangeWait(wait, iv, n.found.Swap(false), asked)
		t.Reset(wait/2 + rand.N(wait+1))
	}
}

// nextExchangeWait is the wait before the next turn of exchange, after a
// wait of wait: one interval when the last exchanges found deltas, or when
// this turn asked no one (alone, the first neighbour is asked soon);
// twice as long otherwise, up to maxExchangeWait intervals.
func nextExchangeWait(wait, iv time.Duration, found, asked bool) time.Duration {
	if found || !asked {
		return iv
	}
	return min(2*wait, maxExchangeWait*iv)
}

// maxExchangeWait is the longest wait between two turns of exchange, in
// AnnounceIntervals.
const maxExchangeWait = 8

// logMark is the last log position at a moment.
type logMark struct {
	at    time.Time
	order uint64
}

// settledOrder is the last log position this replica had reached age ago,
// as far as it knows: it records where the log is now, and returns the
// newest position recorded at least age ago (0 if none is that old). Every
// answer records one, so a replica asked about once an interval knows
// positions to within an interval.
func (n *network) settledOrder(age time.Duration) uint64 {
	now := time.Now()
	cur := n.s.snap.Load().order
	n.mu.Lock()
	defer n.mu.Unlock()
	var best logMark
	for _, m := range n.marks {
		if !m.at.IsZero() && now.Sub(m.at) >= age && m.at.After(best.at) {
			best = m
		}
	}
	// a mark every quarter of age at most, so the ring spans four ages
	if last := n.marks[(n.markNext+len(n.marks)-1)%len(n.marks)]; last.at.IsZero() || now.Sub(last.at) >= age/4 {
		n.marks[n.markNext] = logMark{at: now, order: cur}
		n.markNext = (n.markNext + 1) % len(n.marks)
	}
	return best.order
}

// behind reports whether versions hold anything this replica lacks.
func (n *network) behind(vs []storesync.Version) bool {
	mine := n.s.snap.Load().vv
	for _, v := range vs {
		if v.Seq > mine.get(common.BytesToAddress(v.Author)) {
			return true
		}
	}
	return false
}

func versionsOf(vv versions) []storesync.Version {
	out := make([]storesync.Version, 0, len(vv))
	for a, seq := range vv {
		out = append(out, storesync.Version{Author: a.Bytes(), Seq: seq.Load()})
	}
	slices.SortFunc(out, func(a, b storesync.Version) int { return compareBytes(a.Author, b.Author) })
	return out
}
