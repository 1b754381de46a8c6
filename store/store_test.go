package store

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	code := m.Run()
	closeMillion()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func openLocal(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openDir opens a store, with key, on a Pebble database in dir opened
// with o; the caller closes both (the store first).
func openDir(t testing.TB, dir string, o *kv.Options, key *ecdsa.PrivateKey) (*kv.DB, *Store) {
	t.Helper()
	db, err := kv.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := db.Space("store")
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{Space: sp, Key: key})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db, s
}

type ride struct {
	From  string   `json:"from"`
	To    string   `json:"to"`
	Fare  int      `json:"fare"`
	Tags  []string `json:"tags,omitempty"`
	Views int      `json:"views,omitempty"`
}

func TestPutGetUpdateDelete(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{})
	rides := s.Collection("rides")
	if err := rides.Put(ctx, "r1", ride{From: "A", To: "B", Fare: 12}); err != nil {
		t.Fatal(err)
	}
	var got ride
	if err := rides.Get(ctx, "r1", &got); err != nil || got.From != "A" || got.Fare != 12 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	err := rides.Update(ctx, "r1", Set("to", "C"), Inc("views", 2), Inc("views", 1), Add("tags", "night"), Add("tags", "card"), Remove("tags", "card"), Append("log", "booked"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rides.GetRaw(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"fare":12,"from":"A","log":["booked"],"tags":["night"],"to":"C","views":3}`
	if string(raw) != want {
		t.Fatalf("document %s, want %s", raw, want)
	}
	if err := rides.Delete(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := rides.Get(ctx, "r1", &got); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := rides.Update(ctx, "r1", Set("to", "D")); err != nil {
		t.Fatal(err)
	}
	if raw, _ := rides.GetRaw(ctx, "r1"); string(raw) != `{"to":"D"}` {
		t.Fatalf("revived document %s, want only the later write", raw)
	}
}

func TestBadArguments(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{})
	c := s.Collection("c")
	cases := []struct {
		name string
		err  error
	}{
		{"empty id", c.Put(ctx, "", map[string]any{})},
		{"not an object", c.Put(ctx, "x", []int{1})},
		{"unencodable", c.Put(ctx, "x", map[string]any{"f": make(chan int)})},
		{"bad collection", s.Collection("a\x00b").Put(ctx, "x", map[string]any{})},
		{"empty field", c.Update(ctx, "x", Set("", 1))},
		{"zero op", c.Update(ctx, "x", Op{})},
	}
	for _, tc := range cases {
		if !errors.Is(tc.err, ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", tc.name, tc.err)
		}
	}
	for _, err := range c.Find(ctx, Where("f", "~", 1)) {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("unknown operator: %v", err)
		}
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if err := s.Collection("c").Put(context.Background(), "x", map[string]any{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := s.Collection("c").GetRaw(context.Background(), "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestBatchAcrossDocumentsIsSplitIntoDeltas(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{MaxDeltaOps: 10})
	c := s.Collection("c")
	b := s.Batch()
	for i := range 95 {
		b.Put(c, fmt.Sprintf("d%03d", i), map[string]any{"i": i})
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().DeltasCreated; got != 10 {
		t.Fatalf("%d deltas, want 10", got)
	}
	if n, err := c.Count(ctx); err != nil || n != 95 {
		t.Fatalf("Count = %d, %v", n, err)
	}
	if len(s.Heads()) != 1 {
		t.Fatalf("heads %v, want one chain", s.Heads())
	}
}

func TestValidatorRejectsLocalWrite(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{})
	c := s.Collection("c")
	remove := c.SetValidator(func(w Write) error {
		if w.Kind == "set" && w.Field == "owner" {
			return errors.New("owner is write-once")
		}
		return nil
	})
	if err := c.Put(ctx, "x", map[string]any{"owner": "alice"}); err != nil {
		t.Fatal(err)
	}
	err := c.Update(ctx, "x", Set("note", "ok"), Set("owner", "mallory"))
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("Update: %v, want ErrRejected", err)
	}
	if raw, _ := c.GetRaw(ctx, "x"); string(raw) != `{"owner":"alice"}` {
		t.Fatalf("a rejected update left %s", raw)
	}
	remove()
	if err := c.Update(ctx, "x", Set("owner", "bob")); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentWritersShareDeltas checks that writers waiting at the same
// time are acknowledged correctly and that every write lands.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{})
	c := s.Collection("c")
	const writers, each = 16, 50
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				if err := c.Put(ctx, fmt.Sprintf("w%02d-%03d", w, i), map[string]any{"w": w}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n, err := c.Count(ctx); err != nil || n != writers*each {
		t.Fatalf("Count = %d, %v", n, err)
	}
	t.Logf("%d writes in %d deltas", writers*each, s.Stats().DeltasCreated)
}

func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := openLocal(t, Config{})
	c := s.Collection("c")
	ch := c.Watch(ctx, Where("kind", "==", "a"))
	if err := c.Put(ctx, "1", map[string]any{"kind": "b"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "2", map[string]any{"kind": "a"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	got := []Change{<-ch, <-ch}
	if got[0].ID != "2" || got[0].Deleted || got[1].ID != "2" || !got[1].Deleted {
		t.Fatalf("changes %+v", got)
	}
	cancel()
	for range ch {
	}
}

func TestWatchLagged(t *testing.T) {
	ctx := context.Background()
	s := openLocal(t, Config{WatchBuffer: 4})
	c := s.Collection("c")
	ch := c.Watch(ctx)
	b := s.Batch()
	for i := range 10 {
		b.Put(c, fmt.Sprint(i), map[string]any{"i": i})
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Commit returns once durable; watchers are told right after. Read
	// nothing until the channel is full (4 changes and the marker), so the
	// watcher really lags.
	deadline := time.Now().Add(10 * time.Second)
	for len(ch) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("watch channel holds %d changes, want 5", len(ch))
		}
		time.Sleep(time.Millisecond)
	}
	var got []Change
	for len(got) < 5 {
		got = append(got, <-ch)
	}
	if !got[4].Lagged || slices.ContainsFunc(got[:4], func(c Change) bool { return c.Lagged }) {
		t.Fatalf("want 4 changes then a Lagged marker, got %+v", got)
	}
	if err := c.Put(ctx, "after", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	select {
	case next := <-ch:
		if next.ID != "after" {
			t.Fatalf("after the marker got %+v", next)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change delivered after the lag was consumed")
	}
}

func TestMetricsCollector(t *testing.T) {
	s := openLocal(t, Config{})
	if err := s.Collection("c").Put(context.Background(), "x", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(s); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "dpaas_store_deltas_created_total" {
			found = true
			if v := f.GetMetric()[0].GetCounter().GetValue(); v != 1 {
				t.Fatalf("deltas created %v, want 1", v)
			}
		}
	}
	if !found || len(families) != 12 {
		t.Fatalf("gathered %d families", len(families))
	}
}

// TestConcurrentWritersOnSharedDocuments has sixteen writers put, update
// and delete the same few documents, which makes writes that read a
// document ahead of the applier (prefetchFor) race with commits of the
// same document. The materialized documents must equal a replay of the
// writer's own deltas, and the index must agree with the documents.
func TestConcurrentWritersOnSharedDocuments(t *testing.T) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	s := openLocal(t, Config{})
	c := s.Collection("c")
	if err := c.Index(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	const writers, each, docs = 16, 60, 6
	errs := make(chan error, writers)
	for w := range writers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		go func() {
			for range each {
				id := fmt.Sprintf("d%d", rng.IntN(docs))
				var err error
				switch rng.IntN(5) {
				case 0:
					err = c.Put(ctx, id, map[string]any{"v": rng.IntN(4), "w": w})
				case 1:
					err = c.Delete(ctx, id)
				case 2:
					err = c.Update(ctx, id, Inc("n", 1), Add("s", rng.IntN(3)))
				default:
					err = c.Update(ctx, id, Set("v", rng.IntN(4)), Remove("s", rng.IntN(3)))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	replay := openLocal(t, Config{})
	if res := deliver(t, replay, newBlocks(t, s, s.Author(), 0)); res.applied == 0 || res.rejected+res.waiting > 0 {
		t.Fatalf("replay: %+v", res)
	}
	for i := range docs {
		id := fmt.Sprintf("d%d", i)
		got, err1 := c.GetRaw(ctx, id)
		want, err2 := replay.Collection("c").GetRaw(ctx, id)
		if string(got) != string(want) || (err1 == nil) != (err2 == nil) {
			t.Fatalf("seed %d: %s is %s (%v), a replay of its deltas gives %s (%v)", seed, id, got, err1, want, err2)
		}
	}
	for v := range 4 {
		var byScan []string
		for i := range docs {
			var d struct{ V *int }
			if c.Get(ctx, fmt.Sprintf("d%d", i), &d) == nil && d.V != nil && *d.V == v {
				byScan = append(byScan, fmt.Sprintf("d%d", i))
			}
		}
		if byIndex := collect(t, c, Where("v", "==", v)); !slices.Equal(byIndex, byScan) {
			t.Fatalf("seed %d: v == %d: index gives %v, documents %v", seed, v, byIndex, byScan)
		}
	}
}

// TestDirPersists: a store opened on its own with a Dir keeps its
// documents across Close and Open; a Space that no dapp Node made is
// refused.
func TestDirPersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Collection("c").Put(ctx, "a", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(ctx, Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if raw, err := s.Collection("c").GetRaw(ctx, "a"); err != nil || string(raw) != `{"n":1}` {
		t.Fatalf("after reopening: %s, %v", raw, err)
	}
	if _, err := Open(ctx, Config{Space: foreignSpace{}}); !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open with a foreign Space: %v, want ErrInvalidConfig", err)
	}
	reg := prometheus.NewPedanticRegistry()
	m, err := Open(ctx, Config{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) == 0 {
		t.Fatalf("metrics after Open: %d families, %v", len(mfs), err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Fatalf("metrics after Close: %d families, %v", len(mfs), err)
	}
}

type foreignSpace struct{}

func (foreignSpace) Prefix() []byte { return []byte("x\x00") }
