package blobs

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/blockstore"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ipfs/boxo/blockservice"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const testApp = "blobs-test-app"

// testListen is where test hosts listen.
var testListen = "/ip4/127.0.0.1/tcp/0"

// seeded returns a deterministic random source and logs its seed so that a
// failure can be replayed.
func seeded(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randomReader yields n deterministic pseudo-random bytes without holding
// them all.
type randomReader struct {
	r *rand.Rand
	n int64
}

func (rr *randomReader) Read(p []byte) (int, error) {
	if rr.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > rr.n {
		p = p[:rr.n]
	}
	copy(p, randomBytes(rr.r, len(p)))
	rr.n -= int64(len(p))
	return len(p), nil
}

// eventually waits for cond, failing the test at the deadline.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openLocalIn opens a store without a host on a database in dir opened
// with o; the caller closes both (the store first).
func openLocalIn(t testing.TB, dir string, o *kv.Options) (*kv.DB, *Store) {
	t.Helper()
	db, err := kv.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := db.Space("blobs")
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{Space: sp})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db, s
}

func newLocal(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := newTestHost()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newTestHost() (host.Host, error) {
	return libp2p.New(
		libp2p.ListenAddrStrings(testListen),
		libp2p.DisableRelay(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	)
}

// replica is one in-process instance: its own host and Pebble database.
type replica struct {
	t     testing.TB
	host  host.Host
	db    *kv.DB
	store *Store
	cfg   Config
}

// startReplica opens a replica that shares reg with the others.
func startReplica(t testing.TB, reg Registry, tweak func(*Config)) *replica {
	t.Helper()
	return startReplicaIn(t, "", reg, tweak)
}

// startReplicaIn is startReplica with its database in dir ("" = memory).
func startReplicaIn(t testing.TB, dir string, reg Registry, tweak func(*Config)) *replica {
	t.Helper()
	db, err := kv.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := db.Space("blobs")
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t)
	cfg := Config{Space: sp, Host: h, AppID: testApp, Registry: reg, ReconcileInterval: time.Second, HolderGrace: 2 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{t: t, host: h, db: db, store: s, cfg: cfg}
	t.Cleanup(r.stop)
	return r
}

// stop closes the replica; calling it again does nothing.
func (r *replica) stop() {
	if r.store == nil {
		return
	}
	if err := r.store.Close(); err != nil {
		r.t.Errorf("close store: %v", err)
	}
	if err := r.host.Close(); err != nil {
		r.t.Errorf("close host: %v", err)
	}
	if err := r.db.Close(); err != nil {
		r.t.Errorf("close db: %v", err)
	}
	r.store = nil
}

func connect(t testing.TB, a, b *replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.host.Connect(ctx, peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func connectAll(t testing.TB, rs ...*replica) {
	t.Helper()
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			connect(t, rs[i], rs[j])
		}
	}
}

// readAll opens c on s and returns its bytes.
func readAll(t testing.TB, s *Store, c cid.Cid, timeout time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rd, err := s.Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rd); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func complete(t testing.TB, s *Store, c cid.Cid) bool {
	t.Helper()
	ok, err := s.Has(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// readResult is what readInBackground delivers.
type readResult struct {
	data []byte
	err  error
}

// readInBackground opens c on s with opts and reads it whole on another
// goroutine, within two minutes.
func readInBackground(s *Store, c cid.Cid, opts ...OpenOption) <-chan readResult {
	done := make(chan readResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rd, err := s.Open(ctx, c, opts...)
		if err != nil {
			done <- readResult{err: err}
			return
		}
		defer rd.Close()
		got, err := io.ReadAll(rd)
		done <- readResult{got, err}
	}()
	return done
}

// holderAndReader starts two replicas with registries of their own (so
// that no background replication competes with a read), adds data on the
// first and connects them.
func holderAndReader(t *testing.T, data []byte) (holder, rdr *replica, root cid.Cid) {
	t.Helper()
	holder, root = addedOn(t, data)
	rdr = startReplica(t, NewMemRegistry(), nil)
	connect(t, rdr, holder)
	return holder, rdr, root
}

// addedOn starts a replica with a registry of its own and adds data to it.
func addedOn(t *testing.T, data []byte) (*replica, cid.Cid) {
	t.Helper()
	rep := startReplica(t, NewMemRegistry(), nil)
	root, err := rep.store.Add(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return rep, root
}

// blockCopy returns a blockstore of its own, in memory, holding every
// block of root that from holds.
func blockCopy(t testing.TB, from *Store, root cid.Cid) *blockstore.Store {
	t.Helper()
	ctx := context.Background()
	db, err := kv.Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sp, _ := db.Space("blobs")
	bs, err := blockstore.New(sp, blockstore.Config{Prefix: prefixBlocks, ValuePrefix: prefixValues})
	if err != nil {
		t.Fatal(err)
	}
	if err := from.walkLocal(ctx, root, true, func(c cid.Cid, _ bool, d []byte) error {
		b, _ := blocks.NewBlockWithCid(append([]byte(nil), d...), c)
		return bs.Put(ctx, b)
	}); err != nil {
		t.Fatal(err)
	}
	return bs
}

// addV0 imports what r yields the way Kubo's `ipfs add` does by default:
// CIDv0, dag-pb leaves carrying their bytes (UnixFS raw nodes), 256 KiB
// chunks, balanced layout; and pins it as Add would, without recording it
// in the registry.
func addV0(t testing.TB, s *Store, r io.Reader) cid.Cid {
	t.Helper()
	ctx := context.Background()
	var id [8]byte
	marker := append(append([]byte(nil), prefixAdds...), id[:]...)
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if err := s.space.Set(marker, nil, false); err != nil {
		t.Fatal(err)
	}
	cr := &countingReader{ctx: ctx, r: r}
	params := helpers.DagBuilderParams{
		Maxlinks: helpers.DefaultLinksPerBlock,
		Dagserv:  merkledag.NewDAGService(blockservice.New(s.blocks, nil)),
	}
	db, err := params.New(chunker.NewSizeSplitter(cr, ChunkSize))
	if err != nil {
		t.Fatal(err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		t.Fatal(err)
	}
	if nd.Cid().Version() != 0 {
		t.Fatalf("built %s, want a CIDv0", nd.Cid())
	}
	if err := s.setPin(nd.Cid(), pin{state: pinComplete, size: cr.n}); err != nil {
		t.Fatal(err)
	}
	if err := s.space.Delete(marker, false); err != nil {
		t.Fatal(err)
	}
	return nd.Cid()
}
