package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestCrashBeforeFilingFinishedOnOpen builds the state a crash leaves
// between the two batches of commitSignLater (documents and the unsigned
// delta durable, its signed form lost) and checks that Open finishes it
// into exactly what an uninterrupted commit writes, key for key.
func TestCrashBeforeFilingFinishedOnOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	open := func() (*kv.DB, *kv.Space, *Store) {
		t.Helper()
		db, s := openDir(t, dir, nil, key)
		return db, s.space, s
	}
	dump := func(sp *kv.Space) map[string]string {
		t.Helper()
		it, err := sp.PrefixIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		m := make(map[string]string)
		for it.First(); it.Valid(); it.Next() {
			m[string(sp.Strip(it.Key()))] = string(it.Value())
		}
		return m
	}

	db, sp, s := open()
	c := s.Collection("rides")
	if err := c.Put(ctx, "r1", ride{From: "A", To: "B", Fare: 7}); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, "r1", Inc("views", 2), Add("tags", "x")); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "r2", ride{From: "C", To: "D", Fare: 9}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	want := dump(sp)
	if n := countPrefix(want, tPending); n != 0 {
		t.Fatalf("%d pending deltas left after clean commits", n)
	}

	// Undo the filing of the last delta, as a crash before the second
	// batch reached the disk would.
	order := binary.BigEndian.Uint64([]byte(want[string(metaOrder)]))
	block := []byte(want[string(logKey(order))])
	d, err := delta.DecodeTrusted(block)
	if err != nil {
		t.Fatal(err)
	}
	id, err := delta.CID(block)
	if err != nil {
		t.Fatal(err)
	}
	d.Sig = nil
	unsigned, err := d.Prepare(key)
	if err != nil {
		t.Fatal(err)
	}
	b := sp.NewBatch()
	b.Delete(logKey(order))
	b.Delete(cidKey(tBlock, id))
	b.Delete(append(authorKey(d.Author, d.Seq), id.Bytes()...))
	b.Delete(cidKey(tHead, id))
	for _, p := range d.Parents {
		b.Set(cidKey(tHead, p), nil)
	}
	b.Set(pendingKey(order), unsigned)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	crashed := dump(sp)
	if maps.Equal(crashed, want) {
		t.Fatal("the crash left nothing to finish")
	}
	other, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Config{Space: sp, Key: other}); err == nil || !strings.Contains(err.Error(), "needs that key") {
		t.Fatalf("open with another key over a pending delta: %v", err)
	}
	db.Close()

	db, sp, s = open()
	defer db.Close()
	got, err := s.Collection("rides").GetRaw(ctx, "r2")
	if err != nil || !bytes.Contains(got, []byte(`"fare":9`)) {
		t.Fatalf("r2 after recovery: %s, %v", got, err)
	}
	if heads := s.Heads(); len(heads) != 1 || !heads[0].Equals(id) {
		t.Fatalf("heads after recovery %v, want [%s]", heads, id)
	}
	s.Close()
	after := dump(sp)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if after[k] != want[k] {
			t.Errorf("key %q: %x after recovery, %x uninterrupted", k, after[k], want[k])
		}
	}
	for k := range after {
		if _, ok := want[k]; !ok {
			t.Errorf("key %q left by recovery", k)
		}
	}
}

func countPrefix(m map[string]string, t byte) int {
	n := 0
	for k := range m {
		if len(k) > 0 && k[0] == t {
			n++
		}
	}
	return n
}
