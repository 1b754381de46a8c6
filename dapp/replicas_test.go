package dapp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
)

// diverseIPs puts node i on 127.0.<i+1>.1, except the last of n, which
// shares the /24 of the one before it (127.0.<n-1>.2). Probers see an
// instance at its address when they dialled it (on one host, loopback
// connections all leave from 127.0.0.1), and in a Full cluster node i
// dials nodes i+1...: so the pair sharing a /24 is dialled by the others.
func diverseIPs(n int) func(i int) string {
	return func(i int) string {
		if i == n-1 {
			return fmt.Sprintf("127.0.%d.2", n-1)
		}
		return fmt.Sprintf("127.0.%d.1", i+1)
	}
}

// fastMirror is a mirror configuration for tests: short intervals and
// epochs, every instance probed by every other each interval, and a probe
// timeout generous enough for a loaded machine.
func fastMirror(epoch time.Duration) dapp.MirrorConfig {
	return dapp.MirrorConfig{Interval: 250 * time.Millisecond, Epoch: epoch, Probes: 10, ProbeTimeout: 3 * time.Second, Expire: 40}
}

func replicaMap(t *testing.T, n *dapp.Node) map[peer.ID]dapp.Replica {
	t.Helper()
	rs, err := n.Replicas().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[peer.ID]dapp.Replica, len(rs))
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

// TestReplicasDirectory: six instances on five /24s find each other in
// their directories, with accounts, addresses, builds and availability
// attested by the others; the two sharing a /24 form one group, the
// others one each.
func TestReplicasDirectory(t *testing.T) {
	const n = 6
	c := dapptest.New(t, n, dapptest.Options{
		ListenIP:  diverseIPs(n),
		Configure: func(i int, cfg *dapp.Config) { cfg.Mirror = fastMirror(time.Hour) },
	})
	c.WaitConnected()
	var why string
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("last unmet:", why)
		}
	})
	c.WaitFor("every instance in every directory, attested available and grouped", func() bool {
		for i, node := range c.Nodes() {
			rs := replicaMap(t, node)
			if len(rs) != n {
				why = fmt.Sprintf("node %d lists %d instances", i, len(rs))
				return false
			}
			for _, r := range rs {
				// Under the race detector on a loaded machine a probe
				// may time out now and then.
				if r.Probers < 3 || r.Availability < 0.5 || r.Build.SHA256 == "" {
					why = fmt.Sprintf("node %d lists %s with %d probers, availability %v, build %q", i, r.ID, r.Probers, r.Availability, r.Build.SHA256)
					return false
				}
			}
			if g1, g2 := rs[c.Node(n-2).ID()].Group, rs[c.Node(n-1).ID()].Group; g1 != g2 {
				why = fmt.Sprintf("node %d puts nodes %d and %d in groups %s and %s", i, n-2, n-1, g1, g2)
				return false
			}
		}
		return true
	})
	rs := replicaMap(t, c.Node(2))
	groups := map[string]int{}
	for i := range n {
		r := rs[c.Node(i).ID()]
		groups[r.Group]++
		if r.Account != c.Node(i).Account() || len(r.Addrs) == 0 || r.Self != (i == 2) {
			t.Fatalf("node %d as node 2 lists it: %+v", i, r)
		}
		if i != 2 && r.RTT <= 0 {
			t.Fatalf("node %d: no round-trip time", i)
		}
		if r.Build.GOOS == "" || r.Verified {
			t.Fatalf("node %d: build %+v verified %v with no release approved", i, r.Build, r.Verified)
		}
	}
	if len(groups) != n-1 {
		t.Fatalf("groups %v: want %d (two instances share one /24)", groups, n-1)
	}
	probes, malformed := dapp.MirrorCounts(c.Node(0))
	if probes == 0 || malformed != 0 {
		t.Fatalf("node 0: %d probes, %d malformed", probes, malformed)
	}
}
