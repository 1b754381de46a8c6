package store

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/kv/kvtest"
)

// openDisk opens a store on a real Pebble directory, so durable writes pay
// for real fsyncs.
func openDisk(b testing.TB, cfg Config) *Store {
	b.Helper()
	cfg.Space = diskSpace(b)
	s, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// diskSpace opens a Pebble database in a temporary directory, closed when
// the benchmark ends (after the stores using it, which close first).
func diskSpace(b testing.TB) *kv.Space {
	b.Helper()
	db, err := kv.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	sp, err := db.Space("store")
	if err != nil {
		b.Fatal(err)
	}
	return sp
}

type benchDoc struct {
	City  string `json:"city"`
	Fare  int    `json:"fare"`
	Owner string `json:"owner"`
}

func doc(i int) benchDoc {
	return benchDoc{City: fmt.Sprintf("city%03d", i%100), Fare: i % 1000, Owner: fmt.Sprintf("user%d", i%5000)}
}

// BenchmarkPutSequential: one writer, every Put durable before the next.
// It also reports the rate at which the disk makes small writes durable,
// measured just before and after: no writer can beat it, since every Put
// waits for its own fsync.
func BenchmarkPutSequential(b *testing.B) {
	s := openDisk(b, Config{})
	probe := b.TempDir()
	before := kvtest.DiskSyncRate(b, probe, time.Second)
	rate := benchPutSequential(b, s)
	b.StopTimer()
	disk := (before + kvtest.DiskSyncRate(b, probe, time.Second)) / 2
	b.ReportMetric(disk, "disk-syncs/s")
	b.ReportMetric(100*rate/disk, "%disk")
}

// benchPutSequential puts b.N documents one after another into s and
// returns the rate.
func benchPutSequential(b *testing.B, s *Store) float64 {
	c := s.Collection("rides")
	ctx := context.Background()
	b.ResetTimer()
	start, cpu := time.Now(), kvtest.CPUTime()
	for i := range b.N {
		if err := c.Put(ctx, fmt.Sprintf("r%09d", i), doc(i)); err != nil {
			b.Fatal(err)
		}
	}
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "puts/s")
	reportCPU(b, cpu, b.N)
	return rate
}

// BenchmarkPutConcurrent16: sixteen writers sharing deltas and fsyncs.
// Each group of writes waits for the fsync of the group before it and then
// for its own, so with writers in two groups that take turns, the bound is
// half the writers per fsync; the benchmark reports it beside its figure.
func BenchmarkPutConcurrent16(b *testing.B) {
	s := openDisk(b, Config{})
	probe := b.TempDir()
	before := kvtest.DiskSyncRate(b, probe, time.Second)
	rate := benchPutConcurrent(b, s, 16)
	b.StopTimer()
	bound := 8 * (before + kvtest.DiskSyncRate(b, probe, time.Second)) / 2
	b.ReportMetric(bound, "bound-puts/s")
	b.ReportMetric(100*rate/bound, "%bound")
}

// benchPutConcurrent has writers goroutines put b.N documents into s and
// returns the rate.
func benchPutConcurrent(b *testing.B, s *Store, writers int) float64 {
	c := s.Collection("rides")
	ctx := context.Background()
	var next atomic.Int64
	b.ResetTimer()
	start, cpu := time.Now(), kvtest.CPUTime()
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := c.Put(ctx, fmt.Sprintf("r%09d", i), doc(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "puts/s")
	b.ReportMetric(float64(b.N)/float64(s.Stats().DeltasCreated), "puts/delta")
	reportCPU(b, cpu, b.N)
	return rate
}

// BenchmarkBatchPut: batches of 1,000 documents, each batch durable.
func BenchmarkBatchPut(b *testing.B) { benchBatchPut(b, openDisk(b, Config{})) }

// BenchmarkBatchPut4: four writers committing batches of 1,000 documents
// at once, so one prepares its batch while another's commits.
func BenchmarkBatchPut4(b *testing.B) {
	s := openDisk(b, Config{})
	c := s.Collection("rides")
	ctx := context.Background()
	const per = 1000
	var next atomic.Int64
	b.ResetTimer()
	start, cpu := time.Now(), kvtest.CPUTime()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(per)) - per
				if i >= b.N {
					return
				}
				batch := s.Batch()
				for j := i; j < min(b.N, i+per); j++ {
					batch.Put(c, fmt.Sprintf("r%09d", j), doc(j))
				}
				if err := batch.Commit(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "docs/s")
	reportCPU(b, cpu, b.N)
}

// benchBatchPut writes b.N documents into s in batches of 1,000.
func benchBatchPut(b *testing.B, s *Store) {
	c := s.Collection("rides")
	ctx := context.Background()
	const per = 1000
	b.ResetTimer()
	start, cpu := time.Now(), kvtest.CPUTime()
	for i := 0; i < b.N; i += per {
		batch := s.Batch()
		for j := i; j < min(b.N, i+per); j++ {
			batch.Put(c, fmt.Sprintf("r%09d", j), doc(j))
		}
		if err := batch.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "docs/s")
	reportCPU(b, cpu, b.N)
}

// reportCPU reports the CPU time the process used since cpu per document:
// on this two-core machine, 200,000 documents a second leaves 10 µs each.
func reportCPU(b *testing.B, cpu time.Duration, docs int) {
	unit := "doc"
	if !strings.Contains(b.Name(), "Batch") {
		unit = "put"
	}
	if now := kvtest.CPUTime(); now > 0 && docs > 0 {
		b.ReportMetric(float64(now-cpu)/float64(time.Microsecond)/float64(docs), "cpu-µs/"+unit)
	}
}

// fill writes n documents in batches.
func fill(b testing.TB, s *Store, c *Collection, n int) {
	b.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += 5000 {
		batch := s.Batch()
		for j := i; j < min(n, i+5000); j++ {
			batch.Put(c, fmt.Sprintf("r%09d", j), doc(j))
		}
		if err := batch.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

var (
	millionOnce  sync.Once
	millionStore *Store
	millionDB    *kv.DB
	millionDir   string
)

// closeMillion releases the shared million-document store (from TestMain).
func closeMillion() {
	if millionStore != nil {
		millionStore.Close()
		millionDB.Close()
	}
	if millionDir != "" {
		os.RemoveAll(millionDir)
	}
}

// million is one store with 1,000,000 documents, "city" indexed, shared by
// the query benchmarks (built once per process, removed by TestMain).
func million(b *testing.B) *Store {
	millionOnce.Do(func() {
		dir, err := os.MkdirTemp("", "store-million-")
		if err != nil {
			b.Fatal(err)
		}
		millionDir = dir
		db, err := kv.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		sp, _ := db.Space("store")
		s, err := Open(context.Background(), Config{Space: sp})
		if err != nil {
			b.Fatal(err)
		}
		c := s.Collection("rides")
		if err := c.Index(context.Background(), "city"); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		fill(b, s, c, 1_000_000)
		b.Logf("filled 1,000,000 documents in %v", time.Since(start))
		millionStore, millionDB = s, db
	})
	return millionStore
}

// BenchmarkFindIndexed1M: equality on an indexed field, limit 50, over
// 1,000,000 documents.
func BenchmarkFindIndexed1M(b *testing.B) {
	c := million(b).Collection("rides")
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		n := 0
		for _, err := range c.Find(ctx, Where("city", "==", fmt.Sprintf("city%03d", i%100)), Limit(50)) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 50 {
			b.Fatalf("%d results", n)
		}
	}
}

// BenchmarkGroupCount1M: count per city over 1,000,000 documents, from the
// index.
func BenchmarkGroupCount1M(b *testing.B) {
	c := million(b).Collection("rides")
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		g, err := c.Aggregate(ctx, "city", "")
		if err != nil || len(g) != 100 || g[0].Count != 10_000 {
			b.Fatalf("groups %d, %v", len(g), err)
		}
	}
}

// BenchmarkGroupScan1M: the same grouping on a field with no index, with a
// sum: every document is read.
func BenchmarkGroupScan1M(b *testing.B) {
	c := million(b).Collection("rides")
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		g, err := c.Aggregate(ctx, "owner", "fare")
		if err != nil || len(g) != 5000 {
			b.Fatalf("groups %d, %v", len(g), err)
		}
	}
}

// BenchmarkConvergence2000: 2,000 sequential Puts on one of 3 replicas;
// reports how long after the last Put the other two hold all of them.
func BenchmarkConvergence2000(b *testing.B) {
	for range b.N {
		reps := []*replicaNode{startReplica(b, Config{}), startReplica(b, Config{}), startReplica(b, Config{})}
		connect(b, reps[0], reps[1])
		connect(b, reps[0], reps[2])
		connect(b, reps[1], reps[2])
		waitMesh(b, reps)
		ctx := context.Background()
		c := reps[0].s.Collection("rides")
		start := time.Now()
		for i := range 2000 {
			if err := c.Put(ctx, fmt.Sprintf("r%05d", i), doc(i)); err != nil {
				b.Fatal(err)
			}
		}
		last := time.Now()
		want := reps[0].s.Versions()[reps[0].s.Author()]
		eventually(b, time.Minute, "replicas did not converge", func() bool {
			return reps[1].s.Versions()[reps[0].s.Author()] == want && reps[2].s.Versions()[reps[0].s.Author()] == want
		})
		b.ReportMetric(float64(time.Since(last).Microseconds())/1000, "ms-after-last-put")
		if docCount(b, reps[1].s, "rides") != 2000 || docCount(b, reps[2].s, "rides") != 2000 {
			b.Fatal("documents missing")
		}
		b.ReportMetric(float64(last.Sub(start).Milliseconds()), "ms-writing")
		for _, r := range reps {
			r.close()
		}
	}
}

// waitMesh waits until every replica's store topic has the others as peers.
func waitMesh(b testing.TB, reps []*replicaNode) {
	eventually(b, 20*time.Second, "pubsub mesh did not form", func() bool {
		for _, r := range reps {
			if len(r.s.net.Load().topic.Peers()) < len(reps)-1 {
				return false
			}
		}
		return true
	})
}

// BenchmarkLatency500: single writes at 500/s on one of 3 replicas; reports
// the p50 and p99 delay until each write is visible on both others.
func BenchmarkLatency500(b *testing.B) {
	reps := []*replicaNode{startReplica(b, Config{}), startReplica(b, Config{}), startReplica(b, Config{})}
	connect(b, reps[0], reps[1])
	connect(b, reps[0], reps[2])
	connect(b, reps[1], reps[2])
	waitMesh(b, reps)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := max(b.N, 1000)
	sent := make([]time.Time, n)
	var mu sync.Mutex
	seen := make([][2]time.Time, n)
	var wg sync.WaitGroup
	for k, r := range reps[1:] {
		ch := r.s.Collection("rides").Watch(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := 0
			for ch := range ch {
				var i int
				fmt.Sscanf(ch.ID, "r%d", &i)
				mu.Lock()
				seen[i][k] = time.Now()
				mu.Unlock()
				if got++; got == n {
					return
				}
			}
		}()
	}
	c := reps[0].s.Collection("rides")
	tick := time.NewTicker(2 * time.Millisecond)
	b.ResetTimer()
	for i := range n {
		<-tick.C
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if err := c.Put(ctx, fmt.Sprintf("r%06d", i), doc(i)); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	wg.Wait()
	lat := make([]time.Duration, n)
	for i := range n {
		last := seen[i][0]
		if seen[i][1].After(last) {
			last = seen[i][1]
		}
		lat[i] = last.Sub(sent[i])
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkCatchUp100k: a fresh replica joins a replica holding 100,000
// documents (an index on "city" declared on both); reports the time until
// it holds them all, the peak growth of the process's heap and of its
// resident memory (RSS, where /proc tells it) meanwhile, and the disk's
// rate of small synced writes beside them.
func BenchmarkCatchUp100k(b *testing.B) { benchCatchUp(b, 100_000, 0) }

// BenchmarkCatchUp10k, 300k and 1M: the same with 10,000, 300,000 and
// 1,000,000 documents, to show whether catch-up is linear in them.
func BenchmarkCatchUp10k(b *testing.B)  { benchCatchUp(b, 10_000, 0) }
func BenchmarkCatchUp300k(b *testing.B) { benchCatchUp(b, 300_000, 0) }
func BenchmarkCatchUp1M(b *testing.B)   { benchCatchUp(b, 1_000_000, 0) }

// BenchmarkCatchUp100kSingles: the same, but the source wrote every
// document as its own delta (100,000 signatures to check).
func BenchmarkCatchUp100kSingles(b *testing.B) { benchCatchUp(b, 100_000, 1) }

// rss returns the process's resident memory in bytes, or 0 where
// /proc/self/statm cannot be read.
func rss() uint64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res uint64
	if _, err := fmt.Sscan(string(raw), &size, &res); err != nil {
		return 0
	}
	return res * uint64(os.Getpagesize())
}

func benchCatchUp(b *testing.B, docs, opsPerDelta int) {
	ctx := context.Background()
	for range b.N {
		src := startReplica(b, Config{MaxDeltaOps: opsPerDelta, Space: diskSpace(b)})
		if err := src.s.Collection("rides").Index(ctx, "city"); err != nil {
			b.Fatal(err)
		}
		fill(b, src.s, src.s.Collection("rides"), docs)
		// a replica that serves has had time to compact what it wrote:
		// the catch-up should not pay for the fill's compactions
		if err := src.s.space.DB().Pebble().Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
			b.Fatal(err)
		}
		fresh := startReplica(b, Config{Space: diskSpace(b)})
		if err := fresh.s.Collection("rides").Index(ctx, "city"); err != nil {
			b.Fatal(err)
		}
		disk := kvtest.DiskSyncRate(b, b.TempDir(), time.Second)
		debug.FreeOSMemory() // what filling the source took and left free
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base, baseRSS := ms.HeapAlloc, rss()
		var peak, peakRSS atomic.Uint64
		stop := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					peak.Store(max(peak.Load(), ms.HeapAlloc))
					peakRSS.Store(max(peakRSS.Load(), rss()))
				}
			}
		}()
		start, cpu := time.Now(), kvtest.CPUTime()
		connect(b, fresh, src)
		want := src.s.Versions()[src.s.Author()]
		eventually(b, 10*time.Minute, "fresh replica did not catch up", func() bool {
			return fresh.s.Versions()[src.s.Author()] == want
		})
		took := time.Since(start)
		cpuTook := kvtest.CPUTime() - cpu
		close(stop)
		sampler.Wait()
		if n := docCount(b, fresh.s, "rides"); n != docs {
			b.Fatalf("fresh replica holds %d documents", n)
		}
		if n, err := fresh.s.Collection("rides").Count(ctx, Where("city", "==", "city007")); err != nil || n != docs/100 {
			b.Fatalf("fresh replica's index finds %d documents of city007 (%v), want %d", n, err, docs/100)
		}
		b.ReportMetric(took.Seconds(), "s-catch-up")
		b.ReportMetric(took.Seconds()*1e6/float64(docs), "µs/doc")
		b.ReportMetric(cpuTook.Seconds()*1e6/float64(docs), "cpu-µs/doc")
		b.ReportMetric(float64(peak.Load()-min(peak.Load(), base))/(1<<20), "MB-peak-heap-growth")
		// the heap before: the GC lets the heap grow in proportion to it
		b.ReportMetric(float64(base)/(1<<20), "MB-heap-before")
		if baseRSS > 0 {
			b.ReportMetric(float64(peakRSS.Load()-min(peakRSS.Load(), baseRSS))/(1<<20), "MB-peak-RSS-growth")
		}
		b.ReportMetric(disk, "disk-syncs/s")
		fresh.close()
		src.close()
	}
}
