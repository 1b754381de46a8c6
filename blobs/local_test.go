package blobs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if runServer() { // the serving process of BenchmarkFetchFromRunning
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		// Started once per process by libp2p and go-log, not per host.
		goleak.IgnoreTopFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
	)
}

// rawCID is the CID Kubo gives a file of at most one chunk with
// --cid-version=1: the leaf itself, a raw block.
func rawCID(data []byte) cid.Cid {
	mh, _ := multihash.Sum(data, multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, mh)
}

// pbFile encodes, straight from the dag-pb and UnixFS specs, the interior
// node Kubo writes for a file whose children are links (each with the
// cumulative size tsize and the file bytes size it covers). It shares no
// code with the importer under test.
func pbFile(links []cid.Cid, tsizes, sizes []uint64) []byte {
	var unixfs []byte
	unixfs = append(unixfs, 0x08, 0x02) // Type = File
	var total uint64
	for _, s := range sizes {
		total += s
	}
	unixfs = append(unixfs, 0x18) // filesize
	unixfs = binary.AppendUvarint(unixfs, total)
	for _, s := range sizes {
		unixfs = append(unixfs, 0x20) // blocksizes, one field each
		unixfs = binary.AppendUvarint(unixfs, s)
	}
	var node []byte
	for i, l := range links {
		var link []byte
		link = append(link, 0x0a) // Hash
		link = binary.AppendUvarint(link, uint64(len(l.Bytes())))
		link = append(link, l.Bytes()...)
		link = append(link, 0x12, 0x00) // Name = "" (always present in Kubo's encoding)
		link = append(link, 0x18)       // Tsize
		link = binary.AppendUvarint(link, tsizes[i])
		node = append(node, 0x12) // Links
		node = binary.AppendUvarint(node, uint64(len(link)))
		node = append(node, link...)
	}
	node = append(node, 0x0a) // Data
	node = binary.AppendUvarint(node, uint64(len(unixfs)))
	return append(node, unixfs...)
}

func pbCID(node []byte) cid.Cid {
	mh, _ := multihash.Sum(node, multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.DagProtobuf, mh)
}

// oneLevel is the expected root of a file of 2 to 174 chunks.
func oneLevel(data []byte) (cid.Cid, uint64) {
	var links []cid.Cid
	var tsizes, sizes []uint64
	for off := 0; off < len(data); off += ChunkSize {
		chunk := data[off:min(off+ChunkSize, len(data))]
		links = append(links, rawCID(chunk))
		tsizes = append(tsizes, uint64(len(chunk)))
		sizes = append(sizes, uint64(len(chunk)))
	}
	node := pbFile(links, tsizes, sizes)
	tsize := uint64(len(node))
	for _, s := range tsizes {
		tsize += s
	}
	return pbCID(node), tsize
}

// TestKuboCIDs checks that Add names files exactly as
// `ipfs add --cid-version=1` does (raw leaves, 256 KiB chunks, at most 174
// links per node, balanced layout).
func TestKuboCIDs(t *testing.T) {
	r := seeded(t)
	s := newLocal(t)
	ctx := context.Background()

	small := randomBytes(r, 1000)
	oneChunk := randomBytes(r, ChunkSize)
	multi := randomBytes(r, 3*ChunkSize+1234)
	multiRoot, _ := oneLevel(multi)

	cases := []struct {
		name string
		data []byte
		want cid.Cid
	}{
		// The CID Kubo prints for an empty file with --cid-version=1.
		{"empty", nil, cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")},
		{"empty-derived", nil, rawCID(nil)},
		{"hello", []byte("hello world\n"), rawCID([]byte("hello world\n"))},
		{"small", small, rawCID(small)},
		{"one-chunk", oneChunk, rawCID(oneChunk)},
		{"four-chunks", multi, multiRoot},
	}
	if !testing.Short() {
		// 175 chunks need a second level: a full first child of 174 leaves
		// and a second child holding the last leaf.
		big := bytes.Repeat([]byte{7}, 174*ChunkSize+5)
		first, firstTsize := oneLevel(big[:174*ChunkSize])
		// A lone leaf under an interior node is still wrapped in a node.
		tail := big[174*ChunkSize:]
		secondNode := pbFile([]cid.Cid{rawCID(tail)}, []uint64{uint64(len(tail))}, []uint64{uint64(len(tail))})
		secondTsize := uint64(len(secondNode)) + uint64(len(tail))
		root := pbFile([]cid.Cid{first, pbCID(secondNode)},
			[]uint64{firstTsize, secondTsize},
			[]uint64{174 * ChunkSize, uint64(len(tail))})
		cases = append(cases, struct {
			name string
			data []byte
			want cid.Cid
		}{"two-levels", big, pbCID(root)})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Add(ctx, bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equals(tc.want) {
				t.Fatalf("Add gave %s, want %s", got, tc.want)
			}
			back := readAll(t, s, got, 2*time.Minute) // a deadline for a hung read, not a speed check: CI runs this under -race beside other packages
			if !bytes.Equal(back, tc.data) {
				t.Fatalf("read back %d bytes, want %d", len(back), len(tc.data))
			}
		})
	}
}

func TestAddOpenSeek(t *testing.T) {
	r := seeded(t)
	s := newLocal(t)
	ctx := context.Background()
	data := randomBytes(r, 5*ChunkSize+777)
	c, err := s.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := s.Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for range 50 {
		off := r.IntN(len(data))
		n := r.IntN(3 * ChunkSize)
		if _, err := rd.Seek(int64(off), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		got, err := io.ReadFull(rd, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		want := data[off:min(off+n, len(data))]
		if !bytes.Equal(buf[:got], want) {
			t.Fatalf("read %d at %d: wrong bytes", n, off)
		}
	}
	if end, err := rd.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Fatalf("seek end = %d, %v", end, err)
	}

	st, err := s.Stat(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{CID: c, Size: uint64(len(data)), Blocks: 7, LocalBlocks: 7, Complete: true, Pinned: true}
	st.LocalBytes = 0
	if st != want {
		t.Fatalf("Stat = %+v, want %+v", st, want)
	}
	m := s.Metrics()
	if m.StoredBytes != uint64(len(data)) || m.Pinned != 1 || m.Pending != 0 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestOpenUnknownIsUnavailable(t *testing.T) {
	s := newLocal(t)
	_, err := s.Open(context.Background(), rawCID([]byte("nobody has this")))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	if _, err := s.Open(context.Background(), cid.Undef); !errors.Is(err, ErrInvalidCID) {
		t.Fatalf("Open(Undef) = %v", err)
	}
}

// TestOpenErrorReturnsNilReader: whatever the error, Open returns a nil
// interface, so the usual `if f != nil { f.Close() }` is safe.
func TestOpenErrorReturnsNilReader(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	burned, err := s.Add(ctx, bytes.NewReader([]byte("to be burned")))
	if err != nil {
		t.Fatal(err)
	}
	// A dag-cbor block is no UnixFS file. Pinned, so that the GC the burn
	// starts leaves it.
	notFile := cid.NewCidV1(cid.DagCBOR, rawCID([]byte{0xa0}).Hash())
	if err := s.blocks.Put(ctx, mustBlock(t, notFile, []byte{0xa0})); err != nil {
		t.Fatal(err)
	}
	if err := s.setPin(notFile, pin{state: pinComplete, size: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Burn(ctx, burned); err != nil {
		t.Fatal(err)
	}
	check := func(name string, c cid.Cid, want error) {
		t.Helper()
		f, err := s.Open(ctx, c)
		if !errors.Is(err, want) {
			t.Fatalf("%s: Open = %v, want %v", name, err, want)
		}
		if f != nil {
			t.Fatalf("%s: Open failed (%v) but returned a non-nil reader %#v", name, err, f)
		}
	}
	check("undefined CID", cid.Undef, ErrInvalidCID)
	check("unknown CID", rawCID([]byte("nobody has this")), ErrUnavailable)
	check("burned", burned, ErrBurned)
	check("not a file", notFile, ErrNotFile)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed store", burned, ErrClosed)
}

func mustBlock(t *testing.T, c cid.Cid, data []byte) blocks.Block {
	t.Helper()
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// failingReader yields n good bytes, then an error.
type failingReader struct {
	r io.Reader
	n int
}

var errBroken = errors.New("disk on fire")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBroken
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestFailedAddLeavesNothing(t *testing.T) {
	r := seeded(t)
	s := newLocal(t)
	ctx := context.Background()
	_, err := s.Add(ctx, &failingReader{r: &randomReader{r: r, n: 1 << 30}, n: 3*ChunkSize + 100})
	if !errors.Is(err, errBroken) {
		t.Fatalf("Add = %v, want the reader's error", err)
	}
	if m := s.Metrics(); m.Pinned != 0 {
		t.Fatalf("pinned %d after failed add", m.Pinned)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.blockCount(ctx); err != nil || n != 0 {
		t.Fatalf("%d blocks left after GC (%v)", n, err)
	}
}

func TestBurnAndGCKeepSharedBlocks(t *testing.T) {
	r := seeded(t)
	s := newLocal(t)
	ctx := context.Background()
	shared := randomBytes(r, 2*ChunkSize)
	a := append(append([]byte(nil), shared...), randomBytes(r, ChunkSize)...)
	b := append(append([]byte(nil), shared...), randomBytes(r, ChunkSize)...)
	ca, err := s.Add(ctx, bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := s.Add(ctx, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// An open reader of a keeps its blocks through the burn and GC.
	rd, err := s.Open(ctx, ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Burn(ctx, ca); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("open reader lost data across GC: %v", err)
	}
	rd.Close()
	if _, err := s.Open(ctx, ca); !errors.Is(err, ErrBurned) {
		t.Fatalf("Open of burned = %v, want ErrBurned", err)
	}
	// The GC above kept a's blocks for its reader alone: closing it runs
	// GC again by itself. a's own leaf and root go; the two shared leaves
	// stay for b (3 blocks each, 2 shared: 4 left of 6).
	eventually(t, 30*time.Second, "a's own blocks collected once its reader closed", func() bool {
		n, err := s.blockCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n == 4
	})
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Freed != 0 || res.Kept != 4 {
		t.Fatalf("GC = %+v, want nothing freed and 4 kept", res)
	}
	if !complete(t, s, cb) {
		t.Fatal("b lost blocks it shares with a")
	}
	if !bytes.Equal(readAll(t, s, cb, 10e9), b) {
		t.Fatal("b reads back wrong")
	}
	if ok, _ := s.Has(ctx, ca); ok {
		t.Fatal("burned blob still whole")
	}
}

// TestGCDuringAdd runs GC while an Add is half written: the Add must end
// whole.
func TestGCDuringAdd(t *testing.T) {
	r := seeded(t)
	s := newLocal(t)
	ctx := context.Background()
	data := randomBytes(r, 6*ChunkSize)
	pr, pw := io.Pipe()
	type result struct {
		c   cid.Cid
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := s.Add(ctx, pr)
		done <- result{c, err}
	}()
	if _, err := pw.Write(data[:3*ChunkSize]); err != nil {
		t.Fatal(err)
	}
	gcDone := make(chan error, 1)
	go func() {
		_, err := s.GC(ctx)
		gcDone <- err
	}()
	if _, err := pw.Write(data[3*ChunkSize:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if err := <-gcDone; err != nil {
		t.Fatal(err)
	}
	if !complete(t, s, res.c) {
		t.Fatal("GC freed blocks of an Add in progress")
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Add(context.Background(), bytes.NewReader([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := s.Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := rd.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close = %v", err)
	}
	rd.Close()
	if _, err := s.Add(context.Background(), bytes.NewReader(nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close = %v", err)
	}
	if _, err := s.Has(context.Background(), c); !errors.Is(err, ErrClosed) {
		t.Fatalf("Has after Close = %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{ReplicationFactor: -1},
		{FetchWorkers: -1},
		{Host: newHostForConfig(t)},
		{Space: foreignSpace{}},
	} {
		if _, err := Open(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Open(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func newHostForConfig(t *testing.T) host.Host {
	h := newHost(t)
	t.Cleanup(func() { h.Close() })
	return h
}

func TestPinRecordCodec(t *testing.T) {
	for _, p := range []pin{{pinPending, 0}, {pinComplete, 1 << 40}} {
		got, err := decodePin(p.encode())
		if err != nil || got != p {
			t.Fatalf("round trip %+v: %+v, %v", p, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {1}, {9, 0}, {2, 0x80}, {2, 1, 1}} {
		if _, err := decodePin(bad); err == nil {
			t.Errorf("decodePin(%x) accepted", bad)
		}
	}
}

func TestPrometheusMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := Open(context.Background(), Config{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Add(context.Background(), bytes.NewReader([]byte("counted"))); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]float64)
	for _, f := range families {
		m := f.GetMetric()[0]
		switch {
		case m.GetGauge() != nil:
			got[f.GetName()] = m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			got[f.GetName()] = m.GetCounter().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"dpaas_blobs_stored_bytes":        7,
		"dpaas_blobs_pinned":              1,
		"dpaas_blobs_pending_replication": 0,
		"dpaas_blobs_added_bytes_total":   7,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}

type foreignSpace struct{}

func (foreignSpace) Prefix() []byte { return []byte("x\x00") }

// TestDirPersists: a Store opened on its own with a Dir keeps its blobs
// across Close and Open.
func TestDirPersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(seeded(t), 2*ChunkSize+5)
	c, err := s.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(ctx, Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if back := readAll(t, s, c, 10e9); !bytes.Equal(back, data) {
		t.Fatalf("after reopening: read %d bytes, want %d", len(back), len(data))
	}
}
