package blobs

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
)

// Burn removes the blob from the DApp: it records the burn in the DApp's
// blob set, so that every replica unpins the blob and its GC frees the
// blocks no other pinned blob shares, and does so here at once. Open of a
// burned blob fails with ErrBurned. Adding the same bytes again revives it.
func (s *Store) Burn(ctx context.Context, c cid.Cid) error {
	if err := checkCID(c); err != nil {
		return fmt.Errorf("blobs: burn: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("blobs: burn %s: %w", c, ErrClosed)
	}
	defer s.exit()
	if err := s.cfg.Registry.Burn(ctx, c); err != nil {
		return fmt.Errorf("blobs: burn %s: %w", c, err)
	}
	if s.repl != nil {
		s.repl.cancelFetch(c)
	}
	had, err := s.unpin(c)
	if err != nil {
		return fmt.Errorf("blobs: burn %s: %w", c, err)
	}
	if had {
		s.requestGC()
	}
	return nil
}
