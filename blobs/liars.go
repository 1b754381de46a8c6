package blobs

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/ipfs/boxo/bitswap"
	bsmsg "github.com/ipfs/boxo/bitswap/message"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxForgedBlocks is how many blocks nobody asked for a peer may send
// before it is disconnected.
const maxForgedBlocks = 3

// liarDetector watches the blocks peers send. Bitswap names a received
// block by the hash of its bytes, so a block whose bytes were forged comes
// out under a CID that nobody wants and that is not held here: bitswap
// drops it, but the session that asked that peer waits on it for a while.
// A peer that sends such blocks repeatedly is disconnected, so sessions
// move on to honest peers at once.
type liarDetector struct {
	s  *Store
	bs atomic.Pointer[bitswap.Bitswap] // set once bitswap.New returns

	mu     sync.Mutex
	forged map[peer.ID]int
}

func (d *liarDetector) MessageReceived(p peer.ID, msg bsmsg.BitSwapMessage) {
	blks := msg.Blocks()
	bs := d.bs.Load()
	if len(blks) == 0 || bs == nil {
		return
	}
	wanted := make(map[string]struct{})
	for _, c := range bs.GetWantlist() {
		wanted[string(c.Hash())] = struct{}{}
	}
	bad := 0
	for _, b := range blks {
		if _, ok := wanted[string(b.Cid().Hash())]; ok {
			continue
		}
		// A late duplicate of a block that arrived from someone else.
		if held, err := d.s.blocks.Has(context.Background(), cid.NewCidV1(cid.Raw, b.Cid().Hash())); err == nil && held {
			continue
		}
		bad++
	}
	if bad == 0 {
		return
	}
	d.s.metrics.badBlocks.Add(uint64(bad))
	d.mu.Lock()
	d.forged[p] += bad
	drop := d.forged[p] >= maxForgedBlocks
	if drop {
		delete(d.forged, p)
	}
	d.mu.Unlock()
	if !drop || !d.s.enter() {
		return
	}
	d.s.cfg.Logger.Warn("blobs: disconnecting a peer that sends blocks nobody asked for", "peer", p)
	go func() {
		defer d.s.exit()
		_ = d.s.cfg.Host.Network().ClosePeer(p)
	}()
}

func (d *liarDetector) MessageSent(peer.ID, bsmsg.BitSwapMessage) {}
