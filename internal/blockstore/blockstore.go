// Package blockstore keeps IPFS blocks in the instance's Pebble database.
//
// Store implements boxo's blockstore.Blockstore on a kv.Space. Blocks are
// keyed by multihash, not by CID, exactly like boxo's own blockstore: a raw
// leaf and a dag-pb node with the same bytes share one stored copy, and a
// CIDv0 and a CIDv1 of the same block are the same key. Identity CIDs carry
// their data inline and are never stored.
//
// Writes are not synced one by one: callers that need durability (a pin that
// names the blocks) commit their own record with sync afterwards, and
// Pebble's single write-ahead log makes every earlier write durable with it.
//
// A Store is safe for concurrent use.
package blockstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/kv"
	boxobs "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

// Store is a boxo Blockstore on a key space of the instance's database.
type Store struct {
	space  *kv.Space
	prefix []byte

	written atomic.Uint64 // bytes of new blocks written since New
}

var _ boxobs.Blockstore = (*Store)(nil)

// New returns a blockstore that keeps every block under prefix inside space.
// The caller owns the rest of the space and must keep its own keys out of
// prefix.
func New(space *kv.Space, prefix []byte) *Store {
	return &Store{space: space, prefix: append([]byte(nil), prefix...)}
}

// key is the full database key of a multihash.
func (s *Store) key(mh multihash.Multihash) []byte {
	k := make([]byte, 0, len(s.prefix)+len(mh))
	k = append(k, s.prefix...)
	return s.space.Key(append(k, mh...))
}

func isIdentity(c cid.Cid) (data []byte, ok bool) {
	if c.Prefix().MhType != multihash.IDENTITY {
		return nil, false
	}
	dec, err := multihash.Decode(c.Hash())
	if err != nil {
		return nil, false
	}
	return dec.Digest, true
}

// get calls fn with the stored bytes of c; the slice is only valid during fn.
func (s *Store) get(c cid.Cid, fn func([]byte)) error {
	if !c.Defined() {
		return fmt.Errorf("blockstore: get: %w", ipld.ErrNotFound{Cid: c})
	}
	if data, ok := isIdentity(c); ok {
		fn(data)
		return nil
	}
	v, closer, err := s.space.DB().Pebble().Get(s.key(c.Hash()))
	if errors.Is(err, pebble.ErrNotFound) {
		return ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return fmt.Errorf("blockstore: get %s: %w", c, err)
	}
	fn(v)
	return closer.Close()
}

// Has reports whether the block is stored.
func (s *Store) Has(_ context.Context, c cid.Cid) (bool, error) {
	err := s.get(c, func([]byte) {})
	if ipld.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Get returns the block, or an error that satisfies ipld.IsNotFound.
func (s *Store) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	var data []byte
	if err := s.get(c, func(v []byte) { data = append([]byte(nil), v...) }); err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetSize returns the size of the block's data.
func (s *Store) GetSize(_ context.Context, c cid.Cid) (int, error) {
	n := -1
	if err := s.get(c, func(v []byte) { n = len(v) }); err != nil {
		return -1, err
	}
	return n, nil
}

// Put stores one block.
func (s *Store) Put(ctx context.Context, b blocks.Block) error {
	return s.PutMany(ctx, []blocks.Block{b})
}

// PutMany stores blocks in one atomic, unsynced batch. Blocks already held
// are skipped so that re-adding a file does not rewrite its data.
func (s *Store) PutMany(_ context.Context, bs []blocks.Block) error {
	pdb := s.space.DB().Pebble()
	batch := pdb.NewBatch()
	defer batch.Close()
	var added uint64
	inBatch := make(map[string]struct{}, len(bs))
	for _, b := range bs {
		c := b.Cid()
		if _, ok := isIdentity(c); ok {
			continue
		}
		if _, dup := inBatch[string(c.Hash())]; dup {
			continue
		}
		inBatch[string(c.Hash())] = struct{}{}
		k := s.key(c.Hash())
		_, closer, err := pdb.Get(k)
		if err == nil {
			if err := closer.Close(); err != nil {
				return fmt.Errorf("blockstore: put %s: %w", c, err)
			}
			continue
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("blockstore: put %s: %w", c, err)
		}
		if err := batch.Set(k, b.RawData(), nil); err != nil {
			return fmt.Errorf("blockstore: put %s: %w", c, err)
		}
		added += uint64(len(b.RawData()))
	}
	if batch.Count() == 0 {
		return nil
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("blockstore: put: %w", err)
	}
	s.written.Add(added)
	return nil
}

// DeleteBlock removes a block; removing an absent block is not an error.
func (s *Store) DeleteBlock(_ context.Context, c cid.Cid) error {
	if _, ok := isIdentity(c); ok {
		return nil
	}
	if err := s.space.DB().Pebble().Delete(s.key(c.Hash()), pebble.NoSync); err != nil {
		return fmt.Errorf("blockstore: delete %s: %w", c, err)
	}
	return nil
}

// DeleteMany removes the blocks with the given multihashes in one atomic
// batch; with sync it returns once the deletion is durable.
func (s *Store) DeleteMany(mhs []multihash.Multihash, sync bool) error {
	pdb := s.space.DB().Pebble()
	batch := pdb.NewBatch()
	defer batch.Close()
	for _, mh := range mhs {
		if err := batch.Delete(s.key(mh), nil); err != nil {
			return fmt.Errorf("blockstore: delete: %w", err)
		}
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := batch.Commit(opts); err != nil {
		return fmt.Errorf("blockstore: delete: %w", err)
	}
	return nil
}

// Each calls fn with the multihash and data size of every stored block, in
// key order, until fn returns an error or ctx ends. The multihash is a fresh
// copy that fn may keep.
func (s *Store) Each(ctx context.Context, fn func(mh multihash.Multihash, size int) error) error {
	it, err := s.space.PrefixIter(s.prefix)
	if err != nil {
		return fmt.Errorf("blockstore: each: %w", err)
	}
	skip := len(s.space.Prefix()) + len(s.prefix)
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			_ = it.Close()
			return err
		}
		mh := multihash.Multihash(append([]byte(nil), it.Key()[skip:]...))
		lv := it.LazyValue()
		if err := fn(mh, lv.Len()); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("blockstore: each: %w", err)
	}
	return nil
}

// AllKeysChan streams the CIDs (raw codec, as the codec is not stored) of
// every block until ctx ends.
func (s *Store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	ch := make(chan cid.Cid, 64)
	go func() {
		defer close(ch)
		_ = s.Each(ctx, func(mh multihash.Multihash, _ int) error {
			select {
			case ch <- cid.NewCidV1(cid.Raw, mh):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return ch, nil
}

// Written returns how many bytes of new blocks were written since New.
func (s *Store) Written() uint64 { return s.written.Load() }
