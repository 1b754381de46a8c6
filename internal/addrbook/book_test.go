package addrbook

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/multiformats/go-multiaddr"

	"github.com/dpaas/dpaas/internal/kv"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Unix(1_800_000_000, 0)} }
func addr(port int) multiaddr.Multiaddr {
	return multiaddr.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
}
func addrs(port int) []multiaddr.Multiaddr { return []multiaddr.Multiaddr{addr(port)} }

// newRecord makes a signed record of a fresh key.
func newRecord(t testing.TB, rng *rand.Rand, port int) Record {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(randReader{rng})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Seal(key, addrs(port))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type randReader struct{ r *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

func seeded(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0))
}

func TestParseRecordChecksSigner(t *testing.T) {
	rng := seeded(t)
	r := newRecord(t, rng, 1)
	got, err := ParseRecord(r.Envelope)
	if err != nil || got.ID != r.ID || len(got.Addrs) != 1 || !got.Addrs[0].Equal(addr(1)) {
		t.Fatalf("ParseRecord = %+v, %v", got, err)
	}
	// A record that names another peer than its signer.
	other := newRecord(t, rng, 2)
	key, _, _ := crypto.GenerateEd25519Key(randReader{rng})
	env, err := record.Seal(peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: other.ID, Addrs: addrs(3)}), key)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := env.Marshal()
	if _, err := ParseRecord(forged); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("forged record: %v", err)
	}
	// A flipped byte breaks the signature.
	bad := append([]byte(nil), r.Envelope...)
	bad[len(bad)-1] ^= 1
	if _, err := ParseRecord(bad); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("corrupted record: %v", err)
	}
	if _, err := ParseRecord(make([]byte, MaxRecordSize+1)); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("oversized record: %v", err)
	}
}

func TestCandidatesBoundedPerSource(t *testing.T) {
	rng := seeded(t)
	clk := newClock()
	b, err := Open(Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	honest := newRecord(t, rng, 1).ID
	hostile := newRecord(t, rng, 2).ID
	var good []Record
	for i := range 10 {
		r := newRecord(t, rng, 100+i)
		good = append(good, r)
		if _, err := b.AddCandidate(r, honest); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Millisecond)
	}
	for i := range 3000 {
		clk.add(time.Millisecond)
		if _, err := b.AddCandidate(newRecord(t, rng, 1000+i), hostile); err != nil {
			t.Fatal(err)
		}
	}
	st := b.Stats()
	if st.Candidates > DefaultMaxCandidates || st.Candidates != 10+DefaultMaxPerSource {
		t.Fatalf("%d candidates, want 10 honest + %d from the hostile source", st.Candidates, DefaultMaxPerSource)
	}
	for _, r := range good {
		if _, ok := b.Get(r.ID); !ok {
			t.Fatalf("an honest candidate was pushed out by the hostile source")
		}
	}
}

func TestCandidatesBoundedOverall(t *testing.T) {
	rng := seeded(t)
	clk := newClock()
	b, _ := Open(Options{Now: clk.now, MaxCandidates: 20, MaxPerSource: 8})
	for s := range 10 {
		src := newRecord(t, rng, s).ID
		for i := range 8 {
			clk.add(time.Millisecond)
			b.AddCandidate(newRecord(t, rng, 100*s+i), src)
		}
	}
	if st := b.Stats(); st.Candidates != 20 {
		t.Fatalf("%d candidates, want the bound 20", st.Candidates)
	}
}

func TestFailingSourceDistrusted(t *testing.T) {
	rng := seeded(t)
	clk := newClock()
	b, _ := Open(Options{Now: clk.now})
	hostile := newRecord(t, rng, 1).ID
	dials := 0
	for i := 0; i < 1000; i++ {
		if _, err := b.AddCandidate(newRecord(t, rng, 1000+i), hostile); err != nil {
			if !errors.Is(err, ErrDistrusted) {
				t.Fatal(err)
			}
			continue
		}
		for _, e := range b.Due(nil) {
			dials++
			b.Dialing(e.ID)
			b.DialFailed(e.ID)
		}
		clk.add(10 * time.Millisecond)
	}
	if dials > DefaultMaxSourceFailures {
		t.Fatalf("%d dials of a hostile source's records, want <= %d", dials, DefaultMaxSourceFailures)
	}
	if st := b.Stats(); st.Candidates != 0 || st.Refused == 0 {
		t.Fatalf("stats %+v", st)
	}
	// The penalty ends.
	clk.add(DefaultSourcePenalty + time.Second)
	if _, err := b.AddCandidate(newRecord(t, rng, 5), hostile); err != nil {
		t.Fatalf("after the penalty: %v", err)
	}
}

func TestCandidateBecomesVerifiedAndPersists(t *testing.T) {
	rng := seeded(t)
	clk := newClock()
	db, err := kv.Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	space, _ := db.Space("addrbook")
	b, _ := Open(Options{Space: space, Now: clk.now})
	src := newRecord(t, rng, 1).ID
	r := newRecord(t, rng, 2)
	b.AddCandidate(r, src)
	if e, _ := b.Get(r.ID); e.Verified {
		t.Fatal("candidate verified before any connection")
	}
	b.MarkGood(r)
	stale := newRecord(t, rng, 3)
	b.MarkGood(stale)
	clk.add(time.Hour)
	b.Touch(r.ID)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	// A garbled stored entry is dropped, not fatal.
	if err := space.Set([]byte("garbage"), []byte{0xff, 0x00}, false); err != nil {
		t.Fatal(err)
	}

	clk.add(DefaultVerifiedTTL - 30*time.Minute) // stale is older than the TTL, r is not
	b2, err := Open(Options{Space: space, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := b2.Get(r.ID)
	if !ok || !e.Verified || !e.Addrs[0].Equal(addr(2)) || !e.LastGood.Equal(time.Unix(1_800_000_000, 0).Add(time.Hour)) {
		t.Fatalf("reloaded entry %+v, %v", e, ok)
	}
	if _, ok := b2.Get(stale.ID); ok {
		t.Fatal("an entry older than the TTL survived a reopen")
	}
	if st := b2.Stats(); st.Corrupt != 1 || st.Expired != 1 || st.Verified != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The dropped entries are gone from disk too.
	b3, _ := Open(Options{Space: space, Now: clk.now})
	if st := b3.Stats(); st.Corrupt != 0 || st.Expired != 0 || st.Verified != 1 {
		t.Fatalf("stats after a second reopen %+v", st)
	}
}

func TestVerifiedBoundedAndBackoff(t *testing.T) {
	rng := seeded(t)
	clk := newClock()
	b, _ := Open(Options{Now: clk.now, MaxVerified: 5})
	var rs []Record
	for i := range 8 {
		clk.add(time.Second)
		r := newRecord(t, rng, i)
		rs = append(rs, r)
		b.MarkGood(r)
	}
	if st := b.Stats(); st.Verified != 5 || st.Evicted != 3 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := b.Get(rs[0].ID); ok {
		t.Fatal("the least recently good entry was kept")
	}
	due := b.Due(nil)
	if len(due) != 5 || due[0].ID != rs[7].ID {
		t.Fatalf("due %d, first %s, want the most recently good first", len(due), due[0].ID)
	}
	id := rs[7].ID
	b.Dialing(id)
	b.DialFailed(id)
	b.Dialing(id)
	b.DialFailed(id)
	for _, e := range b.Due(nil) {
		if e.ID == id {
			t.Fatal("a failing entry is due again at once")
		}
	}
	clk.add(5 * time.Second)
	if e, ok := b.Get(id); !ok || e.Failures != 2 {
		t.Fatalf("a verified entry failing twice: %+v, %v", e, ok)
	}
	found := false
	for _, e := range b.Due(nil) {
		found = found || e.ID == id
	}
	if !found {
		t.Fatal("a failing entry never due again")
	}
}

// TestEvictedWhileDiallingStillCharged: a source that pushes its own
// candidates out while they are being dialled is still charged with
// their failures.
func TestEvictedWhileDiallingStillCharged(t *testing.T) {
	rng := seeded(t)
	clk := newClock()
	b, _ := Open(Options{Now: clk.now})
	hostile := newRecord(t, rng, 1).ID
	var dialled []peer.ID
	for i := range DefaultMaxSourceFailures {
		clk.add(time.Millisecond)
		r := newRecord(t, rng, 100+i)
		b.AddCandidate(r, hostile)
		b.Dialing(r.ID)
		dialled = append(dialled, r.ID)
	}
	for i := range DefaultMaxPerSource {
		clk.add(time.Millisecond)
		b.AddCandidate(newRecord(t, rng, 200+i), hostile)
	}
	for _, id := range dialled {
		if _, ok := b.Get(id); ok {
			t.Fatal("a dialled candidate was not pushed out")
		}
		b.DialFailed(id)
	}
	if _, err := b.AddCandidate(newRecord(t, rng, 5), hostile); !errors.Is(err, ErrDistrusted) {
		t.Fatalf("after %d failures of candidates pushed out: %v, want ErrDistrusted", len(dialled), err)
	}
}
