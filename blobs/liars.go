package blobs

import (
	"context"
	"sync"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	bsnetwork "github.com/ipfs/boxo/bitswap/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// maxForgedBlocks is how many blocks it never asked for a peer may send
	// before it is disconnected.
	maxForgedBlocks = 3
	// askedGeneration bounds the memory of what was asked of each peer:
	// after this many distinct CIDs the older half is forgotten.
	askedGeneration = 4096
	// maxTrackedPeers bounds how many peers are tracked at once.
	maxTrackedPeers = 1024
)

// liarDetector catches peers that send forged blocks.
//
// Bitswap names a received block by the hash of its bytes, so a forged
// block never passes for the one asked for: bitswap drops it as unwanted.
// But the session that asked that peer keeps waiting for the real block
// for a while, which stalls reads. An honest bitswap server only sends
// blocks that were asked of it (want-block, or want-have for tiny blocks),
// so the detector remembers every CID this instance asked of each peer and
// counts received blocks that are not among them; a peer that sends
// maxForgedBlocks of them is disconnected, and sessions move on at once.
type liarDetector struct {
	s *Store

	mu     sync.Mutex
	asked  map[peer.ID]*askedSet
	forged map[peer.ID]int
}

func newLiarDetector(s *Store) *liarDetector {
	return &liarDetector{s: s, asked: make(map[peer.ID]*askedSet), forged: make(map[peer.ID]int)}
}

// askedSet is a two-generation set of multihashes.
type askedSet struct {
	cur, old map[string]struct{}
}

func (a *askedSet) add(k string) {
	if len(a.cur) >= askedGeneration {
		a.old, a.cur = a.cur, make(map[string]struct{}, askedGeneration)
	}
	a.cur[k] = struct{}{}
}

func (a *askedSet) has(k string) bool {
	if _, ok := a.cur[k]; ok {
		return true
	}
	_, ok := a.old[k]
	return ok
}

// sent records the CIDs msg asks of p.
func (d *liarDetector) sent(p peer.ID, msg bsmsg.BitSwapMessage) {
	entries := msg.Wantlist()
	if len(entries) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.asked[p]
	if a == nil {
		if len(d.asked) >= maxTrackedPeers {
			d.asked = make(map[peer.ID]*askedSet)
		}
		a = &askedSet{cur: make(map[string]struct{})}
		d.asked[p] = a
	}
	for _, e := range entries {
		if !e.Cancel {
			a.add(string(e.Cid.Hash()))
		}
	}
}

// MessageReceived counts the blocks in msg that were never asked of p.
func (d *liarDetector) MessageReceived(p peer.ID, msg bsmsg.BitSwapMessage) {
	blks := msg.Blocks()
	if len(blks) == 0 {
		return
	}
	d.mu.Lock()
	a := d.asked[p]
	bad := 0
	for _, b := range blks {
		if a == nil || !a.has(string(b.Cid().Hash())) {
			bad++
		}
	}
	if bad == 0 {
		d.mu.Unlock()
		return
	}
	d.forged[p] += bad
	drop := d.forged[p] >= maxForgedBlocks
	if drop || len(d.forged) >= maxTrackedPeers {
		delete(d.forged, p)
	}
	d.mu.Unlock()
	d.s.metrics.badBlocks.Add(uint64(bad))
	if !drop || !d.s.enter() {
		return
	}
	d.s.cfg.Logger.Warn("blobs: disconnecting a peer that sends blocks it was not asked for", "peer", p)
	go func() {
		defer d.s.exit()
		_ = d.s.cfg.Host.Network().ClosePeer(p)
	}()
}

// MessageSent is part of bitswap's tracer interface; the client's wants
// are seen through watchedNetwork instead, as the client does not trace
// what it sends.
func (d *liarDetector) MessageSent(peer.ID, bsmsg.BitSwapMessage) {}

// watchedNetwork is bitswap's network with every outgoing message shown to
// the liar detector.
type watchedNetwork struct {
	bsnetwork.BitSwapNetwork
	d *liarDetector
}

func (w *watchedNetwork) SendMessage(ctx context.Context, p peer.ID, msg bsmsg.BitSwapMessage) error {
	w.d.sent(p, msg)
	return w.BitSwapNetwork.SendMessage(ctx, p, msg)
}

func (w *watchedNetwork) NewMessageSender(ctx context.Context, p peer.ID, opts *bsnetwork.MessageSenderOpts) (bsnetwork.MessageSender, error) {
	ms, err := w.BitSwapNetwork.NewMessageSender(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	return &watchedSender{MessageSender: ms, p: p, d: w.d}, nil
}

type watchedSender struct {
	bsnetwork.MessageSender
	p peer.ID
	d *liarDetector
}

func (w *watchedSender) SendMsg(ctx context.Context, msg bsmsg.BitSwapMessage) error {
	w.d.sent(w.p, msg)
	return w.MessageSender.SendMsg(ctx, msg)
}
