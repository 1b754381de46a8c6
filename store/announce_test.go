package store

import (
	"context"
	"testing"
	"time"
)

// Replicas that hold the same deltas take turns announcing them: with six
// in a full mesh, each hears up to five announcements covering its own
// versions per interval, so turns are skipped; a write on one still
// reaches every other.
func TestAnnouncementsSuppressedWhenReplicasAgree(t *testing.T) {
	const n = 6
	rs := make([]*replicaNode, n)
	for i := range rs {
		rs[i] = startReplica(t, Config{AnnounceInterval: 50 * time.Millisecond})
	}
	for i := range rs {
		for j := i + 1; j < n; j++ {
			connect(t, rs[i], rs[j])
		}
	}
	skipped := func() (k uint64) {
		for _, r := range rs {
			k += r.s.Stats().AnnouncementsSkipped
		}
		return k
	}
	eventually(t, time.Minute, "no replica skipped an announcement", func() bool { return skipped() >= n })
	ctx := context.Background()
	if err := rs[0].s.Collection("c").Put(ctx, "d", map[string]int{"v": 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the write did not reach every replica", func() bool {
		for _, r := range rs {
			var v map[string]int
			if r.s.Collection("c").Get(ctx, "d", &v) != nil || v["v"] != 1 {
				return false
			}
		}
		return true
	})
	var announced uint64
	for _, r := range rs {
		announced += r.s.Stats().Announcements
	}
	if announced == 0 {
		t.Fatal("no replica announced")
	}
}

// A replica alone hears no announcement covering its versions and so
// never skips its turn.
func TestAnnouncementsOfAReplicaAhead(t *testing.T) {
	a := startReplica(t, Config{AnnounceInterval: 20 * time.Millisecond})
	if err := a.s.Collection("c").Put(context.Background(), "d", map[string]int{"v": 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "no announcement", func() bool { return a.s.Stats().Announcements >= 5 })
	if k := a.s.Stats().AnnouncementsSkipped; k != 0 {
		t.Fatalf("a replica alone skipped %d announcements", k)
	}
}

// A replica that writes all the time is always a few deltas ahead of the
// others, whose announcements never cover its latest versions; they cover
// what it held at its last turn, and that is what its announcement would
// have told (newer deltas are still being pushed by gossip). So it skips
// turns too.
func TestAnnouncementsOfAWriterSuppressed(t *testing.T) {
	const n = 5
	rs := make([]*replicaNode, n)
	for i := range rs {
		rs[i] = startReplica(t, Config{AnnounceInterval: 50 * time.Millisecond})
	}
	for i := range rs {
		for j := i + 1; j < n; j++ {
			connect(t, rs[i], rs[j])
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := 0; ctx.Err() == nil; k++ {
			_ = rs[0].s.Collection("c").Put(ctx, "d", map[string]int{"v": k})
		}
	}()
	defer func() { stop(); <-done }()
	eventually(t, time.Minute, "the writer never skipped an announcement", func() bool {
		return rs[0].s.Stats().AnnouncementsSkipped >= 3
	})
}

// announceTurn: skip when covered; otherwise announce, with probability
// announceBudget/all once more than announceBudget were heard.
func TestAnnounceTurn(t *testing.T) {
	cases := []struct {
		covering, all uint64
		r             float64
		want          bool
	}{
		{0, 0, 0.99, true},
		{2, 2, 0.99, true},
		{3, 3, 0, false},
		{3, 100, 0, false},
		{0, announceBudget, 0.99, true},
		{0, 100, 0.07, true},  // 8/100 = 0.08
		{0, 100, 0.09, false}, //
		{1, 16, 0.49, true},
		{1, 16, 0.5, false},
	}
	for _, c := range cases {
		if got := announceTurn(c.covering, c.all, c.r); got != c.want {
			t.Errorf("announceTurn(%d, %d, %v) = %v, want %v", c.covering, c.all, c.r, got, c.want)
		}
	}
}
