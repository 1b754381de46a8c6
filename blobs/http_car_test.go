package blobs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ipfs/go-cid"
)

func TestHTTPHandler(t *testing.T) {
	r := seeded(t)
	s := newLocal(t)
	ctx := context.Background()
	html := append([]byte("<!DOCTYPE html><html><body>hi</body></html>"), randomBytes(r, 2*ChunkSize)...)
	c, err := s.Add(ctx, bytes.NewReader(html))
	if err != nil {
		t.Fatal(err)
	}
	burned, err := s.Add(ctx, bytes.NewReader([]byte("soon gone")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Burn(ctx, burned); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	resp, body := get("/blobs/"+c.String(), nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, html) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("ETag"); got != `"`+c.String()+`"` {
		t.Fatalf("ETag %q", got)
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != "sandbox" {
		t.Fatalf("Content-Security-Policy %q", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Fatalf("Access-Control-Allow-Origin %q", got)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q", got)
	}
	if resp.ContentLength != int64(len(html)) {
		t.Fatalf("Content-Length %d", resp.ContentLength)
	}

	resp, body = get("/blobs/"+c.String(), map[string]string{"Range": "bytes=300000-300099"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, html[300000:300100]) {
		t.Fatalf("Range: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, _ = get("/blobs/"+c.String(), map[string]string{"If-None-Match": `"` + c.String() + `"`})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	for path, want := range map[string]int{
		"/blobs/not-a-cid":                       http.StatusBadRequest,
		"/blobs/" + burned.String():              http.StatusGone,
		"/blobs/" + rawCID([]byte("?")).String(): http.StatusNotFound,
	} {
		if resp, _ := get(path, nil); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if m := s.Metrics(); m.HTTPServedBytes < uint64(len(html)) || m.BadRequests != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

func exportCAR(t testing.TB, s *Store, c cid.Cid) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Export(context.Background(), c, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCARRoundTrip(t *testing.T) {
	r := seeded(t)
	src := newLocal(t)
	ctx := context.Background()
	data := randomBytes(r, 3*ChunkSize+99)
	c, err := src.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	car := exportCAR(t, src, c)

	dst := newLocal(t)
	got, err := dst.Import(ctx, bytes.NewReader(car))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equals(c) {
		t.Fatalf("Import root %s, want %s", got, c)
	}
	if !bytes.Equal(readAll(t, dst, got, 10e9), data) {
		t.Fatal("imported blob reads wrong")
	}
	if rec, err := dst.cfg.Registry.Get(ctx, c); err != nil || rec.Size != uint64(len(data)) {
		t.Fatalf("record %+v, %v", rec, err)
	}

	bad := []struct {
		name string
		car  []byte
	}{
		{"truncated", car[:len(car)-1000]},
		{"missing-blocks", car[:len(car)/2]},
		{"forged-block", func() []byte {
			b := bytes.Clone(car)
			b[len(b)-10] ^= 1
			return b
		}()},
		{"garbage", []byte("not a car at all")},
		{"empty", nil},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			s := newLocal(t)
			_, err := s.Import(ctx, bytes.NewReader(tc.car))
			if !errors.Is(err, ErrBadCAR) {
				t.Fatalf("Import = %v, want ErrBadCAR", err)
			}
			if m := s.Metrics(); m.Pinned != 0 || m.BadCAR != 1 {
				t.Fatalf("metrics after bad import %+v", m)
			}
			if _, err := s.GC(ctx); err != nil {
				t.Fatal(err)
			}
			if n, _ := s.blockCount(ctx); n != 0 {
				t.Fatalf("%d blocks left after GC", n)
			}
		})
	}
}

// FuzzImport feeds arbitrary bytes to Import: it must fail cleanly or
// import a whole DAG, never panic, and never leave a pin on failure.
func FuzzImport(f *testing.F) {
	src, err := Open(context.Background(), Config{})
	if err != nil {
		f.Fatal(err)
	}
	for _, data := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("ab"), ChunkSize)} {
		c, err := src.Add(context.Background(), bytes.NewReader(data))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(exportCAR(f, src, c))
	}
	src.Close()
	f.Add([]byte{0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x01})
	f.Fuzz(func(t *testing.T, car []byte) {
		s, err := Open(context.Background(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		c, err := s.Import(context.Background(), bytes.NewReader(car))
		if err != nil {
			if !errors.Is(err, ErrBadCAR) {
				t.Fatalf("Import error not ErrBadCAR: %v", err)
			}
			if m := s.Metrics(); m.Pinned != 0 {
				t.Fatalf("failed import left %d pins", m.Pinned)
			}
			return
		}
		if ok, err := s.Has(context.Background(), c); err != nil || !ok {
			t.Fatalf("imported %s but Has = %v, %v", c, ok, err)
		}
	})
}

// TestCrashConsistency crashes the database in the middle of an Add and
// right after one, then reopens it: the finished blob is whole, and the
// interrupted one leaves neither a pin nor, after the restart's GC, a block.
func TestCrashConsistency(t *testing.T) {
	// Ingest every few blocks, so that the crash in the middle of the Add
	// finds some ingested and maybe indexed, and some still buffered.
	old := blockFlushBytes
	blockFlushBytes = 2 * ChunkSize
	defer func() { blockFlushBytes = old }()
	r := seeded(t)
	ctx := context.Background()
	fs := vfs.NewCrashableMem()
	open := func(fs vfs.FS) (*kv.DB, *Store) {
		return openLocalIn(t, "data", &kv.Options{FS: fs})
	}
	db, s := open(fs)
	kept := randomBytes(r, 3*ChunkSize)
	keptCID, err := s.Add(ctx, bytes.NewReader(kept))
	if err != nil {
		t.Fatal(err)
	}
	afterAdd := fs.CrashClone(vfs.CrashCloneCfg{})

	var midAdd *vfs.MemFS
	crashing := &crashingReader{r: &randomReader{r: seeded(t), n: 8 * ChunkSize}, after: 5 * ChunkSize, crash: func() {
		midAdd = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))})
	}}
	if _, err := s.Add(ctx, crashing); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db.Close()

	for name, crashed := range map[string]*vfs.MemFS{"after-add": afterAdd, "mid-add": midAdd} {
		t.Run(name, func(t *testing.T) {
			db, s := open(crashed)
			defer db.Close()
			defer s.Close()
			if !complete(t, s, keptCID) || !bytes.Equal(readAll(t, s, keptCID, 10e9), kept) {
				t.Fatal("acknowledged blob lost in the crash")
			}
			if m := s.Metrics(); m.Pinned != 1 {
				t.Fatalf("%d pins after crash, want 1", m.Pinned)
			}
			// The restart schedules a GC when an Add was cut short; run one
			// more to be sure it has happened, then count.
			if _, err := s.GC(ctx); err != nil {
				t.Fatal(err)
			}
			if n, _ := s.blockCount(ctx); n != 4 {
				t.Fatalf("%d blocks after crash and GC, want the 4 of the kept blob", n)
			}
			// Nor any stored bytes without their index: 3 leaves of 4
			// chunks and a root of 1.
			it, err := s.space.PrefixIter(prefixValues)
			if err != nil {
				t.Fatal(err)
			}
			chunks := 0
			for ok := it.First(); ok; ok = it.Next() {
				chunks++
			}
			it.Close()
			if chunks != 13 {
				t.Fatalf("%d value chunks after crash and GC, want the 13 of the kept blob", chunks)
			}
		})
	}
}

// crashingReader calls crash once after `after` bytes.
type crashingReader struct {
	r     io.Reader
	after int
	crash func()
	done  bool
}

func (c *crashingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.after -= n
	if c.after <= 0 && !c.done {
		c.done = true
		c.crash()
	}
	return n, err
}
