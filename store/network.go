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

	want     chan peer.ID
	out      chan []byte   // durable local deltas to push
	heard    atomic.Uint64 // announcements covering base heard since this replica's last turn
	heardAll atomic.Uint64 // all announcements heard since then
	// base is what this replica held at its last announcement turn: the
	// versions an announcement must cover to count in heard.
	base atomic.Pointer[map[common.Address]uint64]

	mu        sync.Mutex
	queued    map[peer.ID]bool
	announced map[peer.ID][]storesync.Version // each peer's last announcement (lag.go)
	handlers  sync.WaitGroup
	closed    bool
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
		announced: make(map[peer.ID][]storesync.Version),
	}
	n.base.Store(&s.snap.Load().vv)
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
	go n.announce()
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
	if err := n.topic.Publish(n.ctx, msg); err != nil && !errors.Is(err, pubsub.ErrTooLarge) && n.ctx.Err() == nil {
		n.s.log.Debug("store: push delta", "err", err)
	}
}

func (n *network) wantSync(p peer.ID) {
	if p == n.h.ID() {
		return
	}
	n.mu.Lock()
	if n.closed || n.queued[p] {
		n.mu.Unlock()
		return
	}
	n.queued[p] = true
	n.mu.Unlock()
	select {
	case n.want <- p:
	default:
		n.mu.Lock()
		delete(n.queued, p)
		n.mu.Unlock()
	}
}

func (n *network) receive() {
	defer n.s.netWG.Done()
	for {
		m, err := n.sub.Next(n.ctx)
		if err != nil {
			return
		}
		if m.From == n.h.ID() {
			continue
		}
		msg, ok := m.Decoded.(*storesync.Message) // by validate
		if !ok {
			var err error
			if msg, err = storesync.DecodeMessage(m.Data); err != nil {
				n.s.rejected.Add(1)
				n.s.log.Warn("store: malformed gossip message", "from", m.From, "err", err)
				continue
			}
		}
		if msg.Announce != nil {
			n.heardAll.Add(1)
			if n.covers(msg.Announce.Versions) {
				n.heard.Add(1)
			}
			if n.behindAnnounced(m.From, msg.Announce.Versions) {
				n.wantSync(m.From)
			}
		}
		// deltas were verified by validate, before GossipSub forwarded
		// them, and applied there or queued for the applier (inbox.go)
	}
}

// validate runs in GossipSub's validation step, before a message is
// delivered or forwarded: a delta is verified and applied here, so a
// malformed, forged or refused delta is never passed on to other peers.
func (n *network) validate(_ context.Context, m *pubsub.Message) error {
	if m.From == n.h.ID() {
		return nil
	}
	msg, err := storesync.DecodeMessage(m.Data)
	if err != nil {
		n.s.rejected.Add(1)
		n.s.log.Warn("store: malformed gossip message", "from", m.From, "err", err)
		return err
	}
	if msg.Announce != nil {
		m.Decoded = msg // receive reads it
		return nil
	}
	// A delta already here (often: one that a catch-up brought first) was
	// checked when it came; hashing it is much cheaper than recovering its
	// signer again.
	if id, err := delta.CID(msg.Delta); err == nil && !n.s.surelyNew(msg.Delta) {
		if ok, err := n.s.space.Has(cidKey(tBlock, id)); err == nil && ok {
			n.s.dups.Add(1)
			return nil
		}
		if ok, err := n.s.space.Has(cidKey(tReject, id)); err == nil && ok {
			return errRefused // refused here before: never passed on
		}
	}
	x, err := decodeRemote(msg.Delta, m.From)
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
		n.wantSync(m.From)
	}
	return nil
}

var errRefused = errors.New("store: delta refused by a validator")

// covers reports whether a peer announced versions that hold everything
// this replica held at its last turn (and maybe more): then this
// replica's own announcement would tell no one anything that one did not,
// but the deltas it received or wrote since, which gossip is still
// pushing.
func (n *network) covers(vs []storesync.Version) bool {
	mine := *n.base.Load()
	if len(vs) < len(mine) {
		return false
	}
	theirs := make(map[common.Address]uint64, len(vs))
	for _, v := range vs {
		if len(v.Author) == common.AddressLength {
			theirs[common.BytesToAddress(v.Author)] = v.Seq
		}
	}
	for a, seq := range mine {
		if theirs[a] < seq {
			return false
		}
	}
	return true
}

// behind reports whether a peer's versions hold anything this replica lacks.
func (n *network) behind(vs []storesync.Version) bool {
	mine := n.s.snap.Load().vv
	for _, v := range vs {
		if v.Seq > mine[common.BytesToAddress(v.Author)] {
			return true
		}
	}
	return false
}

// announceRedundancy is how many announcements covering its versions a
// replica must have heard since its last turn to skip its own.
const announceRedundancy = 3

// announceBudget is how many announcements per interval the replicas of a
// DApp make between them, about, while they disagree (see announceTurn).
const announceBudget = 8

// announceTurn decides whether a replica announces at its turn, having
// heard covering announcements that cover what it held at its last turn,
// out of all heard since; r is uniform in [0, 1). It skips when enough
// others covered it. While replicas disagree (after a partition heals, or
// while many start at once) each would announce every interval, N
// announcements that every replica decodes: N² work per interval, enough
// to keep a loaded DApp from ever catching up. Then each announces with
// probability announceBudget/all, so the DApp makes about announceBudget
// per interval whatever N. A laggard still hears several replicas ahead of
// it each interval and catches up from them (a catch-up brings everything
// the peer holds that it lacks), and a replica alone with a delta gossip
// lost announces within all/announceBudget intervals on average.
func announceTurn(covering, all uint64, r float64) bool {
	if covering >= announceRedundancy {
		return false
	}
	return all <= announceBudget || r < announceBudget/float64(all)
}

// announce gossips the replica's versions once per AnnounceInterval, at a
// random point of the interval's second half, unless it has heard, since
// its last turn, announceRedundancy others announce versions that hold
// everything it held at that turn (suppression in the manner of the
// Trickle algorithm, RFC 6206). Replicas that agree then announce about
// announceRedundancy times per interval between them, however many they
// are, instead of once each. Comparing with the versions of the last turn
// rather than the latest keeps that true while the DApp writes: a delta
// received a moment ago is not yet everywhere, but gossip is pushing it,
// and an announcement would only race it. A replica that has held for a
// whole interval what others lack hears no announcement covering it, so
// it announces at its next turn, and a lagging one learns it is behind
// from whichever replicas announce.
func (n *network) announce() {
	defer n.s.netWG.Done()
	iv := n.s.cfg.AnnounceInterval
	t := time.NewTimer(iv/2 + rand.N(iv/2+1))
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		// the next turn is in the second half of the next interval
		t.Reset(iv - iv/2 + rand.N(iv/2+1))
		sn := n.s.snap.Load()
		n.base.Store(&sn.vv)
		if !announceTurn(n.heard.Swap(0), n.heardAll.Swap(0), rand.Float64()) {
			n.s.announcesSkipped.Add(1)
			continue
		}
		a := &storesync.Announce{Versions: versionsOf(sn.vv)}
		for i, h := range sn.heads {
			if i == storesync.MaxHeads {
				break
			}
			a.Heads = append(a.Heads, h.Bytes())
		}
		msg, err := storesync.Encode(&storesync.Message{Announce: a})
		if err == nil {
			err = n.topic.Publish(n.ctx, msg)
		}
		if err == nil {
			n.s.announces.Add(1)
		}
		if err != nil && n.ctx.Err() == nil {
			n.s.log.Debug("store: announce", "err", err)
		}
	}
}

func versionsOf(vv map[common.Address]uint64) []storesync.Version {
	out := make([]storesync.Version, 0, len(vv))
	for a, seq := range vv {
		out = append(out, storesync.Version{Author: a.Bytes(), Seq: seq})
	}
	slices.SortFunc(out, func(a, b storesync.Version) int { return compareBytes(a.Author, b.Author) })
	return out
}
