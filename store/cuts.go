package store

import (
	"github.com/dpaas/dpaas/internal/crdt"
	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/hlc"
)

// cutter decides where the operations of one commit of local writes split
// into deltas, and hands out each operation's stamp: a delta holds at most
// maxOps operations and deltaBudget bytes of them as callers gave them,
// and a new delta starts between writes where it can, so that a write's
// operations travel together. It sees every operation in commit order, so
// the parallel and the sequential paths cut at the same places.
type cutter struct {
	s      *Store
	maxOps int
	starts []int           // position of each delta's first operation
	hlcs   []hlc.Timestamp // each delta's timestamp, taken as it starts
	bytes  int             // operation bytes in the last delta
	sizes  []int           // each operation's size as placed
}

type cutMark struct{ deltas, bytes, ops int }

func (c *cutter) mark() cutMark { return cutMark{len(c.starts), c.bytes, len(c.sizes)} }

// rollback forgets what was placed since m, for a write a validator
// refused. A delta started again reuses the timestamp taken for it.
func (c *cutter) rollback(m cutMark) {
	c.starts, c.bytes, c.sizes = c.starts[:m.deltas], m.bytes, c.sizes[:m.ops]
}

// write is called before the first operation of r, at position pos: r
// starts a new delta if it would not fit in the current one whole.
func (c *cutter) write(pos int, r *writeReq) {
	k := len(c.starts) - 1
	if k >= 0 && pos > c.starts[k] && (pos-c.starts[k]+len(r.ops) > c.maxOps || c.bytes+r.size > deltaBudget) {
		c.open(pos)
	}
}

func (c *cutter) open(pos int) {
	c.starts = append(c.starts, pos)
	c.bytes = 0
	if len(c.hlcs) < len(c.starts) {
		c.hlcs = append(c.hlcs, c.s.clock.Now())
	}
}

// place puts the operation at position pos, of n bytes, in a delta and
// returns its stamp: the delta's timestamp, the author, its index there.
func (c *cutter) place(pos, n int) crdt.Stamp {
	k := len(c.starts) - 1
	if k < 0 || pos-c.starts[k] >= c.maxOps || (pos > c.starts[k] && c.bytes+n > deltaBudget) {
		c.open(pos)
		k++
	}
	c.bytes += n
	c.sizes = append(c.sizes, n)
	return crdt.MakeStamp(uint64(c.hlcs[k]), c.s.author, uint32(pos-c.starts[k]))
}

// plan places every operation of reqs, which nobody can refuse, and
// returns their stamps by position.
func (c *cutter) plan(reqs []*writeReq, total int) []crdt.Stamp {
	stamps := make([]crdt.Stamp, 0, total)
	for _, r := range reqs {
		c.write(len(stamps), r)
		for i := range r.ops {
			stamps = append(stamps, c.place(len(stamps), r.opSize(i)))
		}
	}
	return stamps
}

// overfull returns the first delta whose operations, as the applier built
// them, take more than delta.MaxOpsSize bytes, or -1.
func (c *cutter) overfull(ops []delta.Op) int {
	for k, start := range c.starts {
		end := len(ops)
		if k+1 < len(c.starts) {
			end = c.starts[k+1]
		}
		n := 0
		for i := start; i < end; i++ {
			op := &ops[i]
			if len(op.Bases) == 0 && len(op.Seen) == 0 && len(op.Tags) == 0 {
				n += c.sizes[i] // nothing added to what the caller gave
			} else {
				n += op.Size()
			}
			if n > delta.MaxOpsSize {
				return k
			}
		}
	}
	return -1
}

// opSize is the size of r's operation i as the caller gave it.
func (r *writeReq) opSize(i int) int { return r.ops[i].size }
