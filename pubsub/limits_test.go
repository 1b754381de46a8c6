package pubsub

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func testLimiter(t *testing.T) (*limiter, *time.Time) {
	t.Helper()
	cfg := Config{AppID: "x", MaxMessageSize: 1000, PeerMessageRate: 100, PeerByteRate: 10_000, GraylistAfter: 10, GraylistHalfLife: 10 * time.Second}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	l := newLimiter(&cfg)
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	return l, &now
}

// TestLimiterBudgets: a sender gets a burst of one second's worth, then its
// rate; each topic and each sender has a budget of its own; the SDK's
// topics four times as much.
func TestLimiterBudgets(t *testing.T) {
	l, now := testLimiter(t)
	a, b := peer.ID("a"), peer.ID("b")
	for i := range 100 {
		if !l.allow(a, "t", 10, false) {
			t.Fatalf("message %d of the burst refused", i)
		}
	}
	if l.allow(a, "t", 10, false) {
		t.Fatal("message 101 within one instant accepted")
	}
	if !l.allow(a, "u", 10, false) || !l.allow(b, "t", 10, false) {
		t.Fatal("another topic, or another sender, was charged for a's messages")
	}
	*now = now.Add(100 * time.Millisecond) // 10 messages' worth
	for i := range 10 {
		if !l.allow(a, "t", 10, false) {
			t.Fatalf("refilled message %d refused", i)
		}
	}
	if l.allow(a, "t", 10, false) {
		t.Fatal("more than the refill accepted")
	}
	// Bytes: the burst is max(rate, two messages of the largest size).
	if !l.allow(b, "bytes", 9_000, false) || l.allow(b, "bytes", 2_000, false) {
		t.Fatal("byte budget not enforced")
	}
	// The SDK's topics: four times the budget.
	for i := range 400 {
		if !l.allow(a, "sys", 10, true) {
			t.Fatalf("SDK topic message %d refused", i)
		}
	}
	if l.allow(a, "sys", 10, true) {
		t.Fatal("SDK topic over four times the budget accepted")
	}
}

// TestLimiterGraylist: messages over budget add to the sender's penalty;
// at the graylist level the sender is graylisted once (counted), its score
// at the bottom, and it stays so until two half-lives after it stopped.
func TestLimiterGraylist(t *testing.T) {
	l, now := testLimiter(t)
	a := peer.ID("a")
	for range 100 {
		l.allow(a, "t", 1, false)
	}
	for i := range 9 {
		l.allow(a, "t", 1, false)
		if l.isGraylisted(a) {
			t.Fatalf("graylisted after %d messages over budget, want 10", i+1)
		}
	}
	if s := l.score(a); s > -8.9 || s < -9.1 {
		t.Fatalf("score %v after 9 messages over budget, want -9", s)
	}
	l.allow(a, "t", 1, false)
	if !l.isGraylisted(a) || l.graylisted.Load() != 1 || l.score(a) > -10 {
		t.Fatalf("not graylisted at the level: graylisted=%v count=%d score=%v", l.isGraylisted(a), l.graylisted.Load(), l.score(a))
	}
	if got := l.graylistedPeers(); len(got) != 1 || got[0] != a {
		t.Fatalf("graylisted peers %v", got)
	}
	*now = now.Add(19 * time.Second)
	if !l.isGraylisted(a) {
		t.Fatal("heard again before two half-lives")
	}
	*now = now.Add(2 * time.Second)
	if l.isGraylisted(a) {
		t.Fatalf("still graylisted two half-lives after it stopped (score %v)", l.score(a))
	}
	if l.graylisted.Load() != 1 {
		t.Fatalf("graylisted counted %d times", l.graylisted.Load())
	}
}

// TestLimiterMemoryBounded: buckets of many senders are forgotten rather
// than kept forever.
func TestLimiterMemoryBounded(t *testing.T) {
	l, now := testLimiter(t)
	for i := range 3 * maxBuckets {
		l.allow(peer.ID(rune(i)), "t", 1, false)
		if i%1000 == 0 {
			*now = now.Add(2 * time.Second)
		}
	}
	if len(l.buckets) > maxBuckets {
		t.Fatalf("%d buckets, bound %d", len(l.buckets), maxBuckets)
	}
}

// TestDefaultBudgetsFitFastHonestPublisher: with the default Config, a
// sender publishing 200-byte payloads as fast as the README's unpaced
// benchmark does (15,108 messages a second, 294 bytes each on the wire)
// for a minute, or bursts of 20,000 after a pause, has nothing throttled.
func TestDefaultBudgetsFitFastHonestPublisher(t *testing.T) {
	cfg := Config{AppID: "x"}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	l := newLimiter(&cfg)
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	const rate, size = 15_108, headerLen + 200
	for i := range 60 * rate {
		if !l.allow("fast", "t", size, false) {
			t.Fatalf("message %d (%.2f s) throttled", i, float64(i)/rate)
		}
		now = now.Add(time.Second / rate)
	}
	now = now.Add(time.Second)
	for i := range 20_000 {
		if !l.allow("bursty", "t", size, false) {
			t.Fatalf("message %d of a burst throttled", i)
		}
	}
	if l.throttled.Load() != 0 || len(l.graylistedPeers()) != 0 {
		t.Fatal("penalised")
	}
}
