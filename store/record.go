package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/crdt"
	"github.com/dpaas/dpaas/internal/kv"
)

// A document's record, under tState, holds both what readers return (the
// JSON view) and what replicas merge into (the CRDT state), so that a write
// of a document is one key, not two:
//
//	uvarint(len(view)) view state
//
// A deleted document keeps its state (a later write may revive it) with an
// empty view. Reads take the view without decoding the state.
//
// Databases written before this layout kept the view under a key of its
// own (tView) and the bare state under tState. A state begins with its
// codec version, the byte 1, which no record does (a view is at least
// "{}", so its length is 0 or 2 and more), and Open rewrites such records
// once (migrateRecords).

var errCorruptRecord = errors.New("store: corrupt document record")

// appendRecord appends the record of a document with the given view and
// state to dst.
func appendRecord(dst, view []byte, st *crdt.Doc) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(view)))
	dst = append(dst, view...)
	return st.AppendEncode(dst)
}

// splitRecord returns the view (nil for a deleted document) and the
// encoded state of a record; both alias rec.
func splitRecord(rec []byte) (view, state []byte, err error) {
	n, k := binary.Uvarint(rec)
	if k <= 0 || n == 1 || n > uint64(len(rec)-k) {
		return nil, nil, errCorruptRecord
	}
	if n > 0 {
		view = rec[k : k+int(n) : k+int(n)]
	}
	return view, rec[k+int(n):], nil
}

// recordView returns the view a record holds, nil for a deleted document.
func recordView(rec []byte) ([]byte, error) {
	view, _, err := splitRecord(rec)
	return view, err
}

// decodeRecord returns the view and the decoded state of a record; the
// state aliases rec.
func decodeRecord(rec []byte) ([]byte, *crdt.Doc, error) {
	view, enc, err := splitRecord(rec)
	if err != nil {
		return nil, nil, err
	}
	st, err := crdt.Decode(enc)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errCorruptRecord, err)
	}
	return view, st, nil
}

// recordFormat is the value of metaFormat once every document is a record.
const recordFormat = 2

// migrateRecords rewrites the documents of a database written before
// records: each bare state under tState becomes a record with the view
// from tView, which goes. It commits as it goes, so a crash in the middle
// leaves records and bare states side by side, which the next Open tells
// apart and finishes; metaFormat says it is done.
func (s *Store) migrateRecords() error {
	fail := func(err error) error { return fmt.Errorf("store: open: rewriting documents as records: %w", err) }
	if v, err := s.space.Get(metaFormat); err == nil {
		if len(v) != 1 || v[0] != recordFormat {
			return fmt.Errorf("store: open: unknown document layout %x", v)
		}
		return nil
	} else if !errors.Is(err, kv.ErrNotFound) {
		return fail(err)
	}
	it, err := s.space.PrefixIter([]byte{tState})
	if err != nil {
		return fail(err)
	}
	defer it.Close()
	b := s.pdb.NewBatch()
	defer func() { b.Close() }()
	commit := func(sync bool) error {
		opts := pebble.NoSync
		if sync {
			opts = pebble.Sync
		}
		err := s.write(func() error { return b.Commit(opts) })
		b.Close()
		b = s.pdb.NewBatch()
		return err
	}
	migrated := 0
	for it.First(); it.Valid(); it.Next() {
		old := it.Value()
		if len(old) == 0 || old[0] != 1 {
			continue // a record already
		}
		k := s.space.Strip(it.Key())
		viewKey := append([]byte{tView}, k[1:]...)
		view, err := s.space.Get(viewKey)
		if errors.Is(err, kv.ErrNotFound) {
			view = nil // a deleted document
		} else if err != nil {
			return fail(err)
		}
		st, err := crdt.Decode(old)
		if err != nil {
			return fail(fmt.Errorf("document %s: %w", shortName(string(k[1:])), err))
		}
		rec, err := appendRecord(nil, view, st)
		if err != nil {
			return fail(err)
		}
		if err := b.Set(it.Key(), rec, nil); err != nil {
			return fail(err)
		}
		if err := b.Delete(s.space.Key(viewKey), nil); err != nil {
			return fail(err)
		}
		if migrated++; b.Len() > 16<<20 {
			if err := commit(false); err != nil {
				return fail(err)
			}
		}
	}
	if err := it.Error(); err != nil {
		return fail(err)
	}
	if err := b.Set(s.space.Key(metaFormat), []byte{recordFormat}, nil); err != nil {
		return fail(err)
	}
	if err := commit(true); err != nil {
		return fail(err)
	}
	if migrated > 0 {
		s.log.Info("store: rewrote documents as records", "documents", migrated)
	}
	return nil
}
