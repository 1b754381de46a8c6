package blobs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// The fixture trees whose Kubo CIDs are in testdata/kubo-vectors.txt. They
// are built from code, not stored: change nothing here without making the
// vectors again (see that file).

// fixtureBytes returns n bytes of a fixed xorshift stream.
func fixtureBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 32)
	}
	return b
}

// kuboFixture is a tree with every shape AddDir writes: small and
// multi-chunk files, an empty file and directory, nested directories,
// non-ASCII names, a hidden file, a symlink, a HAMT directory of 6,000
// entries and directories whose size estimate is one byte below and one
// above HAMTShardingSize.
func kuboFixture() fstest.MapFS {
	fsys := fstest.MapFS{}
	file := func(name string, data []byte) {
		fsys[name] = &fstest.MapFile{Data: data, Mode: 0o644}
	}
	file("index.html", []byte("<!doctype html><title>fixture</title><p>hello</p>\n"))
	file("css/site.css", []byte("body { color: #333 }\n"))
	file("big.bin", fixtureBytes(1, 3<<20+123))
	file("chunk.bin", fixtureBytes(2, ChunkSize))
	file("emptyfile", nil)
	fsys["empty"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	file("nested/a/b/c/deep.txt", []byte("deep\n"))
	file("nested/a/sibling.txt", []byte("sibling\n"))
	file("unicode/héllo wörld ✓.txt", []byte("unicode\n"))
	file("unicode/日本語", []byte("nihongo\n"))
	file(".hidden", []byte("hidden\n"))
	fsys["link"] = &fstest.MapFile{Data: []byte("index.html"), Mode: fs.ModeSymlink | 0o777}
	fsys["nested/up"] = &fstest.MapFile{Data: []byte("../css/site.css"), Mode: fs.ModeSymlink | 0o777}
	for i := range 6000 {
		file(fmt.Sprintf("sharded/entry-%05d.txt", i), []byte(fmt.Sprintf("entry %d\n", i)))
	}
	thresholdDir(fsys, "below", -1)
	thresholdDir(fsys, "above", +1)
	return fsys
}

// thresholdDir adds to fsys a directory of files of one raw leaf each
// (CIDs of 36 bytes) whose size estimate (names and CIDs) is
// HAMTShardingSize+delta: 4,096 names of 28 bytes make it exactly.
func thresholdDir(fsys fstest.MapFS, dir string, delta int) {
	for i := range 4096 {
		name := fmt.Sprintf("n%027d", i)
		if i == 0 {
			switch {
			case delta < 0:
				name = name[:28+delta]
			case delta > 0:
				name += strings.Repeat("x", delta)
			}
		}
		fsys[dir+"/"+name] = &fstest.MapFile{Data: []byte(name), Mode: 0o644}
	}
}

// exactFixture holds one directory whose estimate is exactly
// HAMTShardingSize: boxo v0.37+ keeps it basic, Kubo up to 0.39 shards it.
func exactFixture() fstest.MapFS {
	fsys := fstest.MapFS{}
	thresholdDir(fsys, "exact", 0)
	return fsys
}

// TestWriteKuboFixture writes the fixture trees to the directory named by
// DPAAS_WRITE_KUBO_FIXTURE, for making testdata/kubo-vectors.txt with Kubo.
// Without it there is nothing to do.
func TestWriteKuboFixture(t *testing.T) {
	dir := os.Getenv("DPAAS_WRITE_KUBO_FIXTURE")
	if dir == "" {
		t.Skip("DPAAS_WRITE_KUBO_FIXTURE not set: nothing to write")
	}
	for name, fsys := range map[string]fstest.MapFS{"fixture": kuboFixture(), "exact": exactFixture()} {
		if err := writeTree(filepath.Join(dir, name), fsys); err != nil {
			t.Fatal(err)
		}
	}
}

// writeTree writes fsys under dir on disk.
func writeTree(dir string, fsys fstest.MapFS) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			return os.Symlink(string(fsys[p].Data), dst)
		default:
			return os.WriteFile(dst, fsys[p].Data, 0o644)
		}
	})
}
