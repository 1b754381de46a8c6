//go:build linux

package payment

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dpaas/dpaas/internal/kv"
)

// BenchmarkAcceptConcurrentSync200us is BenchmarkAcceptConcurrent with
// every log sync taking a fixed 200 µs (a nanosleep; about 290 µs here)
// instead of the shared disk's, whose rate moves by a factor of ten within
// the hour: it measures the accept path, not the disk. The files live in
// /dev/shm when there is one.
func BenchmarkAcceptConcurrentSync200us(b *testing.B) {
	for _, mode := range []string{"accept", "pay+accept"} {
		b.Run(mode, func(b *testing.B) {
			benchAccept(b, 16, mode == "pay+accept", &kv.Options{FS: fixedSyncFS{FS: shmFS(b), delay: 200 * time.Microsecond}})
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

// fixedSyncFS makes every sync of a write-ahead log take delay.
type fixedSyncFS struct {
	vfs.FS
	delay time.Duration
}

func (fs fixedSyncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return fixedSyncFile{File: f, delay: fs.delay}, nil
}

func (fs fixedSyncFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(name, f, err)
}

func (fs fixedSyncFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

type fixedSyncFile struct {
	vfs.File
	delay time.Duration
}

func (f fixedSyncFile) Sync() error     { return f.sleep() }
func (f fixedSyncFile) SyncData() error { return f.sleep() }

func (f fixedSyncFile) sleep() error {
	ts := syscall.NsecToTimespec(int64(f.delay))
	for {
		if err := syscall.Nanosleep(&ts, &ts); err != syscall.EINTR {
			return err
		}
	}
}
