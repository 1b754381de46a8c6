package dapp_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dpaas/dpaas/dapp/dapptest"
)

func quantile(ds []time.Duration, q float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
}

// BenchmarkMeshAfterJoin: a DApp of a seed and five instances that joined
// through it (default Config, Star) is meshed; then b.N newcomers join in
// turn, each naming only the seed, and the time from a newcomer's Open
// returning to its being connected to every other instance, or to its
// target of 8, is measured.
// Run with -benchtime=10x.
func BenchmarkMeshAfterJoin(b *testing.B) {
	c := dapptest.New(b, 6, dapptest.Options{Topology: dapptest.Star, Configure: sharedChain(b)})
	c.WaitFor("the five meshed", func() bool {
		for _, js := range c.Links() {
			if len(js) != 5 {
				return false
			}
		}
		return true
	})
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := c.Join(0)
		start := time.Now()
		want := min(8, len(c.Nodes())-1) // the default PeerTarget
		c.WaitFor("the newcomer meshed", func() bool { return len(c.Node(n).Peers()) >= want })
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(quantile(lat, 0.5), "p50-ms")
	b.ReportMetric(quantile(lat, 1), "max-ms")
}

// BenchmarkConnectionsPerInstance: n instances join in a chain (each
// names only the one before it in Bootstrap); once every instance has
// reached its target of 8 connections (or n-1), the connections per
// instance and the graph's diameter are reported. Run with -benchtime=1x.
func BenchmarkConnectionsPerInstance(b *testing.B) {
	for _, n := range []int{3, 24, 48, 100} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for range b.N {
				start := time.Now()
				c := dapptest.New(b, n, dapptest.Options{Topology: dapptest.Chain, Configure: sharedChain(b), Timeout: 2 * time.Minute})
				started := time.Since(start)
				want := min(8, n-1)
				below := func() int {
					k := 0
					for _, js := range c.Links() {
						if len(js) < want {
							k++
						}
					}
					return k
				}
				// Wait for every instance to reach its target, or a minute;
				// what was reached is reported either way.
				for deadline := time.Now().Add(time.Minute); below() > 0 && time.Now().Before(deadline); {
					time.Sleep(50 * time.Millisecond)
				}
				meshed := time.Since(start)
				// Let trimming and late dials settle for a few rounds.
				time.Sleep(3 * time.Second)
				g := symmetric(c.Links())
				total, most := 0, 0
				for _, js := range g {
					total += len(js)
					most = max(most, len(js))
				}
				b.ReportMetric(float64(total)/float64(n), "conns-mean")
				b.ReportMetric(float64(most), "conns-max")
				b.ReportMetric(float64(diameter(g, -1)), "diameter")
				b.ReportMetric(float64(below()), "below-target")
				var walks, walkDials uint64
				for _, nd := range c.Nodes() {
					st := nd.DiscoveryStats()
					walks += st.Walks
					walkDials += st.WalkDials
				}
				b.ReportMetric(float64(walks), "walks")
				b.ReportMetric(float64(walkDials), "walk-dials")
				for i, js := range c.Links() {
					if len(js) < want {
						b.Logf("node %d below target: %d peers, %+v", i, len(js), c.Node(i).DiscoveryStats())
					}
				}
				b.ReportMetric(started.Seconds(), "start-s")
				b.ReportMetric((meshed - started).Seconds(), "mesh-after-start-s")
				c.Close()
			}
		})
	}
}

// BenchmarkSeedDeath: a seed and five instances that joined through it;
// the seed dies and a Put on one survivor is timed until the four others
// hold it. Then the five stop and restart with Bootstrap naming only the
// dead seed, and the time from the last restart to every one of them
// being connected to the four others is reported. Run with -benchtime=5x.
func BenchmarkSeedDeath(b *testing.B) {
	var put, reconnect []time.Duration
	for i := 0; i < b.N; i++ {
		c := dapptest.New(b, 6, dapptest.Options{Topology: dapptest.Star, Configure: sharedChain(b)})
		fullMesh := func() bool {
			links := nonSeedLinks(c)
			for i := 1; i < 6; i++ {
				if links[i] != 4 {
					return false
				}
			}
			return true
		}
		c.WaitFor("the five meshed", fullMesh)
		c.Stop(0)
		start := time.Now()
		if err := c.Node(1).Store().Collection("rides").Put(context.Background(), "r", ride{From: "a"}); err != nil {
			b.Fatal(err)
		}
		c.WaitFor("the Put everywhere", func() bool {
			for i := 2; i < 6; i++ {
				var r ride
				if c.Node(i).Store().Collection("rides").Get(context.Background(), "r", &r) != nil {
					return false
				}
			}
			return true
		})
		put = append(put, time.Since(start))
		for i := 1; i < 6; i++ {
			c.Stop(i)
		}
		for i := 1; i < 6; i++ {
			c.Restart(i)
		}
		start = time.Now()
		c.WaitFor("the five reconnected", fullMesh)
		reconnect = append(reconnect, time.Since(start))
		c.Close()
	}
	b.ReportMetric(quantile(put, 0.5), "put-p50-ms")
	b.ReportMetric(quantile(put, 1), "put-max-ms")
	b.ReportMetric(quantile(reconnect, 0.5), "reconnect-p50-ms")
	b.ReportMetric(quantile(reconnect, 1), "reconnect-max-ms")
}
