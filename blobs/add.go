package blobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// ChunkSize is the size of every leaf but the last: Kubo's default.
const ChunkSize = 256 << 10

// cidBuilder makes the CIDv1 (dag-pb, sha2-256) of interior nodes; leaves
// are raw blocks, as with `ipfs add --cid-version=1`.
var cidBuilder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: multihash.SHA2_256}

// Add imports everything r yields as a UnixFS file (CIDv1, raw leaves,
// 256 KiB chunks, balanced layout: the CID Kubo's `ipfs add --cid-version=1`
// gives for the same bytes), pins it here and records it in the DApp's blob
// set so that the other replicas fetch it. Memory use does not depend on
// the size of the input. If r fails or ctx ends, nothing is pinned and the
// blocks written so far are left to GC.
func (s *Store) Add(ctx context.Context, r io.Reader) (cid.Cid, error) {
	if !s.enter() {
		return cid.Undef, fmt.Errorf("blobs: add: %w", ErrClosed)
	}
	defer s.exit()
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var size uint64
	root, err := s.ingest(ctx, func(ctx context.Context) (cid.Cid, uint64, error) {
		// Add already holds the GC lock shared, so it writes to the
		// blockstore directly rather than through the guarded one.
		nd, n, err := importFile(ctx, merkledag.NewDAGService(blockservice.New(s.blocks, nil)), r)
		if err != nil {
			return cid.Undef, 0, err
		}
		size = n
		return nd.Cid(), n, nil
	})
	if err != nil {
		return cid.Undef, fmt.Errorf("blobs: add: %w", err)
	}
	s.metrics.added.Add(size)
	return root, nil
}

// ingest runs write, which stores the blocks of one DAG and returns its root
// and file size, then pins the root and records it in the registry. While
// it runs, a marker tells a restart after a crash to collect garbage, and
// the GC lock held shared keeps GC from freeing blocks not yet pinned.
func (s *Store) ingest(ctx context.Context, write func(ctx context.Context) (cid.Cid, uint64, error)) (cid.Cid, error) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	marker := append(append([]byte(nil), prefixAdds...), id[:]...)
	now := time.Now()

	s.gcMu.RLock()
	root, size, err := func() (cid.Cid, uint64, error) {
		if err := s.space.Set(marker, nil, false); err != nil {
			return cid.Undef, 0, err
		}
		root, size, err := write(ctx)
		if err != nil {
			return cid.Undef, 0, err
		}
		if err := s.setPin(root, pin{state: pinComplete, size: size}); err != nil {
			return cid.Undef, 0, err
		}
		// Deleted only after the pin is durable: a crash in between costs
		// one needless GC at restart, never an orphan.
		if err := s.space.Delete(marker, false); err != nil {
			return cid.Undef, 0, err
		}
		return root, size, nil
	}()
	s.gcMu.RUnlock()
	if err != nil {
		// The marker stays: the blocks written are garbage now.
		s.requestGC()
		return cid.Undef, err
	}
	if err := s.cfg.Registry.Add(ctx, Record{CID: root, Size: size, AddedAt: now.UTC()}); err != nil {
		if _, uerr := s.unpin(root); uerr != nil {
			err = errors.Join(err, uerr)
		}
		s.requestGC()
		return cid.Undef, fmt.Errorf("record %s: %w", root, err)
	}
	if s.repl != nil && s.cfg.Routing != nil {
		// Announcing to the DHT can take a while; the Add is done.
		s.goTracked(func() { s.repl.announce(root) })
	}
	return root, nil
}

// countingReader counts bytes and stops when ctx ends.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}
