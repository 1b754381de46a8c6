package store

import (
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/hlc"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ipfs/go-cid"
)

func (s *Store) sortedHeads() []cid.Cid {
	out := make([]cid.Cid, 0, len(s.heads))
	for h := range s.heads {
		out = append(out, h)
	}
	sortCids(out)
	return out
}

func sortCids(cs []cid.Cid) {
	slices.SortFunc(cs, func(a, b cid.Cid) int { return compareBytes(a.Bytes(), b.Bytes()) })
}

func compareBytes(a, b []byte) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	}
	return 0
}

// writeDelta records an applied delta: its block, its place in the
// author's chain and the application order, and the new heads.
func (s *Store) writeDelta(b *pebble.Batch, d *delta.Delta, id cid.Cid, block []byte) error {
	s.order++
	return s.fileDelta(b, d, id, block, s.order)
}

// fileDelta records an applied delta at log position order: its block,
// its place under its CID and under its author, and the heads it changes.
func (s *Store) fileDelta(b *pebble.Batch, d *delta.Delta, id cid.Cid, block []byte, order uint64) error {
	sp := s.space
	if err := s.logDelta(b, d, id, block, order); err != nil {
		return err
	}
	if err := b.Set(sp.Key(cidKey(tBlock, id)), binary.BigEndian.AppendUint64(nil, order), nil); err != nil {
		return err
	}
	for _, p := range d.Parents {
		if _, ok := s.heads[p]; ok {
			delete(s.heads, p)
			if s.headsDirty[p] {
				delete(s.headsDirty, p) // born and gone in this batch
			} else {
				s.headsDirty[p] = false
			}
		}
	}
	s.heads[id] = struct{}{}
	s.headsDirty[id] = true
	s.noteVersion(d.Author, d.Seq)
	s.clock.Observe(hlc.Timestamp(d.HLC))
	return nil
}

// noteVersion raises an author's version: the highest sequence number of
// its deltas processed here, applied or refused. Since a delta is processed
// only after its parents, the author's earlier deltas are processed too.
func (s *Store) noteVersion(author common.Address, seq uint64) {
	if seq > s.vv[author] {
		s.vv[author] = seq
		s.vvDirty[author] = struct{}{}
		s.vvPublish[author] = struct{}{}
	}
}

// writeRejected records a delta a validator refused. It is never applied
// and never gossiped, but it stays in its author's chain so that catch-up
// can hand it to peers that lack it: they refuse it too, by the same
// deterministic rule, and can then apply its author's later valid deltas.
func (s *Store) writeRejected(b *pebble.Batch, x *incoming, reason string) error {
	if err := b.Set(s.space.Key(cidKey(tReject, x.id)), []byte(reason), nil); err != nil {
		return err
	}
	s.order++
	if err := s.logDelta(b, x.d, x.id, x.block, s.order); err != nil {
		return err
	}
	s.noteVersion(x.d.Author, x.d.Seq)
	return nil
}

// logDelta puts a processed delta at place order of the log, where
// catch-up reads blocks in the order this replica processed them (a causal
// order), and indexes that place under its author and sequence number.
func (s *Store) logDelta(b *pebble.Batch, d *delta.Delta, id cid.Cid, block []byte, order uint64) error {
	sp := s.space
	if err := b.Set(sp.Key(logKey(order)), block, nil); err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(nil, order)
	v = append(v, id.Bytes()...)
	return b.Set(sp.Key(append(authorKey(d.Author, d.Seq), id.Bytes()...)), v, nil)
}

// writeMeta writes what the batch changed of the heads, the versions, the
// log position and the clock. Heads and versions are written once per
// batch, not once per delta: a catch-up batch of a thousand deltas in a
// chain changes one head, not a thousand.
func (s *Store) writeMeta(b *pebble.Batch) error {
	sp := s.space
	for h, live := range s.headsDirty {
		var err error
		if live {
			err = b.Set(sp.Key(cidKey(tHead, h)), nil, nil)
		} else {
			err = b.Delete(sp.Key(cidKey(tHead, h)), nil)
		}
		if err != nil {
			return err
		}
	}
	clear(s.headsDirty)
	for a := range s.vvDirty {
		if err := b.Set(sp.Key(append([]byte{tVersion}, a[:]...)), binary.BigEndian.AppendUint64(nil, s.vv[a]), nil); err != nil {
			return err
		}
	}
	clear(s.vvDirty)
	if err := b.Set(s.space.Key(metaOrder), binary.BigEndian.AppendUint64(nil, s.order), nil); err != nil {
		return err
	}
	return b.Set(s.space.Key(metaClock), binary.BigEndian.AppendUint64(nil, uint64(s.clock.Last())), nil)
}

// known reports whether a delta was applied or rejected here.
func (s *Store) known(id cid.Cid) (bool, error) {
	if ok, err := s.space.Has(cidKey(tBlock, id)); ok || err != nil {
		return ok, err
	}
	return s.space.Has(cidKey(tReject, id))
}
