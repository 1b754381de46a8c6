package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/kv/kvtest"
)

// BenchmarkPutSequentialLive is BenchmarkPutSequential on one of three
// replicas in this process, each on its own Pebble directory on the same
// disk and its own libp2p host on loopback, while the two others apply
// every delta as it arrives over pubsub. It reports the writer's rate
// beside the disk's sync rate, the CPU time of the whole process (all
// three replicas) per Put, and how long after the last Put both others
// hold every delta.
func BenchmarkPutSequentialLive(b *testing.B) {
	reps := []*replicaNode{
		startReplica(b, Config{Space: diskSpace(b)}),
		startReplica(b, Config{Space: diskSpace(b)}),
		startReplica(b, Config{Space: diskSpace(b)}),
	}
	connect(b, reps[0], reps[1])
	connect(b, reps[0], reps[2])
	connect(b, reps[1], reps[2])
	waitMesh(b, reps)
	probe := b.TempDir()
	before := kvtest.DiskSyncRate(b, probe, time.Second)
	w := reps[0].s
	c := w.Collection("rides")
	ctx := context.Background()
	b.ResetTimer()
	start, cpu := time.Now(), kvtest.CPUTime()
	for i := range b.N {
		if err := c.Put(ctx, fmt.Sprintf("r%09d", i), doc(i)); err != nil {
			b.Fatal(err)
		}
	}
	last := time.Now()
	rate := float64(b.N) / last.Sub(start).Seconds()
	reportCPU(b, cpu, b.N)
	want := w.Versions()[w.Author()]
	eventually(b, 5*time.Minute, "replicas did not converge", func() bool {
		return reps[1].s.Versions()[w.Author()] == want && reps[2].s.Versions()[w.Author()] == want
	})
	b.StopTimer()
	b.ReportMetric(float64(time.Since(last).Microseconds())/1000, "ms-to-converge")
	b.ReportMetric(rate, "puts/s")
	disk := (before + kvtest.DiskSyncRate(b, probe, time.Second)) / 2
	b.ReportMetric(disk, "disk-syncs/s")
	b.ReportMetric(100*rate/disk, "%disk")
	var applied, catchUps uint64
	for _, r := range reps[1:] {
		st := r.s.Stats()
		applied += st.DeltasApplied
		catchUps += st.CatchUps
	}
	b.ReportMetric(float64(catchUps)/2, "catch-ups/replica")
	b.ReportMetric(float64(applied)/float64(2*b.N), "applied/put")
}
