package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWriterGoneSyncerAnswers: a lone write whose caller gave up before
// its commit was handed over is waited for and finished by the syncer, and
// the store goes on: the next writes and Close do not hang.
func TestWriterGoneSyncerAnswers(t *testing.T) {
	s := openDisk(t, Config{})
	c := s.Collection("c")
	release := holdApplier(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Put(ctx, "gone", map[string]any{"v": 1}) }()
	eventually(t, 10*time.Second, "write not queued", func() bool { return len(s.writes) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: %v, want context.Canceled", err)
	}
	release()
	for i := range 20 {
		if err := c.Put(context.Background(), "next", map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	// the abandoned write was committed all the same: a write whose
	// caller gave up after the store took it may still be committed
	var got map[string]any
	if err := c.Get(context.Background(), "gone", &got); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
