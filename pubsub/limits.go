package pubsub

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// limiter holds every sender's budget on every topic and every peer's
// penalty. A message over its sender's budget is ignored (neither
// delivered nor forwarded) and adds one to the sender's penalty, as does
// a malformed envelope to the peer that sent it (no honest peer forwards
// one).
// The penalty decays by half every halfLife; GossipSub reads it as the
// peer's application score (negative), so a peer whose penalty reaches
// graylistAt is graylisted: GossipSub drops everything it sends before
// validation, and, since the penalty keeps growing while it floods (the
// RPC inspector still charges it), stays so until it has been quiet for a
// while.
//
// Budgets are token buckets per (sender, topic): one on messages, one on
// bytes, each refilled at its rate up to one second's worth (the byte
// bucket holds at least two messages of the largest size).
type limiter struct {
	msgRate, byteRate   float64
	msgBurst, byteBurst float64
	graylistAt          float64
	halfLife            time.Duration
	now                 func() time.Time

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
	peers   map[peer.ID]*penalty

	throttled  atomic.Uint64 // messages ignored for being over budget (counted by the caller)
	graylisted atomic.Uint64 // times a peer became graylisted
	dropped    atomic.Uint64 // messages that arrived from a graylisted peer
}

type bucketKey struct {
	from  peer.ID
	topic string
}

type bucket struct {
	msgs, bytes float64
	at          time.Time
}

type penalty struct {
	value float64
	at    time.Time
	gray  bool
	cut   time.Time // when its inbound stream was last reset
}

// maxBuckets bounds the limiter's memory; beyond it, idle buckets (full
// ones, which carry no information) are forgotten.
const maxBuckets = 1 << 14

// sysFactor multiplies the budgets of the SDK's own topics, which carry
// every replica's writes.
const sysFactor = 4

func newLimiter(cfg *Config) *limiter {
	l := &limiter{
		msgRate:    float64(cfg.PeerMessageRate),
		byteRate:   float64(cfg.PeerByteRate),
		graylistAt: float64(cfg.GraylistAfter),
		halfLife:   cfg.GraylistHalfLife,
		now:        time.Now,
		buckets:    make(map[bucketKey]*bucket),
		peers:      make(map[peer.ID]*penalty),
	}
	l.msgBurst = l.msgRate
	l.byteBurst = max(l.byteRate, 2*float64(cfg.MaxMessageSize+headerLen))
	return l
}

// allow charges one message of size bytes from sender on topic and
// reports whether it was within budget. A message over budget counts
// against the sender.
func (l *limiter) allow(from peer.ID, topic string, size int, sys bool) bool {
	now := l.now()
	factor := 1.0
	if sys {
		factor = sysFactor
	}
	l.mu.Lock()
	k := bucketKey{from, topic}
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweep(now)
		}
		b = &bucket{msgs: l.msgBurst * factor, bytes: l.byteBurst * factor, at: now}
		l.buckets[k] = b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.msgs = min(l.msgBurst*factor, b.msgs+dt*l.msgRate*factor)
		b.bytes = min(l.byteBurst*factor, b.bytes+dt*l.byteRate*factor)
		b.at = now
	}
	ok := b.msgs >= 1 && b.bytes >= float64(size)
	if ok {
		b.msgs--
		b.bytes -= float64(size)
	} else {
		l.penalize(from, 1, now)
	}
	l.mu.Unlock()
	return ok
}

// sweep forgets the buckets that have refilled; if none has, all of them.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.at).Seconds()*l.msgRate >= l.msgBurst && now.Sub(b.at).Seconds()*l.byteRate >= l.byteBurst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets)
	}
}

// blame adds n to p's penalty.
func (l *limiter) blame(p peer.ID, n float64) {
	now := l.now()
	l.mu.Lock()
	l.penalize(p, n, now)
	l.mu.Unlock()
}

// penalize adds n to p's penalty, capped at four times the graylist level,
// where a peer is put when it reaches the level: it is heard again two
// half-lives after it stopped flooding. l.mu is held.
func (l *limiter) penalize(p peer.ID, n float64, now time.Time) {
	pen := l.peers[p]
	if pen == nil {
		if len(l.peers) >= maxBuckets {
			l.forget(now)
		}
		pen = &penalty{at: now}
		l.peers[p] = pen
	}
	l.decay(pen, now)
	pen.value = min(pen.value+n, 4*l.graylistAt)
	if !pen.gray && pen.value >= l.graylistAt {
		// Graylisted at once for two half-lives: a peer that floods at
		// just over its budget would otherwise be let in again as soon as
		// a few ignored messages have decayed.
		pen.value = 4 * l.graylistAt
		pen.gray = true
		l.graylisted.Add(1)
	}
}

// forget drops the penalties that have decayed to nothing. l.mu is held.
func (l *limiter) forget(now time.Time) {
	for p, pen := range l.peers {
		if l.decay(pen, now); pen.value < 1 {
			delete(l.peers, p)
		}
	}
}

// decay brings pen's value to now. l.mu is held.
func (l *limiter) decay(pen *penalty, now time.Time) {
	if dt := now.Sub(pen.at); dt > 0 {
		pen.value *= math.Exp2(-dt.Seconds() / l.halfLife.Seconds())
		pen.at = now
	}
	if pen.gray && pen.value < l.graylistAt {
		pen.gray = false
	}
}

// score is GossipSub's application-specific score of p: minus its penalty.
// GossipSub calls it with its own lock held; it takes only l.mu.
func (l *limiter) score(p peer.ID) float64 {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	pen := l.peers[p]
	if pen == nil {
		return 0
	}
	l.decay(pen, now)
	return -pen.value
}

// isGraylisted reports whether p's penalty is at the graylist level.
func (l *limiter) isGraylisted(p peer.ID) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	pen := l.peers[p]
	if pen == nil {
		return false
	}
	l.decay(pen, now)
	return pen.gray
}

// graylistedPeers lists the peers graylisted now.
func (l *limiter) graylistedPeers() []peer.ID {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []peer.ID
	for p, pen := range l.peers {
		if l.decay(pen, now); pen.gray {
			out = append(out, p)
		}
	}
	return out
}

// sysValidators bounds how many messages of one SDK topic are validated at
// once; more are dropped (counted in Stats.Invalid) and left to the
// component's own repair (the store's catch-up).
const sysValidators = 1024

// scoring turns on GossipSub's peer scoring with the limiter's penalty as
// the only component: topic scores (mesh delivery rates and the like) are
// left out, as they misjudge the few, often idle, peers of a DApp, and so
// is the IP colocation factor, which would count a DApp's instances on one
// host or behind one NAT against each other. The thresholds scale with the
// graylist level: a peer at a quarter of it gets no gossip, at half no
// published messages, at the level nothing is accepted from it.
func (p *PubSub) scoring() gossip.Option {
	g := p.limits.graylistAt
	return gossip.WithPeerScore(
		&gossip.PeerScoreParams{
			AppSpecificScore:  p.limits.score,
			AppSpecificWeight: 1,
			DecayInterval:     time.Second,
			DecayToZero:       0.01,
		},
		&gossip.PeerScoreThresholds{
			GossipThreshold:             -g / 4,
			PublishThreshold:            -g / 2,
			GraylistThreshold:           -g,
			AcceptPXThreshold:           g,
			OpportunisticGraftThreshold: 0,
		},
	)
}

// inspect sees every RPC before GossipSub decides whether to accept it.
// The messages of a graylisted peer are counted and charged to its budget,
// so that it stays graylisted while it floods; GossipSub then drops them.
// Dropping still costs the reading, decrypting and decoding of every
// message, so the peer's inbound stream is also reset (at most every
// cutEvery): a GossipSub peer then stops sending until it has opened a new
// stream, after a growing backoff, and gives up after a few.
func (p *PubSub) inspect(from peer.ID, rpc *gossip.RPC) error {
	l := p.limits
	if len(rpc.GetPublish()) == 0 || !l.isGraylisted(from) {
		return nil
	}
	for _, m := range rpc.GetPublish() {
		l.dropped.Add(1)
		topic := m.GetTopic()
		l.allow(from, topic, len(m.GetData()), strings.HasPrefix(topic, p.prefix) && Reserved(topic[len(p.prefix):]))
	}
	if l.shouldCut(from) {
		p.cutOff(from)
	}
	return nil
}

// cutEvery is how often at most a graylisted peer's inbound stream is
// reset. GossipSub reopens a reset stream after a backoff that doubles
// from 100 ms and gives up after four tries, so each reset it gets spares
// its receivers the most reading.
const cutEvery = 100 * time.Millisecond

// shouldCut reports whether p's inbound stream was not reset in the last
// cutEvery, and notes that it is now.
func (l *limiter) shouldCut(p peer.ID) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	pen := l.peers[p]
	if pen == nil || now.Sub(pen.cut) < cutEvery {
		return false
	}
	pen.cut = now
	return true
}

// cutOff resets the GossipSub streams that peer opened to this instance.
// It runs apart from GossipSub's event loop, which calls inspect. It takes
// cutMu, not p.mu: Join holds p.mu while it waits on that event loop.
func (p *PubSub) cutOff(from peer.ID) {
	p.cutMu.Lock()
	defer p.cutMu.Unlock()
	if p.cutClosed {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for _, c := range p.host.Network().ConnsToPeer(from) {
			for _, s := range c.GetStreams() {
				proto := s.Protocol()
				if s.Stat().Direction == network.DirInbound &&
					(strings.HasPrefix(string(proto), "/meshsub/") || proto == gossip.FloodSubID) {
					_ = s.Reset()
				}
			}
		}
	}()
}
