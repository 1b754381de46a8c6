//go:build linux

package store

import (
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/kv/kvtest"
)

// The disk of this machine is shared, and its fsync rate moves between
// 1,500 and 5,800 a second within minutes, which hides changes of a few
// tens of microseconds in the write path. These benchmarks replace the
// disk by one whose log syncs always take the same time (a sleep), with
// the files in memory (/dev/shm when there is one), so that two versions
// of the write path can be compared at any time. They measure the write
// path, not the disk: the figures of record are the ones on disk. The
// sleep is a nanosleep system call, as Go's timers are too coarse here
// (a 200 µs time.Sleep takes 1.1 ms); it takes about 290 µs.

// BenchmarkPutSequentialSync200us is BenchmarkPutSequential with every
// log sync taking 200 µs (5,000 a second).
func BenchmarkPutSequentialSync200us(b *testing.B) {
	benchPutSequential(b, openFixedSync(b, 200*time.Microsecond))
}

// BenchmarkPutConcurrent16Sync200us is BenchmarkPutConcurrent16 with
// every log sync taking 200 µs.
func BenchmarkPutConcurrent16Sync200us(b *testing.B) {
	benchPutConcurrent(b, openFixedSync(b, 200*time.Microsecond), 16)
}

func openFixedSync(b testing.TB, delay time.Duration) *Store {
	b.Helper()
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "dpaas-bench-"); err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	db, s := openDir(b, dir, &kv.Options{FS: kvtest.FixedSyncFS{FS: vfs.Default, Delay: delay}}, nil)
	b.Cleanup(func() { db.Close() })
	b.Cleanup(func() { s.Close() }) // runs first
	return s
}
