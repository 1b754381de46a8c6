package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Deltas that reached one replica without gossip (here delivered to it
// directly, as a push lost on the way would leave them) spread along a
// line of replicas, each comparing versions with a neighbour per
// interval: the last one, connected only to the one before it, ends up
// holding them all.
func TestExchangesSpreadDeltasGossipMissed(t *testing.T) {
	gen := writtenElsewhere(t, 5)
	const n = 5
	rs := make([]*replicaNode, n)
	for i := range rs {
		rs[i] = startReplica(t, Config{AnnounceInterval: 30 * time.Millisecond})
	}
	for i := 1; i < n; i++ {
		connect(t, rs[i-1], rs[i])
	}
	// Catch-ups on connecting are over once every replica has compared
	// versions with a neighbour.
	eventually(t, time.Minute, "no exchanges", func() bool {
		for _, r := range rs {
			if r.s.Stats().Announcements == 0 {
				return false
			}
		}
		return true
	})
	deliver(t, rs[0].s, newBlocks(t, gen, gen.Author(), 0))
	eventually(t, time.Minute, "the deltas did not reach the end of the line", func() bool {
		return rs[n-1].s.Versions()[gen.Author()] == 5
	})
	if digest(t, rs[n-1].s) != digest(t, gen) {
		t.Fatal("replicas differ")
	}
}

// Idle replicas gossip nothing: versions go over streams between
// neighbours, not to the whole DApp.
func TestIdleReplicasGossipNothing(t *testing.T) {
	const n = 4
	rs := make([]*replicaNode, n)
	for i := range rs {
		rs[i] = startReplica(t, Config{AnnounceInterval: 20 * time.Millisecond})
	}
	for i := range rs {
		for j := i + 1; j < n; j++ {
			connect(t, rs[i], rs[j])
		}
	}
	eventually(t, time.Minute, "fewer than 10 exchanges each", func() bool {
		for _, r := range rs {
			if r.s.Stats().Announcements < 10 {
				return false
			}
		}
		return true
	})
	for i, r := range rs {
		if p := r.ps.Stats().Published; p != 0 {
			t.Fatalf("idle replica %d published %d messages", i, p)
		}
	}
}

// A replica alone has no one to compare with: every turn is skipped.
func TestExchangeTurnsOfAReplicaAloneSkipped(t *testing.T) {
	a := startReplica(t, Config{AnnounceInterval: 10 * time.Millisecond})
	eventually(t, time.Minute, "no turn", func() bool { return a.s.Stats().AnnouncementsSkipped >= 5 })
	if k := a.s.Stats().Announcements; k != 0 {
		t.Fatalf("a replica alone made %d exchanges", k)
	}
}

// A neighbour comparing versions is sent only what this replica had
// processed an interval before (what gossip may still be bringing it is
// left out): settledOrder gives the log position as of age ago.
func TestSettledOrderLagsTheLog(t *testing.T) {
	gen := writtenElsewhere(t, 5)
	r := startReplica(t, Config{AnnounceInterval: time.Hour})
	n := r.s.net.Load()
	const age = 50 * time.Millisecond
	if got := n.settledOrder(age); got != 0 {
		t.Fatalf("no mark yet: settled at %d", got)
	}
	deliver(t, r.s, newBlocks(t, gen, gen.Author(), 0))
	if got := n.settledOrder(age); got != 0 {
		t.Fatalf("just after the deltas came: settled at %d, want 0", got)
	}
	eventually(t, time.Minute, "the deltas never settled", func() bool { return n.settledOrder(age) == 5 })
}

// Exchanges that find nothing come further and further apart, up to
// maxExchangeWait intervals; one that finds deltas, or a turn with no one
// to ask, brings them back to one interval.
func TestExchangeWaitBacksOff(t *testing.T) {
	const iv = time.Second
	wait := iv
	var seen []time.Duration
	for range 5 {
		wait = nextExchangeWait(wait, iv, false, true)
		seen = append(seen, wait)
	}
	want := []time.Duration{2 * iv, 4 * iv, 8 * iv, 8 * iv, 8 * iv}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", seen, want)
	}
	if w := nextExchangeWait(8*iv, iv, true, true); w != iv {
		t.Fatalf("after an exchange that found deltas: %v, want %v", w, iv)
	}
	if w := nextExchangeWait(8*iv, iv, false, false); w != iv {
		t.Fatalf("after a turn with no one to ask: %v, want %v", w, iv)
	}
}

// writtenElsewhere is an in-memory store, on no network, holding k
// documents it wrote, one delta each: deltas to hand to a replica without
// gossip (newBlocks, deliver).
func writtenElsewhere(t *testing.T, k int) *Store {
	t.Helper()
	ctx := context.Background()
	gen, err := Open(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gen.Close() })
	for i := range k {
		if err := gen.Collection("rides").Put(ctx, fmt.Sprintf("r%d", i), map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	return gen
}

// A delta too large for a pubsub message is announced instead, and a
// neighbour that will not compare versions for an hour catches up from
// its writer at once.
func TestTooLargeDeltaFetchedOnAnnouncement(t *testing.T) {
	w := startReplica(t, Config{AnnounceInterval: time.Hour})
	r := startReplica(t, Config{AnnounceInterval: time.Hour})
	connect(t, r, w)
	eventually(t, 10*time.Second, "not on the topic together", func() bool {
		return len(r.s.net.Load().topic.Peers()) == 1 && len(w.s.net.Load().topic.Peers()) == 1
	})
	big := strings.Repeat("x", 5<<20) // over the 4 MiB pubsub limit of startReplica
	if err := w.s.Collection("c").Put(context.Background(), "big", map[string]string{"v": big}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the large document never arrived", func() bool {
		var v map[string]string
		return r.s.Collection("c").Get(context.Background(), "big", &v) == nil && len(v["v"]) == len(big)
	})
	if st := r.s.Stats(); st.CatchUps == 0 {
		t.Fatalf("arrived without a catch-up: %+v", st)
	}
}
