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
	"github.com/ipfs/go-cid"
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
	if _, err := s.Add(ctx, &randomReader{r: r, n: 40 << 20}); !errors.Is(err, kv.ErrFailed) || !errors.Is(err, ErrWritesStopped) {
		t.Fatalf("Add on a full disk: %v, want ErrWritesStopped", err)
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

// TestFullDiskDuringFetch fills the reader's disk while it streams a file
// from a holder over the blocks protocol: the read either returns the
// right bytes (from the blocks it holds in memory) or fails with
// kv.ErrFailed; nothing panics, and once reopened with space the reader
// fetches and holds the file.
func TestFullDiskDuringFetch(t *testing.T) {
	waitForHolders(t)
	old := blockFlushBytes
	blockFlushBytes = 2 * ChunkSize // write out, and fail, during the read
	t.Cleanup(func() { blockFlushBytes = old })
	r := seeded(t)
	data := randomBytes(r, 24*ChunkSize)
	holder, root := addedOn(t, data)

	dir := t.TempDir()
	fs, full := kvtest.NewFullFS(vfs.Default)
	start := func() *replica {
		t.Helper()
		db, err := kv.Open(dir, &kv.Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		sp, err := db.Space("blobs")
		if err != nil {
			t.Fatal(err)
		}
		h := newHost(t)
		cfg := Config{Space: sp, Host: h, AppID: testApp, Registry: NewMemRegistry()}
		s, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		rep := &replica{t: t, host: h, db: db, store: s, cfg: cfg}
		t.Cleanup(rep.stop)
		connect(t, rep, holder)
		return rep
	}
	rdr := start()
	full.Store(true)
	got, err := readBlob(rdr.store, root)
	switch {
	case err == nil && !bytes.Equal(got, data):
		t.Fatal("read wrong bytes on a full disk")
	case err != nil && !errors.Is(err, kv.ErrFailed):
		t.Fatalf("read on a full disk: %v, want the bytes or kv.ErrFailed", err)
	}
	t.Logf("read on a full disk: %d bytes, err %v", len(got), err)
	if err := rdr.store.blocks.Flush(); !errors.Is(err, kv.ErrFailed) {
		t.Fatalf("writing out the fetched blocks on a full disk: %v, want kv.ErrFailed", err)
	}
	if rdr.store.Metrics().StreamFetchedBytes == 0 {
		t.Fatal("nothing came over the blocks protocol")
	}
	// Closing reports the blocks it could not write, and loses nothing
	// that was durable.
	if err := rdr.store.Close(); !errors.Is(err, kv.ErrFailed) {
		t.Fatalf("Close on a full disk: %v, want kv.ErrFailed", err)
	}
	_ = rdr.host.Close()
	_ = rdr.db.Close()
	rdr.store = nil // stopped

	full.Store(false)
	rdr = start()
	if got, err := readBlob(rdr.store, root); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after reopening with space: %d bytes, %v", len(got), err)
	}
	if err := rdr.store.blocks.Flush(); err != nil {
		t.Fatal(err)
	}
	if !complete(t, rdr.store, root) {
		t.Fatal("the reopened reader does not hold what it read")
	}
}

// readBlob opens c on s and reads it whole within a minute.
func readBlob(s *Store, c cid.Cid) ([]byte, error) {
	res := <-readInBackground(s, c)
	return res.data, res.err
}
