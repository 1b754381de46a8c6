//go:build linux

package kvtest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// DiskSyncRate measures what bounds every durable write: how many times a
// second the disk under dir makes a small overwrite durable the way
// internal/kv writes its log, a direct (O_DIRECT) write of a 4 KiB page
// into a file written ahead of time, then fdatasync. Where the filesystem
// refuses direct writes it probes with buffered ones, as kv then writes.
// The disk of a shared machine varies by a factor of two within minutes,
// so benchmarks of durable writes report it beside their own figure.
func DiskSyncRate(tb testing.TB, dir string, d time.Duration) float64 {
	tb.Helper()
	path := filepath.Join(dir, "fsync-probe")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer os.Remove(path)
	defer f.Close()
	const size = 16 << 20
	if _, err := f.Write(make([]byte, size)); err != nil {
		tb.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		tb.Fatal(err)
	}
	w := f
	if d, err := os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0); err == nil {
		defer d.Close()
		w = d
	}
	page := make([]byte, 2*4096)
	skip := (4096 - int(uintptr(unsafe.Pointer(&page[0]))&4095)) & 4095
	rec := page[skip : skip+4096]
	n, off := 0, int64(0)
	start := time.Now()
	for time.Since(start) < d && off+int64(len(rec)) <= size {
		if _, err := w.WriteAt(rec, off); err != nil {
			tb.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			tb.Fatal(err)
		}
		off += int64(len(rec))
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// CPUTime is the CPU time this process has used, user and system, on
// every thread: a figure that another process loading the machine
// disturbs much less than the wall-clock time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sleep waits d without the scheduler's timer slack: an interrupted
// nanosleep leaves the time still to wait in ts.
func sleep(d time.Duration) error {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		if err := syscall.Nanosleep(&ts, &ts); err != syscall.EINTR {
			return err
		}
	}
}
