package store

import "testing"

// BenchmarkPutSequentialMem: the CPU cost of a Put without fsync (the
// database is in memory).
func BenchmarkPutSequentialMem(b *testing.B) { benchPutSequential(b, openLocal(b, Config{})) }

// BenchmarkBatchPutMem: batched writes without fsync.
func BenchmarkBatchPutMem(b *testing.B) { benchBatchPut(b, openLocal(b, Config{})) }

// BenchmarkPutConcurrent16Mem is BenchmarkPutConcurrent16 without a disk:
// the CPU cost of concurrent writes.
func BenchmarkPutConcurrent16Mem(b *testing.B) { benchPutConcurrent(b, openLocal(b, Config{}), 16) }
