package blobs

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/internal/blockxfer"
)

// Banned reports whether this Store has banned peer p for sending forged
// blocks. A host's connection gater can consult it to refuse the peer's
// connections outright (dapp does).
func (s *Store) Banned(p peer.ID) bool {
	return s.liars != nil && s.liars.Banned(p)
}

// newLiarDetector returns the detector of peers that send forged blocks
// (internal/blockxfer), counting in the Store's metrics.
func newLiarDetector(s *Store) *blockxfer.LiarDetector {
	return blockxfer.NewLiarDetector(blockxfer.Hooks{
		Host:      s.cfg.Host,
		Logger:    s.cfg.Logger,
		BadBlocks: func(n uint64) { s.metrics.badBlocks.Add(n) },
		Banned:    func() { s.metrics.banned.Add(1) },
		Enter:     s.enter,
		Exit:      s.exit,
	})
}
