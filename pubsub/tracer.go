package pubsub

import (
	"sync"
	"sync/atomic"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// tracer is a GossipSub RawTracer that counts the two places where
// GossipSub loses messages by design (a subscriber whose buffer is full, a
// peer whose outbound queue is full) and follows the mesh, which GossipSub
// does not expose: a message is relayed only along mesh links, so the mesh
// tells when a topic is ready to carry messages across the network.
type tracer struct {
	undeliverable atomic.Uint64
	droppedRPCs   atomic.Uint64
	invalid       atomic.Uint64
	duplicates    atomic.Uint64

	mu   sync.Mutex
	mesh map[string]map[peer.ID]struct{} // full topic name -> mesh peers
}

var _ gossip.RawTracer = (*tracer)(nil)

func newTracer() *tracer { return &tracer{mesh: make(map[string]map[peer.ID]struct{})} }

func (d *tracer) UndeliverableMessage(*gossip.Message) { d.undeliverable.Add(1) }
func (d *tracer) DropRPC(*gossip.RPC, peer.ID)         { d.droppedRPCs.Add(1) }
func (d *tracer) DuplicateMessage(*gossip.Message)     { d.duplicates.Add(1) }

// RejectMessage counts the rejections of GossipSub itself; those of the
// topic validators are counted where they are decided.
func (d *tracer) RejectMessage(_ *gossip.Message, reason string) {
	switch reason {
	case gossip.RejectValidationFailed, gossip.RejectValidationIgnored:
	default:
		d.invalid.Add(1)
	}
}

func (d *tracer) Graft(p peer.ID, topic string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.mesh[topic]
	if m == nil {
		m = make(map[peer.ID]struct{})
		d.mesh[topic] = m
	}
	m[p] = struct{}{}
}

func (d *tracer) Prune(p peer.ID, topic string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.mesh[topic], p)
}

func (d *tracer) Leave(topic string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.mesh, topic)
}

// inMesh reports whether p was grafted into topic's mesh and not pruned.
// GossipSub drops a disconnected peer from its mesh without a trace event,
// so callers intersect with the topic's current peers.
func (d *tracer) inMesh(topic string, p peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.mesh[topic][p]
	return ok
}

func (*tracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (*tracer) OnClosedOutboundStream(peer.ID)           {}
func (*tracer) Join(string)                              {}
func (*tracer) ValidateMessage(*gossip.Message)          {}
func (*tracer) DeliverMessage(*gossip.Message)           {}
func (*tracer) ThrottlePeer(peer.ID)                     {}
func (*tracer) RecvRPC(*gossip.RPC)                      {}
func (*tracer) SendRPC(*gossip.RPC, peer.ID)             {}
