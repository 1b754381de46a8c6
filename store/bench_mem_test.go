package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPutSequentialMem: the CPU cost of a Put without fsync (the
// database is in memory).
func BenchmarkPutSequentialMem(b *testing.B) {
	s := openLocal(b, Config{})
	c := s.Collection("rides")
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := c.Put(ctx, fmt.Sprintf("r%09d", i), doc(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "puts/s")
}

// BenchmarkBatchPutMem: batched writes without fsync.
func BenchmarkBatchPutMem(b *testing.B) {
	s := openLocal(b, Config{})
	c := s.Collection("rides")
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += 1000 {
		batch := s.Batch()
		for j := i; j < min(b.N, i+1000); j++ {
			batch.Put(c, fmt.Sprintf("r%09d", j), doc(j))
		}
		if err := batch.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "docs/s")
}
