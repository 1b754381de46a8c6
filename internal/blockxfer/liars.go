package blockxfer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	bsnetwork "github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

const (
	// MaxForgedBlocks is how many blocks it never asked for a peer may send
	// before it is disconnected.
	MaxForgedBlocks = 3
	// askedGeneration bounds the memory of what was asked of each peer:
	// after this many distinct CIDs the older half is forgotten.
	askedGeneration = 4096
	// maxTrackedPeers bounds how many peers are tracked at once.
	maxTrackedPeers = 1024
	// banTime is how long a disconnected liar stays banned: no bitswap
	// message is sent to it (so bitswap does not dial it again) and any
	// connection it makes is closed at once.
	banTime = 10 * time.Minute
)

// ErrBanned is what sends to a banned peer fail with.
var ErrBanned = errors.New("blobs: peer banned for sending forged blocks")

// LiarDetector catches peers that send forged blocks.
//
// Bitswap names a received block by the hash of its bytes, so a forged
// block never passes for the one asked for: bitswap drops it as unwanted.
// But the session that asked that peer keeps waiting for the real block
// for a while, which stalls reads. An honest bitswap server only sends
// blocks that were asked of it (want-block, or want-have for tiny blocks),
// so the detector remembers every CID this instance asked of each peer and
// counts received blocks that are not among them; a peer that sends
// MaxForgedBlocks of them is disconnected, and sessions move on at once.
type LiarDetector struct {
	hooks Hooks

	mu     sync.Mutex
	asked  map[peer.ID]*askedSet
	forged map[peer.ID]int
	bans   map[peer.ID]time.Time // peer → end of its ban

	// Roots that an Open wants to hear a HAVE (or the block) for, from any
	// peer: multihash → channels closed when one comes.
	haveMu   sync.Mutex
	haves    map[string][]chan struct{}
	watching atomic.Int32
}

// NewLiarDetector returns a detector; register it with the host's network
// (Notify) and wrap bitswap's network in a WatchedNetwork. Of h it uses
// Host, Logger, BadBlocks, Banned, Enter and Exit.
func NewLiarDetector(h Hooks) *LiarDetector {
	h.ensureDefaults()
	return &LiarDetector{hooks: h, asked: make(map[peer.ID]*askedSet), forged: make(map[peer.ID]int),
		bans: make(map[peer.ID]time.Time), haves: make(map[string][]chan struct{})}
}

// WatchHave returns a channel closed when some peer says over bitswap that
// it has c, or sends it; stop forgets the watch.
func (d *LiarDetector) WatchHave(c cid.Cid) (have <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	k := string(c.Hash())
	d.haveMu.Lock()
	d.haves[k] = append(d.haves[k], ch)
	d.haveMu.Unlock()
	d.watching.Add(1)
	return ch, sync.OnceFunc(func() {
		d.watching.Add(-1)
		d.haveMu.Lock()
		defer d.haveMu.Unlock()
		chs := d.haves[k]
		for i, x := range chs {
			if x == ch {
				chs = append(chs[:i:i], chs[i+1:]...)
				break
			}
		}
		if len(chs) == 0 {
			delete(d.haves, k)
		} else {
			d.haves[k] = chs
		}
	})
}

// heard closes the watches of the CIDs that msg says its sender has.
func (d *LiarDetector) heard(msg bsmsg.BitSwapMessage) {
	var ks []string
	for _, c := range msg.Haves() {
		ks = append(ks, string(c.Hash()))
	}
	for _, b := range msg.Blocks() {
		ks = append(ks, string(b.Cid().Hash()))
	}
	d.haveMu.Lock()
	defer d.haveMu.Unlock()
	for _, k := range ks {
		for _, ch := range d.haves[k] {
			close(ch)
		}
		delete(d.haves, k)
	}
}

// Banned reports whether p is banned now.
func (d *LiarDetector) Banned(p peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	end, ok := d.bans[p]
	if ok && time.Now().After(end) {
		delete(d.bans, p)
		return false
	}
	return ok
}

// ban records p as banned until banTime from now. d.mu is held.
func (d *LiarDetector) ban(p peer.ID) {
	now := time.Now()
	if len(d.bans) >= maxTrackedPeers {
		// Forget expired bans; if none has expired, the one ending first
		// makes room (the table stays bounded whatever many identities a
		// hostile party makes up).
		first, firstEnd := peer.ID(""), time.Time{}
		for q, end := range d.bans {
			if now.After(end) {
				delete(d.bans, q)
			} else if first == "" || end.Before(firstEnd) {
				first, firstEnd = q, end
			}
		}
		if len(d.bans) >= maxTrackedPeers {
			delete(d.bans, first)
		}
	}
	d.bans[p] = now.Add(banTime)
}

// bannedLocked reports whether a ban of p is in force. d.mu is held.
func (d *LiarDetector) bannedLocked(p peer.ID) bool {
	end, ok := d.bans[p]
	return ok && time.Now().Before(end)
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

// Sent records the CIDs msg asks of p.
func (d *LiarDetector) Sent(p peer.ID, msg bsmsg.BitSwapMessage) {
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
func (d *LiarDetector) MessageReceived(p peer.ID, msg bsmsg.BitSwapMessage) {
	if d.watching.Load() > 0 && !d.Banned(p) {
		d.heard(msg)
	}
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
	if d.bannedLocked(p) {
		// Caught already: blocks it sent before its connection closed
		// are counted, and do not ban it a second time.
		d.mu.Unlock()
		d.hooks.BadBlocks(uint64(bad))
		return
	}
	d.forged[p] += bad
	drop := d.forged[p] >= MaxForgedBlocks
	if drop || len(d.forged) >= maxTrackedPeers {
		delete(d.forged, p)
	}
	if drop {
		d.ban(p)
		delete(d.asked, p)
	}
	d.mu.Unlock()
	d.hooks.BadBlocks(uint64(bad))
	if !drop {
		return
	}
	d.hooks.Banned()
	d.hooks.Logger.Warn("blobs: banning a peer that sends blocks it was not asked for",
		"peer", p, "for", banTime)
	d.disconnect(p)
}

// BanNow bans p at once for a forgery that cannot be innocent (bytes that
// do not hash to the CID asked for), and disconnects it.
func (d *LiarDetector) BanNow(p peer.ID, why string) {
	d.mu.Lock()
	if d.bannedLocked(p) {
		d.mu.Unlock() // caught already, by another of its answers
		return
	}
	d.ban(p)
	delete(d.asked, p)
	delete(d.forged, p)
	d.mu.Unlock()
	d.hooks.Banned()
	d.hooks.Logger.Warn("blobs: banning a peer that "+why, "peer", p, "for", banTime)
	d.disconnect(p)
}

// disconnect closes every connection to p, off the caller's goroutine
// (network notifications must not block).
func (d *LiarDetector) disconnect(p peer.ID) {
	if !d.hooks.Enter() {
		return
	}
	go func() {
		defer d.hooks.Exit()
		_ = d.hooks.Host.Network().ClosePeer(p)
	}()
}

// Connected closes a connection from or to a banned peer as soon as it is
// up: a liar that dials again is not served, nor asked for blocks.
func (d *LiarDetector) Connected(_ network.Network, c network.Conn) {
	if d.Banned(c.RemotePeer()) {
		d.disconnect(c.RemotePeer())
	}
}

func (d *LiarDetector) Disconnected(network.Network, network.Conn)       {}
func (d *LiarDetector) Listen(network.Network, multiaddr.Multiaddr)      {}
func (d *LiarDetector) ListenClose(network.Network, multiaddr.Multiaddr) {}

// MessageSent is part of bitswap's tracer interface; the client's wants
// are seen through WatchedNetwork instead, as the client does not trace
// what it sends.
func (d *LiarDetector) MessageSent(peer.ID, bsmsg.BitSwapMessage) {}

// WatchedNetwork is bitswap's network with every outgoing message shown to
// the liar detector, and nothing sent to a banned peer.
type WatchedNetwork struct {
	bsnetwork.BitSwapNetwork
	Detector *LiarDetector
}

func (w *WatchedNetwork) SendMessage(ctx context.Context, p peer.ID, msg bsmsg.BitSwapMessage) error {
	if w.Detector.Banned(p) {
		return ErrBanned
	}
	w.Detector.Sent(p, msg)
	return w.BitSwapNetwork.SendMessage(ctx, p, msg)
}

// Connect refuses banned peers: bitswap dials a peer it has something to
// send to, which would bring a liar back.
func (w *WatchedNetwork) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if w.Detector.Banned(ai.ID) {
		return ErrBanned
	}
	return w.BitSwapNetwork.Connect(ctx, ai)
}

func (w *WatchedNetwork) NewMessageSender(ctx context.Context, p peer.ID, opts *bsnetwork.MessageSenderOpts) (bsnetwork.MessageSender, error) {
	if w.Detector.Banned(p) {
		return nil, ErrBanned
	}
	ms, err := w.BitSwapNetwork.NewMessageSender(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	return &watchedSender{MessageSender: ms, p: p, Detector: w.Detector}, nil
}

type watchedSender struct {
	bsnetwork.MessageSender
	p        peer.ID
	Detector *LiarDetector
}

func (w *watchedSender) SendMsg(ctx context.Context, msg bsmsg.BitSwapMessage) error {
	if w.Detector.Banned(w.p) {
		return ErrBanned
	}
	w.Detector.Sent(w.p, msg)
	return w.MessageSender.SendMsg(ctx, msg)
}
