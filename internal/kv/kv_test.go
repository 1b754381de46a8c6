package kv

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestSpacesAreDisjoint(t *testing.T) {
	db, err := Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := db.Space("a")
	if err != nil {
		t.Fatal(err)
	}
	ab, err := db.Space("ab")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Space("a"); !errors.Is(err, ErrSpaceTaken) {
		t.Fatalf("second Space(a): got %v, want ErrSpaceTaken", err)
	}
	if _, err := db.Space("x\x00y"); err == nil {
		t.Fatal("name with zero byte accepted")
	}
	if err := a.Set([]byte("b1"), []byte("in a"), true); err != nil {
		t.Fatal(err)
	}
	if err := ab.Set([]byte("1"), []byte("in ab"), true); err != nil {
		t.Fatal(err)
	}
	it, err := a.Iter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for it.First(); it.Valid(); it.Next() {
		n++
		if k := a.Strip(it.Key()); !bytes.Equal(k, []byte("b1")) {
			t.Fatalf("space a sees key %q", k)
		}
	}
	it.Close()
	if n != 1 {
		t.Fatalf("space a holds %d keys, want 1", n)
	}
	if _, err := ab.Get([]byte("b1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ab.Get(b1): %v, want ErrNotFound", err)
	}
}

func TestBatchAndPersistence(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := db.Space("s")
	b := s.NewBatch()
	for _, k := range []string{"k1", "k2", "k3"} {
		if err := b.Set([]byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete([]byte("k2")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	db, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, _ = db.Space("s")
	for k, want := range map[string]string{"k1": "vk1", "k3": "vk3"} {
		v, err := s.Get([]byte(k))
		if err != nil || string(v) != want {
			t.Fatalf("Get(%s) = %q, %v; want %q", k, v, err, want)
		}
	}
	if ok, _ := s.Has([]byte("k2")); ok {
		t.Fatal("deleted key survived reopen")
	}
	it, _ := s.PrefixIter([]byte("k"))
	var n int
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	it.Close()
	if n != 2 {
		t.Fatalf("prefix iter saw %d keys, want 2", n)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte("a"), []byte("b")},
		{[]byte{'a', 0xff}, []byte("b")},
		{[]byte{0xff, 0xff}, nil},
	} {
		if got := PrefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("PrefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func TestPebbleErrorsReachTheLoggerOncePerMinute(t *testing.T) {
	var buf bytes.Buffer
	l := &quietLogger{log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 3 {
		l.Errorf("background error: %s", "no space left on device")
	}
	l.Errorf("another: %d", 7)
	l.Infof("chatter")
	out := buf.String()
	if n := strings.Count(out, "no space left on device"); n != 1 {
		t.Fatalf("repeated error logged %d times:\n%s", n, out)
	}
	if !strings.Contains(out, "another: 7") || strings.Contains(out, "chatter") {
		t.Fatalf("log:\n%s", out)
	}
	(&quietLogger{}).Errorf("dropped without a logger")
}

func TestWriteTurnsPebbleFatalIntoStickyError(t *testing.T) {
	db, err := Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cause := errors.New("no space left on device")
	err = db.Write(func() error {
		(&quietLogger{}).Fatalf("pebble: fatal commit error: %v", cause)
		return nil
	})
	if !errors.Is(err, ErrFailed) || !errors.Is(err, cause) || !errors.Is(err, errTestStopped) {
		t.Fatalf("Write after a fatal commit = %v", err)
	}
	called := false
	if err := db.Write(func() error { called = true; return nil }); !errors.Is(err, cause) || called {
		t.Fatalf("later Write = %v (ran: %v), want the first failure without running", err, called)
	}
	sp, err := db.Space("s")
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Set([]byte("k"), []byte("v"), true); !errors.Is(err, ErrFailed) {
		t.Fatalf("Set after failure = %v", err)
	}
	if _, err := sp.Get([]byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after failure = %v, want reads to work", err)
	}
	defer func() {
		if r := recover(); r != "other" {
			t.Fatalf("a panic that is not Pebble's came out as %v", r)
		}
	}()
	db2, err := Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	_ = db2.Write(func() error { panic("other") })
}

// errTestStopped stands for a public package's sentinel for ErrFailed.
var errTestStopped = errors.New("test: writes stopped")

func init() { MatchFailed(errTestStopped) }
