package store

import (
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/crdt"
	"github.com/dpaas/dpaas/internal/kv"
)

func TestRecordSplit(t *testing.T) {
	st := new(crdt.Doc)
	enc, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, view := range [][]byte{nil, []byte(`{}`), []byte(`{"a":1}`), make([]byte, 300)} {
		rec, err := appendRecord(nil, view, st)
		if err != nil {
			t.Fatal(err)
		}
		gotView, gotState, err := splitRecord(rec)
		if err != nil {
			t.Fatalf("view %q: %v", view, err)
		}
		if string(gotView) != string(view) || (gotView == nil) != (len(view) == 0) || string(gotState) != string(enc) {
			t.Fatalf("view %q: split gave %q and %x", view, gotView, gotState)
		}
	}
	for _, bad := range [][]byte{nil, {0x80}, {5, '{', '}'}, enc /* a bare state: the layout before records */} {
		if _, _, err := splitRecord(bad); !errors.Is(err, errCorruptRecord) {
			t.Fatalf("%x: got %v, want errCorruptRecord", bad, err)
		}
	}
}

// TestOldLayoutMigrated writes documents, turns the database back into
// the layout before records (bare states, views under keys of their own),
// and checks that reopening rewrites it: the same documents, deleted ones
// still deleted and revivable, no view keys left.
func TestOldLayoutMigrated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, s := openDir(t, dir, nil, nil)
	c := s.Collection("rides")
	for _, id := range []string{"a", "b", "c"} {
		if err := c.Put(ctx, id, map[string]any{"to": id, "fare": 3}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Update(ctx, "a", Inc("fare", 4), Add("tags", "x")); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, id := range []string{"a", "c"} {
		raw, err := c.GetRaw(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = string(raw)
	}
	s.Close()
	toOldLayout(t, s.space)
	db.Close()

	db, s = openDir(t, dir, nil, nil)
	defer db.Close()
	defer s.Close()
	c = s.Collection("rides")
	for id, w := range want {
		raw, err := c.GetRaw(ctx, id)
		if err != nil || string(raw) != w {
			t.Fatalf("%s after migration: %s, %v; want %s", id, raw, err, w)
		}
	}
	if _, err := c.GetRaw(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted b after migration: %v", err)
	}
	if n, err := c.Count(ctx); err != nil || n != 2 {
		t.Fatalf("count after migration: %d, %v", n, err)
	}
	it, err := s.space.PrefixIter([]byte{tView})
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	for it.First(); it.Valid(); it.Next() {
		left++
	}
	it.Close()
	if left != 0 {
		t.Fatalf("%d view keys left after migration", left)
	}
	if err := c.Update(ctx, "a", Inc("fare", 1)); err != nil {
		t.Fatal(err)
	}
	var got struct{ Fare int }
	if err := c.Get(ctx, "a", &got); err != nil || got.Fare != 8 {
		t.Fatalf("a after an update: %+v, %v", got, err)
	}
	if err := c.Put(ctx, "b", map[string]any{"to": "b2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRaw(ctx, "b"); err != nil {
		t.Fatalf("revived b: %v", err)
	}
}

// toOldLayout rewrites every record of sp as a bare state plus a view key,
// and drops the layout marker, as a database before records was.
func toOldLayout(t *testing.T, sp *kv.Space) {
	t.Helper()
	it, err := sp.PrefixIter([]byte{tState})
	if err != nil {
		t.Fatal(err)
	}
	b := sp.DB().Pebble().NewBatch()
	for it.First(); it.Valid(); it.Next() {
		view, state, err := splitRecord(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		k := sp.Strip(it.Key())
		b.Set(it.Key(), state, nil)
		if view != nil {
			b.Set(sp.Key(append([]byte{tView}, k[1:]...)), view, nil)
		}
	}
	it.Close()
	b.Delete(sp.Key(metaFormat), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}
