package dapp

import (
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// banGater is the host's connection gater: it refuses peers a service has
// banned (blobs bans peers that send forged blocks), then asks the
// user's gater, if any. The services start after the host, so the ban
// check is installed once they are up.
type banGater struct {
	user   connmgr.ConnectionGater // may be nil
	banned atomic.Pointer[func(peer.ID) bool]
}

var _ connmgr.ConnectionGater = (*banGater)(nil)

func (g *banGater) isBanned(p peer.ID) bool {
	f := g.banned.Load()
	return f != nil && (*f)(p)
}

func (g *banGater) InterceptPeerDial(p peer.ID) bool {
	return !g.isBanned(p) && (g.user == nil || g.user.InterceptPeerDial(p))
}

func (g *banGater) InterceptAddrDial(p peer.ID, a multiaddr.Multiaddr) bool {
	return !g.isBanned(p) && (g.user == nil || g.user.InterceptAddrDial(p, a))
}

func (g *banGater) InterceptAccept(c network.ConnMultiaddrs) bool {
	return g.user == nil || g.user.InterceptAccept(c)
}

func (g *banGater) InterceptSecured(d network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return !g.isBanned(p) && (g.user == nil || g.user.InterceptSecured(d, p, c))
}

func (g *banGater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if g.user == nil {
		return true, 0
	}
	return g.user.InterceptUpgraded(c)
}
