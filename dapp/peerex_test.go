package dapp_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/store"
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
	for i := 1; i < 6; i++ {
		c.Restart(i)
	}
	start = time.Now()
	c.WaitFor("the five to reconnect from their address books", func() bool {
		links := nonSeedLinks(c)
		for i := 1; i < 6; i++ {
			if links[i] != 4 {
				return false
			}
		}
		return true
	})
	t.Logf("reconnected %v after the restarts", time.Since(start))
	if err := c.Node(5).Store().Collection("rides").Put(ctx, "r2", ride{From: "c", To: "d"}); err != nil {
		t.Fatal(err)
	}
	waitDoc(t, c, []int{1, 2, 3, 4}, "rides", "r2")
	for i := 1; i < 6; i++ {
		st := c.Node(i).DiscoveryStats()
		if st.Peers != 4 || st.Known < 4 {
			t.Fatalf("node %d stats %+v, want 4 peers and the others known", i, st)
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
	c := dapptest.New(t, n, dapptest.Options{Topology: dapptest.Chain})
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
	_, err := dapp.Open(context.Background(), dapp.Config{App: dapp.Manifest{Name: "x"}, PeerTarget: -1, ListenAddrs: loopback})
	if err == nil || errors.Is(err, store.ErrClosed) {
		t.Fatalf("negative PeerTarget: %v", err)
	}
}
