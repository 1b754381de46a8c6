//go:build !linux

package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// diskSyncRate is the portable form of the Linux probe: File.Sync is a
// full fsync, which also writes the file's times, so it errs low.
func diskSyncRate(b testing.TB, dir string, d time.Duration) float64 {
	b.Helper()
	path := filepath.Join(dir, "fsync-probe")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	defer f.Close()
	rec := make([]byte, 1000)
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := f.WriteAt(rec, int64(n*len(rec))); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// cpuTime is not measured on this system.
func cpuTime() time.Duration { return 0 }
