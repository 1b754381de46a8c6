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
	"encoding/binary"
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

	written atomic.Uint64 // bytes of blocks written since New
}

var _ boxobs.Blockstore = (*Store)(nil)

// New returns a blockstore that keeps every block under prefix inside space.
// The caller owns the rest of the space and must keep its own keys out of
// prefix.
func New(space *kv.Space, prefix []byte) *Store {
	return &Store{space: space, prefix: append([]byte(nil), prefix...)}
}

// Each block has two keys: its data under prefix+"d"+multihash and its size
// under prefix+"s"+multihash. Has, GetSize and Each read only the small
// size keys, so checking or listing blocks never reads their data.
const (
	tagData = 'd'
	tagSize = 's'
)

// key is the full database key of a multihash's data or size.
func (s *Store) key(tag byte, mh multihash.Multihash) []byte {
	k := make([]byte, 0, len(s.prefix)+1+len(mh))
	k = append(k, s.prefix...)
	k = append(k, tag)
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

// get calls fn with the stored value of c under tag; the slice is only
// valid during fn.
func (s *Store) get(c cid.Cid, tag byte, fn func([]byte)) error {
	if !c.Defined() {
		return fmt.Errorf("blockstore: get: %w", ipld.ErrNotFound{Cid: c})
	}
	v, closer, err := s.space.DB().Pebble().Get(s.key(tag, c.Hash()))
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
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	_, err := s.GetSize(ctx, c)
	if ipld.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Get returns the block, or an error that satisfies ipld.IsNotFound.
func (s *Store) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	if data, ok := isIdentity(c); ok {
		return blocks.NewBlockWithCid(data, c)
	}
	var data []byte
	if err := s.get(c, tagData, func(v []byte) { data = append([]byte(nil), v...) }); err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetSize returns the size of the block's data.
func (s *Store) GetSize(_ context.Context, c cid.Cid) (int, error) {
	if data, ok := isIdentity(c); ok {
		return len(data), nil
	}
	var size uint64
	var n int
	if err := s.get(c, tagSize, func(v []byte) { size, n = binary.Uvarint(v) }); err != nil {
		return -1, err
	}
	if n <= 0 {
		return -1, fmt.Errorf("blockstore: corrupt size record of %s", c)
	}
	return int(size), nil
}

// Put stores one block.
func (s *Store) Put(ctx context.Context, b blocks.Block) error {
	return s.PutMany(ctx, []blocks.Block{b})
}

// PutMany stores blocks in one atomic, unsynced batch. It does not look
// for blocks already stored: with no bloom filters that lookup reads the
// 256 KiB values it finds and costs more than rewriting them, and callers
// that may hold a block already (bitswap) check Has before fetching it.
func (s *Store) PutMany(_ context.Context, bs []blocks.Block) error {
	batch := s.space.DB().Pebble().NewBatch()
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
		if err := batch.Set(s.key(tagData, c.Hash()), b.RawData(), nil); err != nil {
			return fmt.Errorf("blockstore: put %s: %w", c, err)
		}
		size := binary.AppendUvarint(nil, uint64(len(b.RawData())))
		if err := batch.Set(s.key(tagSize, c.Hash()), size, nil); err != nil {
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
	if err := s.DeleteMany([]multihash.Multihash{c.Hash()}, false); err != nil {
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
		// Size first: a block without its size key is invisible, so the
		// pair is removed atomically anyway, but never the other way round.
		if err := batch.Delete(s.key(tagSize, mh), nil); err != nil {
			return fmt.Errorf("blockstore: delete: %w", err)
		}
		if err := batch.Delete(s.key(tagData, mh), nil); err != nil {
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
	p := append(append([]byte(nil), s.prefix...), tagSize)
	it, err := s.space.PrefixIter(p)
	if err != nil {
		return fmt.Errorf("blockstore: each: %w", err)
	}
	skip := len(s.space.Prefix()) + len(p)
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			_ = it.Close()
			return err
		}
		mh := multihash.Multihash(append([]byte(nil), it.Key()[skip:]...))
		size, n := binary.Uvarint(it.Value())
		if n <= 0 {
			_ = it.Close()
			return fmt.Errorf("blockstore: corrupt size record of %s", mh.B58String())
		}
		if err := fn(mh, int(size)); err != nil {
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

// Written returns how many bytes of blocks were written since New.
func (s *Store) Written() uint64 { return s.written.Load() }
