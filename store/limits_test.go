package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ethereum/go-ethereum/crypto"
)

// bigDoc is a document whose compact JSON is about n bytes.
func bigDoc(n int) map[string]any { return map[string]any{"blob": strings.Repeat("x", n)} }

// countRecords counts the keys of table t in s's space.
func countRecords(t testing.TB, s *Store, table byte) int {
	t.Helper()
	it, err := s.space.PrefixIter([]byte{table})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n
}

// checkLog checks that every delta in s's log is a block peers accept.
func checkLog(t testing.TB, s *Store) {
	t.Helper()
	it, err := s.space.PrefixIter([]byte{tLog})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if _, _, err := delta.Decode(it.Value()); err != nil {
			t.Fatalf("a delta in the log is refused by peers: %v", err)
		}
	}
}

// holdWrites keeps s's applier busy until release(n) is called, which
// waits until n writes are queued and lets the applier take them, all
// together as one group.
func holdWrites(t testing.TB, s *Store) (release func(n int)) {
	t.Helper()
	started, gate := make(chan struct{}), make(chan struct{})
	go func() { s.control <- func() { close(started); <-gate } }()
	<-started
	return func(n int) {
		t.Helper()
		defer close(gate) // also when the wait fails: Close needs the applier
		eventually(t, 2*time.Minute, "writes not queued", func() bool { return len(s.writes) >= n })
	}
}

// TestOversizeWritesRefusedUpFront: a document, an Update, an Append or a
// batch over its limit fails with ErrTooLarge, giving the limit and the
// size, and leaves nothing behind; the store goes on taking writes and
// reopens. (Before: an 8 MiB Put failed with "writes stopped after a
// failed commit", every later write failed and Open failed forever.)
func TestOversizeWritesRefusedUpFront(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	db, s := openDir(t, dir, nil, key)
	c := s.Collection("c")
	tooBig := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: %v, want ErrTooLarge", what, err)
		}
		if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(MaxWriteSize)) && !strings.Contains(msg, fmt.Sprint(MaxBatchSize)) {
			t.Fatalf("%s: %q does not give the limit", what, msg)
		}
	}
	tooBig("8 MiB Put", c.Put(ctx, "big", bigDoc(8<<20)))
	tooBig("Put just over the limit", c.Put(ctx, "big", bigDoc(MaxWriteSize)))
	tooBig("8 MiB Set", c.Update(ctx, "big", Set("f", strings.Repeat("y", 8<<20))))
	tooBig("Update of many values", c.Update(ctx, "big", Set("a", strings.Repeat("y", 4<<20)), Set("b", strings.Repeat("y", 4<<20))))
	tooBig("8 MiB Append", c.Update(ctx, "big", Append("log", strings.Repeat("y", 8<<20))))
	b := s.Batch()
	b.Put(c, "small", map[string]any{"a": 1})
	b.Put(c, "big", bigDoc(8<<20))
	tooBig("batch holding an 8 MiB Put", b.Commit(ctx))
	b = s.Batch()
	for i := range 70 {
		b.Put(c, fmt.Sprintf("b%d", i), bigDoc(1<<20))
	}
	tooBig("70 MiB batch", b.Commit(ctx))
	for _, id := range []string{"big", "small", "b0", "b69"} {
		if _, err := c.GetRaw(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after refused writes: %v, want ErrNotFound", id, err)
		}
	}
	if st := s.Stats(); st.DeltasCreated != 0 {
		t.Fatalf("refused writes made %d deltas", st.DeltasCreated)
	}

	// what fits is taken: a 4 MiB and a 6 MiB document, and a batch of
	// 100 x 100 KiB, which does not fit in one delta
	if err := c.Put(ctx, "four", bigDoc(4<<20)); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "six", bigDoc(6<<20)); err != nil {
		t.Fatal(err)
	}
	b = s.Batch()
	for i := range 100 {
		b.Put(c, fmt.Sprintf("h%d", i), bigDoc(100<<10))
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatalf("batch of 100 x 100 KiB: %v", err)
	}
	if n := docCount(t, c.s, "c"); n != 102 {
		t.Fatalf("%d documents, want 102", n)
	}
	if st := s.Stats(); st.DeltasCreated != 4 {
		t.Fatalf("%d deltas, want 4 (the batch in two)", st.DeltasCreated)
	}
	checkLog(t, s)
	s.Close()
	db.Close()

	db, s = openDir(t, dir, nil, key)
	defer db.Close()
	defer s.Close()
	if n := docCount(t, s, "c"); n != 102 {
		t.Fatalf("%d documents after reopening, want 102", n)
	}
	if err := s.Collection("c").Put(ctx, "after", map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentLargeWritesAllSucceed: writes that each fit succeed
// however many arrive together; the store cuts what it groups into deltas
// that fit, and a peer gets them all. (Before: 10 concurrent Puts of
// 1 MiB failed 10 of 10, 9 of them readable anyway, and the store stopped.)
func TestConcurrentLargeWritesAllSucceed(t *testing.T) {
	ctx := context.Background()
	w := startReplica(t, Config{})
	peer := startReplica(t, Config{})
	connect(t, w, peer)
	c := w.s.Collection("c")
	for _, round := range []struct{ n, size int }{{10, 1 << 20}, {40, 300 << 10}} {
		var wg sync.WaitGroup
		errs := make([]error, round.n)
		doc := json.RawMessage(`{"blob":"` + strings.Repeat("x", round.size) + `"}`)
		release := holdWrites(t, w.s)
		for i := range round.n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = c.Put(ctx, fmt.Sprintf("%d-%d", round.size, i), doc)
			}()
		}
		release(round.n)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("%d concurrent Puts of %d bytes: %v", round.n, round.size, err)
		}
	}
	if n := docCount(t, w.s, "c"); n != 50 {
		t.Fatalf("%d documents, want 50", n)
	}
	// the peer decodes every delta, with the checks of delta.Decode
	eventually(t, 60*time.Second, "the peer did not get every delta", func() bool {
		return fmt.Sprint(peer.s.Versions()) == fmt.Sprint(w.s.Versions())
	})
	if digest(t, peer.s) != digest(t, w.s) {
		t.Fatal("the peer's documents differ")
	}
}

// TestWriteThatObservesTooMuchRefusedAlone: a Delete carries every set
// element it observed; on a document whose set is bigger than a delta it
// fails with ErrTooLarge, alone: the writes committed with it succeed.
func TestWriteThatObservesTooMuchRefusedAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10 MB")
	}
	ctx := context.Background()
	s := openLocal(t, Config{})
	c := s.Collection("c")
	for k := range 3 {
		b := s.Batch()
		for i := range 3000 {
			b.Update(c, "set", Add("s", fmt.Sprintf("%d-%d-%s", k, i, strings.Repeat("e", 1000))))
		}
		if err := b.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	created := s.Stats().DeltasCreated
	var wg sync.WaitGroup
	errs := make([]error, 16)
	release := holdWrites(t, s)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				errs[i] = c.Delete(ctx, "set")
			} else {
				errs[i] = c.Put(ctx, fmt.Sprintf("p%d", i), map[string]any{"i": i})
			}
		}()
	}
	release(len(errs)) // one group: the Delete and the Puts
	wg.Wait()
	if !errors.Is(errs[0], ErrTooLarge) {
		t.Fatalf("Delete of a document with a 9 MB set: %v, want ErrTooLarge", errs[0])
	}
	if err := errors.Join(errs[1:]...); err != nil {
		t.Fatalf("writes committed with it: %v", err)
	}
	if _, err := c.GetRaw(ctx, "set"); err != nil {
		t.Fatalf("the refused Delete took effect: %v", err)
	}
	if n := s.Stats().DeltasCreated - created; n == 0 || n > 15 {
		t.Fatalf("%d deltas for 15 small Puts", n)
	}
	checkLog(t, s)
}

// TestOpenSetsAsidePendingDeltaItCannotFile builds what an older version
// left when it committed a delta it could not sign (8 MiB and more, or a
// name peers refuse): a pending record that can never be filed. Open sets
// it aside, counts and logs it once, and opens. (Before: Open failed on
// it every time.)
func TestOpenSetsAsidePendingDeltaItCannotFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	db, s := openDir(t, dir, nil, key)
	if err := s.Collection("c").Put(ctx, "ok", map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	seq, heads, order, sp := s.Versions()[s.Author()], s.Heads(), s.order, s.space
	s.Close()
	pend := func(d *delta.Delta) []byte {
		block, _, err := d.SignUnvalidated(key)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{0xa5}, block[1:len(block)-4-crypto.SignatureLength]...) // without the signature
	}
	big := pend(&delta.Delta{Seq: seq + 1, HLC: 1 << 50, Parents: heads, Ops: []delta.Op{
		{Kind: delta.Put, Collection: "c", ID: "big", Fields: delta.Fields{{Name: "blob", Value: []byte(`"` + strings.Repeat("x", 9<<20) + `"`)}}}}})
	badName := pend(&delta.Delta{Seq: seq + 2, HLC: 1<<50 + 1, Parents: heads, Ops: []delta.Op{
		{Kind: delta.Delete, Collection: "c\xff", ID: "x"}}})
	b := sp.NewBatch()
	b.Set(pendingKey(order+1), big)
	b.Set(pendingKey(order+2), badName)
	b.Set(append([]byte{tVersion}, s.Author().Bytes()...), binaryUint64(seq+2))
	b.Set(metaOrder, binaryUint64(order+2))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	db.Close()

	var logged atomic.Int32
	logger := slog.New(countHandler{&logged, "set aside"})
	for round := range 2 {
		db, err := kv.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := db.Space("store")
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(ctx, Config{Space: sp, Key: key, Logger: logger})
		if err != nil {
			db.Close()
			t.Fatalf("open %d: %v", round, err)
		}
		if st := s.Stats(); st.SetAside != 2 {
			t.Errorf("open %d: %d set aside, want 2", round, st.SetAside)
		}
		if n := countRecords(t, s, tPending); n != 0 {
			t.Errorf("open %d: %d pending records left", round, n)
		}
		if n := countRecords(t, s, tAside); n != 2 {
			t.Errorf("open %d: %d records kept aside, want 2", round, n)
		}
		c := s.Collection("c")
		if err := c.Put(ctx, fmt.Sprintf("after%d", round), map[string]any{"a": round}); err != nil {
			t.Errorf("open %d: write: %v", round, err)
		}
		if got := s.Versions()[s.Author()]; got != seq+3+uint64(round) {
			t.Errorf("open %d: version %d, want %d", round, got, seq+3+uint64(round))
		}
		checkLog(t, s)
		s.Close()
		db.Close()
	}
	if n := logged.Load(); n != 2 {
		t.Fatalf("setting aside logged %d times, want once per record", n)
	}
}

func binaryUint64(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// countHandler counts the log records whose message contains sub.
type countHandler struct {
	n   *atomic.Int32
	sub string
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.sub) {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestNamesPeersRefuseAreRefusedLocally: a collection name, document ID
// or field name that is not UTF-8, holds a zero byte or is too long is
// refused by the writer with ErrInvalid, as every peer would refuse it,
// and nothing is written. (Before: non-UTF-8 names were accepted locally
// and refused by every peer.)
func TestNamesPeersRefuseAreRefusedLocally(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{})
	c := s.Collection("c")
	long := strings.Repeat("n", MaxNameLen+1)
	cases := map[string]error{
		"collection not UTF-8": s.Collection("c\xff").Put(ctx, "x", map[string]any{"a": 1}),
		"id not UTF-8":         c.Put(ctx, "x\xfe", map[string]any{"a": 1}),
		"set field not UTF-8":  c.Update(ctx, "x", Set("f\xff", 1)),
		"set field zero byte":  c.Update(ctx, "x", Set("f\x00", 1)),
		"set field too long":   c.Update(ctx, "x", Set(long, 1)),
		"put field too long":   c.Put(ctx, "x", map[string]any{long: 1}),
		"id too long":          c.Delete(ctx, long),
	}
	b := s.Batch()
	b.Put(c, "ok", map[string]any{"a": 1})
	b.Update(c, "ok", Inc("n\xff", 1))
	cases["batch"] = b.Commit(ctx)
	for what, err := range cases {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	if st := s.Stats(); st.DeltasCreated != 0 {
		t.Fatalf("refused writes made %d deltas", st.DeltasCreated)
	}
	// the longest name that is allowed works, and \ufffd is as good as any
	name := strings.Repeat("n", MaxNameLen)
	if err := c.Update(ctx, name, Set(name, "\xff"), Set("\ufffd", 1)); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s)
}

// TestLongNamesCutInErrors: an error about a 10 KB name repeats a short
// part of it, not all of it. (Before: a 10,346-byte message.)
func TestLongNamesCutInErrors(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{})
	long := strings.Repeat("n", 10<<10)
	errs := []error{
		s.Collection("c").Put(ctx, long, map[string]any{}),
		s.Collection(long).Put(ctx, "x", map[string]any{}),
		s.Collection("c").Update(ctx, "x", Set(long, 1)),
		s.Collection("c").Put(ctx, "x", map[string]any{long: 1}),
		s.Collection("c").Get(ctx, long, new(any)),
		s.Collection("c").Put(ctx, strings.Repeat("é", 900), bigDoc(8<<20)),
		s.Collection("c").Put(ctx, "x", json.RawMessage(`{"`+long+`":1, "f": [}`)),
	}
	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		if n := len(err.Error()); n > 300 {
			t.Errorf("case %d: error of %d bytes: %.120s...", i, n, err)
		}
	}
}

// TestMaxDeltaOpsBoundedByWhatPeersAccept: a Config asking for deltas of
// more operations than any replica accepts is refused at Open, instead of
// making every big batch fail.
func TestMaxDeltaOpsBoundedByWhatPeersAccept(t *testing.T) {
	if _, err := Open(context.Background(), Config{MaxDeltaOps: delta.MaxOps + 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MaxDeltaOps over delta.MaxOps: %v, want ErrInvalid", err)
	}
}

// TestLimitsMatchCodec: the public limits are those the delta codec
// enforces on every replica.
func TestLimitsMatchCodec(t *testing.T) {
	if MaxNameLen != delta.MaxNameLen {
		t.Fatalf("store.MaxNameLen %d, the codec's %d", MaxNameLen, delta.MaxNameLen)
	}
}
