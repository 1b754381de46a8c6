package blobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"
)

// BenchmarkAddDir measures local AddDir throughput of a tree on disk of
// 1,000 files of 100 KiB to 200 KiB (about 146 MiB) in 10 directories of
// 100, into Pebble on disk; disk-MB/s is the same bytes written to one file
// in the same directory and synced, the disk's bound for this machine.
//
//	go test ./blobs -run '^$' -bench BenchmarkAddDir -benchtime 5x
func BenchmarkAddDir(b *testing.B) {
	r := seeded(b)
	s := startReplicaIn(b, b.TempDir(), NewMemRegistry(), func(c *Config) { c.Host = nil }).store
	src := b.TempDir()
	var files []string
	var total int64
	for d := range 10 {
		dir := filepath.Join(src, fmt.Sprintf("dir-%02d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			p := filepath.Join(dir, fmt.Sprintf("file-%03d.bin", f))
			data := randomBytes(r, 100<<10+r.IntN(100<<10))
			if err := os.WriteFile(p, data, 0o644); err != nil {
				b.Fatal(err)
			}
			files = append(files, p)
			total += int64(len(data))
		}
	}
	disk := diskBound(b, total)
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Change one byte of every file so that every AddDir writes new
		// blocks.
		for _, p := range files {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{byte(i)}, int64(i)); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		b.StartTimer()
		if _, err := s.AddDir(context.Background(), os.DirFS(src)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(disk, "disk-MB/s")
}

// diskBound writes n bytes to a file in a temporary directory, syncs it and
// returns the rate in MB/s.
func diskBound(b *testing.B, n int64) float64 {
	p := filepath.Join(b.TempDir(), "disk")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := randomBytes(seeded(b), 1<<20)
	start := time.Now()
	for w := int64(0); w < n; w += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return float64(n) / 1e6 / time.Since(start).Seconds()
}

// BenchmarkFetchDir measures how fast a new replica fetches a directory
// tree from one that holds it, over loopback TCP, as background
// replication does: 1,000 files of 100 KiB to 200 KiB (about 146 MiB) in
// 10 directories, and a HAMT directory of 5,000 files of 64 bytes.
//
//	go test ./blobs -run '^$' -bench BenchmarkFetchDir -benchtime 1x
func BenchmarkFetchDir(b *testing.B) {
	r := seeded(b)
	src := startReplicaIn(b, b.TempDir(), NewMemRegistry(), nil)
	fsys := fstest.MapFS{}
	var total int64
	for d := range 10 {
		for f := range 100 {
			data := randomBytes(r, 100<<10+r.IntN(100<<10))
			fsys[fmt.Sprintf("dir-%02d/file-%03d.bin", d, f)] = &fstest.MapFile{Data: data}
			total += int64(len(data))
		}
	}
	for f := range 5000 {
		fsys[fmt.Sprintf("many/file-%05d", f)] = &fstest.MapFile{Data: randomBytes(r, 64)}
		total += 64
	}
	root, err := src.store.AddDir(context.Background(), fsys)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst := startReplicaIn(b, b.TempDir(), NewMemRegistry(), nil)
		connect(b, src, dst)
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		ses, err := dst.store.openRoot(ctx, ctx, root, false)
		if err != nil {
			b.Fatal(err)
		}
		var read atomic.Int64
		if err := ses.fetchAll(ctx, &read); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.StopTimer()
		if !complete(b, dst.store, root) {
			b.Fatal("tree incomplete after fetchAll")
		}
		dst.stop()
	}
}
