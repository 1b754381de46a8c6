package dapp_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/payment"
)

// nonSeedLinks counts, for each running node but the seed (node 0), the
// other non-seed nodes it is connected to.
func nonSeedLinks(c *dapptest.Cluster) map[int]int {
	out := make(map[int]int)
	for i, js := range c.Links() {
		if i == 0 {
			continue
		}
		for _, j := range js {
			if j != 0 {
				out[i]++
			}
		}
	}
	return out
}

// waitDoc waits until every node of nodes holds document id of coll.
func waitDoc(t *testing.T, c *dapptest.Cluster, nodes []int, coll, id string) {
	t.Helper()
	c.WaitFor(fmt.Sprintf("document %s/%s on nodes %v", coll, id, nodes), func() bool {
		for _, i := range nodes {
			var r ride
			if err := c.Node(i).Store().Collection(coll).Get(context.Background(), id, &r); err != nil {
				return false
			}
		}
		return true
	})
}

// TestSeedDeathDoesNotSplit is issue 18's scenario with the default
// Config: five instances join through one seed, learn of each other from
// it, and stay one DApp when it dies; a newcomer joins through a
// survivor; then all five restart naming only the dead seed and find each
// other from their address books.
func TestSeedDeathDoesNotSplit(t *testing.T) {
	c := dapptest.New(t, 6, dapptest.Options{Topology: dapptest.Star})
	start := time.Now()
	c.WaitFor("every non-seed instance connected to two other non-seed instances", func() bool {
		links := nonSeedLinks(c)
		for i := 1; i < 6; i++ {
			if links[i] < 2 {
				return false
			}
		}
		return true
	})
	t.Logf("meshed %v after the last join", time.Since(start))

	c.Stop(0)
	ctx := context.Background()
	start = time.Now()
	if err := c.Node(1).Store().Collection("rides").Put(ctx, "r1", ride{From: "a", To: "b"}); err != nil {
		t.Fatal(err)
	}
	waitDoc(t, c, []int{2, 3, 4, 5}, "rides", "r1")
	t.Logf("a Put reached the four other survivors in %v", time.Since(start))

	newcomer := c.Join(3)
	waitDoc(t, c, []int{newcomer}, "rides", "r1")
	c.WaitFor("the newcomer connected to two survivors", func() bool { return len(c.Node(newcomer).Peers()) >= 2 })

	// Everyone restarts; Bootstrap names only the dead seed.
	c.Stop(newcomer)
	for i := 1; i < 6; i++ {
		c.Stop(i)
	}
	start = time.Now()
	for i := 1; i < 6; i++ {
		c.Restart(i)
	}
	c.WaitFor("the five to reconnect from their address books", func() bool {
		links := nonSeedLinks(c)
		for i := 1; i < 6; i++ {
			if links[i] != 4 {
				return false
			}
		}
		return true
	})
	t.Logf("reconnected %v after the first restart", time.Since(start))
	if err := c.Node(5).Store().Collection("rides").Put(ctx, "r2", ride{From: "c", To: "d"}); err != nil {
		t.Fatal(err)
	}
	waitDoc(t, c, []int{1, 2, 3, 4}, "rides", "r2")
	// A connection may still close (a duplicate of a simultaneous dial)
	// after the links were counted.
	c.WaitFor("every survivor's peer exchange to count the four others", func() bool {
		for i := 1; i < 6; i++ {
			if c.Node(i).DiscoveryStats().Peers != 4 {
				return false
			}
		}
		return true
	})
	for i := 1; i < 6; i++ {
		if st := c.Node(i).DiscoveryStats(); st.Known < 4 {
			t.Fatalf("node %d stats %+v, want the others known", i, st)
		}
	}
}

// diameter of the graph, or -1 when it is not connected; nodes in skip
// are left out.
func diameter(g map[int][]int, skip int) int {
	d := 0
	for src := range g {
		if src == skip {
			continue
		}
		dist := map[int]int{src: 0}
		queue := []int{src}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			for _, v := range g[u] {
				if _, seen := dist[v]; !seen && v != skip {
					dist[v] = dist[u] + 1
					queue = append(queue, v)
				}
			}
		}
		want := len(g)
		if _, ok := g[skip]; ok {
			want--
		}
		if len(dist) != want {
			return -1
		}
		for _, x := range dist {
			d = max(d, x)
		}
	}
	return d
}

// symmetric keeps the links both ends see, so a connection being set up
// or torn down does not count.
func symmetric(g map[int][]int) map[int][]int {
	out := make(map[int][]int)
	for i, js := range g {
		out[i] = []int{}
		for _, j := range js {
			if slices.Contains(g[j], i) {
				out[i] = append(out[i], j)
			}
		}
	}
	return out
}

// TestChainOfJoins: each of 20 instances joins through the one before it.
// Peer exchange makes a graph of small diameter that no single death
// splits, with a bounded number of connections per instance.
func TestChainOfJoins(t *testing.T) {
	const n = 20
	chain := sharedChain(t)
	c := dapptest.New(t, n, dapptest.Options{Topology: dapptest.Chain, Configure: func(i int, cfg *dapp.Config) {
		chain(i, cfg)
		// This is about the links peer exchange makes; twenty instances'
		// heartbeats, probes and attestations under the race detector on
		// two cores only slow it (their cost: TestAttestationsWrittenSparingly,
		// BenchmarkProbingCPU).
		cfg.Mirror.Disabled = true
	}})
	var g map[int][]int
	c.WaitFor("a graph of diameter <= 4 that no single death splits", func() bool {
		g = symmetric(c.Links())
		if d := diameter(g, -1); d < 0 || d > 4 {
			return false
		}
		for i := range n {
			if diameter(g, i) < 0 {
				return false
			}
		}
		return true
	})
	hub, most := 0, 0
	for i, js := range g {
		if len(js) > 2*8 {
			t.Fatalf("node %d has %d connections, over the bound", i, len(js))
		}
		if len(js) > most {
			hub, most = i, len(js)
		}
	}
	t.Logf("diameter %d; degree of the most connected %d", diameter(g, -1), most)
	// Kill the most connected instance: the others still reach each other.
	hubID := c.Node(hub).ID()
	c.Stop(hub)
	c.WaitFor("the dead instance to leave every peer list", func() bool {
		for _, nd := range c.Nodes() {
			if slices.Contains(nd.Peers(), hubID) {
				return false
			}
		}
		return true
	})
	if d := diameter(symmetric(c.Links()), -1); d < 0 {
		t.Fatalf("killing node %d split the DApp", hub)
	}
	writer := (hub + 1) % n
	if err := c.Node(writer).Store().Collection("rides").Put(context.Background(), "after", ride{From: "x"}); err != nil {
		t.Fatal(err)
	}
	var others []int
	for i := range n {
		if i != hub && i != writer {
			others = append(others, i)
		}
	}
	waitDoc(t, c, others, "rides", "after")
}

func TestPeerTargetValidated(t *testing.T) {
	for _, target := range []int{-1, 33} {
		_, err := dapp.Open(context.Background(), dapp.Config{App: dapp.Manifest{Name: "x"}, PeerTarget: target, ListenAddrs: loopback})
		if err == nil || !strings.Contains(err.Error(), "PeerTarget") {
			t.Fatalf("PeerTarget %d: %v", target, err)
		}
	}
}

// warnings records the messages of warnings logged.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, r.Message)
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }
func (w *warnings) count(sub string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestFewPeersWarnedAndMetered: the peers gauge follows the instances
// connected, and a warning says when only one or none is left while the
// book knows others.
func TestFewPeersWarnedAndMetered(t *testing.T) {
	w := &warnings{}
	reg := prometheus.NewRegistry()
	c := dapptest.New(t, 3, dapptest.Options{Configure: func(i int, cfg *dapp.Config) {
		if i == 0 {
			cfg.Logger = slog.New(w)
			cfg.Metrics = reg
		}
	}})
	c.WaitConnected()
	c.WaitFor("the peers gauge at 2", func() bool { return gauge(t, reg, "dpaas_dapp_peers") == 2 })
	const warning = "connected to few instances"
	if n := w.count(warning); n != 0 {
		t.Fatalf("%d warnings while connected to both others", n)
	}
	c.Stop(1)
	c.WaitFor("a warning with one instance left", func() bool { return w.count(warning) == 1 })
	c.Stop(2)
	c.WaitFor("the peers gauge at 0", func() bool { return gauge(t, reg, "dpaas_dapp_peers") == 0 })
	if st := c.Node(0).DiscoveryStats(); st.Known != 2 || st.Peers != 0 {
		t.Fatalf("stats %+v, want both others known and none connected", st)
	}
}

// sharedChain gives every node of a cluster one development chain, which
// starts the nodes faster than a private chain each.
func sharedChain(t testing.TB) func(int, *dapp.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := payment.NewDevChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the cluster, so it runs after the nodes are closed.
	t.Cleanup(func() { dev.Close() })
	return func(_ int, cfg *dapp.Config) { cfg.Payment.Dev = dev }
}
