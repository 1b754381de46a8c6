// Package causal holds the rules by which a replica delivers remote deltas
// in causal order, apart from the database they end up in.
//
// A delta names its parents. It is applied only once every parent is
// applied (or refused, which also settles it); until then it is parked,
// and it is released when its missing parent is delivered. A delta
// stamped beyond the replica's clock bound is held until its time comes,
// so that a peer's fast clock cannot pull every replica's clocks forward.
// A delta seen before, applied, refused, parked or held, is a duplicate.
// Parking is bounded: a flood of orphans is dropped, and the replica's
// catch-up fetches those deltas again, in order, later.
//
// The rules are one function, Queue.Admit, of the delta, of what the
// replica holds (Held, read only) and of what the Queue parks and holds;
// they change nothing but the Queue, so they are tested as tables of
// inputs and decisions, without a database. The store's applier asks
// Admit what to do with each delta, writes the ones to apply, and calls
// Delivered for each, which releases the deltas waiting for it.
package causal

import (
	"bytes"
	"slices"
	"strconv"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ipfs/go-cid"
)

// Delta is what the rules read of a delta.
type Delta struct {
	ID      cid.Cid
	Author  common.Address
	Seq     uint64 // the author's sequence number
	HLC     uint64 // its hybrid logical clock stamp
	Parents []cid.Cid
}

// Held is what the replica holds, as the rules ask it. It is read only.
type Held interface {
	// Version is the highest sequence number of author's deltas the
	// replica has applied or refused: every one at or below it is
	// settled, so a delta above it is new without a lookup.
	Version(author common.Address) uint64
	// Head reports whether id is one of the replica's heads (applied,
	// with no applied child): the usual parent of a pushed delta, known
	// without a lookup.
	Head(id cid.Cid) bool
	// Known reports whether the delta id was applied or refused: a
	// lookup in the database.
	Known(id cid.Cid) (bool, error)
}

// Verdict is what to do with a delta.
type Verdict uint8

const (
	// Apply: every parent is settled; apply (or refuse) the delta now,
	// then call Delivered.
	Apply Verdict = iota + 1
	// Duplicate: the delta was settled before, in this batch or an
	// earlier one, or another copy of it is parked or held.
	Duplicate
	// Hold: stamped beyond now; held until Due returns it.
	Hold
	// Park: a parent (Decision.Missing) is not settled; parked until it
	// is delivered.
	Park
	// Drop: a parent is not settled and the park is full; catch-up
	// brings the delta again.
	Drop
)

func (v Verdict) String() string {
	switch v {
	case Apply:
		return "apply"
	case Duplicate:
		return "duplicate"
	case Hold:
		return "hold"
	case Park:
		return "park"
	case Drop:
		return "drop"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Decision is Admit's answer.
type Decision struct {
	Verdict Verdict
	// Missing is the parent a parked delta waits for.
	Missing cid.Cid
	// Again is set when a Hold or Park is of a delta already held or
	// parked (released by one parent and waiting for another, or still
	// ahead of the clock).
	Again bool
}

// Queue is the replica's state of causal delivery: the deltas parked for
// a parent, those held for their time, and those settled in the current
// batch (applied or refused, but not yet readable through Held.Known). T
// is the caller's handle of a delta; the Queue compares handles to tell a
// delta it released from another copy of it. A Queue is not safe for
// concurrent use; the store's applier owns it.
type Queue[T comparable] struct {
	max     int
	parked  map[cid.Cid]T
	waiters map[cid.Cid][]cid.Cid // missing parent → deltas parked for it
	held    map[cid.Cid]entry[T]
	settled map[cid.Cid]bool
}

type entry[T comparable] struct {
	x   T
	hlc uint64
}

// New returns an empty Queue that parks at most maxParked deltas.
func New[T comparable](maxParked int) *Queue[T] {
	return &Queue[T]{
		max:     maxParked,
		parked:  make(map[cid.Cid]T),
		waiters: make(map[cid.Cid][]cid.Cid),
		held:    make(map[cid.Cid]entry[T]),
		settled: make(map[cid.Cid]bool),
	}
}

// Admit decides what to do with delta d, whose handle is x, given the
// clock bound now (the replica's clock plus the skew it tolerates) and
// what the replica holds. It parks or holds the delta as it decides, and
// stops holding or parking it when it decides to apply it. An error is
// Held.Known's; the Queue is then unchanged.
func (q *Queue[T]) Admit(d Delta, x T, now uint64, held Held) (Decision, error) {
	if q.settled[d.ID] {
		return Decision{Verdict: Duplicate}, nil
	}
	if p, ok := q.parked[d.ID]; ok && p != x {
		return Decision{Verdict: Duplicate}, nil
	}
	if h, ok := q.held[d.ID]; ok && h.x != x {
		return Decision{Verdict: Duplicate}, nil
	}
	// At or below the author's version, a delta is new only if its author
	// reused a sequence number: ask.
	if d.Seq <= held.Version(d.Author) {
		known, err := held.Known(d.ID)
		if err != nil {
			return Decision{}, err
		}
		if known {
			return Decision{Verdict: Duplicate}, nil
		}
	}
	if d.HLC > now {
		_, again := q.held[d.ID]
		q.held[d.ID] = entry[T]{x: x, hlc: d.HLC}
		return Decision{Verdict: Hold, Again: again}, nil
	}
	missing, err := q.missingParent(d, held)
	if err != nil {
		return Decision{}, err
	}
	delete(q.held, d.ID)
	if missing.Defined() {
		_, again := q.parked[d.ID]
		if !again && len(q.parked) >= q.max {
			return Decision{Verdict: Drop, Missing: missing}, nil
		}
		q.parked[d.ID] = x
		q.waiters[missing] = append(q.waiters[missing], d.ID)
		return Decision{Verdict: Park, Missing: missing, Again: again}, nil
	}
	delete(q.parked, d.ID) // x itself, released: another copy was a Duplicate
	return Decision{Verdict: Apply}, nil
}

// missingParent is the first parent of d neither settled in this batch,
// nor a head, nor known to the replica; cid.Undef if there is none.
func (q *Queue[T]) missingParent(d Delta, held Held) (cid.Cid, error) {
	for _, p := range d.Parents {
		if q.settled[p] || held.Head(p) {
			continue
		}
		known, err := held.Known(p)
		if err != nil {
			return cid.Undef, err
		}
		if !known {
			return p, nil
		}
	}
	return cid.Undef, nil
}

// Delivered records that the delta id was applied or refused in the
// current batch, and returns the parked deltas that waited for it, in the
// order they were parked; each is to be admitted again (another parent
// may still be missing).
func (q *Queue[T]) Delivered(id cid.Cid) []T {
	q.settled[id] = true
	var out []T
	for _, child := range q.waiters[id] {
		if x, ok := q.parked[child]; ok {
			out = append(out, x)
		}
	}
	delete(q.waiters, id)
	return out
}

// EndBatch forgets what was settled in the current batch: the caller has
// written it where Held.Known reads, or dropped the batch (then catch-up
// brings those deltas again).
func (q *Queue[T]) EndBatch() { clear(q.settled) }

// Due returns the held deltas stamped at or before now, ordered by CID,
// still held: admit them again.
func (q *Queue[T]) Due(now uint64) []T {
	var ids []cid.Cid
	for id, h := range q.held {
		if h.hlc <= now {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	out := make([]T, len(ids))
	for i, id := range ids {
		out[i] = q.held[id].x
	}
	return out
}

// Parks reports whether x is the delta parked under id.
func (q *Queue[T]) Parks(id cid.Cid, x T) bool {
	p, ok := q.parked[id]
	return ok && p == x
}

// Parked is how many deltas wait for a parent.
func (q *Queue[T]) Parked() int { return len(q.parked) }

// Held is how many deltas wait for their time.
func (q *Queue[T]) Held() int { return len(q.held) }
