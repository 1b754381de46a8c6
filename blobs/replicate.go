package blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dpaas/dpaas/internal/blockxfer"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// fetchIdleTimeout abandons a replication attempt that has received
	// nothing for this long; it is retried at the next reconcile.
	fetchIdleTimeout = 30 * time.Second
	// holdsTimeout bounds one question to a peer about what it holds.
	holdsTimeout = 5 * time.Second
)

// replicator keeps this replica's share of the DApp's blobs. One goroutine
// (loop) owns every decision; fetches run on up to FetchWorkers goroutines.
type replicator struct {
	s    *Store
	self peer.ID
	sub  event.Subscription

	kick      chan struct{} // reconcile soon
	fetchKick chan struct{} // look for pending pins soon

	mu       sync.Mutex
	lastSeen map[peer.ID]time.Time          // replicas of the DApp seen connected
	inflight map[cid.Cid]context.CancelFunc // fetches running
}

func newReplicator(s *Store) (*replicator, error) {
	h := s.cfg.Host
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtPeerProtocolsUpdated),
	})
	if err != nil {
		return nil, err
	}
	return &replicator{
		s:         s,
		self:      h.ID(),
		sub:       sub,
		kick:      make(chan struct{}, 1),
		fetchKick: make(chan struct{}, 1),
		lastSeen:  make(map[peer.ID]time.Time),
		inflight:  make(map[cid.Cid]context.CancelFunc),
	}, nil
}

func (r *replicator) start() {
	r.s.cfg.Host.SetStreamHandler(r.s.hasProto, r.serveHolds)
	r.s.cfg.Host.SetStreamHandler(r.s.blocksProto, r.s.direct.Serve)
	r.s.goTracked(r.events)
	r.s.goTracked(r.loop)
	r.s.goTracked(r.fetchLoop)
}

// stop unhooks the replicator from the host; the Store's context, already
// cancelled, ends its goroutines.
func (r *replicator) stop() {
	r.s.cfg.Host.RemoveStreamHandler(r.s.hasProto)
	r.s.cfg.Host.RemoveStreamHandler(r.s.blocksProto)
	_ = r.sub.Close()
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// announce tells the DHT, when there is one, that this replica holds c.
func (r *replicator) announce(c cid.Cid) {
	if r.s.cfg.Routing == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.s.ctx, time.Minute)
	defer cancel()
	if err := r.s.cfg.Routing.Provide(ctx, c, true); err != nil && r.s.ctx.Err() == nil {
		r.s.cfg.Logger.Debug("blobs: provide failed", "cid", c, "err", err)
	}
}

// events turns peer arrivals and departures into reconciles.
func (r *replicator) events() {
	for {
		select {
		case <-r.s.ctx.Done():
			return
		case _, ok := <-r.sub.Out():
			if !ok {
				return
			}
			signal(r.kick)
		}
	}
}

func (r *replicator) loop() {
	ctx := r.s.ctx
	ticker := time.NewTicker(r.s.cfg.ReconcileInterval)
	defer ticker.Stop()
	grace := time.NewTimer(time.Hour)
	defer grace.Stop()
	watch := r.s.cfg.Registry.Watch(ctx)
	next := r.reconcile()
	for {
		if next > 0 {
			grace.Reset(next)
		}
		select {
		case <-ctx.Done():
			return
		case rec, ok := <-watch:
			if !ok {
				watch = nil
				continue
			}
			live, _ := r.liveSet(time.Now())
			r.consider(ctx, rec, live)
			next = 0
		case <-r.kick:
			next = r.reconcile()
		case <-ticker.C:
			next = r.reconcile()
		case <-grace.C:
			next = r.reconcile()
		}
	}
}

// liveSet returns the replicas that count as alive, self included and
// sorted, and how long until the next departed one stops counting (0 when
// none is pending).
func (r *replicator) liveSet(now time.Time) ([]peer.ID, time.Duration) {
	h := r.s.cfg.Host
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range h.Network().Peers() {
		if h.Network().Connectedness(p) != network.Connected {
			continue
		}
		if protos, err := h.Peerstore().SupportsProtocols(p, r.s.hasProto); err == nil && len(protos) > 0 {
			r.lastSeen[p] = now
		}
	}
	live := []peer.ID{r.self}
	var next time.Duration
	for p, seen := range r.lastSeen {
		left := r.s.cfg.HolderGrace - now.Sub(seen)
		if left < 0 {
			delete(r.lastSeen, p)
			continue
		}
		live = append(live, p)
		if seen.Before(now) && (next == 0 || left < next) {
			next = left + time.Millisecond
		}
	}
	slices.Sort(live)
	return live, next
}

// holders picks, by rendezvous hashing, the k replicas of live that should
// hold c. Every replica with the same view picks the same ones.
func holders(c cid.Cid, live []peer.ID, k int) []peer.ID {
	if k <= 0 || k >= len(live) {
		return live
	}
	type scored struct {
		p     peer.ID
		score [sha256.Size]byte
	}
	all := make([]scored, len(live))
	for i, p := range live {
		h := sha256.New()
		h.Write(c.Bytes())
		h.Write([]byte(p))
		var sc scored
		sc.p = p
		copy(sc.score[:], h.Sum(nil))
		all[i] = sc
	}
	slices.SortFunc(all, func(a, b scored) int { return -bytes.Compare(a.score[:], b.score[:]) })
	out := make([]peer.ID, k)
	for i := range out {
		out[i] = all[i].p
	}
	return out
}

// reconcile compares the whole blob set with what is held here.
func (r *replicator) reconcile() time.Duration {
	ctx := r.s.ctx
	live, next := r.liveSet(time.Now())
	recs, err := r.s.cfg.Registry.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.s.cfg.Logger.Warn("blobs: list blob set", "err", err)
		}
		return next
	}
	for _, rec := range recs {
		if ctx.Err() != nil {
			return next
		}
		r.consider(ctx, rec, live)
	}
	signal(r.fetchKick)
	return next
}

// consider brings this replica in line with one record: burned blobs are
// unpinned, assigned ones pinned (and so fetched), and a copy held beyond
// the replication factor dropped once every assigned holder has it.
func (r *replicator) consider(ctx context.Context, rec Record, live []peer.ID) {
	s := r.s
	c := rec.CID
	if rec.Burned {
		had, err := s.unpin(c)
		if err != nil {
			s.cfg.Logger.Warn("blobs: unpin burned blob", "cid", c, "err", err)
			return
		}
		r.cancelFetch(c)
		if had {
			s.requestGC()
		}
		return
	}
	assigned := placeHolders(c, live, s.cfg.ReplicationFactor, s.cfg.Group)
	if slices.Contains(assigned, r.self) {
		added, err := s.setPinIf(c, pin{state: pinPending, size: rec.Size}, func(_ pin, had bool) bool { return !had })
		if err != nil {
			s.cfg.Logger.Warn("blobs: pin", "cid", c, "err", err)
			return
		}
		if added {
			signal(r.fetchKick)
		}
		return
	}
	p, had, err := s.getPin(c)
	if err != nil || !had {
		return
	}
	if p.state == pinPending {
		// Not ours to fetch (any more): nothing whole is held here, so
		// dropping the pin loses nothing; GC takes any partial blocks.
		if _, err := s.unpin(c); err != nil {
			s.cfg.Logger.Warn("blobs: unpin unassigned blob", "cid", c, "err", err)
			return
		}
		r.cancelFetch(c)
		s.requestGC()
		return
	}
	for _, h := range assigned {
		if !r.peerHolds(ctx, h, c) {
			return
		}
	}
	if _, err := s.unpin(c); err != nil {
		s.cfg.Logger.Warn("blobs: unpin surplus copy", "cid", c, "err", err)
		return
	}
	s.requestGC()
}

func (r *replicator) cancelFetch(c cid.Cid) {
	r.mu.Lock()
	cancel := r.inflight[c]
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// fetchLoop starts a fetch for every pending pin, FetchWorkers at a time.
func (r *replicator) fetchLoop() {
	ctx := r.s.ctx
	sem := make(chan struct{}, r.s.cfg.FetchWorkers)
	ticker := time.NewTicker(r.s.cfg.ReconcileInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.fetchKick:
		case <-ticker.C:
		}
		var todo []cid.Cid
		err := r.s.eachPin(func(c cid.Cid, p pin) error {
			if p.state == pinPending {
				todo = append(todo, c)
			}
			return ctx.Err()
		})
		if err != nil {
			continue
		}
		for _, c := range todo {
			r.mu.Lock()
			_, busy := r.inflight[c]
			r.mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			fctx, cancel := context.WithCancel(ctx)
			r.mu.Lock()
			r.inflight[c] = cancel
			r.mu.Unlock()
			r.s.goTracked(func() {
				defer func() { <-sem }()
				defer func() {
					r.mu.Lock()
					delete(r.inflight, c)
					r.mu.Unlock()
					cancel()
				}()
				r.fetch(fctx, c)
			})
		}
	}
}

// fetch brings every block of c here and marks its pin complete.
func (r *replicator) fetch(ctx context.Context, c cid.Cid) {
	s := r.s
	var progress merkledag.ProgressTracker
	var read atomic.Int64
	ctx, cancel := context.WithCancel(progress.DeriveContext(ctx))
	defer cancel()
	// Give up when nothing arrives for fetchIdleTimeout: the callbacks
	// of one timer never overlap, so last needs no lock.
	last := int64(-1)
	var watchdog *time.Timer
	watchdog = time.AfterFunc(fetchIdleTimeout, func() {
		if n := int64(progress.Value()) + read.Load(); n != last {
			last = n
			watchdog.Reset(fetchIdleTimeout)
			return
		}
		cancel()
	})
	defer watchdog.Stop()

	err := r.fetchFile(ctx, c, &read)
	if errors.Is(err, ErrNotFile) {
		err = merkledag.FetchGraph(ctx, c, s.dag)
	}
	if err != nil {
		if s.ctx.Err() == nil {
			s.cfg.Logger.Debug("blobs: replicate", "cid", c, "err", err)
		}
		return
	}
	complete, err := s.completeLocally(ctx, c)
	if err != nil || !complete {
		return
	}
	size := uint64(0)
	if st, err := s.Stat(ctx, c); err == nil {
		size = st.Size
	}
	done, err := s.setPinIf(c, pin{state: pinComplete, size: size}, func(old pin, had bool) bool {
		return had && old.state == pinPending
	})
	if err != nil {
		s.cfg.Logger.Warn("blobs: pin", "cid", c, "err", err)
		return
	}
	if done {
		s.cfg.Logger.Debug("blobs: replicated", "cid", c, "bytes", size)
		if s.cfg.Routing != nil {
			s.goTracked(func() { r.announce(c) })
		}
	}
}

// fetchFile brings the blocks of the UnixFS file or directory c here by
// reading it: the reader takes them from a replica holding the whole DAG
// when there is one (internal/blockxfer), with its read-ahead; a directory's files
// are read so, a few at a time (tree.go). read counts the bytes read.
func (r *replicator) fetchFile(ctx context.Context, c cid.Cid, read *atomic.Int64) error {
	// The blob is in the DApp's set: someone added it, and its holders may
	// not be connected yet. Wait for them (until the idle watchdog).
	ses, err := r.s.openRoot(ctx, ctx, c, true)
	if err != nil {
		return err
	}
	return ses.fetchAll(ctx, read)
}

// countingDiscard is io.Discard that counts what it is given.
type countingDiscard struct{ n *atomic.Int64 }

func (w countingDiscard) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// serveHolds answers one holdings question (internal/blockxfer) with the
// state of the blob's pin here.
func (r *replicator) serveHolds(st network.Stream) {
	s := r.s
	defer st.Close()
	if !s.enter() {
		_ = st.Reset()
		return
	}
	defer s.exit()
	err := blockxfer.ServeHolds(st, holdsTimeout, func(c cid.Cid) byte {
		if p, ok, err := s.getPin(c); err == nil && ok {
			return byte(p.state)
		}
		return blockxfer.HoldNone
	})
	if err != nil {
		s.metrics.badRequest.Add(1)
		s.cfg.Logger.Debug("blobs: bad holdings request", "peer", st.Conn().RemotePeer(), "err", err)
		_ = st.Reset()
	}
}

// peerHolds asks p whether it holds the whole of c. Self is asked locally.
func (r *replicator) peerHolds(ctx context.Context, p peer.ID, c cid.Cid) bool {
	st, ok := r.peerState(ctx, p, c)
	return ok && st == pinComplete
}

// peerState asks p whether it keeps c, and how far it has got; ok is false
// when p could not be asked (not a replica of the DApp, gone, or silent).
// Self is asked locally.
func (r *replicator) peerState(ctx context.Context, p peer.ID, c cid.Cid) (pinState, bool) {
	if p == r.self {
		pn, ok, err := r.s.getPin(c)
		if err != nil {
			return pinNone, false
		}
		if !ok {
			return pinNone, true
		}
		return pn.state, true
	}
	a, ok := blockxfer.AskHolds(ctx, r.s.cfg.Host, p, r.s.hasProto, c, holdsTimeout)
	return pinState(a), ok
}
