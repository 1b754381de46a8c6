package dapp

import (
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PrivateChain reports whether the process's private development chain
// runs, how many instances use it, and how many chains were started.
func PrivateChain() (running bool, users int, started int64) {
	running, users = privateChain.running()
	return running, users, privateChain.started.Load()
}

// ReportEveryoneDown makes n a lying prober: every probe it makes is
// attested as failed, whatever the answer.
func ReportEveryoneDown(n *Node) { n.mirror.reportDown.Store(true) }

// ClaimEveryBlob makes n claim, in its heartbeats, every blob of the set
// rather than those it holds.
func ClaimEveryBlob(n *Node) { n.mirror.claimAll.Store(true) }

// MirrorCounts reports how many probes n made and how many heartbeats,
// attestations and requests it refused.
func MirrorCounts(n *Node) (probes, malformed uint64) {
	return n.mirror.probes.Load(), n.mirror.malformed.Load()
}

// PayoutSignaturesRefused reports how many payout signature documents
// n's validator refused.
func PayoutSignaturesRefused(n *Node) uint64 { return n.payouts.refused.Load() }

// LieInPayouts makes n sign, for every epoch, a table that pays it the
// whole total rather than the table it computed.
func LieInPayouts(n *Node) { n.payouts.lie.Store(true) }

// MuteInPayouts makes n sign payout tables but never submit them.
func MuteInPayouts(n *Node) { n.payouts.mute.Store(true) }

// PayoutLookback is how many ended epochs, counting back from the current
// one, an instance still signs and submits.
const PayoutLookback = payoutLookback

// PayoutsSubmitted reports how many payouts n submitted and had mined.
func PayoutsSubmitted(n *Node) uint64 { return n.payouts.submitted.Load() }

// HeardClaim reports whether the heartbeat n holds of p claims blob c.
func HeardClaim(n *Node, p peer.ID, c cid.Cid) bool {
	n.mirror.mu.Lock()
	defer n.mirror.mu.Unlock()
	e := n.mirror.dir[p]
	return e != nil && slices.Contains(e.hb.Blobs, c)
}
