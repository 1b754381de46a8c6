package blobs

import (
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// placeHolders picks the k replicas of live that should hold c. Without a
// group function it is holders' rendezvous order. With one, it walks the
// same order taking at most one replica per group, then, if that gives
// fewer than k, fills up with the rest in that order: copies land in
// distinct groups first, so one network or provider going down takes at
// most one copy while there are enough groups.
func placeHolders(c cid.Cid, live []peer.ID, k int, group func(peer.ID) string) []peer.ID {
	if group == nil || k <= 0 || k >= len(live) {
		return holders(c, live, k)
	}
	ranked := holders(c, live, len(live)-1)
	ranked = append(ranked, missing(live, ranked)...)
	out := make([]peer.ID, 0, k)
	taken := make(map[peer.ID]bool, k)
	groups := make(map[string]bool, k)
	for _, p := range ranked {
		if len(out) == k {
			return out
		}
		g := group(p)
		if g == "" {
			g = "peer " + string(p) // no group known: a group of its own
		}
		if !groups[g] {
			groups[g] = true
			taken[p] = true
			out = append(out, p)
		}
	}
	for _, p := range ranked {
		if len(out) == k {
			break
		}
		if !taken[p] {
			out = append(out, p)
		}
	}
	return out
}

// missing returns the members of all not in some, in all's order.
func missing(all, some []peer.ID) []peer.ID {
	in := make(map[peer.ID]bool, len(some))
	for _, p := range some {
		in[p] = true
	}
	var out []peer.ID
	for _, p := range all {
		if !in[p] {
			out = append(out, p)
		}
	}
	return out
}
