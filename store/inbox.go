package store

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The gossip inbox. A delta pushed over pubsub is verified (decoded, its
// signature recovered) on GossipSub's validation goroutine. Before the
// inbox, that goroutine then handed the one delta to the applier and
// waited for it to be applied and committed: every remote delta cost the
// applier a Pebble batch and a commit of its own, the syncer a hand-off,
// and the validation goroutine two more hand-offs, all on the processors
// the local writers need. A delta that no validator can refuse needs no
// answer from the applier: the signature decides alone whether it is
// valid, and one whose parents are missing is accepted and parked all the
// same. So such a delta goes into the inbox, and the applier applies
// whatever has gathered there in one batch and one commit, without a
// sync: remote deltas are durable at their author, and a replica that
// loses them in a crash fetches them again by catch-up (see doc.go,
// Faults). Deltas that touch a collection with a validator still wait for
// the applier's verdict, since a refused delta must not be forwarded.

// remoteInbox holds verified remote deltas waiting for the applier.
type remoteInbox struct {
	mu sync.Mutex
	in []*incoming
	// ready has room for one signal: the applier takes everything
	// queued when it takes the signal, so one is enough.
	ready chan struct{}
}

// maxInbox bounds the deltas in the inbox; when it is full, a delta takes
// the synchronous path, which holds GossipSub's validation goroutine and
// so slows the intake down to what the applier manages.
const maxInbox = 4096

// offer queues x for the applier unless the inbox is full.
func (ib *remoteInbox) offer(x *incoming) bool {
	ib.mu.Lock()
	if len(ib.in) >= maxInbox {
		ib.mu.Unlock()
		return false
	}
	ib.in = append(ib.in, x)
	ib.mu.Unlock()
	select {
	case ib.ready <- struct{}{}:
	default:
	}
	return true
}

// take empties the inbox.
func (ib *remoteInbox) take() []*incoming {
	ib.mu.Lock()
	in := ib.in
	ib.in = nil
	ib.mu.Unlock()
	return in
}

// refusable reports whether a collection's validator may refuse x, which
// then needs the applier's verdict before GossipSub passes it on.
func (s *Store) refusable(x *incoming) bool {
	if x.invalid != nil {
		return true // refused by the rule every replica applies (validity.go)
	}
	for i := range x.d.Ops {
		if s.validator(x.d.Ops[i].Collection) != nil {
			return true
		}
	}
	return false
}

// offerRemote queues a verified delta from gossip for the applier, if no
// validator can refuse it and the inbox has room, and reports whether it
// did.
func (s *Store) offerRemote(x *incoming) bool {
	if s.closed.Load() || s.refusable(x) {
		return false
	}
	return s.inbox.offer(x)
}

// applyInbox runs on the applier: it applies every delta in the inbox in
// one batch, and asks the peers that sent deltas whose parents are missing
// for a catch-up.
func (s *Store) applyInbox() {
	in := s.inbox.take()
	if len(in) == 0 {
		return
	}
	res := s.applyRemote(in)
	if res.err != nil {
		s.log.Debug("store: applying pushed deltas", "deltas", len(in), "err", res.err)
		return // catch-up fetches them again
	}
	if res.waiting == 0 || s.causal.Parked() == 0 {
		return
	}
	// A parent is usually missing only because it is still being
	// verified on another of GossipSub's validation goroutines, and will
	// be here in a moment: ask the sender for a catch-up only if the
	// delta still waits at the applier's next tick (askForOrphans).
	for _, x := range in {
		if s.causal.Parks(x.id, x) && len(s.orphans) < maxInbox {
			s.orphans = append(s.orphans, x)
		}
	}
}

// askForOrphans runs on the applier's tick: for each delta from the inbox
// that still waits for a parent, it asks the peer that pushed it for a
// catch-up.
func (s *Store) askForOrphans() {
	if len(s.orphans) == 0 {
		return
	}
	orphans := s.orphans
	s.orphans = nil
	n := s.net.Load()
	if n == nil {
		return
	}
	asked := make(map[peer.ID]bool)
	for _, x := range orphans {
		if s.causal.Parks(x.id, x) && !asked[x.from] {
			asked[x.from] = true
			n.wantSync(n.source(x.from))
		}
	}
}
