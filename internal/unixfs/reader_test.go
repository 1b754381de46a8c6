package unixfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockservice"
	boxobs "github.com/ipfs/boxo/blockstore"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	ufs "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/boxo/ipld/unixfs/importer/trickle"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// getter serves blocks from a blockstore.
type getter struct {
	bs boxobs.Blockstore
}

func (g *getter) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return g.bs.Get(ctx, c)
}

func build(t *testing.T, data []byte, raw bool, chunk int64, maxLinks int, trickleLayout bool) (blocks.Block, *getter) {
	t.Helper()
	bs := boxobs.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	dag := merkledag.NewDAGService(blockservice.New(bs, nil))
	params := helpers.DagBuilderParams{Maxlinks: maxLinks, RawLeaves: raw, Dagserv: dag}
	if raw {
		params.CidBuilder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: multihash.SHA2_256}
	}
	db, err := params.New(chunker.NewSizeSplitter(bytes.NewReader(data), chunk))
	if err != nil {
		t.Fatal(err)
	}
	layout := balanced.Layout
	if trickleLayout {
		layout = trickle.Layout
	}
	nd, err := layout(db)
	if err != nil {
		t.Fatal(err)
	}
	root, err := bs.Get(context.Background(), nd.Cid())
	if err != nil {
		t.Fatal(err)
	}
	return root, &getter{bs: bs}
}

// TestReaderMatchesBytes reads DAGs of several shapes, sequentially and
// after random seeks, and compares with the bytes they were built from.
func TestReaderMatchesBytes(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	data := make([]byte, 200_000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	shapes := []struct {
		name    string
		raw     bool
		chunk   int64
		links   int
		trickle bool
	}{
		{"raw-leaves", true, 1000, 174, false},
		{"raw-deep", true, 1000, 3, false},
		{"dag-pb-leaves", false, 1000, 5, false},
		{"trickle", false, 700, 4, true},
		{"single-leaf", true, 1 << 20, 174, false},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			root, g := build(t, data, sh.raw, sh.chunk, sh.links, sh.trickle)
			rd, err := NewReader(context.Background(), root, g)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			if rd.Size() != int64(len(data)) {
				t.Fatalf("Size = %d", rd.Size())
			}
			all, err := io.ReadAll(rd)
			if err != nil || !bytes.Equal(all, data) {
				t.Fatalf("sequential read: %v, equal=%v", err, bytes.Equal(all, data))
			}
			// WriteTo (what io.Copy uses) from random offsets to the end.
			for range 5 {
				off := r.IntN(len(data) + 10)
				if _, err := rd.Seek(int64(off), io.SeekStart); err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				n, err := io.Copy(&buf, rd)
				want := data[min(off, len(data)):]
				if err != nil || n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
					t.Fatalf("WriteTo from %d: %d bytes, %v; want %d", off, n, err, len(want))
				}
			}
			for range 40 {
				off := r.IntN(len(data) + 10)
				n := r.IntN(5000)
				if _, err := rd.Seek(int64(off), io.SeekStart); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, n)
				got, err := io.ReadFull(rd, buf)
				if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatal(err)
				}
				want := data[min(off, len(data)):min(off+n, len(data))]
				if !bytes.Equal(buf[:got], want) {
					t.Fatalf("read %d at %d: wrong bytes", n, off)
				}
			}
		})
	}
}

func TestReaderRejects(t *testing.T) {
	ctx := context.Background()
	dir := ufs.EmptyDirNode()
	dirBlk, _ := blocks.NewBlockWithCid(dir.RawData(), dir.Cid())
	if _, err := NewReader(ctx, dirBlk, nil); !errors.Is(err, ErrNotFile) {
		t.Fatalf("directory: %v", err)
	}
	junk, _ := blocks.NewBlockWithCid([]byte("junk"), cid.NewCidV1(cid.DagProtobuf, mustHash([]byte("junk"))))
	if _, err := NewReader(ctx, junk, nil); !errors.Is(err, ErrNotFile) {
		t.Fatalf("junk: %v", err)
	}
	// A file node whose declared size disagrees with its parts.
	fs := ufs.NewFSNode(ufs.TFile)
	fs.AddBlockSize(10)
	fs.AddBlockSize(10)
	fsData, _ := fs.GetBytes()
	pn := merkledag.NodeWithData(fsData)
	leaf := merkledag.NewRawNode([]byte("0123456789"))
	_ = pn.AddNodeLink("", leaf)
	blk, _ := blocks.NewBlockWithCid(pn.RawData(), pn.Cid())
	if _, err := NewReader(ctx, blk, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("links/sizes mismatch: %v", err)
	}
	// A leaf shorter than its parent says.
	data := bytes.Repeat([]byte("x"), 3000)
	root, g := build(t, data, true, 1000, 174, false)
	short := merkledag.NewRawNode([]byte("short"))
	nd, _ := merkledag.DecodeProtobuf(root.RawData())
	first := nd.Links()[0].Cid
	_ = g.bs.DeleteBlock(ctx, first)
	fake, _ := blocks.NewBlockWithCid(short.RawData(), first)
	_ = g.bs.Put(ctx, fake)
	rd, err := NewReader(ctx, root, g)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, err := io.ReadAll(rd); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short leaf: %v", err)
	}
	if _, err := rd.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rd); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short leaf through WriteTo: %v", err)
	}
}

func mustHash(b []byte) multihash.Multihash {
	mh, _ := multihash.Sum(b, multihash.SHA2_256, -1)
	return mh
}

// failOnce fails the first request of one block, then serves it.
type failOnce struct {
	*getter
	c      cid.Cid
	mu     sync.Mutex
	failed bool
}

func (f *failOnce) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	f.mu.Lock()
	fail := c == f.c && !f.failed
	if fail {
		f.failed = true
	}
	f.mu.Unlock()
	if fail {
		return nil, errors.New("transient failure")
	}
	return f.getter.GetBlock(ctx, c)
}

// TestReaderPrefetchesInteriorNodes checks that the node of the next
// subtree is being fetched before reading reaches it, and that a failed
// prefetch is tried again when the node is needed.
func TestReaderPrefetchesInteriorNodes(t *testing.T) {
	const leaf, fanout = 1000, 10
	data := bytes.Repeat([]byte("0123456789"), fanout*fanout*leaf/10)
	root, g := build(t, data, true, leaf, fanout, false)
	top, err := merkledag.DecodeProtobuf(root.RawData())
	if err != nil {
		t.Fatal(err)
	}
	subtrees := top.Links()
	if len(subtrees) != fanout {
		t.Fatalf("root has %d links, want %d", len(subtrees), fanout)
	}
	get := &failOnce{getter: g, c: subtrees[2].Cid}
	rd, err := NewReader(context.Background(), root, get)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	buf := make([]byte, leaf)
	var got []byte
	for k := 1; k < fanout; k++ {
		// Read up to the last leaf of subtree k-1.
		for len(got) < k*fanout*leaf-leaf {
			n, err := rd.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
		}
		rd.mu.Lock()
		_, started := rd.interior[subtrees[k].Cid]
		rd.mu.Unlock()
		if !started && k != 2 { // subtree 2's prefetch may have failed already
			t.Fatalf("at offset %d the node of subtree %d is not being fetched", len(got), k)
		}
	}
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("read after a failed prefetch: %v", err)
	}
	if !bytes.Equal(append(got, rest...), data) {
		t.Fatal("wrong bytes")
	}
	if !get.failed {
		t.Fatal("the prefetch of subtree 2 was never requested")
	}
}

// gate holds every request for a block other than the root until it is
// opened, and records how many are waiting at once.
type gate struct {
	*getter
	root cid.Cid
	open chan struct{}

	mu      sync.Mutex
	waiting int
	most    int
	reached chan struct{} // closed once want requests wait at once
	hit     bool          // reached is closed
	want    int
}

func (g *gate) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if c != g.root {
		g.mu.Lock()
		g.waiting++
		g.most = max(g.most, g.waiting)
		if g.waiting >= g.want && !g.hit {
			g.hit = true
			close(g.reached)
		}
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			g.waiting--
			g.mu.Unlock()
		}()
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.getter.GetBlock(ctx, c)
}

// TestReaderPipelinesDagPBLeaves: the leaves of a CIDv0 file (dag-pb nodes
// with the bytes inline, Kubo's default) are fetched ahead in parallel, a
// window's worth at a time, as raw leaves are; not one at a time.
func TestReaderPipelinesDagPBLeaves(t *testing.T) {
	for _, raw := range []bool{false, true} {
		name := map[bool]string{false: "dag-pb-leaves", true: "raw-leaves"}[raw]
		t.Run(name, func(t *testing.T) {
			data := bytes.Repeat([]byte("0123456789"), 100*1000/10)
			root, g := build(t, data, raw, 1000, 174, false)
			get := &gate{getter: g, root: root.Cid(), open: make(chan struct{}), reached: make(chan struct{}), want: minAhead}
			rd, err := NewReader(context.Background(), root, get)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			done := make(chan error, 1)
			var got []byte
			go func() {
				var err error
				got, err = io.ReadAll(rd)
				done <- err
			}()
			select {
			case <-get.reached:
			case <-time.After(10 * time.Second):
				get.mu.Lock()
				most := get.most
				get.mu.Unlock()
				close(get.open)
				<-done
				t.Fatalf("at most %d leaves were requested at once, want %d", most, minAhead)
			}
			close(get.open)
			if err := <-done; err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestReaderWrongTsize: a link whose Tsize makes an interior node look like
// a leaf, and one with no Tsize at all, cost round trips, not bytes.
func TestReaderWrongTsize(t *testing.T) {
	ctx := context.Background()
	bs := boxobs.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	leafNode := func(b []byte) *merkledag.ProtoNode {
		fs := ufs.NewFSNode(ufs.TRaw)
		fs.SetData(b)
		raw, _ := fs.GetBytes()
		n := merkledag.NodeWithData(raw)
		_ = bs.Put(ctx, n)
		return n
	}
	link := func(parent *merkledag.ProtoNode, fs *ufs.FSNode, child *merkledag.ProtoNode, size, tsize uint64) {
		fs.AddBlockSize(size)
		_ = parent.AddRawLink("", &ipld.Link{Cid: child.Cid(), Size: tsize})
	}
	seal := func(n *merkledag.ProtoNode, fs *ufs.FSNode) {
		raw, _ := fs.GetBytes()
		n.SetData(raw)
		_ = bs.Put(ctx, n)
	}
	a, b, c := []byte("first leaf "), []byte("second leaf "), []byte("third leaf")
	// An interior node over a and b.
	mid, midFS := new(merkledag.ProtoNode), ufs.NewFSNode(ufs.TFile)
	la, lb := leafNode(a), leafNode(b)
	link(mid, midFS, la, uint64(len(a)), uint64(len(la.RawData())))
	link(mid, midFS, lb, uint64(len(b)), uint64(len(lb.RawData())))
	seal(mid, midFS)
	// The root claims mid is a leaf (Tsize = its file bytes) and gives the
	// real leaf c no Tsize.
	lc := leafNode(c)
	root, rootFS := new(merkledag.ProtoNode), ufs.NewFSNode(ufs.TFile)
	link(root, rootFS, mid, uint64(len(a)+len(b)), uint64(len(a)+len(b)))
	link(root, rootFS, lc, uint64(len(c)), 0)
	seal(root, rootFS)
	want := string(a) + string(b) + string(c)

	rootBlk, err := bs.Get(ctx, root.Cid())
	if err != nil {
		t.Fatal(err)
	}
	rd, err := NewReader(ctx, rootBlk, &getter{bs: bs})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got, err := io.ReadAll(rd)
	if err != nil || string(got) != want {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
	for off := range len(want) {
		if _, err := rd.Seek(int64(off), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rd)
		if err != nil || string(got) != want[off:] {
			t.Fatalf("from %d: read %q, %v", off, got, err)
		}
	}
}
