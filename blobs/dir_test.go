package blobs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ipfs/boxo/blockservice"
	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	ufs "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/boxo/mfs"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// pathCID returns the CID that path names inside root on s.
func pathCID(t testing.TB, s *Store, root cid.Cid, p string) (cid.Cid, EntryType) {
	t.Helper()
	segs, err := splitPath(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ses, err := s.openRoot(ctx, ctx, root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ses.close()
	blk, typ, err := ses.resolve(ctx, segs)
	if err != nil {
		t.Fatalf("resolve %q: %v", p, err)
	}
	return blk.Cid(), typ
}

// nodeType is the UnixFS type of the dag-pb node c held on s.
func nodeType(t testing.TB, s *Store, c cid.Cid) pb.Data_DataType {
	t.Helper()
	blk, err := s.blocks.Get(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := decodeNode(blk)
	if err != nil {
		t.Fatal(err)
	}
	return nd.fs.Type()
}

// TestAddDirKuboVectors checks AddDir against the CIDs Kubo 0.38.1 gave for
// the fixture trees (testdata/kubo-vectors.txt says how they were made).
func TestAddDirKuboVectors(t *testing.T) {
	f, err := os.Open("testdata/kubo-vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newLocal(t)
	ctx := context.Background()
	root, err := s.AddDir(ctx, kuboFixture())
	if err != nil {
		t.Fatal(err)
	}
	exact, err := s.AddDir(ctx, exactFixture())
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.SplitN(line, " ", 3)
		var want, got cid.Cid
		var p string
		switch fields[0] {
		case "added":
			want = cid.MustParse(fields[1])
			p = strings.TrimPrefix(strings.TrimPrefix(fields[2], "fixture"), "/")
			got, _ = pathCID(t, s, root, p)
		case "exact":
			want = cid.MustParse(fields[1])
			p = "exact (the tree's root)"
			got = exact
		case "exact-kubo-default":
			continue
		default:
			t.Fatalf("bad vector line %q", line)
		}
		if got != want {
			t.Errorf("%s: AddDir gives %s, Kubo %s", p, got, want)
		}
		checked++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if checked != 24 {
		t.Fatalf("checked %d vectors, want 24", checked)
	}
	for p, want := range map[string]pb.Data_DataType{
		"": ufs.TDirectory, "sharded": ufs.THAMTShard, "below": ufs.TDirectory,
		"above": ufs.THAMTShard, "link": ufs.TSymlink, "big.bin": ufs.TFile,
	} {
		c, _ := pathCID(t, s, root, p)
		if got := nodeType(t, s, c); got != want {
			t.Errorf("%q is a %s node, want %s", p, got, want)
		}
	}
	if c, _ := pathCID(t, s, exact, "exact"); nodeType(t, s, c) != ufs.TDirectory {
		t.Error("a directory exactly at the threshold was sharded")
	}
}

// TestAddDirEmpty: the well-known CID of an empty directory.
func TestAddDirEmpty(t *testing.T) {
	s := newLocal(t)
	c, err := s.AddDir(context.Background(), fstest.MapFS{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"; c.String() != want {
		t.Fatalf("empty directory %s, want %s", c, want)
	}
}

// randomTree makes a tree of random shape: nested directories (some
// empty), files from empty to several chunks, names with spaces and
// non-ASCII letters, and one directory of n small files around the HAMT
// threshold.
func randomTree(r *rand.Rand, n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	letters := []rune("abcdefghijklmnopqrstuvwxyzé ✓日本-_.")
	name := func() string {
		var b strings.Builder
		for range 1 + r.IntN(12) {
			b.WriteRune(letters[r.IntN(len(letters))])
		}
		s := b.String()
		if s == "." || s == ".." {
			s += "x"
		}
		return s
	}
	var dirs = []string{"."}
	for range 20 {
		d := path.Join(dirs[r.IntN(len(dirs))], name())
		dirs = append(dirs, d)
		fsys[d] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	}
	for range 60 {
		size := r.IntN(1024)
		switch r.IntN(6) {
		case 0:
			size = 0
		case 1:
			size = ChunkSize*(1+r.IntN(3)) + r.IntN(3) - 1
		}
		p := path.Join(dirs[r.IntN(len(dirs))], name())
		if _, ok := fsys[p]; ok {
			continue
		}
		fsys[p] = &fstest.MapFile{Data: randomBytes(r, size), Mode: 0o644}
	}
	for i := range n {
		fsys[fmt.Sprintf("many/%s-%d", name(), i)] = &fstest.MapFile{Data: randomBytes(r, r.IntN(64)), Mode: 0o644}
	}
	return fsys
}

// mfsRoot builds fsys the way Kubo's `ipfs add -r` does, through boxo's
// MFS, entry by entry in walk order, and returns the root's CID: an
// implementation independent of AddDir's bottom-up build.
func mfsRoot(t *testing.T, fsys fs.FS) cid.Cid {
	t.Helper()
	ctx := context.Background()
	ds := merkledag.NewDAGService(blockservice.New(bstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore())), nil))
	root, err := mfs.NewEmptyRoot(ctx, ds, nil, nil, mfs.WithCidBuilder(cidBuilder), mfs.WithMaxHAMTFanout(256))
	if err != nil {
		t.Fatal(err)
	}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		if d.IsDir() {
			return mfs.Mkdir(root, "/"+p, mfs.MkdirOpts{Mkparents: true})
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		nd, _, err := importFile(ctx, ds, f)
		if err != nil {
			return err
		}
		return mfs.PutNode(root, "/"+p, nd)
	})
	if err != nil {
		t.Fatal(err)
	}
	nd, err := root.GetDirectory().GetNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Close(); err != nil {
		t.Fatal(err)
	}
	return nd.Cid()
}

// TestAddDirMatchesMFS compares AddDir with boxo's MFS, which Kubo's adder
// uses, on random trees whose big directory is below, near or above the
// HAMT threshold.
func TestAddDirMatchesMFS(t *testing.T) {
	r := seeded(t)
	s := newLocal(t)
	for _, n := range []int{10, 4000 + r.IntN(1500), 9000} {
		fsys := randomTree(r, n)
		got, err := s.AddDir(context.Background(), fsys)
		if err != nil {
			t.Fatal(err)
		}
		if want := mfsRoot(t, fsys); got != want {
			t.Fatalf("tree with %d entries in many/: AddDir %s, MFS %s", n, got, want)
		}
		// Every file reads back through its path.
		err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || r.IntN(20) != 0 {
				return err
			}
			want, _ := fs.ReadFile(fsys, p)
			rd, err := s.OpenPath(context.Background(), got, p)
			if err != nil {
				return err
			}
			defer rd.Close()
			data, err := io.ReadAll(rd)
			if err != nil {
				return err
			}
			if !bytes.Equal(data, want) {
				return fmt.Errorf("%s: read %d bytes that differ from the %d written", p, len(data), len(want))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestAddDirRefuses: bad names and file types fail the call and pin nothing.
func TestAddDirRefuses(t *testing.T) {
	s := newLocal(t)
	ctx := context.Background()
	bad := map[string]fstest.MapFS{
		"not UTF-8":   {"a\xffb": {Data: []byte("x")}},
		"named pipe":  {"fifo": {Mode: fs.ModeNamedPipe}},
		"device file": {"dev": {Mode: fs.ModeDevice}},
	}
	for what, fsys := range bad {
		if _, err := s.AddDir(ctx, fsys); err == nil {
			t.Errorf("%s: AddDir succeeded", what)
		} else if what == "not UTF-8" && !errors.Is(err, ErrInvalidPath) {
			t.Errorf("%s: %v, want ErrInvalidPath", what, err)
		}
	}
	if m := s.Metrics(); m.Pinned != 0 {
		t.Fatalf("%d pins after failed adds", m.Pinned)
	}
	for _, name := range []string{"", ".", "..", "a/b", "ok\xc3"} {
		if err := checkName(name); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("checkName(%q) = %v, want ErrInvalidPath", name, err)
		}
	}
}

// TestOpenPath: files at every depth and inside HAMT directories, Seek on
// a multi-chunk file, ReadDir, and the errors of each kind.
func TestOpenPath(t *testing.T) {
	s := newLocal(t)
	ctx := context.Background()
	fsys := kuboFixture()
	root, err := s.AddDir(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"index.html", "/css/site.css", "nested/a/b/c/deep.txt", "unicode/日本語",
		"sharded/entry-00000.txt", "sharded/entry-05999.txt", "above/n000000000000000000000000042", "emptyfile", "big.bin"} {
		rd, err := s.OpenPath(ctx, root, p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		got, err := io.ReadAll(rd)
		rd.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := fsys[strings.TrimPrefix(p, "/")].Data; !bytes.Equal(got, want) {
			t.Fatalf("%s: read %d bytes that differ from the %d added", p, len(got), len(want))
		}
	}
	// Seek inside a path's file.
	rd, err := s.OpenPath(ctx, root, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	big := fsys["big.bin"].Data
	off := int64(ChunkSize*2 + 1000)
	if _, err := rd.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, ChunkSize)
	if _, err := io.ReadFull(rd, buf); err != nil {
		t.Fatal(err)
	}
	rd.Close()
	if !bytes.Equal(buf, big[off:off+ChunkSize]) {
		t.Fatal("seek then read gave wrong bytes")
	}

	ents, err := s.ReadDir(ctx, root, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if got, want := strings.Join(names, ","), ".hidden,above,below,big.bin,chunk.bin,css,empty,emptyfile,index.html,link,nested,sharded,unicode"; got != want {
		t.Fatalf("root lists %s, want %s", got, want)
	}
	ents, err = s.ReadDir(ctx, root, "sharded")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 6000 || ents[0].Name != "entry-00000.txt" || ents[5999].Name != "entry-05999.txt" || ents[0].Type != TypeFile {
		t.Fatalf("sharded lists %d entries, first %+v", len(ents), ents[0])
	}
	if ents, err := s.ReadDir(ctx, root, "empty/"); err != nil || len(ents) != 0 {
		t.Fatalf("empty dir: %v, %d entries", err, len(ents))
	}

	for p, want := range map[string]error{
		"missing":                 ErrNotFound,
		"sharded/entry-99999.txt": ErrNotFound,
		"index.html/x":            ErrNotDir,
		"link/x":                  ErrNotDir,
		"nested":                  ErrIsDir,
		"sharded":                 ErrIsDir,
		"":                        ErrIsDir,
		"link":                    ErrNotFile,
		"nested/../index.html":    ErrInvalidPath,
		"nested//a":               ErrInvalidPath,
		"nested/./a":              ErrInvalidPath,
		"css/site.css\xff":        ErrInvalidPath,
		strings.Repeat("a/", 300): ErrInvalidPath,
	} {
		if rd, err := s.OpenPath(ctx, root, p); !errors.Is(err, want) {
			if rd != nil {
				rd.Close()
			}
			t.Errorf("OpenPath(%.20q) = %v, want %v", p, err, want)
		}
	}
	if _, err := s.ReadDir(ctx, root, "index.html"); !errors.Is(err, ErrNotDir) {
		t.Errorf("ReadDir of a file: %v, want ErrNotDir", err)
	}
	// A file blob opens through OpenPath with an empty path.
	fc, _ := pathCID(t, s, root, "big.bin")
	if rd, err := s.OpenPath(ctx, fc, ""); err != nil {
		t.Fatal(err)
	} else {
		rd.Close()
	}
	// Open of a directory says it is not a file.
	if _, err := s.Open(ctx, root); !errors.Is(err, ErrNotFile) {
		t.Fatalf("Open of a directory: %v, want ErrNotFile", err)
	}
}

// TestDirPinsAndGC: a directory root is pinned whole, survives GC, reports
// its cumulative size, exports and imports as a CAR.
func TestDirPinsAndGC(t *testing.T) {
	s := newLocal(t)
	ctx := context.Background()
	fsys := kuboFixture()
	root, err := s.AddDir(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, bytes.NewReader([]byte("garbage soon"))); err != nil {
		t.Fatal(err)
	}
	if !complete(t, s, root) {
		t.Fatal("directory not whole after AddDir")
	}
	st, err := s.Stat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Complete || !st.Pinned || st.Size != st.LocalBytes {
		t.Fatalf("stat %+v: want complete, pinned, size = local bytes", st)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if !complete(t, s, root) {
		t.Fatal("GC freed blocks of a pinned directory")
	}
	rd, err := s.OpenPath(ctx, root, "sharded/entry-01234.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rd)
	rd.Close()
	if string(got) != "entry 1234\n" {
		t.Fatalf("after GC read %q", got)
	}
	var car bytes.Buffer
	if err := s.Export(ctx, root, &car); err != nil {
		t.Fatal(err)
	}
	s2 := newLocal(t)
	c2, err := s2.Import(ctx, &car)
	if err != nil {
		t.Fatal(err)
	}
	if c2 != root || !complete(t, s2, root) {
		t.Fatalf("CAR import gave %s, complete %v", c2, complete(t, s2, root))
	}
	if st2, _ := s2.Stat(ctx, root); st2.Size != st.Size {
		t.Fatalf("imported size %d, want %d", st2.Size, st.Size)
	}
	// Burned: gone, blocks and all.
	if err := s.Burn(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stat(ctx, root); err != nil || st.LocalBlocks != 0 || st.Pinned {
		t.Fatalf("after burn and GC: %+v, %v", st, err)
	}
	if _, err := s.OpenPath(ctx, root, "index.html"); !errors.Is(err, ErrBurned) {
		t.Fatalf("OpenPath of a burned directory: %v", err)
	}
}

// TestDirReplicated: a directory added on one replica is read by path on
// another before it replicates, replicates whole (HAMT shards, every file)
// over the blocks protocol, and is served by the second once the first is
// gone. A replica outside the blob set reads a path too, from the holder
// of the root.
func TestDirReplicated(t *testing.T) {
	reg := NewMemRegistry()
	a := startReplica(t, reg, nil)
	b := startReplica(t, reg, nil)
	outside := startReplica(t, NewMemRegistry(), nil)
	connectAll(t, a, b, outside)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fsys := kuboFixture()
	root, err := a.store.AddDir(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	readPath := func(s *Store, p string) {
		t.Helper()
		rd, err := s.OpenPath(ctx, root, p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		defer rd.Close()
		got, err := io.ReadAll(rd)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, fsys[p].Data) {
			t.Fatalf("%s: read %d bytes that differ from the %d added", p, len(got), len(fsys[p].Data))
		}
	}
	readPath(outside.store, "sharded/entry-00042.txt")
	readPath(outside.store, "big.bin")
	if complete(t, outside.store, root) {
		t.Fatal("a replica outside the blob set fetched the whole tree")
	}
	readPath(b.store, "big.bin")
	eventually(t, 2*time.Minute, "b to replicate the tree", func() bool {
		return complete(t, b.store, root) && b.store.Metrics().Pending == 0
	})
	if m := b.store.Metrics(); m.StreamFetchedBytes == 0 {
		t.Fatalf("b fetched nothing over the blocks protocol: %+v", m)
	}
	sa, _ := a.store.Stat(ctx, root)
	sb, _ := b.store.Stat(ctx, root)
	if sb.Size != sa.Size || sb.LocalBlocks != sa.LocalBlocks || !sb.Pinned {
		t.Fatalf("b: %+v, a: %+v", sb, sa)
	}
	a.stop()
	if _, err := b.store.GC(ctx); err != nil {
		t.Fatal(err)
	}
	readPath(b.store, "sharded/entry-05999.txt")
	readPath(b.store, "above/n000000000000000000000004095")
	readPath(b.store, "nested/a/b/c/deep.txt")
	if ents, err := b.store.ReadDir(ctx, root, "below"); err != nil || len(ents) != 4096 {
		t.Fatalf("ReadDir on b: %v, %d entries", err, len(ents))
	}
}

// TestAddDirFromDisk: the fixture written to disk and added through
// os.DirFS (symlinks read with ReadLink) gives the CID of the same tree in
// memory, which TestAddDirKuboVectors checks against Kubo.
func TestAddDirFromDisk(t *testing.T) {
	dir := t.TempDir()
	fsys := kuboFixture()
	if err := writeTree(dir, fsys); err != nil {
		t.Fatal(err)
	}
	s := newLocal(t)
	ctx := context.Background()
	fromDisk, err := s.AddDir(ctx, os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	inMemory, err := s.AddDir(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if fromDisk != inMemory {
		t.Fatalf("from disk %s, in memory %s", fromDisk, inMemory)
	}
	if m := s.Metrics(); m.Pinned != 1 {
		t.Fatalf("%d pins for one tree added twice", m.Pinned)
	}
}

// TestHAMTFanouts: paths resolve and listings complete through HAMT
// directories of other fanouts than Kubo's 256, as boxo writes them.
func TestHAMTFanouts(t *testing.T) {
	s := newLocal(t)
	ctx := context.Background()
	dserv := merkledag.NewDAGService(blockservice.New(s.blocks, nil))
	for _, fanout := range []int{8, 16, 64, 1024} {
		d, err := uio.NewDirectory(dserv, uio.WithCidBuilder(cidBuilder), uio.WithMaxHAMTFanout(fanout))
		if err != nil {
			t.Fatal(err)
		}
		d.SetHAMTShardingSize(1)
		want := map[string]cid.Cid{}
		for i := range 700 {
			name := fmt.Sprintf("f%d-%d", fanout, i)
			nd := merkledag.NewRawNode([]byte(name))
			if err := dserv.Add(ctx, nd); err != nil {
				t.Fatal(err)
			}
			if err := d.AddChild(ctx, name, nd); err != nil {
				t.Fatal(err)
			}
			want[name] = nd.Cid()
		}
		nd, err := d.GetNode()
		if err != nil {
			t.Fatal(err)
		}
		if err := dserv.Add(ctx, nd); err != nil {
			t.Fatal(err)
		}
		if got := nodeType(t, s, nd.Cid()); got != ufs.THAMTShard {
			t.Fatalf("fanout %d: root is a %s", fanout, got)
		}
		for name, c := range want {
			if got, _ := pathCID(t, s, nd.Cid(), name); got != c {
				t.Fatalf("fanout %d: %s resolves to %s, want %s", fanout, name, got, c)
			}
		}
		ents, err := s.ReadDir(ctx, nd.Cid(), "")
		if err != nil || len(ents) != len(want) {
			t.Fatalf("fanout %d: %d entries, %v", fanout, len(ents), err)
		}
		if _, err := s.OpenPath(ctx, nd.Cid(), "absent"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("fanout %d: absent name: %v", fanout, err)
		}
	}
}
