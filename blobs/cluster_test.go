package blobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/blockstore"
	"github.com/dpaas/dpaas/internal/blockxfer"
	"github.com/ipfs/boxo/bitswap"
	bsmsg "github.com/ipfs/boxo/bitswap/message"
	bspb "github.com/ipfs/boxo/bitswap/message/pb"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestReplicatedRead: a blob added on one replica reads back byte for byte
// on two others; once replicated, the adder can go and both the others and
// a replica that joins later still read it.
func TestReplicatedRead(t *testing.T) {
	r := seeded(t)
	reg := NewMemRegistry()
	a := startReplica(t, reg, nil)
	b := startReplica(t, reg, nil)
	c := startReplica(t, reg, nil)
	connectAll(t, a, b, c)

	data := randomBytes(r, bigBlob)
	ctx := context.Background()
	root, err := a.store.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range []*replica{b, c} {
		if got := readAll(t, rep.store, root, 2*time.Minute); !bytes.Equal(got, data) {
			t.Fatalf("replica read %d bytes that differ from the %d added", len(got), len(data))
		}
	}
	eventually(t, 2*time.Minute, "background replication to b and c", func() bool {
		return complete(t, b.store, root) && complete(t, c.store, root) &&
			b.store.Metrics().Pending == 0 && c.store.Metrics().Pending == 0
	})
	a.stop()

	d := startReplica(t, reg, nil)
	connectAll(t, b, d)
	connect(t, c, d)
	if got := readAll(t, d.store, root, 2*time.Minute); !bytes.Equal(got, data) {
		t.Fatal("late replica read wrong bytes")
	}
	eventually(t, 2*time.Minute, "late replica to replicate", func() bool { return complete(t, d.store, root) })
	if m := b.store.Metrics(); m.StoredBytes != uint64(len(data)) {
		t.Fatalf("b stores %d bytes, want %d", m.StoredBytes, len(data))
	}
}

// TestSeekFetchesOnlyWhatIsRead: random seeks on a remote blob read the
// right bytes and fetch only the blocks around them.
func TestSeekFetchesOnlyWhatIsRead(t *testing.T) {
	r := seeded(t)
	a := startReplica(t, NewMemRegistry(), nil)
	// b has its own registry: it reads a's blob but is not told to keep it.
	b := startReplica(t, NewMemRegistry(), nil)
	connect(t, a, b)
	// Large enough that four reads with their read-ahead stay well under
	// half the file, even with the smaller blobs of race builds.
	size := max(bigBlob, 32<<20)
	data := randomBytes(r, size)
	ctx := context.Background()
	root, err := a.store.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	total := size / ChunkSize
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rd, err := b.store.Open(rctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for range 4 {
		off := r.IntN(len(data) - 1000)
		if _, err := rd.Seek(int64(off), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(rd, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+1000]) {
			t.Fatalf("wrong bytes at %d", off)
		}
	}
	st, err := b.store.Stat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after 4 seeks: %d of %d leaves held", st.LocalBlocks, total)
	if st.LocalBlocks == 0 || st.LocalBlocks > total/2 || st.Complete {
		t.Fatalf("random reads fetched %d of %d leaves", st.LocalBlocks, total)
	}
}

// TestReplicationFactor: with 4 replicas and a factor of 2 every blob ends
// on at least 2 replicas, and a stopped holder's blobs are re-replicated.
func TestReplicationFactor(t *testing.T) {
	r := seeded(t)
	reg := NewMemRegistry()
	k2 := func(c *Config) { c.ReplicationFactor = 2 }
	reps := []*replica{
		startReplica(t, reg, k2), startReplica(t, reg, k2),
		startReplica(t, reg, k2), startReplica(t, reg, k2),
	}
	connectAll(t, reps...)
	ctx := context.Background()
	var roots []cid.Cid
	for i := range 8 {
		c, err := reps[i%4].store.Add(ctx, bytes.NewReader(randomBytes(r, 2*ChunkSize+i)))
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, c)
	}
	holdersOf := func(c cid.Cid, running []*replica) []*replica {
		var out []*replica
		for _, rep := range running {
			if complete(t, rep.store, c) {
				out = append(out, rep)
			}
		}
		return out
	}
	settled := func(running []*replica) func() bool {
		return func() bool {
			for _, c := range roots {
				if len(holdersOf(c, running)) < 2 {
					return false
				}
			}
			for _, rep := range running {
				if rep.store.Metrics().Pending != 0 {
					return false
				}
			}
			return true
		}
	}
	eventually(t, time.Minute, "every blob on 2 replicas", settled(reps))
	// Surplus copies (the adder's, when it is not chosen) are dropped.
	eventually(t, time.Minute, "surplus copies dropped", func() bool {
		for _, c := range roots {
			if len(holdersOf(c, reps)) != 2 {
				return false
			}
		}
		return true
	})
	victim := holdersOf(roots[0], reps)[0]
	var running []*replica
	for _, rep := range reps {
		if rep != victim {
			running = append(running, rep)
		}
	}
	victim.stop()
	eventually(t, time.Minute, "re-replication after a holder left", settled(running))
	for _, c := range roots {
		if got := len(holdersOf(c, running)); got < 2 {
			t.Fatalf("%s on %d replicas", c, got)
		}
	}
}

// TestBurnEverywhere: a burned blob is unpinned and collected on every
// replica, and Open says so.
func TestBurnEverywhere(t *testing.T) {
	r := seeded(t)
	reg := NewMemRegistry()
	reps := []*replica{startReplica(t, reg, nil), startReplica(t, reg, nil), startReplica(t, reg, nil)}
	connectAll(t, reps...)
	ctx := context.Background()
	root, err := reps[0].store.Add(ctx, bytes.NewReader(randomBytes(r, 4*ChunkSize)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "replication", func() bool {
		for _, rep := range reps {
			if !complete(t, rep.store, root) {
				return false
			}
		}
		return true
	})
	if err := reps[1].store.Burn(ctx, root); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "every blockstore emptied", func() bool {
		for _, rep := range reps {
			n, err := rep.store.blockCount(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != 0 || rep.store.Metrics().Pinned != 0 {
				return false
			}
		}
		return true
	})
	for _, rep := range reps {
		if _, err := rep.store.Open(ctx, root); !errors.Is(err, ErrBurned) {
			t.Fatalf("Open of burned blob = %v, want ErrBurned", err)
		}
	}
}

// corruptingBlockstore serves every block with its first byte flipped.
type corruptingBlockstore struct {
	*blockstore.Store
	served atomic.Int64
}

func (c *corruptingBlockstore) Get(ctx context.Context, k cid.Cid) (blocks.Block, error) {
	b, err := c.Store.Get(ctx, k)
	if err != nil {
		return nil, err
	}
	data := append([]byte(nil), b.RawData()...)
	data[0] ^= 0xff
	c.served.Add(1)
	return blocks.NewBlockWithCid(data, k)
}

// TestBadHashPeerIgnored: a peer that answers with blocks whose hash does
// not match is ignored, and the blocks come from an honest peer.
func TestBadHashPeerIgnored(t *testing.T) {
	r := seeded(t)
	data := randomBytes(r, 16*ChunkSize)
	ctx := context.Background()

	honest := startReplica(t, NewMemRegistry(), nil)
	root, err := honest.store.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}

	// The liar holds the same blocks and speaks the DApp's bitswap, but
	// flips a byte of everything it sends.
	lying := &corruptingBlockstore{Store: blockCopy(t, honest.store, root)}
	lh := newHost(t)
	bs := bitswap.New(ctx, bsnet.NewFromIpfsHost(lh, bsnet.Prefix(protocol.ID("/dpaas/"+testApp+"/blobs"))), nil, lying)
	t.Cleanup(func() {
		bs.Close()
		lh.Close()
	})

	reader := startReplica(t, NewMemRegistry(), nil)
	liar := &replica{host: lh}
	connect(t, reader, liar)

	// Only the liar is connected, and it does not speak the holdings
	// protocol: Open must wait for the honest peer.
	done := readInBackground(reader.store, root, WaitForHolder())
	eventually(t, time.Minute, "the liar to serve a forged block", func() bool { return lying.served.Load() > 0 })
	connect(t, reader, honest)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !bytes.Equal(res.data, data) {
		t.Fatal("read forged bytes")
	}
	eventually(t, time.Minute, "forged blocks to be counted", func() bool { return reader.store.Metrics().BadBlocks > 0 })
	t.Logf("forged blocks received: %d", reader.store.Metrics().BadBlocks)
	if reader.store.Metrics().BadBlocks < blockxfer.MaxForgedBlocks {
		return // the honest peer served everything before the liar was caught
	}
	if n := reader.store.Metrics().BannedPeers; n != 1 {
		t.Fatalf("BannedPeers = %d, want 1", n)
	}
	if !reader.store.Banned(lh.ID()) {
		t.Fatal("the liar is not banned")
	}
	disconnected := func() bool { return reader.host.Network().Connectedness(lh.ID()) != network.Connected }
	eventually(t, time.Minute, "the liar to be disconnected", disconnected)
	// A liar that dials again is dropped at once, and the reader's
	// bitswap does not dial it itself.
	if err := lh.Connect(ctx, peer.AddrInfo{ID: reader.host.ID(), Addrs: reader.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the liar's new connection to be closed", func() bool {
		return lh.Network().Connectedness(reader.host.ID()) != network.Connected
	})
}

// TestOpenUnknownCIDDeadline: Open of a CID no one has, asked to wait for
// a holder, ends at the context's deadline with a clear error.
func TestOpenUnknownCIDDeadline(t *testing.T) {
	reg := NewMemRegistry()
	a := startReplica(t, reg, nil)
	b := startReplica(t, reg, nil)
	connect(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := a.store.Open(ctx, rawCID([]byte("no one has this")), WaitForHolder())
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	t.Logf("error reads: %v", err)
}

// memProviders is a shared in-memory provider table standing in for the
// DHT; memRouting is one replica's view of it.
type memProviders struct {
	mu    sync.Mutex
	provs map[cid.Cid][]peer.AddrInfo
}

type memRouting struct {
	table *memProviders
	self  func() peer.AddrInfo
}

func (m *memRouting) Provide(_ context.Context, c cid.Cid, _ bool) error {
	m.table.mu.Lock()
	defer m.table.mu.Unlock()
	m.table.provs[c] = append(m.table.provs[c], m.self())
	return nil
}

func (m *memRouting) FindProvidersAsync(ctx context.Context, c cid.Cid, _ int) <-chan peer.AddrInfo {
	m.table.mu.Lock()
	found := append([]peer.AddrInfo(nil), m.table.provs[c]...)
	m.table.mu.Unlock()
	ch := make(chan peer.AddrInfo, len(found))
	for _, ai := range found {
		ch <- ai
	}
	close(ch)
	return ch
}

// TestFindHoldersThroughRouting: a replica connected to no holder finds
// one through provider records (the DHT's job in a real deployment).
func TestFindHoldersThroughRouting(t *testing.T) {
	r := seeded(t)
	table := &memProviders{provs: make(map[cid.Cid][]peer.AddrInfo)}
	withRouting := func(c *Config) {
		h := c.Host
		c.Routing = &memRouting{table: table, self: func() peer.AddrInfo {
			return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
		}}
	}
	a := startReplica(t, NewMemRegistry(), withRouting)
	b := startReplica(t, NewMemRegistry(), withRouting)
	data := randomBytes(r, 40*ChunkSize)
	root, err := a.store.Add(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the adder to provide the blob", func() bool {
		table.mu.Lock()
		defer table.mu.Unlock()
		return len(table.provs[root]) > 0
	})
	if got := len(b.host.Network().Peers()); got != 0 {
		t.Fatalf("b already has %d peers", got)
	}
	if !bytes.Equal(readAll(t, b.store, root, time.Minute), data) {
		t.Fatal("wrong bytes through a provider record")
	}
	// The provider found is a replica holding the file: the reader
	// streamed from it rather than wait for bitswap's own search.
	if m := b.store.Metrics(); m.StreamFetchedBytes == 0 {
		t.Fatalf("nothing fetched over the blocks protocol (%d bytes in all)", m.FetchedBytes)
	}
}

// TestReplicationResumesAfterRestart: a blob a replica was told to keep
// but could not fetch yet is fetched after a restart, from the pin it
// persisted, even if the restarted replica has not heard of the blob again.
func TestReplicationResumesAfterRestart(t *testing.T) {
	r := seeded(t)
	reg := NewMemRegistry()
	a := startReplica(t, reg, nil)
	dir := t.TempDir()
	b := startReplicaIn(t, dir, reg, nil)
	data := randomBytes(r, 3*ChunkSize)
	root, err := a.store.Add(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// b is not connected to a: it pins the blob but cannot fetch it.
	eventually(t, time.Minute, "b to pin the new blob", func() bool { return b.store.Metrics().Pending == 1 })
	b.stop()

	b2 := startReplicaIn(t, dir, NewMemRegistry(), nil)
	if m := b2.store.Metrics(); m.Pending != 1 {
		t.Fatalf("restarted replica has %d pending pins, want 1", m.Pending)
	}
	connect(t, b2, a)
	eventually(t, time.Minute, "the resumed fetch", func() bool { return complete(t, b2.store, root) && b2.store.Metrics().Pending == 0 })
	if !bytes.Equal(readAll(t, b2.store, root, time.Minute), data) {
		t.Fatal("wrong bytes after resume")
	}
}

// TestLiarDetector: blocks a peer was asked for are fine; a peer that sends
// maxForgedBlocks blocks it was never asked for is disconnected and
// banned: when it dials again, its connection is closed.
func TestLiarDetector(t *testing.T) {
	a := startReplica(t, NewMemRegistry(), nil)
	b := startReplica(t, NewMemRegistry(), nil)
	connect(t, a, b)
	d := a.store.liars
	p := b.host.ID()
	blk := func(s string) blocks.Block { return blocks.NewBlock([]byte(s)) }

	asked := bsmsg.New(false)
	asked.AddEntry(blk("asked").Cid(), 1, bspb.Message_Wantlist_Block, true)
	d.Sent(p, asked)
	honest := bsmsg.New(false)
	honest.AddBlock(blk("asked"))
	d.MessageReceived(p, honest)
	if got := a.store.Metrics().BadBlocks; got != 0 {
		t.Fatalf("an asked-for block counted as forged (%d)", got)
	}
	forged := bsmsg.New(false)
	for i := range blockxfer.MaxForgedBlocks {
		forged.AddBlock(blk(fmt.Sprint("forged", i)))
	}
	d.MessageReceived(p, forged)
	if got := a.store.Metrics().BadBlocks; got != blockxfer.MaxForgedBlocks {
		t.Fatalf("BadBlocks = %d, want %d", got, blockxfer.MaxForgedBlocks)
	}
	eventually(t, time.Minute, "the liar to be disconnected", func() bool {
		return a.host.Network().Connectedness(p) != network.Connected
	})
	if !a.store.Banned(p) || a.store.Metrics().BannedPeers != 1 {
		t.Fatalf("Banned = %v, BannedPeers = %d; want the liar banned once", a.store.Banned(p), a.store.Metrics().BannedPeers)
	}
	if b.store.Banned(a.host.ID()) {
		t.Fatal("the honest side is banned")
	}
	ctx := context.Background()
	if err := b.host.Connect(ctx, peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the liar's new connection to be closed", func() bool {
		return b.host.Network().Connectedness(a.host.ID()) != network.Connected
	})
	// a's bitswap sends nothing to the liar, which would dial it again.
	w := &blockxfer.WatchedNetwork{Detector: d}
	if err := w.SendMessage(ctx, p, asked); !errors.Is(err, blockxfer.ErrBanned) {
		t.Fatalf("SendMessage to the liar = %v, want blockxfer.ErrBanned", err)
	}
	if _, err := w.NewMessageSender(ctx, p, nil); !errors.Is(err, blockxfer.ErrBanned) {
		t.Fatalf("NewMessageSender to the liar = %v, want blockxfer.ErrBanned", err)
	}
}

// TestPinStatesAreHoldings: the holdings protocol answers a pin's state
// byte as is, so the two encodings must agree.
func TestPinStatesAreHoldings(t *testing.T) {
	for _, tc := range []struct {
		pin  pinState
		hold byte
	}{{pinNone, blockxfer.HoldNone}, {pinPending, blockxfer.HoldPending}, {pinComplete, blockxfer.HoldComplete}} {
		if byte(tc.pin) != tc.hold {
			t.Errorf("pin state %d, holdings answer %d", tc.pin, tc.hold)
		}
	}
}
