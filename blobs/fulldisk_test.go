package blobs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/kv/kvtest"
)

// TestFullDiskFailsAddCleanly fills the disk during an Add: the Add fails
// with an error instead of panicking the process, later writes fail at
// once, blobs already added still read back, and a reopened store has
// them, takes new ones and leaves nothing of the failed Add after GC.
func TestFullDiskFailsAddCleanly(t *testing.T) {
	r := seeded(t)
	ctx := context.Background()
	dir := t.TempDir()
	fs, full := kvtest.NewFullFS(vfs.Default)
	open := func() (*kv.DB, *Store) {
		t.Helper()
		return openLocalIn(t, dir, &kv.Options{FS: fs})
	}
	db, s := open()
	first := randomBytes(r, 3*ChunkSize+17)
	c1, err := s.Add(ctx, bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}

	full.Store(true)
	if _, err := s.Add(ctx, &randomReader{r: r, n: 40 << 20}); !errors.Is(err, kv.ErrFailed) {
		t.Fatalf("Add on a full disk: %v, want kv.ErrFailed", err)
	}
	full.Store(false) // the space comes back; the database stays failed until reopened
	if _, err := s.Add(ctx, bytes.NewReader(randomBytes(r, ChunkSize))); !errors.Is(err, kv.ErrFailed) {
		t.Fatalf("Add after a failed write: %v, want kv.ErrFailed", err)
	}
	rd, err := s.Open(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rd)
	rd.Close()
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("blob added before the disk filled: %d bytes, %v", len(got), err)
	}
	s.Close()
	db.Close()

	db, s = open()
	defer db.Close()
	defer s.Close()
	if ok, err := s.Has(ctx, c1); !ok || err != nil {
		t.Fatalf("Has(first blob) after reopening = %v, %v", ok, err)
	}
	second := randomBytes(r, 2*ChunkSize)
	c2, err := s.Add(ctx, bytes.NewReader(second))
	if err != nil {
		t.Fatalf("Add after reopening: %v", err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := s.blockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := 4 + 1 + 2 + 1; n != want { // leaves and root of each blob
		t.Fatalf("%d blocks after GC, want %d: the failed Add left some", n, want)
	}
	if m := s.Metrics(); m.Pinned != 2 {
		t.Fatalf("%d blobs pinned, want 2 (%s, %s)", m.Pinned, c1, c2)
	}
}
