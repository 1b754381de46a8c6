package blockxfer

import (
	"fmt"
	"testing"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
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

// TestBannedOnce: blocks a liar sent before its ban closed its connection
// are counted as bad, and do not ban it a second time (a loaded machine
// takes a while to close the connection, and bitswap has read them).
func TestBannedOnce(t *testing.T) {
	var bad, bans int
	d := NewLiarDetector(Hooks{
		BadBlocks: func(n uint64) { bad += int(n) },
		Banned:    func() { bans++ },
		Enter:     func() bool { return false }, // no host to disconnect from
	})
	liar := peer.ID("liar")
	for i := range 2 * MaxForgedBlocks {
		msg := bsmsg.New(false)
		msg.AddBlock(rawBlock(fmt.Sprintf("unasked %d", i)))
		d.MessageReceived(liar, msg)
	}
	if bad != 2*MaxForgedBlocks || bans != 1 || !d.Banned(liar) {
		t.Fatalf("%d bad blocks, %d bans, banned %v; want %d, 1, true", bad, bans, d.Banned(liar), 2*MaxForgedBlocks)
	}
}
