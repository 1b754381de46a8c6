package causal

import (
	"errors"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func id(name string) cid.Cid {
	h, err := multihash.Sum([]byte(name), multihash.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.DagCBOR, h)
}

var alice, bob = common.Address{1}, common.Address{2}

// replica is a Held kept in maps.
type replica struct {
	versions map[common.Address]uint64
	heads    map[cid.Cid]bool
	known    map[cid.Cid]bool
	failOn   cid.Cid // Known fails for it
	lookups  int
}

func (r *replica) Version(a common.Address) uint64 { return r.versions[a] }
func (r *replica) Head(c cid.Cid) bool             { return r.heads[c] }
func (r *replica) Known(c cid.Cid) (bool, error) {
	r.lookups++
	if c == r.failOn {
		return false, errBoom
	}
	return r.known[c], nil
}

var errBoom = errors.New("boom")

func delta(name string, author common.Address, seq, hlc uint64, parents ...string) Delta {
	d := Delta{ID: id(name), Author: author, Seq: seq, HLC: hlc}
	for _, p := range parents {
		d.Parents = append(d.Parents, id(p))
	}
	return d
}

// step admits a delta (handle x) or, with deliver set, delivers one.
type step struct {
	d       Delta
	x       int
	now     uint64
	want    Verdict
	missing string
	again   bool
	deliver string // Delivered(deliver); wantOut is what it releases
	wantOut []int
	endOf   bool // EndBatch
	err     bool
}

func TestAdmit(t *testing.T) {
	const now = 1000
	base := func() *replica {
		return &replica{
			versions: map[common.Address]uint64{alice: 2},
			heads:    map[cid.Cid]bool{id("a2"): true},
			known:    map[cid.Cid]bool{id("a1"): true, id("a2"): true, id("old"): true},
		}
	}
	cases := []struct {
		name        string
		held        *replica
		max         int
		steps       []step
		wantParked  int
		wantHeld    int
		wantLookups int
	}{
		{
			name:  "child of a head applies without a lookup",
			steps: []step{{d: delta("a3", alice, 3, 10, "a2"), x: 1, now: now, want: Apply}},
		},
		{
			name:        "child of an older delta looks it up",
			steps:       []step{{d: delta("a3", alice, 3, 10, "a1"), x: 1, now: now, want: Apply}},
			wantLookups: 1,
		},
		{
			name:        "at or below the author's version: known is a duplicate",
			steps:       []step{{d: delta("a2", alice, 2, 10, "a1"), x: 1, now: now, want: Duplicate}},
			wantLookups: 1,
		},
		{
			name:  "at or below the author's version: a reused sequence number is new",
			steps: []step{{d: delta("a2bis", alice, 2, 10, "a1"), x: 1, now: now, want: Apply}},
			// itself, then its parent
			wantLookups: 2,
		},
		{
			name:        "a missing parent parks",
			steps:       []step{{d: delta("b2", bob, 2, 10, "b1"), x: 1, now: now, want: Park, missing: "b1"}},
			wantParked:  1,
			wantLookups: 1,
		},
		{
			name: "the parent's delivery releases the child, which then applies",
			steps: []step{
				{d: delta("b2", bob, 2, 10, "b1"), x: 2, now: now, want: Park, missing: "b1"},
				{d: delta("b1", bob, 1, 10), x: 1, now: now, want: Apply},
				{deliver: "b1", wantOut: []int{2}},
				{d: delta("b2", bob, 2, 10, "b1"), x: 2, now: now, want: Apply},
				{deliver: "b2"},
			},
			wantLookups: 1,
		},
		{
			name: "released by one parent, it parks again for the other",
			steps: []step{
				{d: delta("m", bob, 3, 10, "p", "q"), x: 3, now: now, want: Park, missing: "p"},
				{d: delta("p", alice, 3, 10, "a2"), x: 1, now: now, want: Apply},
				{deliver: "p", wantOut: []int{3}},
				{d: delta("m", bob, 3, 10, "p", "q"), x: 3, now: now, want: Park, missing: "q", again: true},
				{d: delta("q", bob, 1, 10), x: 2, now: now, want: Apply},
				{deliver: "q", wantOut: []int{3}},
				{d: delta("m", bob, 3, 10, "p", "q"), x: 3, now: now, want: Apply},
			},
			wantLookups: 2, // p; then q (p settled); then none (both settled)
		},
		{
			name: "another copy of a parked delta is a duplicate",
			steps: []step{
				{d: delta("b2", bob, 2, 10, "b1"), x: 1, now: now, want: Park, missing: "b1"},
				{d: delta("b2", bob, 2, 10, "b1"), x: 9, now: now, want: Duplicate},
			},
			wantParked:  1,
			wantLookups: 1,
		},
		{
			name: "a delta settled in this batch is a duplicate, and a settled parent needs no lookup",
			steps: []step{
				{d: delta("b1", bob, 1, 10), x: 1, now: now, want: Apply},
				{deliver: "b1"},
				{d: delta("b1", bob, 1, 10), x: 5, now: now, want: Duplicate},
				{d: delta("b2", bob, 2, 10, "b1"), x: 2, now: now, want: Apply},
			},
		},
		{
			name: "after the batch, the settled set is forgotten (the database answers)",
			steps: []step{
				{d: delta("b1", bob, 1, 10), x: 1, now: now, want: Apply},
				{deliver: "b1"},
				{endOf: true},
				{d: delta("b2", bob, 2, 10, "b1"), x: 2, now: now, want: Park, missing: "b1"},
			},
			wantParked:  1,
			wantLookups: 1,
		},
		{
			name: "stamped in the future: held, then a duplicate copy, then held again",
			steps: []step{
				{d: delta("f", bob, 1, now+1), x: 1, now: now, want: Hold},
				{d: delta("f", bob, 1, now+1), x: 2, now: now, want: Duplicate},
				{d: delta("f", bob, 1, now+1), x: 1, now: now, want: Hold, again: true},
			},
			wantHeld: 1,
		},
		{
			name: "a held delta whose time came applies and is no longer held",
			steps: []step{
				{d: delta("f", bob, 1, now+1), x: 1, now: now, want: Hold},
				{d: delta("f", bob, 1, now+1), x: 1, now: now + 1, want: Apply},
			},
		},
		{
			name: "a held delta whose time came but whose parent is missing parks",
			steps: []step{
				{d: delta("f", bob, 2, now+1, "b1"), x: 1, now: now, want: Hold},
				{d: delta("f", bob, 2, now+1, "b1"), x: 1, now: now + 5, want: Park, missing: "b1"},
			},
			wantParked:  1,
			wantLookups: 1,
		},
		{
			name: "the future is checked before the parents",
			steps: []step{
				{d: delta("f", bob, 2, now+1, "b1"), x: 1, now: now, want: Hold},
			},
			wantHeld: 1,
		},
		{
			name: "a full park drops new orphans but keeps re-parking its own",
			max:  1,
			steps: []step{
				{d: delta("b2", bob, 2, 10, "b1"), x: 1, now: now, want: Park, missing: "b1"},
				{d: delta("c2", bob, 12, 10, "c1"), x: 2, now: now, want: Drop, missing: "c1"},
				{d: delta("b2", bob, 2, 10, "b1"), x: 1, now: now, want: Park, missing: "b1", again: true},
			},
			wantParked:  1,
			wantLookups: 3,
		},
		{
			name: "a lookup error leaves the queue unchanged",
			held: func() *replica { r := base(); r.failOn = id("b1"); return r }(),
			steps: []step{
				{d: delta("b2", bob, 2, 10, "b1"), x: 1, now: now, err: true},
			},
			wantLookups: 1,
		},
		{
			name: "a lookup error of the delta itself",
			held: func() *replica { r := base(); r.failOn = id("a2bis"); return r }(),
			steps: []step{
				{d: delta("a2bis", alice, 2, 10, "a1"), x: 1, now: now, err: true},
			},
			wantLookups: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			held := tc.held
			if held == nil {
				held = base()
			}
			max := tc.max
			if max == 0 {
				max = 16
			}
			q := New[int](max)
			for i, s := range tc.steps {
				switch {
				case s.endOf:
					q.EndBatch()
				case s.deliver != "":
					if got := q.Delivered(id(s.deliver)); !slices.Equal(got, s.wantOut) {
						t.Fatalf("step %d: Delivered(%s) released %v, want %v", i, s.deliver, got, s.wantOut)
					}
				default:
					dec, err := q.Admit(s.d, s.x, s.now, held)
					if (err != nil) != s.err {
						t.Fatalf("step %d: err %v, want error %v", i, err, s.err)
					}
					if s.err {
						continue
					}
					want := Decision{Verdict: s.want, Again: s.again}
					if s.missing != "" {
						want.Missing = id(s.missing)
					}
					if dec != want {
						t.Fatalf("step %d: %+v (%s), want %+v (%s)", i, dec, dec.Verdict, want, want.Verdict)
					}
				}
			}
			if q.Parked() != tc.wantParked || q.Held() != tc.wantHeld {
				t.Fatalf("parked %d, held %d; want %d, %d", q.Parked(), q.Held(), tc.wantParked, tc.wantHeld)
			}
			if held.lookups != tc.wantLookups {
				t.Fatalf("%d lookups, want %d", held.lookups, tc.wantLookups)
			}
		})
	}
}

func TestDueOrderedAndStillHeld(t *testing.T) {
	q := New[string](8)
	held := &replica{versions: map[common.Address]uint64{}, heads: map[cid.Cid]bool{}, known: map[cid.Cid]bool{}}
	names := []string{"x", "y", "z", "w"}
	for i, n := range names {
		if dec, err := q.Admit(delta(n, bob, uint64(i+1), uint64(100+i)), n, 50, held); err != nil || dec.Verdict != Hold {
			t.Fatalf("%s: %+v %v", n, dec, err)
		}
	}
	due := q.Due(101)
	if len(due) != 2 || !slices.Contains(due, "x") || !slices.Contains(due, "y") {
		t.Fatalf("due at 101: %v", due)
	}
	if a, b := id(due[0]).Bytes(), id(due[1]).Bytes(); string(a) > string(b) {
		t.Fatalf("due %v not ordered by CID", due)
	}
	if q.Held() != 4 {
		t.Fatalf("Due took %d deltas out of the queue; they stay held until admitted", 4-q.Held())
	}
	if got := q.Due(99); len(got) != 0 {
		t.Fatalf("due at 99: %v", got)
	}
}

func TestParks(t *testing.T) {
	q := New[int](8)
	held := &replica{versions: map[common.Address]uint64{}, heads: map[cid.Cid]bool{}, known: map[cid.Cid]bool{}}
	d := delta("b2", bob, 2, 1, "b1")
	if _, err := q.Admit(d, 7, 10, held); err != nil {
		t.Fatal(err)
	}
	if !q.Parks(d.ID, 7) || q.Parks(d.ID, 8) || q.Parks(id("b1"), 7) {
		t.Fatal("Parks answers for another handle or delta")
	}
}
