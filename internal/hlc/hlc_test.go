package hlc

import (
	"sync"
	"testing"
	"time"
)

func TestNowIsStrictlyIncreasingWhenWallStands(t *testing.T) {
	fixed := time.UnixMilli(1_700_000_000_000)
	c := New(func() time.Time { return fixed })
	a := c.Now()
	b := c.Now()
	if b != a+1 {
		t.Fatalf("second timestamp %v, want %v", b, a+1)
	}
	if a.WallMillis() != fixed.UnixMilli() || a.Logical() != 0 {
		t.Fatalf("first timestamp %v does not match the wall clock", a)
	}
}

func TestNowFollowsWallClock(t *testing.T) {
	wall := time.UnixMilli(1_700_000_000_000)
	c := New(func() time.Time { return wall })
	c.Now()
	c.Now()
	wall = wall.Add(time.Second)
	got := c.Now()
	if got != FromTime(wall) {
		t.Fatalf("after the wall clock moved got %v, want %v", got, FromTime(wall))
	}
}

func TestObserveMovesClockPastRemote(t *testing.T) {
	wall := time.UnixMilli(1_700_000_000_000)
	c := New(func() time.Time { return wall })
	remote := FromTime(wall.Add(time.Hour)) + 7
	c.Observe(remote)
	if got := c.Now(); got <= remote {
		t.Fatalf("Now %v is not after observed %v", got, remote)
	}
	c.Observe(1) // an old timestamp changes nothing
	if c.Last() <= remote {
		t.Fatalf("Last went backwards")
	}
}

func TestConcurrentNowNeverRepeats(t *testing.T) {
	c := New(nil)
	var mu sync.Mutex
	seen := make(map[Timestamp]bool)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				ts := c.Now()
				mu.Lock()
				if seen[ts] {
					t.Errorf("timestamp %v issued twice", ts)
				}
				seen[ts] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
