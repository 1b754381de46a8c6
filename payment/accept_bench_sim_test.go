//go:build linux

package payment

import (
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/kv/kvtest"
)

// BenchmarkAcceptConcurrentSync200us is BenchmarkAcceptConcurrent with
// every log sync taking a fixed 200 µs (a nanosleep; about 290 µs here)
// instead of the shared disk's, whose rate moves by a factor of ten within
// the hour: it measures the accept path, not the disk. The files live in
// /dev/shm when there is one.
func BenchmarkAcceptConcurrentSync200us(b *testing.B) {
	for _, mode := range []string{"accept", "pay+accept"} {
		b.Run(mode, func(b *testing.B) {
			benchAccept(b, 16, mode == "pay+accept", &kv.Options{FS: kvtest.FixedSyncFS{FS: shmFS(b), Delay: 200 * time.Microsecond}})
		})
	}
}

// shmFS is the OS filesystem; it moves the benchmark's temporary
// directories to /dev/shm when there is one, so only the fixed sleep
// stands for the disk.
func shmFS(b *testing.B) vfs.FS {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "dpaas-pay-bench-"); err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			b.Setenv("TMPDIR", d)
		}
	}
	return vfs.Default
}
