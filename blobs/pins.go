package blobs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dpaas/dpaas/internal/blockstore"
	"github.com/dpaas/dpaas/internal/kv"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// pinState says how far a recursive pin has got.
type pinState byte

const (
	// pinNone: not kept here (the holdings protocol's answer; never stored).
	pinNone pinState = 0
	// pinPending: this replica should hold the blob but does not have
	// every block yet; replication fetches it, resuming after restarts.
	pinPending pinState = 1
	// pinComplete: every block of the DAG is held here.
	pinComplete pinState = 2
)

// pin is the record kept under prefixPins for one recursively pinned root.
type pin struct {
	state pinState
	size  uint64 // file size, when known
}

func (p pin) encode() []byte {
	b := []byte{byte(p.state)}
	return binary.AppendUvarint(b, p.size)
}

func decodePin(b []byte) (pin, error) {
	if len(b) < 2 || (pinState(b[0]) != pinPending && pinState(b[0]) != pinComplete) {
		return pin{}, fmt.Errorf("blobs: corrupt pin record %x", b)
	}
	size, n := binary.Uvarint(b[1:])
	if n <= 0 || 1+n != len(b) {
		return pin{}, fmt.Errorf("blobs: corrupt pin record %x", b)
	}
	return pin{state: pinState(b[0]), size: size}, nil
}

func pinKey(c cid.Cid) []byte { return append(append([]byte(nil), prefixPins...), c.Bytes()...) }

// getPin returns the pin of c, or ok=false.
func (s *Store) getPin(c cid.Cid) (pin, bool, error) {
	v, err := s.space.Get(pinKey(c))
	if errors.Is(err, kv.ErrNotFound) {
		return pin{}, false, nil
	}
	if err != nil {
		return pin{}, false, err
	}
	p, err := decodePin(v)
	if err != nil {
		return pin{}, false, err
	}
	return p, true, nil
}

// setPin durably writes the pin of c. A pin is the only thing that keeps
// blocks from GC, so it is synced, and written only after every block put
// before it is in the database: the pin's synced commit then makes their
// index durable too (one write-ahead log orders them), so a crash never
// leaves a pin whose blocks are missing.
func (s *Store) setPin(c cid.Cid, p pin) error {
	if err := s.blocks.Flush(); err != nil {
		return err
	}
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	old, had, err := s.getPin(c)
	if err != nil {
		return err
	}
	if err := s.space.Set(pinKey(c), p.encode(), true); err != nil {
		return err
	}
	s.metrics.pinChanged(old, had, p, true)
	return nil
}

// setPinIf writes p only when the current pin of c satisfies cond, and
// reports whether it did.
func (s *Store) setPinIf(c cid.Cid, p pin, cond func(old pin, had bool) bool) (bool, error) {
	if err := s.blocks.Flush(); err != nil {
		return false, err
	}
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	old, had, err := s.getPin(c)
	if err != nil {
		return false, err
	}
	if !cond(old, had) {
		return false, nil
	}
	if err := s.space.Set(pinKey(c), p.encode(), true); err != nil {
		return false, err
	}
	s.metrics.pinChanged(old, had, p, true)
	return true, nil
}

// unpin removes the pin of c and reports whether there was one.
func (s *Store) unpin(c cid.Cid) (bool, error) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	old, had, err := s.getPin(c)
	if err != nil || !had {
		return false, err
	}
	if err := s.space.Delete(pinKey(c), true); err != nil {
		return false, err
	}
	s.metrics.pinChanged(old, had, pin{}, false)
	s.spareLeased()
	return true, nil
}

// eachPin calls fn for every pin in CID order.
func (s *Store) eachPin(fn func(c cid.Cid, p pin) error) error {
	it, err := s.space.PrefixIter(prefixPins)
	if err != nil {
		return err
	}
	skip := len(s.space.Prefix()) + len(prefixPins)
	for ok := it.First(); ok; ok = it.Next() {
		c, err := cid.Cast(it.Key()[skip:])
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("blobs: corrupt pin key: %w", err)
		}
		p, err := decodePin(it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		if err := fn(c, p); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// guardedBlockstore is the blockstore that bitswap and the block service
// write through: every write holds the GC lock shared, so a block fetched
// while GC runs lands after the sweep, not between its mark and sweep.
type guardedBlockstore struct {
	*blockstore.Store
	mu *sync.RWMutex
}

func (g *guardedBlockstore) Put(ctx context.Context, b blocks.Block) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.Store.Put(ctx, b)
}

func (g *guardedBlockstore) PutMany(ctx context.Context, bs []blocks.Block) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.Store.PutMany(ctx, bs)
}
