//go:build !linux

package kvtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// DiskSyncRate is the portable form of the Linux probe: File.Sync is a
// full fsync, which also writes the file's times, so it errs low.
func DiskSyncRate(tb testing.TB, dir string, d time.Duration) float64 {
	tb.Helper()
	path := filepath.Join(dir, "fsync-probe")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer os.Remove(path)
	defer f.Close()
	rec := make([]byte, 1000)
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := f.WriteAt(rec, int64(n*len(rec))); err != nil {
			tb.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			tb.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// CPUTime is not measured on this system.
func CPUTime() time.Duration { return 0 }

func sleep(d time.Duration) error {
	time.Sleep(d)
	return nil
}
