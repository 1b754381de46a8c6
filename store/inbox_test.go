package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/storesync"
	"github.com/dpaas/dpaas/pubsub"
)

// pushed wraps a delta block as the gossip message that carries it.
func pushed(t testing.TB, from *replicaNode, block []byte) *pubsub.Message {
	t.Helper()
	data, err := storesync.Encode(&storesync.Message{Delta: block})
	if err != nil {
		t.Fatal(err)
	}
	return &pubsub.Message{From: from.h.ID(), ReceivedFrom: from.h.ID(), Data: data, Topic: TopicName}
}

// holdApplier blocks the applier of s until the returned function is
// called, so that what arrives meanwhile piles up.
func holdApplier(t testing.TB, s *Store) (release func()) {
	t.Helper()
	held, unblock := make(chan struct{}), make(chan struct{})
	select {
	case s.control <- func() { close(held); <-unblock }:
	case <-time.After(10 * time.Second):
		t.Fatal("applier did not take the hold")
	}
	<-held
	var once sync.Once
	release = func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	return release
}

// TestPushedDeltasAppliedTogether: deltas pushed over gossip while the
// applier is busy are accepted without waiting for it, and then applied
// in one batch and one commit, not one commit each.
func TestPushedDeltasAppliedTogether(t *testing.T) {
	ctx := context.Background()
	src := startReplica(t, Config{})
	const n = 40
	for i := range n {
		if err := src.s.Collection("rides").Put(ctx, fmt.Sprintf("r%02d", i), map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	blocks := newBlocks(t, src.s, src.s.Author(), 0)
	if len(blocks) != n {
		t.Fatalf("%d deltas, want %d", len(blocks), n)
	}
	dst := startReplica(t, Config{})
	nw := dst.s.net.Load()
	release := holdApplier(t, dst.s)
	commits := dst.s.visible.Load()
	var wg sync.WaitGroup
	var mu sync.Mutex
	returned := 0
	errs := make(chan error, n)
	for _, b := range blocks {
		m := pushed(t, src, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := nw.validate(ctx, m)
			mu.Lock()
			returned++
			mu.Unlock()
			errs <- err
		}()
	}
	eventually(t, 10*time.Second, "validation waited for the busy applier", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return returned == n
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("pushed delta refused: %v", err)
		}
	}
	release()
	eventually(t, 10*time.Second, "pushed deltas not applied", func() bool {
		return dst.s.Versions()[src.s.Author()] == n
	})
	if got := dst.s.visible.Load() - commits; got != 1 {
		t.Fatalf("%d deltas applied in %d commits, want 1", n, got)
	}
	if docCount(t, dst.s, "rides") != n || digest(t, dst.s) != digest(t, src.s) {
		t.Fatal("replicas differ")
	}
	if st := dst.s.Stats(); st.DeltasApplied != n || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPushedDeltaRefusedByValidator: a pushed delta that a validator
// refuses still gets the applier's verdict before GossipSub passes it on.
func TestPushedDeltaRefusedByValidator(t *testing.T) {
	ctx := context.Background()
	src := startReplica(t, Config{})
	if err := src.s.Collection("rides").Put(ctx, "r1", map[string]any{"fare": -1}); err != nil {
		t.Fatal(err)
	}
	refuse := func(w Write) error { return fmt.Errorf("no negative fares") }
	dst := startReplica(t, Config{Validators: map[string]Validator{"rides": refuse}})
	blocks := newBlocks(t, src.s, src.s.Author(), 0)
	if err := dst.s.net.Load().validate(ctx, pushed(t, src, blocks[0])); err == nil {
		t.Fatal("a refused delta was accepted for forwarding")
	}
	if st := dst.s.Stats(); st.DeltasRejected != 1 || st.DeltasApplied != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPushedDeltaWithMissingParentFetched: a pushed delta whose parent
// never arrived is parked, and the replica asks the peer that pushed it
// for what it lacks.
func TestPushedDeltaWithMissingParentFetched(t *testing.T) {
	ctx := context.Background()
	gen, err := Open(ctx, Config{}) // an author that is not on the network
	if err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	for i := range 5 {
		if err := gen.Collection("rides").Put(ctx, fmt.Sprintf("r%d", i), map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	blocks := newBlocks(t, gen, gen.Author(), 0)
	src := startReplica(t, Config{AnnounceInterval: time.Hour})
	dst := startReplica(t, Config{AnnounceInterval: time.Hour})
	deliver(t, src.s, blocks[:3])
	deliver(t, dst.s, blocks[:2])
	connect(t, dst, src)
	// the catch-up on connecting brings the third; after it, nothing
	// asks src again but the pushed delta below
	eventually(t, 10*time.Second, "catch-up on connecting", func() bool { return dst.s.Versions()[gen.Author()] == 3 })
	deliver(t, src.s, blocks[3:]) // src does not push deltas it did not write
	if err := dst.s.net.Load().validate(ctx, pushed(t, src, blocks[4])); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "missing parent not fetched", func() bool {
		return dst.s.Versions()[gen.Author()] == 5 && dst.s.Stats().Pending == 0
	})
	if digest(t, dst.s) != digest(t, gen) {
		t.Fatal("replicas differ")
	}
}

// TestLagFetchedByExchange: deltas a peer holds but never pushed (here:
// another author's, which it received while this replica was away) are
// found when this replica compares versions with it, and fetched.
func TestLagFetchedByExchange(t *testing.T) {
	ctx := context.Background()
	gen, err := Open(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	for i := range 3 {
		if err := gen.Collection("rides").Put(ctx, fmt.Sprintf("r%d", i), map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	blocks := newBlocks(t, gen, gen.Author(), 0)
	src := startReplica(t, Config{AnnounceInterval: time.Hour})
	dst := startReplica(t, Config{AnnounceInterval: 20 * time.Millisecond})
	deliver(t, src.s, blocks[:1])
	connect(t, dst, src)
	eventually(t, 10*time.Second, "catch-up on connecting", func() bool { return dst.s.Versions()[gen.Author()] == 1 })
	deliver(t, src.s, blocks[1:])
	eventually(t, 10*time.Second, "deltas not fetched by the exchange with src", func() bool { return dst.s.Versions()[gen.Author()] == 3 })
	if digest(t, dst.s) != digest(t, gen) {
		t.Fatal("replicas differ")
	}
}
