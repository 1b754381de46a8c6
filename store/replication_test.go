package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dpaas/dpaas/pubsub"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

const testApp = "storetest"

type replicaNode struct {
	h  host.Host
	ps *pubsub.PubSub
	s  *Store
}

// startReplica starts a real libp2p host on loopback with pubsub and a
// store; cfg's network fields are filled in.
func startReplica(t testing.TB, cfg Config) *replicaNode {
	t.Helper()
	h, key := newHost(t)
	if cfg.Key == nil {
		cfg.Key = key
	}
	ps, err := pubsub.Open(context.Background(), pubsub.Config{Host: h, AppID: testApp, MaxMessageSize: 4 << 20})
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	cfg.Host, cfg.PubSub, cfg.AppID = h, ps, testApp
	if cfg.AnnounceInterval == 0 {
		cfg.AnnounceInterval = 100 * time.Millisecond
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		ps.Close()
		h.Close()
		t.Fatal(err)
	}
	r := &replicaNode{h: h, ps: ps, s: s}
	t.Cleanup(r.close)
	return r
}

// newHost starts a loopback host whose identity is a secp256k1 key, as a
// dpaas instance's is.
func newHost(t testing.TB) (host.Host, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ethcrypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := p2pcrypto.UnmarshalSecp256k1PrivateKey(ethcrypto.FromECDSA(key))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	return h, key
}

func (r *replicaNode) close() {
	r.s.Close()
	r.ps.Close()
	r.h.Close()
}

func connect(t testing.TB, a, b *replicaNode) {
	t.Helper()
	if err := a.h.Connect(context.Background(), peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// digest hashes every document record (view and CRDT state) of a store.
func digest(t testing.TB, s *Store) string {
	t.Helper()
	it, err := s.space.PrefixIter([]byte{tState})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	h := sha256.New()
	for it.First(); it.Valid(); it.Next() {
		h.Write(it.Key())
		h.Write(it.Value())
	}
	return hex.EncodeToString(h.Sum(nil))
}

func docCount(t testing.TB, s *Store, coll string) int {
	t.Helper()
	n, err := s.Collection(coll).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		<-tick.C
	}
}

func TestConcurrentWritersConverge(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	reps := []*replicaNode{startReplica(t, Config{}), startReplica(t, Config{}), startReplica(t, Config{})}
	connect(t, reps[0], reps[1])
	connect(t, reps[1], reps[2])
	connect(t, reps[0], reps[2])
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i, r := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			c := r.s.Collection("shared")
			for k := range 150 {
				id := fmt.Sprintf("doc%d", rng.IntN(20))
				var err error
				switch rng.IntN(6) {
				case 0:
					err = c.Put(ctx, id, map[string]any{"by": i, "k": k})
				case 1:
					err = c.Delete(ctx, id)
				case 2:
					err = c.Update(ctx, id, Set("f", k), Inc("n", 1))
				case 3:
					err = c.Update(ctx, id, Add("set", rng.IntN(4)))
				case 4:
					err = c.Update(ctx, id, Remove("set", rng.IntN(4)))
				case 5:
					err = c.Update(ctx, id, Append("log", fmt.Sprintf("%d-%d", i, k)))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			for i, r := range reps {
				t.Logf("replica %d: %+v versions %v heads %v", i, r.s.Stats(), r.s.Versions(), r.s.Heads())
				for d, _ := range r.s.Collection("shared").Find(ctx) {
					t.Logf("  %s %s", d.ID, d.Data)
				}
			}
		}
	}()
	eventually(t, 10*time.Second, "replicas did not converge", func() bool {
		d0 := digest(t, reps[0].s)
		return d0 == digest(t, reps[1].s) && d0 == digest(t, reps[2].s)
	})
	for _, r := range reps {
		if st := r.s.Stats(); st.DeltasRejected != 0 {
			t.Fatalf("stats %+v", st)
		}
	}
}

func TestFreshReplicaCatchesUp(t *testing.T) {
	ctx := context.Background()
	a := startReplica(t, Config{})
	c := a.s.Collection("docs")
	const n = 10_000
	b := a.s.Batch()
	for i := range n {
		b.Put(c, fmt.Sprintf("d%05d", i), map[string]any{"i": i})
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 50 { // single-write deltas too
		if err := c.Update(ctx, fmt.Sprintf("d%05d", i), Inc("hits", 1)); err != nil {
			t.Fatal(err)
		}
	}
	fresh := startReplica(t, Config{})
	connect(t, fresh, a)
	eventually(t, 30*time.Second, "fresh replica did not catch up", func() bool {
		return docCount(t, fresh.s, "docs") == n && digest(t, fresh.s) == digest(t, a.s)
	})
	// The documents are visible a moment before the stream's status counts
	// them as applied: wait for the stream to report itself done.
	eventually(t, 10*time.Second, "catch-up not reported done", func() bool {
		for _, x := range fresh.s.SyncStatus() {
			if !x.Done() {
				return false
			}
		}
		return true
	})
	st := fresh.s.SyncStatus()
	var applied uint64
	for _, x := range st {
		if x.Peer != a.h.ID() || x.Applied > x.Total || x.Received > x.Total {
			t.Fatalf("sync status %+v", st)
		}
		applied += x.Applied
	}
	if len(st) == 0 || applied == 0 {
		t.Fatalf("sync status %+v: nothing reported applied", st)
	}
	t.Logf("sync status %+v; served by source %d", fresh.s.SyncStatus(), a.s.Stats().Served)
}

func TestPartitionedWritersConvergeAfterHeal(t *testing.T) {
	ctx := context.Background()
	a, b := startReplica(t, Config{}), startReplica(t, Config{})
	for i := range 40 {
		id := fmt.Sprintf("d%d", i%10)
		if err := a.s.Collection("c").Update(ctx, id, Set("a", i), Inc("n", 1), Add("s", "a")); err != nil {
			t.Fatal(err)
		}
		if err := b.s.Collection("c").Update(ctx, id, Set("b", i), Inc("n", 2), Add("s", "b")); err != nil {
			t.Fatal(err)
		}
	}
	if digest(t, a.s) == digest(t, b.s) {
		t.Fatal("partitioned replicas already equal")
	}
	connect(t, a, b)
	eventually(t, 30*time.Second, "replicas did not converge after heal", func() bool {
		return digest(t, a.s) == digest(t, b.s)
	})
	var doc struct {
		N int      `json:"n"`
		S []string `json:"s"`
	}
	if err := a.s.Collection("c").Get(ctx, "d0", &doc); err != nil || doc.N != 12 || len(doc.S) != 2 {
		t.Fatalf("merged document %+v, %v", doc, err)
	}
}

// TestCatchUpResumes gives a replica the first half of another's history,
// as a broken stream would have, and checks that its catch-up asks only for
// what is still missing.
func TestCatchUpResumes(t *testing.T) {
	ctx := context.Background()
	src := startReplica(t, Config{MaxDeltaOps: 1})
	c := src.s.Collection("docs")
	const n = 2000
	b := src.s.Batch()
	for i := range n {
		b.Put(c, fmt.Sprintf("d%05d", i), map[string]any{"i": i})
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := startReplica(t, Config{})
	blocks := newBlocks(t, src.s, src.s.Author(), 0)
	if len(blocks) != n {
		t.Fatalf("%d blocks", len(blocks))
	}
	deliver(t, fresh.s, blocks[:n/2])
	if got := fresh.s.Versions()[src.s.Author()]; got != n/2 {
		t.Fatalf("holds %d deltas before catching up", got)
	}
	connect(t, fresh, src)
	eventually(t, 30*time.Second, "catch-up did not finish", func() bool {
		return fresh.s.Versions()[src.s.Author()] == n
	})
	st := fresh.s.SyncStatus()
	if len(st) != 1 || st[0].Total != n/2 {
		t.Fatalf("catch-up status %+v, want %d deltas asked for", st, n/2)
	}
	if docCount(t, fresh.s, "docs") != n {
		t.Fatal("documents missing")
	}
}

// TestCloseDuringCatchUpAndWrites closes a replica while it is catching
// up and while writers wait: Close must return, writers must get an error
// or success, and no goroutine may be left behind (TestMain checks).
func TestCloseDuringCatchUpAndWrites(t *testing.T) {
	ctx := context.Background()
	src := startReplica(t, Config{MaxDeltaOps: 1})
	b := src.s.Batch()
	for i := range 3000 {
		b.Put(src.s.Collection("docs"), fmt.Sprintf("d%05d", i), map[string]any{"i": i})
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := startReplica(t, Config{})
	connect(t, fresh, src)
	eventually(t, 10*time.Second, "catch-up did not start", func() bool {
		return fresh.s.Versions()[src.s.Author()] > 0
	})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				err := fresh.s.Collection("mine").Put(ctx, fmt.Sprintf("w%d-%d", w, i), map[string]any{})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		}()
	}
	if err := fresh.s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}
