// Package hlc is a hybrid logical clock.
//
// A Timestamp packs wall-clock milliseconds since the Unix epoch into its
// high 48 bits and a logical counter into its low 16 bits, so timestamps
// compare as plain integers, stay close to real time, and still order
// every event a replica has seen before the events it makes next.
//
// # Usage
//
//	c := hlc.New(nil)          // nil = time.Now
//	t := c.Now()               // for a local event
//	c.Observe(remote)          // for every remote timestamp accepted
//
// A Clock is safe for concurrent use. Callers that persist timestamps must
// Observe the largest one they persisted when they restart, so that a new
// local timestamp never repeats or precedes an old one.
package hlc

import (
	"fmt"
	"sync"
	"time"
)

// Timestamp is a hybrid logical time: wall milliseconds << 16 | logical.
type Timestamp uint64

const logicalBits = 16

// FromTime returns the smallest timestamp at wall time t.
func FromTime(t time.Time) Timestamp {
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	return Timestamp(uint64(ms) << logicalBits)
}

// Wall returns the wall-clock part of t.
func (t Timestamp) Wall() time.Time { return time.UnixMilli(int64(t >> logicalBits)) }

// WallMillis returns the wall-clock part of t in milliseconds since the epoch.
func (t Timestamp) WallMillis() int64 { return int64(t >> logicalBits) }

// Logical returns the logical counter of t.
func (t Timestamp) Logical() uint16 { return uint16(t) }

// String formats t as millis.logical.
func (t Timestamp) String() string { return fmt.Sprintf("%d.%d", t.WallMillis(), t.Logical()) }

// Clock issues timestamps. The zero value is not usable; call New.
type Clock struct {
	now func() time.Time

	mu   sync.Mutex
	last Timestamp
}

// New returns a clock reading wall time from now; nil means time.Now.
func New(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// WallNow returns the wall clock as a timestamp, without ticking the clock.
func (c *Clock) WallNow() Timestamp { return FromTime(c.now()) }

// Now returns a timestamp greater than every timestamp the clock has issued
// or observed.
func (c *Clock) Now() Timestamp {
	wall := c.WallNow()
	c.mu.Lock()
	defer c.mu.Unlock()
	if wall > c.last {
		c.last = wall
	} else {
		c.last++
	}
	return c.last
}

// Observe makes every later Now greater than t.
func (c *Clock) Observe(t Timestamp) {
	c.mu.Lock()
	if t > c.last {
		c.last = t
	}
	c.mu.Unlock()
}

// Last returns the largest timestamp issued or observed.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
