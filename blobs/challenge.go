package blobs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/ipld/merkledag"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Storage challenges: an instance that says it holds a blob can be asked
// for a digest of a random byte range of it, with a fresh nonce. The one
// asked answers from the blocks it holds (ProveRange, which never fetches);
// the asker computes the same digest from its own copy (ProveRange), or
// from any reader of the file (RangeDigest, e.g. over Open, which fetches
// and checks blocks against their CIDs but also keeps them).

// MaxChallengeRange bounds the length of a challenged range.
const MaxChallengeRange = 64 << 10

// HeldSample returns up to n blobs held here whole, picked uniformly at
// random with r among all of them, in no particular order. It reads every
// pin record, so callers should not call it more often than they need.
func (s *Store) HeldSample(ctx context.Context, n int, r *rand.Rand) ([]cid.Cid, error) {
	if !s.enter() {
		return nil, fmt.Errorf("blobs: held sample: %w", ErrClosed)
	}
	defer s.exit()
	var out []cid.Cid
	seen := 0
	err := s.eachPin(func(c cid.Cid, p pin) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.state != pinComplete || n <= 0 {
			return nil
		}
		seen++
		if len(out) < n {
			out = append(out, c)
		} else if j := r.IntN(seen); j < n {
			out[j] = c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blobs: held sample: %w", err)
	}
	return out, nil
}

// ProveRange answers a storage challenge: the SHA-256 of nonce followed by
// the bytes [offset, offset+length) of blob root (fewer at the end of the
// file), read only from blocks held here. It fails, wrapping ErrNotFound,
// when a block it needs is not held here; it never fetches.
func (s *Store) ProveRange(ctx context.Context, root cid.Cid, offset, length uint64, nonce []byte) ([sha256.Size]byte, error) {
	if err := checkCID(root); err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("blobs: prove range: %w", err)
	}
	if !s.enter() {
		return [sha256.Size]byte{}, fmt.Errorf("blobs: prove range of %s: %w", root, ErrClosed)
	}
	defer s.exit()
	dag := merkledag.NewDAGService(blockservice.New(s.blocks, nil))
	nd, err := dag.Get(ctx, root)
	if err != nil {
		if ipld.IsNotFound(err) {
			err = errors.Join(ErrNotFound, err)
		}
		return [sha256.Size]byte{}, fmt.Errorf("blobs: prove range of %s: %w", root, err)
	}
	rd, err := uio.NewDagReader(ctx, nd, dag)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("blobs: prove range of %s: %w", root, err)
	}
	defer rd.Close()
	d, err := RangeDigest(rd, offset, length, nonce)
	if err != nil {
		if ipld.IsNotFound(err) {
			err = errors.Join(ErrNotFound, err)
		}
		return d, fmt.Errorf("blobs: prove range of %s: %w", root, err)
	}
	return d, nil
}

// RangeDigest is the SHA-256 of nonce followed by the bytes [offset,
// offset+length) of r (fewer at its end), the answer to a storage
// challenge. length must be at most MaxChallengeRange.
func RangeDigest(r io.ReadSeeker, offset, length uint64, nonce []byte) ([sha256.Size]byte, error) {
	if length > MaxChallengeRange || offset > 1<<62 {
		return [sha256.Size]byte{}, fmt.Errorf("blobs: challenge range %d+%d out of bounds", offset, length)
	}
	if _, err := r.Seek(int64(offset), io.SeekStart); err != nil {
		return [sha256.Size]byte{}, err
	}
	h := sha256.New()
	h.Write(nonce)
	if _, err := io.CopyN(h, r, int64(length)); err != nil && !errors.Is(err, io.EOF) {
		return [sha256.Size]byte{}, err
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d, nil
}
