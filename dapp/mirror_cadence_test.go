package dapp

import (
	"fmt"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/mirror"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A DApp carries about beatsPerInterval heartbeats per Interval whatever
// its size: an instance heartbeats every Interval while its directory is
// small, every few beyond, and expires the silent after Expire of those
// periods.
func TestHeartbeatPeriodGrowsWithTheDirectory(t *testing.T) {
	m := &mirrorEngine{cfg: MirrorConfig{Interval: 10 * time.Second, Expire: 6}, dir: make(map[peer.ID]*dirEntry)}
	now := time.Now()
	for _, c := range []struct{ others, ticks int }{{0, 1}, {31, 1}, {32, 2}, {99, 4}, {999, 32}} {
		clear(m.dir)
		for i := range c.others {
			m.dir[peer.ID(fmt.Sprint(i))] = &dirEntry{seen: now}
		}
		if got := m.beatTicks(); got != c.ticks {
			t.Fatalf("%d others: heartbeat every %d intervals, want %d", c.others, got, c.ticks)
		}
	}
	// With 100 instances (every 4 intervals): one heard 200 s ago stays,
	// one heard 250 s ago (over 6 × 40 s) leaves.
	clear(m.dir)
	for i := range 99 {
		m.dir[peer.ID(fmt.Sprint(i))] = &dirEntry{seen: now}
	}
	m.dir["0"].seen = now.Add(-200 * time.Second)
	m.dir["1"].seen = now.Add(-250 * time.Second)
	m.rtt = make(map[peer.ID]time.Duration)
	m.expire(now)
	if m.dir["0"] == nil || m.dir["1"] != nil {
		t.Fatalf("after expiry: heard 200 s ago kept %v, heard 250 s ago kept %v", m.dir["0"] != nil, m.dir["1"] != nil)
	}
}

// In a steady DApp a prober writes its attestations together, once per
// periodic write, not one delta a round: at once only a changed outcome,
// the first quickProbers of an instance, and the epoch's last round.
func TestAttestationsWrittenTogether(t *testing.T) {
	const iv = 10 * time.Second
	m, t0, e, probe := attestingEngine(iv, 0)
	names := func(due []*attState) (out []string) {
		for _, st := range due {
			out = append(out, string(st.a.Probed))
		}
		return out
	}
	// "a" has no prober yet: its first attestation goes at once. "b"
	// already has quickProbers: its first waits.
	m.probers[attKey{e, "b"}] = quickProbers
	probe("a", 0)
	probe("b", 0)
	if due := names(m.dueLocked(t0.Add(iv))); len(due) != 1 || due[0] != "a" {
		t.Fatalf("round 1 wrote %v, want [a]", due)
	}
	m.probers[attKey{e, "a"}]++
	// Successes in the rounds after: nothing until the periodic write.
	for r := 2; r < 29; r++ {
		probe("a", 0)
		probe("b", 0)
		if due := m.dueLocked(t0.Add(time.Duration(r) * iv)); len(due) != 0 {
			t.Fatalf("round %d wrote %v, want nothing", r, names(due))
		}
	}
	// A failure goes at once.
	probe("a", mirror.FailUnreachable)
	if due := names(m.dueLocked(t0.Add(29 * iv))); len(due) != 1 || due[0] != "a" {
		t.Fatalf("round 29 wrote %v, want [a]", due)
	}
	// Five minutes after the start: the periodic write takes the rest.
	probe("a", mirror.FailUnreachable)
	if due := m.dueLocked(t0.Add(5 * time.Minute)); len(due) != 2 {
		t.Fatalf("the periodic write took %v, want a and b", names(due))
	}
}

// In a DApp of 100 instances (a heartbeat every 4 Intervals) writes at once
// are spaced by the heartbeat period too: a failure, a newcomer's first
// attestations wait for it; the periodic write and the epoch's last round
// do not.
func TestAttestationsAtOnceSpacedInALargeDApp(t *testing.T) {
	const iv = 10 * time.Second
	m, t0, e, probe := attestingEngine(iv, 99)
	at := func(r int) time.Time { return t0.Add(time.Duration(r)*iv - time.Second) } // timers a little early
	probe("a", 0)
	if due := m.dueLocked(at(1)); len(due) != 1 {
		t.Fatalf("round 1 wrote %d, want the first attestation of a", len(due))
	}
	// b is new and a fails: both wait for round 5, four Intervals after
	// the last write.
	for r := 2; r <= 4; r++ {
		probe("b", 0)
		probe("a", mirror.FailUnreachable)
		if due := m.dueLocked(at(r)); len(due) != 0 {
			t.Fatalf("round %d wrote %d, want nothing before the heartbeat period", r, len(due))
		}
	}
	probe("a", mirror.FailUnreachable)
	if due := m.dueLocked(at(5)); len(due) != 2 {
		t.Fatalf("round 5 wrote %d, want a's failure and b's first", len(due))
	}
	// The epoch's last round writes whatever is left, spaced or not.
	probe("a", 0)
	end := t0.Add(time.Hour - time.Minute - iv/2)
	if m.epochAt(end.Add(iv)) == e {
		t.Fatal("not the epoch's last round")
	}
	m.lastWrite = end
	if due := m.dueLocked(end); len(due) != 1 {
		t.Fatalf("the epoch's last round wrote %d, want a", len(due))
	}
}

// attestingEngine is a mirror engine whose directory lists others
// instances, at t0, a minute into epoch e (so no round soon after is the
// epoch's last), its periodic write just made; probe counts one probe of
// an instance with an outcome, as a probe round does.
func attestingEngine(iv time.Duration, others int) (m *mirrorEngine, t0 time.Time, e uint64, probe func(p string, outcome int)) {
	m = &mirrorEngine{
		cfg:     MirrorConfig{Interval: iv, Epoch: time.Hour},
		dir:     make(map[peer.ID]*dirEntry),
		mine:    make(map[attKey]*attState),
		probers: make(map[attKey]int),
	}
	for i := range others {
		m.dir[peer.ID(fmt.Sprint(i))] = &dirEntry{}
	}
	t0 = time.Unix(0, 0).Add(time.Duration(time.Now().Unix()/3600*3600+60) * time.Second)
	m.periodic = t0
	e = m.epochAt(t0)
	probe = func(p string, outcome int) {
		k := attKey{e, peer.ID(p)}
		st := m.mine[k]
		if st == nil {
			st = &attState{a: mirror.Attestation{Probed: peer.ID(p), Epoch: e}}
			m.mine[k] = st
		}
		st.dirty, st.outcome = true, outcome
	}
	return m, t0, e, probe
}
