package store

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/delta"
)

// Limits on what a caller may write. They are constants, the same on every
// replica, and every delta a write within them makes is valid on every
// replica (the one validity rule every replica applies decides that).
const (
	// MaxNameLen is the longest collection name, document ID or field
	// name, in bytes. Names must also be valid UTF-8 without a zero byte.
	MaxNameLen = 1024 // the delta codec's bound (TestLimitsMatchCodec)
	// MaxWriteSize bounds one write: the operations of one Put, Update or
	// Delete, and each write added to a Batch, measured as they are
	// encoded in a delta (for a Put, about the document's compact JSON;
	// for an Update, its values and field names). Larger writes fail with
	// ErrTooLarge before anything is written.
	MaxWriteSize = 7 << 20
	// MaxBatchSize bounds a whole Batch, measured as MaxWriteSize is. A
	// Batch is committed atomically on this replica, as several deltas
	// when it does not fit in one; peers apply those deltas one by one.
	MaxBatchSize = 64 << 20
)

// deltaBudget is the most operation bytes the applier plans into one
// delta from the writes as callers gave them. The rest of
// delta.MaxOpsSize is left for what the applier adds from the documents
// (set elements and counter contributions a write observed).
const deltaBudget = delta.MaxOpsSize - 512<<10

// maxGroupBytes bounds the operation bytes of the writes the applier
// takes into one commit.
const maxGroupBytes = 4 * delta.MaxBlockSize

// writeSize returns the bytes a write's operations take in a delta, and
// notes each operation's size in it, or fails with ErrTooLarge once they
// pass limit. The operations' names were checked as they were made, by the
// rule peers apply (delta.CheckName), and their values are JSON by
// construction; Prepare checks the whole delta again (delta.Validate)
// before it is signed.
func writeSize(verb string, ops []userOp, limit int) (int, error) {
	n := 0
	for i := range ops {
		u := &ops[i]
		op := delta.Op{Kind: u.kind, Collection: u.coll, ID: u.id, Field: u.field, Value: u.value, Amount: u.amount, Fields: u.fields}
		u.size = op.Size()
		if n += u.size; n > limit {
			return 0, tooLarge(verb, u.coll, u.id, n, i+1 < len(ops), limit)
		}
	}
	return n, nil
}

func tooLarge(verb, coll, id string, n int, more bool, limit int) error {
	at := ""
	if more {
		at = "at least "
	}
	return fmt.Errorf("store: %s %s: %s%d bytes over the %d-byte limit: %w", verb, docName(coll, id), at, n, limit, ErrTooLarge)
}

// shownNameLen is how much of a name an error message repeats.
const shownNameLen = 64

// shortName quotes a name for an error message, cut to shownNameLen
// bytes (on a character boundary) with its length when longer, so that a
// 10 KB ID does not make a 10 KB error.
func shortName(s string) string {
	if len(s) <= shownNameLen {
		return strconv.Quote(s)
	}
	cut := shownNameLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// docName names a document in an error message: collection/id, each cut
// by shortName when long or not printable as is.
func docName(coll, id string) string {
	if len(coll)+len(id) <= shownNameLen && plain(coll) && plain(id) {
		return coll + "/" + id
	}
	return shortName(coll) + "/" + shortName(id)
}

// plain reports whether s prints as itself: printable ASCII without '/'
// or quotes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '/' || c == '"' {
			return false
		}
	}
	return true
}

// setAside moves a pending local delta that can no longer be signed and
// filed (an older version wrote it too big, or with a name peers refuse)
// out of the way, so that Open does not fail on it forever: its bytes are
// kept under tAside and it is logged once, here. Its documents stay as
// they were written on this replica; no peer ever receives the delta.
func (s *Store) setAside(order uint64, unsigned []byte, cause error) error {
	b := s.pdb.NewBatch()
	defer b.Close()
	err := b.Set(s.space.Key(binary.BigEndian.AppendUint64([]byte{tAside}, order)), unsigned, nil)
	if err == nil {
		err = b.Delete(s.space.Key(pendingKey(order)), nil)
	}
	if err == nil {
		err = s.write(func() error { return s.pdb.Apply(b, pebble.NoSync) })
	}
	if err != nil {
		return fmt.Errorf("store: open: setting aside pending delta %d: %w", order, err)
	}
	s.log.Error("store: a local delta left pending cannot be filed; it is set aside and will not replicate", "order", order, "bytes", len(unsigned), "err", cause)
	return nil
}

// countAside counts the deltas set aside, for Stats.
func (s *Store) countAside() error {
	it, err := s.space.PrefixIter([]byte{tAside})
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	n := int64(0)
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	s.asideN.Store(n)
	return nil
}
