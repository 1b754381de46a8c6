package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/delta"
	"github.com/ethereum/go-ethereum/common"
)

var (
	alice = common.HexToAddress("0xaa")
	bob   = common.HexToAddress("0xbb")
)

func op(k delta.Kind, field string, v string) *delta.Op {
	o := &delta.Op{Kind: k, Collection: "c", ID: "d", Field: field}
	if v != "" {
		o.Value = []byte(v)
	}
	return o
}

func TestMergeRules(t *testing.T) {
	put := func(fields map[string]string) *delta.Op {
		o := &delta.Op{Kind: delta.Put, Collection: "c", ID: "d", Fields: delta.Fields{}}
		for k, v := range fields {
			o.Fields = append(o.Fields, delta.Field{Name: k, Value: []byte(v)})
		}
		o.Fields = delta.SortFields(o.Fields)
		return o
	}
	inc := func(n int64) *delta.Op { o := op(delta.Inc, "n", ""); o.Amount = n; return o }
	type step struct {
		s  Stamp
		op *delta.Op
		// build derives an operation from the state so far (observed tags, bases)
		build func(d *Doc) *delta.Op
	}
	at := func(h uint64, a common.Address) Stamp { return MakeStamp(h, a, 0) }
	cases := []struct {
		name  string
		steps []step
		want  string // JSON, "" = absent
	}{
		{"later set wins", []step{{s: at(2, alice), op: op(delta.Set, "x", `1`)}, {s: at(1, bob), op: op(delta.Set, "x", `2`)}}, `{"x":1}`},
		{"equal HLC breaks tie by author", []step{{s: at(1, bob), op: op(delta.Set, "x", `"b"`)}, {s: at(1, alice), op: op(delta.Set, "x", `"a"`)}}, `{"x":"b"}`},
		{"put replaces older fields", []step{{s: at(1, alice), op: op(delta.Set, "old", `1`)}, {s: at(2, alice), op: put(map[string]string{"new": `2`})}}, `{"new":2}`},
		{"set after put survives", []step{{s: at(3, bob), op: op(delta.Set, "late", `1`)}, {s: at(2, alice), op: put(map[string]string{"a": `2`})}}, `{"a":2,"late":1}`},
		{"delete hides", []step{{s: at(1, alice), op: put(map[string]string{"a": `1`})}, {s: at(2, bob), op: &delta.Op{Kind: delta.Delete, Collection: "c", ID: "d"}}}, ``},
		{"later write revives only itself", []step{{s: at(1, alice), op: put(map[string]string{"a": `1`})}, {s: at(2, bob), op: &delta.Op{Kind: delta.Delete, Collection: "c", ID: "d"}}, {s: at(3, alice), op: op(delta.Set, "b", `2`)}}, `{"b":2}`},
		{"earlier write does not revive", []step{{s: at(5, bob), op: &delta.Op{Kind: delta.Delete, Collection: "c", ID: "d"}}, {s: at(3, alice), op: op(delta.Set, "b", `2`)}}, ``},
		{"unset removes a field", []step{{s: at(1, alice), op: put(map[string]string{"a": `1`, "b": `2`})}, {s: at(2, alice), op: &delta.Op{Kind: delta.Unset, Collection: "c", ID: "d", Field: "a"}}}, `{"b":2}`},
		{"counters add up", []step{{s: at(1, alice), op: inc(5)}, {s: at(2, bob), op: inc(-2)}, {s: at(3, alice), op: inc(1)}}, `{"n":4}`},
		{"counter adds to a numeric register", []step{{s: at(1, alice), op: put(map[string]string{"n": `10`})}, {s: at(2, bob), op: inc(3)}}, `{"n":13}`},
		{"put resets observed increments only", []step{
			{s: at(1, alice), op: inc(5)},
			{s: at(2, bob), build: func(d *Doc) *delta.Op { o := put(map[string]string{"n": `0`}); o.Bases = d.Bases(""); return o }},
			{s: at(3, alice), op: inc(2)},
		}, `{"n":2}`},
		{"set add and remove", []step{{s: at(1, alice), op: op(delta.Add, "tags", `"x"`)}, {s: at(2, alice), op: op(delta.Add, "tags", `"y"`)},
			{s: at(3, bob), build: func(d *Doc) *delta.Op {
				o := op(delta.Remove, "tags", `"x"`)
				o.Tags = d.Tags("tags", []byte(`"x"`))
				return o
			}}}, `{"tags":["y"]}`},
		{"concurrent add wins over remove", []step{
			{s: at(1, alice), op: op(delta.Add, "tags", `"x"`)},
			{s: at(3, bob), op: &delta.Op{Kind: delta.Remove, Collection: "c", ID: "d", Field: "tags", Value: []byte(`"x"`), Tags: []delta.Tag{at(1, alice).Tag()}}},
			{s: at(2, alice), op: op(delta.Add, "tags", `"x"`)},
		}, `{"tags":["x"]}`},
		{"log ordered by stamp", []step{{s: at(3, alice), op: op(delta.Append, "log", `"c"`)}, {s: at(1, bob), op: op(delta.Append, "log", `"a"`)}, {s: at(2, alice), op: op(delta.Append, "log", `"b"`)}}, `{"log":["a","b","c"]}`},
		{"delete clears the log", []step{{s: at(1, alice), op: op(delta.Append, "log", `"a"`)}, {s: at(2, bob), op: &delta.Op{Kind: delta.Delete, Collection: "c", ID: "d"}}, {s: at(3, alice), op: op(delta.Append, "log", `"b"`)}}, `{"log":["b"]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d Doc
			for _, st := range c.steps {
				o := st.op
				if st.build != nil {
					o = st.build(&d)
				}
				d.Apply(st.s, o)
			}
			if got := string(d.View()); got != c.want {
				t.Fatalf("view %s, want %s", got, c.want)
			}
			enc, err := d.Encode()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(back.View()); got != c.want {
				t.Fatalf("after encode/decode view %s, want %s", got, c.want)
			}
		})
	}
}

var seedFlag = flag.Uint64("seed", 0, "seed for the convergence property test (0 = time)")

// simDelta is a delta in the simulation: its operations and the deltas its
// author had applied when making it (its causal past).
type simDelta struct {
	author common.Address
	hlc    uint64
	ops    []*delta.Op
	past   map[int]bool
}

type replica struct {
	author  common.Address
	clock   uint64
	applied map[int]bool
	docs    map[string]*Doc
	inbox   []int
}

func (r *replica) doc(id string) *Doc {
	d := r.docs[id]
	if d == nil {
		d = new(Doc)
		r.docs[id] = d
	}
	return d
}

func (r *replica) apply(i int, sd *simDelta) {
	r.applied[i] = true
	r.clock = max(r.clock, sd.hlc)
	for j, o := range sd.ops {
		r.doc(o.ID).Apply(MakeStamp(sd.hlc, sd.author, uint32(j)), o)
	}
}

func (r *replica) digest() string {
	ids := make([]string, 0, len(r.docs))
	for id := range r.docs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	h := sha256.New()
	for _, id := range ids {
		enc, err := r.docs[id].Encode()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(h, "%s=%x;", id, enc)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func randomOp(rng *rand.Rand, r *replica) *delta.Op {
	id := fmt.Sprintf("doc%d", rng.IntN(4))
	d := r.doc(id)
	field := fmt.Sprintf("f%d", rng.IntN(3))
	val := []byte(fmt.Sprintf("%d", rng.IntN(5)))
	o := &delta.Op{Collection: "c", ID: id}
	switch rng.IntN(9) {
	case 0:
		o.Kind = delta.Put
		o.Fields = delta.Fields{{Name: field, Value: val}}
		o.Bases, o.Seen = d.Bases(""), d.Seen()
	case 1:
		o.Kind = delta.Delete
		o.Bases, o.Seen = d.Bases(""), d.Seen()
	case 2, 3:
		o.Kind, o.Field, o.Value = delta.Set, field, val
		o.Bases = d.Bases(field)
	case 4:
		o.Kind, o.Field = delta.Unset, field
	case 5:
		o.Kind, o.Field, o.Amount = delta.Inc, "n", int64(rng.IntN(7)-3)
	case 6:
		o.Kind, o.Field, o.Value = delta.Add, "set", val
	case 7:
		o.Kind, o.Field, o.Value = delta.Remove, "set", val
		o.Tags = d.Tags("set", val)
	case 8:
		o.Kind, o.Field, o.Value = delta.Append, "log", val
	}
	return o
}

// TestConvergence runs replicas that make random operations of every kind
// on shared documents and exchange them in random orders, with duplicates
// and delays; once every delta reached every replica, all states must be
// byte-identical.
func TestConvergence(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	for round := range 300 {
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		runConvergence(t, rng, seed, round)
	}
}

func runConvergence(t *testing.T, rng *rand.Rand, seed uint64, round int) {
	n := 2 + rng.IntN(3)
	reps := make([]*replica, n)
	for i := range reps {
		reps[i] = &replica{author: common.BytesToAddress([]byte{byte(i + 1)}), clock: 1000, applied: map[int]bool{}, docs: map[string]*Doc{}}
	}
	var all []*simDelta
	deliverReady := func(r *replica) {
		for progress := true; progress; {
			progress = false
			rest := r.inbox[:0]
			for _, i := range r.inbox {
				sd := all[i]
				if r.applied[i] {
					continue // duplicate
				}
				ready := true
				for p := range sd.past {
					if !r.applied[p] {
						ready = false
						break
					}
				}
				if ready {
					r.apply(i, sd)
					progress = true
				} else {
					rest = append(rest, i)
				}
			}
			r.inbox = rest
		}
	}
	for range 60 + rng.IntN(120) {
		r := reps[rng.IntN(n)]
		switch rng.IntN(3) {
		case 0: // make a delta
			r.clock += 1 + uint64(rng.IntN(2)) // strictly increasing per author, sometimes equal across authors
			sd := &simDelta{author: r.author, hlc: r.clock, past: map[int]bool{}}
			for p := range r.applied {
				sd.past[p] = true
			}
			for range 1 + rng.IntN(3) {
				o := randomOp(rng, r)
				sd.ops = append(sd.ops, o)
			}
			// apply op by op so later ops in the delta observe earlier ones,
			// exactly as the store's batches do
			all = append(all, sd)
			idx := len(all) - 1
			r.applied[idx] = true
			for j, o := range sd.ops {
				r.doc(o.ID).Apply(MakeStamp(sd.hlc, sd.author, uint32(j)), o)
			}
		default: // deliver something, maybe a duplicate, maybe early
			if len(all) == 0 {
				continue
			}
			r.inbox = append(r.inbox, rng.IntN(len(all)))
			deliverReady(r)
		}
	}
	for _, r := range reps {
		for _, i := range rng.Perm(len(all)) {
			r.inbox = append(r.inbox, i)
		}
		deliverReady(r)
		if len(r.inbox) != 0 || len(r.applied) != len(all) {
			t.Fatalf("seed %d round %d: replica did not apply everything", seed, round)
		}
	}
	for _, r := range reps {
		for id, d := range r.docs {
			enc, err := d.Encode()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode(enc)
			if err != nil {
				t.Fatalf("seed %d round %d: %s: %v", seed, round, id, err)
			}
			again, _ := back.Encode()
			if !bytes.Equal(enc, again) || !bytes.Equal(d.View(), back.View()) {
				t.Fatalf("seed %d round %d: %s does not survive encode/decode", seed, round, id)
			}
		}
	}
	want := reps[0].digest()
	for i, r := range reps[1:] {
		if got := r.digest(); got != want {
			for id, d := range reps[0].docs {
				if !bytes.Equal(d.View(), r.doc(id).View()) {
					t.Logf("%s: replica 0 %s, replica %d %s", id, d.View(), i+1, r.doc(id).View())
				}
			}
			t.Fatalf("seed %d round %d: replica %d digest %s, replica 0 %s", seed, round, i+1, got, want)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	var d Doc
	d.Apply(MakeStamp(5, alice, 0), &delta.Op{Kind: delta.Put, Collection: "c", ID: "d", Fields: delta.Fields{{Name: "a", Value: []byte("1")}}})
	d.Apply(MakeStamp(6, bob, 0), &delta.Op{Kind: delta.Add, Collection: "c", ID: "d", Field: "s", Value: []byte("2")})
	d.Apply(MakeStamp(7, bob, 0), &delta.Op{Kind: delta.Inc, Collection: "c", ID: "d", Field: "n", Amount: 3})
	d.Apply(MakeStamp(8, bob, 0), &delta.Op{Kind: delta.Append, Collection: "c", ID: "d", Field: "l", Value: []byte("4")})
	enc, err := d.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode(b)
		if err != nil {
			return
		}
		_ = d.View()
		if _, err := d.Encode(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, name := range []string{"", "fare", "a b", `q"uote`, `back\\slash`, "<tag>", "a&b", "tab\t", "\x00", "\x7f", "ünï", "\u2028", "bad\xffutf8", "emoji😀"} {
		want, _ := json.Marshal(name)
		if got := appendJSONString([]byte("x"), name); string(got) != "x"+string(want) {
			t.Errorf("%q: got %s, want %s", name, got[1:], want)
		}
	}
}
