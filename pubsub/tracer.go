package pubsub

import (
	"sync/atomic"

	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// dropCounter is a GossipSub RawTracer that counts the two places where
// GossipSub loses messages by design: a subscriber whose buffer is full and
// a peer whose outbound queue is full. Everything else is a no-op.
type dropCounter struct {
	undeliverable atomic.Uint64
	droppedRPCs   atomic.Uint64
}

var _ gossip.RawTracer = (*dropCounter)(nil)

func (d *dropCounter) UndeliverableMessage(*gossip.Message) { d.undeliverable.Add(1) }
func (d *dropCounter) DropRPC(*gossip.RPC, peer.ID)         { d.droppedRPCs.Add(1) }

func (*dropCounter) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (*dropCounter) OnClosedOutboundStream(peer.ID)           {}
func (*dropCounter) Join(string)                              {}
func (*dropCounter) Leave(string)                             {}
func (*dropCounter) Graft(peer.ID, string)                    {}
func (*dropCounter) Prune(peer.ID, string)                    {}
func (*dropCounter) ValidateMessage(*gossip.Message)          {}
func (*dropCounter) DeliverMessage(*gossip.Message)           {}
func (*dropCounter) RejectMessage(*gossip.Message, string)    {}
func (*dropCounter) DuplicateMessage(*gossip.Message)         {}
func (*dropCounter) ThrottlePeer(peer.ID)                     {}
func (*dropCounter) RecvRPC(*gossip.RPC)                      {}
func (*dropCounter) SendRPC(*gossip.RPC, peer.ID)             {}
