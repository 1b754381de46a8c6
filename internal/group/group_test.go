package group

import (
	"context"
	"sync/atomic"
	"testing"
)

func TestStopWaitsForAll(t *testing.T) {
	g := New(context.Background())
	var done atomic.Int32
	for range 10 {
		g.Go(func(ctx context.Context) {
			<-ctx.Done()
			done.Add(1)
		})
	}
	g.Stop()
	if n := done.Load(); n != 10 {
		t.Fatalf("%d goroutines returned before Stop returned, want 10", n)
	}
	if g.Go(func(context.Context) { t.Error("ran after Stop") }) {
		t.Fatal("Go after Stop reported true")
	}
	g.Stop()
}
