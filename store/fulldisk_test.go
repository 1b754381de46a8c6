package store

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/kv/kvtest"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestFullDiskStopsWritesCleanly fills the disk under a store: the write
// that hits it fails with the cause, later writes fail at once with the
// same error instead of reaching Pebble, reads go on, nothing panics, and
// a reopened store has every acknowledged write and takes writes again.
func TestFullDiskStopsWritesCleanly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	fs, full := kvtest.NewFullFS(vfs.Default)
	open := func() (*kv.DB, *Store) {
		t.Helper()
		return openDir(t, dir, &kv.Options{FS: fs}, key)
	}
	db, s := open()
	c := s.Collection("rides")
	for _, id := range []string{"r1", "r2"} {
		if err := c.Put(ctx, id, ride{From: "A", Fare: 5}); err != nil {
			t.Fatal(err)
		}
	}
	batch := s.Batch()
	for i := range 300 { // a commit of the large-group path, before the disk fills
		batch.Put(c, "b"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), ride{Fare: i})
	}
	if err := batch.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	full.Store(true)
	err = c.Put(ctx, "r3", ride{From: "B"})
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrWritesStopped) {
		t.Fatalf("put on a full disk: %v", err)
	}
	full.Store(false) // space comes back, but the store stays stopped until reopened
	for _, write := range []func() error{
		func() error { return c.Put(ctx, "r4", ride{}) },
		func() error { return c.Update(ctx, "r1", Inc("views", 1)) },
		func() error { return c.Delete(ctx, "r2") },
	} {
		if err := write(); !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrWritesStopped) {
			t.Fatalf("write after a failed commit: %v", err)
		}
	}
	if raw, err := c.GetRaw(ctx, "r1"); err != nil || !strings.Contains(string(raw), `"fare":5`) {
		t.Fatalf("read after a failed commit: %s, %v", raw, err)
	}
	s.Close()
	db.Close()

	db, s = open()
	defer db.Close()
	defer s.Close()
	c = s.Collection("rides")
	for _, id := range []string{"r1", "r2"} {
		if _, err := c.GetRaw(ctx, id); err != nil {
			t.Fatalf("acknowledged write %s after reopening: %v", id, err)
		}
	}
	if n, err := c.Count(ctx); err != nil || n < 302 {
		t.Fatalf("count after reopening: %d, %v", n, err)
	}
	before := s.Versions()[s.Author()]
	if err := c.Put(ctx, "r5", ride{From: "C"}); err != nil {
		t.Fatalf("write after reopening: %v", err)
	}
	if got := s.Versions()[s.Author()]; got != before+1 {
		t.Fatalf("own sequence %d after reopening, want %d", got, before+1)
	}
}
