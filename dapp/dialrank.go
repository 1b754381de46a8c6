package dapp

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"
)

// preferTCP orders the addresses of a peer being dialled: TCP first, in
// libp2p's default order, and QUIC as a fallback, dialled when every TCP
// attempt failed, or quicFallback after the last one started if none has
// connected by then. Without TCP addresses it is libp2p's default.
//
// Instances of a DApp stay connected for hours and carry many small
// gossip messages; per message, QUIC in user space costs about 2.5 times
// what TCP does (BENCHMARKS.md, "CPU per delivery by transport"), while
// its faster handshake is paid once per connection. Hole punching is not
// affected: libp2p dials every address at once for it, without a ranker.
func preferTCP(addrs []multiaddr.Multiaddr) []network.AddrDelay {
	var quic, rest []multiaddr.Multiaddr
	tcp := false
	for _, a := range addrs {
		switch {
		case isDirectQUIC(a):
			quic = append(quic, a)
		default:
			rest = append(rest, a)
			tcp = tcp || isDirectTCP(a)
		}
	}
	if !tcp || len(quic) == 0 {
		return swarm.DefaultDialRanker(addrs)
	}
	out := swarm.DefaultDialRanker(rest)
	var last time.Duration
	for _, ad := range out {
		if isDirectTCP(ad.Addr) {
			last = max(last, ad.Delay)
		}
	}
	for _, ad := range swarm.DefaultDialRanker(quic) {
		ad.Delay += last + quicFallback
		out = append(out, ad)
	}
	return out
}

// quicFallback is how long a TCP dial has to connect before QUIC is
// tried too. libp2p waits 30 ms between transports on a private address,
// and holds further dials for 500 ms while a connected TCP socket
// negotiates its security and multiplexer; on a loaded host (100
// instances starting at once on two cores) half the negotiations took
// longer than that and ended on QUIC, none longer than 2 s. A TCP attempt
// that fails (refused, unreachable) moves on to QUIC at once; only a TCP
// port that drops packets costs this wait.
const quicFallback = 2 * time.Second

// isDirectQUIC reports whether a is a QUIC address not through a relay.
func isDirectQUIC(a multiaddr.Multiaddr) bool {
	return has(a, multiaddr.P_QUIC_V1) && !has(a, multiaddr.P_CIRCUIT)
}

// isDirectTCP reports whether a is a TCP address not through a relay.
func isDirectTCP(a multiaddr.Multiaddr) bool {
	return has(a, multiaddr.P_TCP) && !has(a, multiaddr.P_CIRCUIT)
}

// has reports whether a holds a component of protocol code.
func has(a multiaddr.Multiaddr, code int) bool {
	for _, c := range a {
		if c.Code() == code {
			return true
		}
	}
	return false
}
