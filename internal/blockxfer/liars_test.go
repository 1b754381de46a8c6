package blockxfer

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestBanTableBounded: a party making up identities cannot grow the ban
// table past maxTrackedPeers, and a ban ends.
func TestBanTableBounded(t *testing.T) {
	d := NewLiarDetector(Hooks{})
	ids := make([]peer.ID, maxTrackedPeers+10)
	for i := range ids {
		ids[i] = peer.ID(fmt.Sprintf("peer-%d", i))
		d.mu.Lock()
		d.ban(ids[i])
		d.mu.Unlock()
	}
	if len(d.bans) != maxTrackedPeers {
		t.Fatalf("ban table holds %d peers, want %d", len(d.bans), maxTrackedPeers)
	}
	last := ids[len(ids)-1]
	if !d.Banned(last) {
		t.Fatal("the latest ban was dropped")
	}
	d.mu.Lock()
	d.bans[last] = time.Now().Add(-time.Second)
	d.mu.Unlock()
	if d.Banned(last) {
		t.Fatal("an expired ban still holds")
	}
}
