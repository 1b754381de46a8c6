package blobs

import (
	"context"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/internal/blockxfer"
)

// The Store's block transfer beside bitswap runs in internal/blockxfer:
// the liar detector, the holdings protocol and the direct block protocol
// between replicas. What follows wires those engines to the Store.

// holderWait bounds how long Open waits for the search for holders to end.
// Tests lengthen it.
var holderWait = 500 * time.Millisecond

// haveWait and directStall are blockxfer.DirectConfig's HaveWait and Stall
// for the Stores opened after they are set; zero means the defaults. Tests
// shorten directStall.
var haveWait, directStall time.Duration

// Banned reports whether this Store has banned peer p for sending forged
// blocks. A host's connection gater can consult it to refuse the peer's
// connections outright (dapp does).
func (s *Store) Banned(p peer.ID) bool {
	return s.liars != nil && s.liars.Banned(p)
}

// xferHooks connect the engines of internal/blockxfer to the Store's host,
// logger, metrics and lifecycle.
func (s *Store) xferHooks() blockxfer.Hooks {
	m := s.metrics
	return blockxfer.Hooks{
		Host:        s.cfg.Host,
		Logger:      s.cfg.Logger,
		BadBlocks:   func(n uint64) { m.badBlocks.Add(n) },
		Banned:      func() { m.banned.Add(1) },
		BadRequest:  func() { m.badRequest.Add(1) },
		Fetched:     func(n uint64) { m.directFetched.Add(n) },
		Served:      func(n uint64) { m.directServed.Add(n) },
		SharedFetch: func() { m.sharedFetches.Add(1) },
		Enter:       s.enter,
		Exit:        s.exit,
	}
}

// newDirect returns the engine of the blocks protocol and of the readers'
// shared fetches, over the Store's guarded blockstore; its holdings
// questions go through the replicator.
func newDirect(s *Store) *blockxfer.Direct {
	return blockxfer.NewDirect(blockxfer.DirectConfig{
		Hooks:       s.xferHooks(),
		Proto:       s.blocksProto,
		Blocks:      s.guarded,
		Liars:       s.liars,
		Routing:     s.cfg.Routing,
		IPFSBitswap: s.cfg.IPFSBitswap,
		AskHolds: func(ctx context.Context, p peer.ID, c cid.Cid) (byte, bool) {
			st, ok := s.repl.peerState(ctx, p, c)
			return byte(st), ok
		},
		Tasks:    s.tasks,
		Context:  s.ctx,
		HaveWait: haveWait,
		Stall:    directStall,
	})
}
