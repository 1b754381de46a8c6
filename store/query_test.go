package store

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

var querySeed = flag.Uint64("queryseed", 0, "seed for TestIndexAndScanAgree (0 = time)")

func collect(t *testing.T, c *Collection, opts ...QueryOption) []string {
	t.Helper()
	var ids []string
	for d, err := range c.Find(context.Background(), opts...) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	return ids
}

func TestFindOperators(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{})
	c := s.Collection("people")
	docs := map[string]map[string]any{
		"a": {"name": "ann", "age": 30, "city": map[string]any{"name": "Oslo"}},
		"b": {"name": "bob", "age": 25},
		"c": {"name": "bea", "age": 35.5, "vip": true},
		"d": {"name": "dan", "age": "old"},
	}
	for id, d := range docs {
		if err := c.Put(ctx, id, d); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		opts []QueryOption
		want []string
	}{
		{"all", nil, []string{"a", "b", "c", "d"}},
		{"==", []QueryOption{Where("age", "==", 25)}, []string{"b"}},
		{"!= includes missing", []QueryOption{Where("vip", "!=", true)}, []string{"a", "b", "d"}},
		{"< numbers only", []QueryOption{Where("age", "<", 31)}, []string{"a", "b"}},
		{">=", []QueryOption{Where("age", ">=", 30)}, []string{"a", "c"}},
		{"> string", []QueryOption{Where("name", ">", "b")}, []string{"b", "c", "d"}},
		{"<=", []QueryOption{Where("age", "<=", 35.5)}, []string{"a", "b", "c"}},
		{"in", []QueryOption{Where("name", "in", []string{"dan", "ann", "zed"})}, []string{"a", "d"}},
		{"prefix", []QueryOption{Where("name", "prefix", "b")}, []string{"b", "c"}},
		{"nested", []QueryOption{Where("city.name", "==", "Oslo")}, []string{"a"}},
		{"order desc", []QueryOption{OrderBy("-name")}, []string{"d", "b", "c", "a"}},
		{"order with missing first", []QueryOption{OrderBy("vip")}, []string{"a", "b", "d", "c"}},
		{"limit", []QueryOption{OrderBy("name"), Limit(2)}, []string{"a", "c"}},
		{"two conditions", []QueryOption{Where("age", ">", 20), Where("name", "prefix", "b")}, []string{"b", "c"}},
	}
	check := func(label string) {
		for _, tc := range cases {
			if got := collect(t, c, tc.opts...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s %s: got %v, want %v", label, tc.name, got, tc.want)
			}
		}
	}
	check("scan")
	for _, f := range []string{"age", "name", "vip", "city.name"} {
		if err := c.Index(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	check("index")
	if n, err := c.Count(ctx, Where("age", ">=", 30)); err != nil || n != 2 {
		t.Fatalf("Count = %d, %v", n, err)
	}
}

func TestCursorPaging(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{})
	c := s.Collection("c")
	b := s.Batch()
	for i := range 25 {
		b.Put(c, fmt.Sprintf("%02d", i), map[string]any{"score": i % 7})
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, order := range []string{"", "score", "-score"} {
		var opts []QueryOption
		if order != "" {
			opts = append(opts, OrderBy(order))
		}
		all := collect(t, c, opts...)
		var paged []string
		cursor := ""
		for {
			page := append([]QueryOption{Limit(4)}, opts...)
			if cursor != "" {
				page = append(page, After(cursor))
			}
			n := 0
			for d, err := range c.Find(ctx, page...) {
				if err != nil {
					t.Fatal(err)
				}
				paged = append(paged, d.ID)
				cursor = d.Cursor()
				n++
			}
			if n == 0 {
				break
			}
		}
		if !reflect.DeepEqual(all, paged) {
			t.Fatalf("order %q: pages %v, all %v", order, paged, all)
		}
	}
}

func TestAggregate(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{})
	c := s.Collection("rides")
	b := s.Batch()
	for i := range 30 {
		b.Put(c, fmt.Sprint(i), map[string]any{"city": []string{"oslo", "rome", "lima"}[i%3], "fare": i})
	}
	b.Put(c, "nocity", map[string]any{"fare": 100})
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	g, err := c.Aggregate(ctx, "city", "fare")
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != 3 || g[0].Key != "lima" || g[0].Count != 10 || g[0].Sum != 155 || g[0].Min != 2 || g[0].Max != 29 || g[0].Avg != 15.5 {
		t.Fatalf("groups %+v", g)
	}
	counts := func() []Group {
		g, err := c.Aggregate(ctx, "city", "")
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	scan := counts()
	if err := c.Index(ctx, "city"); err != nil {
		t.Fatal(err)
	}
	if idx := counts(); !reflect.DeepEqual(scan, idx) {
		t.Fatalf("index groups %+v, scan groups %+v", idx, scan)
	}
}

// TestIndexAndScanAgree runs random queries over random documents on two
// collections holding the same data, one indexed and one not.
func TestIndexAndScanAgree(t *testing.T) {
	seed := *querySeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -queryseed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx := context.Background()
	s := openLocal(t, Config{})
	plain, indexed := s.Collection("plain"), s.Collection("indexed")
	for _, f := range []string{"n", "s", "b"} {
		if err := indexed.Index(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	value := func() any {
		switch rng.IntN(6) {
		case 0:
			return nil
		case 1:
			return rng.IntN(2) == 0
		case 2, 3:
			return rng.IntN(10) - 3
		case 4:
			return []string{"", "a", "ab", "b", "a\x00"}[rng.IntN(5)]
		}
		return []int{rng.IntN(2)}
	}
	b := s.Batch()
	for i := range 300 {
		doc := map[string]any{}
		for _, f := range []string{"n", "s", "b"} {
			if rng.IntN(4) > 0 {
				doc[f] = value()
			}
		}
		id := fmt.Sprintf("d%03d", rng.IntN(200))
		b.Put(plain, id, doc)
		b.Put(indexed, id, doc)
		if i%10 == 0 {
			b.Delete(plain, id)
			b.Delete(indexed, id)
		}
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ops := []string{"==", "!=", "<", "<=", ">", ">=", "in", "prefix"}
	for range 400 {
		f := []string{"n", "s", "b"}[rng.IntN(3)]
		op := ops[rng.IntN(len(ops))]
		var v any = value()
		switch op {
		case "in":
			v = []any{value(), value()}
		case "prefix":
			v = []string{"", "a", "b"}[rng.IntN(3)]
		}
		opts := []QueryOption{Where(f, op, v)}
		if rng.IntN(2) == 0 {
			opts = append(opts, OrderBy([]string{"n", "-s", "b"}[rng.IntN(3)]))
		}
		if rng.IntN(2) == 0 {
			opts = append(opts, Limit(1+rng.IntN(5)))
		}
		want, got := collect(t, plain, opts...), collect(t, indexed, opts...)
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("seed %d: where %s %s %v: indexed %v, scan %v", seed, f, op, v, got, want)
		}
		n1, err1 := plain.Count(ctx, Where(f, op, v))
		n2, err2 := indexed.Count(ctx, Where(f, op, v))
		if err1 != nil || err2 != nil || n1 != n2 {
			t.Fatalf("seed %d: count where %s %s %v: indexed %d (%v), scan %d (%v)", seed, f, op, v, n2, err2, n1, err1)
		}
	}
}
