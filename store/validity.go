package store

import (
	"github.com/dpaas/dpaas/internal/delta"
	"github.com/libp2p/go-libp2p/core/peer"
)

// decodeRemote turns a block from a peer into an incoming delta. A block
// that is not a canonically encoded delta signed by its author is an
// error: nobody can be blamed for it and nothing can depend on it. A
// signed delta that delta.Validate refuses comes back with invalid set:
// applyOne refuses it, and it is recorded as refused like one a validator
// refuses, so the author's later deltas, which name it as a parent, apply
// as they would anywhere else. Validity is a function of the block alone,
// so every replica decides the same.
func decodeRemote(block []byte, from peer.ID) (*incoming, error) {
	d, id, err := delta.DecodeSigned(block)
	if err != nil {
		return nil, err
	}
	return &incoming{d: d, id: id, block: block, from: from, invalid: d.Validate()}, nil
}
