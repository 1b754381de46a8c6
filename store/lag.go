package store

import (
	"github.com/dpaas/dpaas/internal/storesync"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Announcements and lag. A peer that writes steadily announces versions
// that include the delta it is pushing at that moment, so on every
// announcement every other replica looked one delta behind and opened a
// catch-up stream for a delta already on its way (with three replicas and
// a sequential writer: one catch-up per replica per announcement, each a
// stream, a request and a log lookup at both ends). A replica is behind
// for real when it still lacks what a peer announced one interval
// earlier: anything pushed then has arrived since, unless it was lost. So
// an announcement is compared with the versions the same peer announced
// before it.

// maxAnnouncers bounds the announcements remembered, one per peer.
const maxAnnouncers = 4096

// behindAnnounced records a peer's announced versions and reports whether
// this replica still lacks some of what that peer announced the time
// before.
func (n *network) behindAnnounced(p peer.ID, vs []storesync.Version) bool {
	n.mu.Lock()
	prev, seen := n.announced[p]
	if !seen && len(n.announced) >= maxAnnouncers {
		clear(n.announced)
	}
	n.announced[p] = vs
	n.mu.Unlock()
	return seen && n.behind(prev)
}
