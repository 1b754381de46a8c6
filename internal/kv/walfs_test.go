package kv

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestLogFileContents writes a log through logFS in seeded random pieces,
// with syncs at random points, and checks after every sync that the file
// holds every byte written so far, then zeros; and after Close, all of
// them. It runs with direct I/O (where the filesystem allows it) and
// without, and across a recycled log.
func TestLogFileContents(t *testing.T) {
	for _, mode := range []struct {
		name     string
		buffered bool
	}{{"direct", false}, {"buffered", true}} {
		t.Run(mode.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			dir := t.TempDir()
			fs := logFS{FS: vfs.Default, buffered: mode.buffered}
			old := filepath.Join(dir, "000001.log")
			for round, name := range []string{old, filepath.Join(dir, "000002.log")} {
				var f vfs.File
				var err error
				if round == 0 {
					f, err = fs.Create(name, vfs.WriteCategoryUnspecified)
				} else {
					f, err = fs.ReuseForWrite(old, name, vfs.WriteCategoryUnspecified)
				}
				if err != nil {
					t.Fatal(err)
				}
				lf := f.(*logFile)
				if !mode.buffered && lf.direct == nil {
					t.Skip("the filesystem refuses O_DIRECT")
				}
				var want []byte
				for range 300 {
					p := make([]byte, pieceSize(rng))
					for i := range p {
						p[i] = byte(rng.IntN(255) + 1) // no zeros, so padding shows
					}
					if n, err := f.Write(p); err != nil || n != len(p) {
						t.Fatalf("write: %d, %v", n, err)
					}
					want = append(want, p...)
					if rng.IntN(3) == 0 {
						if err := f.SyncData(); err != nil {
							t.Fatal(err)
						}
						checkLog(t, name, want, round > 0, true)
					}
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				checkLog(t, name, want, round > 0, false)
			}
		})
	}
}

// pieceSize mixes small records, a block's worth and writes past flushAt.
func pieceSize(rng *rand.Rand) int {
	switch rng.IntN(10) {
	case 0:
		return 32<<10 + rng.IntN(100)
	case 1:
		return flushAt + rng.IntN(5000)
	default:
		return 1 + rng.IntN(3000)
	}
}

// checkLog checks that the file begins with want and, for a fresh log
// (recycled false), that only zeros follow it. A recycled log keeps the old
// log's bytes past the new one's, which Pebble tells apart by log number.
func checkLog(t *testing.T, name string, want []byte, recycled, synced bool) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("synced=%v: the file does not hold the %d bytes written (%d bytes long)", synced, len(want), len(got))
	}
	if recycled {
		return
	}
	if i := bytes.IndexFunc(got[len(want):], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("synced=%v: byte %d past the log is not zero", synced, len(want)+i)
	}
}

// TestLogFileWriteErrorReported checks that a direct write the system
// refuses (here: its descriptor is gone, as good as a failing device)
// comes back from the sync, which Pebble turns into a failed commit, and
// that the file is not reported synced.
func TestLogFileWriteErrorReported(t *testing.T) {
	f, err := logFS{FS: vfs.Default}.Create(filepath.Join(t.TempDir(), "000001.log"), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	lf := f.(*logFile)
	if lf.direct == nil {
		t.Skip("the filesystem refuses O_DIRECT")
	}
	if _, err := f.Write([]byte("record")); err != nil {
		t.Fatal(err) // held, not yet written
	}
	lf.direct.Close()
	if err := f.SyncData(); err == nil {
		t.Fatal("a sync whose write failed reported success")
	}
	f.Close()
}

// TestLogFileUnsyncedNotZeroedAhead: a log written without syncs (a
// replica that only applies its peers' deltas, committed without a sync)
// writes its bytes once, without zeroing the file ahead of them; once
// syncs come, zeroing ahead resumes.
func TestLogFileUnsyncedNotZeroedAhead(t *testing.T) {
	name := filepath.Join(t.TempDir(), "000001.log")
	f, err := logFS{FS: vfs.Default}.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lf := f.(*logFile)
	if lf.direct == nil {
		t.Skip("the filesystem refuses O_DIRECT")
	}
	rec := bytes.Repeat([]byte{7}, 1000)
	var want []byte
	for len(want) < 3*zeroChunk {
		if _, err := f.Write(rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec...)
	}
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > alignUp(int64(len(want))) {
		t.Fatalf("%d bytes written without a sync, the file is %d bytes: zeroed ahead", len(want), st.Size())
	}
	for range 8 { // small synced writes, as durable commits make
		if _, err := f.Write(rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec...)
		if err := f.SyncData(); err != nil {
			t.Fatal(err)
		}
	}
	checkLog(t, name, want, false, true)
	if st, err = os.Stat(name); err != nil || st.Size() < int64(len(want))+zeroChunk/2 {
		t.Fatalf("after small synced writes the file is %d bytes for %d written: not zeroed ahead (%v)", st.Size(), len(want), err)
	}
}
