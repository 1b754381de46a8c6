package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
)

const (
	// maxCARSection bounds one block read from a CAR: UnixFS blocks are at
	// most 1 MiB (bitswap's limit); a little more leaves room for the CID.
	maxCARSection = 2<<20 + 1024
	// maxCARHeader bounds the CAR header.
	maxCARHeader = 64 << 10
)

// Export writes the blob as a CARv1 stream with c as its only root and its
// blocks in depth-first order, so that any IPFS tool can import it. Blocks
// missing here are fetched from peers first.
func (s *Store) Export(ctx context.Context, c cid.Cid, w io.Writer) error {
	if err := checkCID(c); err != nil {
		return fmt.Errorf("blobs: export: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("blobs: export %s: %w", c, ErrClosed)
	}
	defer s.exit()
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	release := s.lease(c)
	defer release()
	complete, err := s.completeLocally(ctx, c)
	if err != nil {
		return fmt.Errorf("blobs: export %s: %w", c, err)
	}
	if !complete {
		if err := merkledag.FetchGraph(ctx, c, s.dag); err != nil {
			return fmt.Errorf("blobs: export %s: %w: %w", c, ErrUnavailable, err)
		}
	}
	out, err := storage.NewWritable(w, []cid.Cid{c}, car.WriteAsCarV1(true))
	if err != nil {
		return fmt.Errorf("blobs: export %s: %w", c, err)
	}
	err = s.walkLocal(ctx, c, true, func(b cid.Cid, held bool, data []byte) error {
		if !held {
			return fmt.Errorf("block %s: %w", b, ErrNotFound)
		}
		return out.Put(ctx, b.KeyString(), data)
	})
	if err != nil {
		return fmt.Errorf("blobs: export %s: %w", c, err)
	}
	if err := out.Finalize(); err != nil {
		return fmt.Errorf("blobs: export %s: %w", c, err)
	}
	return nil
}

// Import reads a CAR stream (v1 or v2) that holds the whole DAG of exactly
// one root, checks every block against its CID, then pins the root and
// records it in the DApp's blob set, as Add does. A malformed, forged or
// incomplete CAR fails with ErrBadCAR; its blocks are left to GC.
func (s *Store) Import(ctx context.Context, r io.Reader) (cid.Cid, error) {
	if !s.enter() {
		return cid.Undef, fmt.Errorf("blobs: import: %w", ErrClosed)
	}
	defer s.exit()
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	root, err := s.ingest(ctx, func(ctx context.Context) (cid.Cid, uint64, error) {
		return s.readCAR(ctx, r)
	})
	if err != nil {
		if errors.Is(err, ErrBadCAR) {
			s.metrics.badCAR.Add(1)
		}
		return cid.Undef, fmt.Errorf("blobs: import: %w", err)
	}
	return root, nil
}

// readCAR stores the blocks of a CAR and returns its root and file size.
func (s *Store) readCAR(ctx context.Context, r io.Reader) (cid.Cid, uint64, error) {
	br, err := car.NewBlockReader(r,
		car.MaxAllowedSectionSize(maxCARSection),
		car.MaxAllowedHeaderSize(maxCARHeader),
	)
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("%w: header: %w", ErrBadCAR, err)
	}
	if len(br.Roots) != 1 || !br.Roots[0].Defined() {
		return cid.Undef, 0, fmt.Errorf("%w: want exactly one root, got %d", ErrBadCAR, len(br.Roots))
	}
	root := br.Roots[0]
	batch := make([]blocks.Block, 0, 16)
	var batchBytes int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.blocks.PutMany(ctx, batch)
		batch, batchBytes = batch[:0], 0
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return cid.Undef, 0, err
		}
		blk, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return cid.Undef, 0, fmt.Errorf("%w: block: %w", ErrBadCAR, err)
		}
		batch = append(batch, blk)
		batchBytes += len(blk.RawData())
		if batchBytes >= 4<<20 {
			if err := flush(); err != nil {
				return cid.Undef, 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return cid.Undef, 0, err
	}
	complete, err := s.completeLocally(ctx, root)
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("%w: root %s: %w", ErrBadCAR, root, err)
	}
	if !complete {
		return cid.Undef, 0, fmt.Errorf("%w: root %s: DAG incomplete", ErrBadCAR, root)
	}
	blk, err := s.blocks.Get(ctx, root)
	if err != nil {
		return cid.Undef, 0, err
	}
	return root, fileSize(root, blk.RawData(), uint64(len(blk.RawData()))), nil
}
