package blobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/blockstore"
	"github.com/dpaas/dpaas/internal/blockxfer"
	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestReadOverBlocksProtocol: a reader finds the replica that holds the
// whole file and takes every leaf from it over the blocks protocol.
func TestReadOverBlocksProtocol(t *testing.T) {
	waitForHolders(t)
	r := seeded(t)
	data := randomBytes(r, 40*ChunkSize+123)
	holder, reader, root := holderAndReader(t, data)
	if got := readAll(t, reader.store, root, time.Minute); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes that differ from the %d added", len(got), len(data))
	}
	m := reader.store.Metrics()
	if m.StreamFetchedBytes < uint64(len(data)) {
		t.Fatalf("%d bytes fetched over the blocks protocol, want at least the file's %d (fetched in all: %d)",
			m.StreamFetchedBytes, len(data), m.FetchedBytes)
	}
	if got := holder.store.Metrics().StreamServedBytes; got != m.StreamFetchedBytes {
		t.Fatalf("holder served %d bytes over the protocol, reader got %d", got, m.StreamFetchedBytes)
	}
	// The blocks are the reader's now.
	if !complete(t, reader.store, root) {
		t.Fatal("the blocks read are not held by the reader")
	}
}

// TestReadDagPBLeavesOverBlocksProtocol: a file as Kubo's `ipfs add` makes
// it by default (CIDv0, dag-pb leaves) reads back whole from a holder,
// over the blocks protocol.
func TestReadDagPBLeavesOverBlocksProtocol(t *testing.T) {
	waitForHolders(t)
	r := seeded(t)
	data := randomBytes(r, 40*ChunkSize+123)
	holder := startReplica(t, NewMemRegistry(), nil)
	root := addV0(t, holder.store, bytes.NewReader(data))
	reader := startReplica(t, NewMemRegistry(), nil)
	connect(t, reader, holder)
	if got := readAll(t, reader.store, root, time.Minute); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes that differ from the %d added", len(got), len(data))
	}
	m := reader.store.Metrics()
	if m.StreamFetchedBytes < uint64(len(data)) {
		t.Fatalf("%d bytes fetched over the blocks protocol, want at least the file's %d (fetched in all: %d)",
			m.StreamFetchedBytes, len(data), m.FetchedBytes)
	}
	if !complete(t, reader.store, root) {
		t.Fatal("the blocks read are not held by the reader")
	}
}

// waitForHolders makes Open wait for the search for holders to end, however
// slow a loaded machine makes it, for tests that count on its streams.
func waitForHolders(t *testing.T) {
	old := holderWait
	holderWait = time.Minute
	t.Cleanup(func() { holderWait = old })
}

// blocksClient opens a raw stream of the blocks protocol to rep.
func blocksClient(t *testing.T, from host.Host, rep *replica) network.Stream {
	t.Helper()
	connect(t, &replica{host: from}, rep)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := from.NewStream(ctx, rep.host.ID(), rep.store.blocksProto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Reset() })
	_ = st.SetDeadline(time.Now().Add(30 * time.Second))
	return st
}

func askBlock(t *testing.T, st network.Stream, c cid.Cid) {
	t.Helper()
	msg := binary.AppendUvarint(nil, uint64(len(c.Bytes())))
	if _, err := st.Write(append(msg, c.Bytes()...)); err != nil {
		t.Fatal(err)
	}
}

// TestBlocksProtocolServer: a Store serves its blocks over the blocks
// protocol, answering requests in order and saying when it does not hold a
// block, and counts a malformed request in its metrics. The protocol's
// limits are internal/blockxfer's tests.
func TestBlocksProtocolServer(t *testing.T) {
	r := seeded(t)
	data := randomBytes(r, 3*ChunkSize)
	srv := startReplica(t, NewMemRegistry(), nil)
	ctx := context.Background()
	root, err := srv.store.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	leaf := rawCID(data[:ChunkSize])
	unknown := rawCID([]byte("not held anywhere"))
	client := newHost(t)
	t.Cleanup(func() { _ = client.Close() })

	st := blocksClient(t, client, srv)
	// Pipelined: three requests before reading any answer.
	askBlock(t, st, leaf)
	askBlock(t, st, unknown)
	askBlock(t, st, root)
	br := bufio.NewReader(st)
	got, held, err := blockxfer.ReadAnswer(br)
	if err != nil || !held || !bytes.Equal(got, data[:ChunkSize]) {
		t.Fatalf("leaf: held %v, %d bytes, err %v", held, len(got), err)
	}
	if _, held, err := blockxfer.ReadAnswer(br); err != nil || held {
		t.Fatalf("unknown block: held %v, err %v", held, err)
	}
	rootData, held, err := blockxfer.ReadAnswer(br)
	if err != nil || !held {
		t.Fatalf("root: held %v, err %v", held, err)
	}
	if sum, _ := root.Prefix().Sum(rootData); !sum.Equals(root) {
		t.Fatal("root answered with other bytes")
	}

	// A request of length 0 is malformed: the stream is reset, and counted.
	before := srv.store.Metrics().BadRequests
	if _, err := st.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := blockxfer.ReadAnswer(br); err == nil {
		t.Fatal("the server answered a malformed request")
	}
	eventually(t, 10*time.Second, "the malformed request to be counted", func() bool {
		return srv.store.Metrics().BadRequests == before+1
	})
	if got := srv.store.Metrics().StreamServedBytes; got != uint64(ChunkSize)+uint64(len(rootData)) {
		t.Fatalf("StreamServedBytes = %d, want the leaf's and the root's %d", got, ChunkSize+len(rootData))
	}
}

// liarServer is a replica of the DApp that says it holds a whole file and
// answers blocks requests for its leaves badly, as mode says: "forge"
// (flipped bytes), "stall" (never), "miss" (not held) or "huge" (a length
// over the limit). Its bitswap serves
// only the root, so the leaves can come only from it or from an honest
// peer.
type liarServer struct {
	host   host.Host
	store  *blockstore.Store
	forged atomic.Int64 // leaf requests answered badly, or seen when stalling
}

func startLiar(t *testing.T, from *Store, root cid.Cid, mode string) *liarServer {
	t.Helper()
	ctx := context.Background()
	bs := blockCopy(t, from, root)
	l := &liarServer{host: newHost(t), store: bs}
	prefix := protocol.ID("/dpaas/" + testApp + "/blobs")
	swap := bitswap.New(ctx, bsnet.NewFromIpfsHost(l.host, bsnet.Prefix(prefix)), nil, rootOnly{bs})
	t.Cleanup(func() {
		swap.Close()
		l.host.Close()
	})
	l.host.SetStreamHandler(prefix+"/has/1.0.0", func(st network.Stream) {
		defer st.Close()
		if _, err := blockxfer.ReadCID(bufio.NewReader(st)); err == nil {
			_, _ = st.Write([]byte{byte(pinComplete)})
		}
	})
	l.host.SetStreamHandler(prefix+"/blocks/1.0.0", func(st network.Stream) {
		defer st.Close()
		br := bufio.NewReader(st)
		for {
			c, err := blockxfer.ReadCID(br)
			if err != nil {
				return
			}
			b, err := bs.Get(ctx, c)
			if err != nil {
				_, _ = st.Write([]byte{0})
				continue
			}
			d := append([]byte(nil), b.RawData()...)
			if c.Type() == cid.Raw {
				l.forged.Add(1)
				switch mode {
				case "stall":
					continue
				case "miss":
					_, _ = st.Write([]byte{0})
					continue
				case "huge":
					_, _ = st.Write(binary.AppendUvarint(nil, blockxfer.MaxBlockSize+2))
					continue
				}
				d[0] ^= 0xff
			}
			if _, err := st.Write(append(binary.AppendUvarint(nil, uint64(len(d))+1), d...)); err != nil {
				return
			}
		}
	})
	return l
}

// gatedHolder is a replica of the DApp that holds a whole file and serves
// it over the blocks protocol only: the root at once, each leaf once the
// gate is open. It counts what it is asked and what it sends.
type gatedHolder struct {
	host host.Host
	gate chan struct{}

	mu     sync.Mutex
	asking map[network.Stream]bool // streams that asked for a leaf
	served uint64                  // block bytes sent
}

func startGatedHolder(t *testing.T, from *Store, root cid.Cid) *gatedHolder {
	t.Helper()
	ctx := context.Background()
	bs := blockCopy(t, from, root)
	g := &gatedHolder{host: newHost(t), gate: make(chan struct{}), asking: make(map[network.Stream]bool)}
	t.Cleanup(func() { g.host.Close() })
	prefix := protocol.ID("/dpaas/" + testApp + "/blobs")
	g.host.SetStreamHandler(prefix+"/has/1.0.0", func(st network.Stream) {
		defer st.Close()
		if _, err := blockxfer.ReadCID(bufio.NewReader(st)); err == nil {
			_, _ = st.Write([]byte{byte(pinComplete)})
		}
	})
	g.host.SetStreamHandler(prefix+"/blocks/1.0.0", func(st network.Stream) {
		defer st.Close()
		br := bufio.NewReader(st)
		for {
			c, err := blockxfer.ReadCID(br)
			if err != nil {
				return
			}
			if c.Type() == cid.Raw {
				g.mu.Lock()
				g.asking[st] = true
				g.mu.Unlock()
				<-g.gate
			}
			b, err := bs.Get(ctx, c)
			if err != nil {
				_, _ = st.Write([]byte{0})
				continue
			}
			if _, err := st.Write(append(binary.AppendUvarint(nil, uint64(len(b.RawData()))+1), b.RawData()...)); err != nil {
				return
			}
			g.mu.Lock()
			g.served += uint64(len(b.RawData()))
			g.mu.Unlock()
		}
	})
	return g
}

func (g *gatedHolder) streamsAsking() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.asking)
}

// TestReadWhileReplicatingFetchesOnce: a replica that reads a blob while
// its background replication of the same blob runs receives each block
// once: the two share the fetches under way rather than each asking the
// holder.
func TestReadWhileReplicatingFetchesOnce(t *testing.T) {
	waitForHolders(t)
	ctx := context.Background()
	r := seeded(t)
	data := randomBytes(r, 24*ChunkSize+77)
	src, root := addedOn(t, data)
	st, err := src.store.Stat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	holder := startGatedHolder(t, src.store, root)
	reg := NewMemRegistry()
	b := startReplica(t, reg, nil)
	connect(t, &replica{host: holder.host}, b)

	read := readInBackground(b.store, root)
	// The DApp's blob set gains the blob: b replicates it while reading.
	if err := reg.Add(ctx, Record{CID: root, Size: uint64(len(data)), AddedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Hold every leaf until both want the first ones: two streams asking
	// (each fetching for itself), or one reader waiting on the other's
	// fetch.
	eventually(t, time.Minute, "the read and the replication to want the same leaves", func() bool {
		return holder.streamsAsking() >= 2 || b.store.Metrics().SharedFetches > 0
	})
	close(holder.gate)
	if res := <-read; res.err != nil || !bytes.Equal(res.data, data) {
		t.Fatalf("read %d bytes (%v), want the %d added", len(res.data), res.err, len(data))
	}
	eventually(t, time.Minute, "the replication to complete", func() bool {
		m := b.store.Metrics()
		return m.Pinned == 1 && m.Pending == 0
	})
	m := b.store.Metrics()
	holder.mu.Lock()
	served := holder.served
	holder.mu.Unlock()
	t.Logf("DAG %d block bytes; fetched %d (%d over the blocks protocol), holder sent %d, %d blocks shared",
		st.LocalBytes, m.FetchedBytes, m.StreamFetchedBytes, served, m.SharedFetches)
	if m.FetchedBytes != st.LocalBytes || served != st.LocalBytes {
		t.Fatalf("fetched %d bytes and the holder sent %d for a DAG of %d: blocks crossed the network more than once",
			m.FetchedBytes, served, st.LocalBytes)
	}
}

// TestReaderBorrowsHolderStream: a reader that found no holder (it was
// opened before any was connected) takes its blocks over the holder stream
// of another reader of the same blob, not over bitswap.
func TestReaderBorrowsHolderStream(t *testing.T) {
	waitForHolders(t)
	r := seeded(t)
	data := randomBytes(r, 24*ChunkSize+5)
	holder, root := addedOn(t, data)
	b := startReplica(t, NewMemRegistry(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opened := make(chan io.ReadSeekCloser, 1)
	go func() {
		rd, err := b.store.Open(ctx, root, WaitForHolder())
		if err != nil {
			t.Error(err)
		}
		opened <- rd
	}()
	eventually(t, time.Minute, "the first Open to wait", func() bool {
		b.store.mu.Lock()
		defer b.store.mu.Unlock()
		return b.store.leases[root] == 1
	})
	connect(t, b, holder)
	first := <-opened
	if first == nil {
		t.FailNow()
	}
	defer first.Close()
	second, err := b.store.Open(ctx, root) // finds the holder
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	got, err := io.ReadAll(first)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the %d added", len(got), err, len(data))
	}
	m := b.store.Metrics()
	if m.StreamFetchedBytes < uint64(len(data)) {
		t.Fatalf("%d bytes over the blocks protocol, want at least the file's %d (fetched in all: %d)",
			m.StreamFetchedBytes, len(data), m.FetchedBytes)
	}
}

// rootOnly is a blockstore that holds only dag-pb blocks.
type rootOnly struct{ *blockstore.Store }

func (r rootOnly) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if c.Type() == cid.Raw {
		return nil, errNotHere{c}
	}
	return r.Store.Get(ctx, c)
}

func (r rootOnly) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return c.Type() != cid.Raw && must(r.Store.Has(ctx, c)), nil
}

func (r rootOnly) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if c.Type() == cid.Raw {
		return -1, errNotHere{c}
	}
	return r.Store.GetSize(ctx, c)
}

type errNotHere struct{ c cid.Cid }

func (e errNotHere) Error() string  { return "not here: " + e.c.String() }
func (e errNotHere) NotFound() bool { return true }

func must(ok bool, err error) bool { return err == nil && ok }

// TestForgedBlocksAnswerBansThePeer: a peer that answers a blocks request
// with bytes of another hash is banned at once; the reader gets the right
// bytes from an honest replica over bitswap.
func TestForgedBlocksAnswerBansThePeer(t *testing.T) {
	r := seeded(t)
	data := randomBytes(r, 12*ChunkSize)
	honest, root := addedOn(t, data)
	liar := startLiar(t, honest.store, root, "forge")
	reader := startReplica(t, NewMemRegistry(), nil)
	connect(t, reader, &replica{host: liar.host})

	done := readInBackground(reader.store, root)
	eventually(t, time.Minute, "the liar to answer with a forged block", func() bool { return liar.forged.Load() > 0 })
	eventually(t, time.Minute, "the liar to be banned", func() bool { return reader.store.Banned(liar.host.ID()) })
	connect(t, reader, honest)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !bytes.Equal(res.data, data) {
		t.Fatal("read forged bytes")
	}
	m := reader.store.Metrics()
	if m.BannedPeers != 1 || m.BadBlocks == 0 {
		t.Fatalf("BannedPeers %d, BadBlocks %d; want 1 and more than 0", m.BannedPeers, m.BadBlocks)
	}
	eventually(t, 30*time.Second, "the liar to be disconnected", func() bool {
		return reader.host.Network().Connectedness(liar.host.ID()) != network.Connected
	})
}

// TestBlocksStreamFailsOver: when the holder's stream breaks mid-read,
// the rest of the file comes over bitswap and the read succeeds.
func TestBlocksStreamFailsOver(t *testing.T) {
	waitForHolders(t)
	r := seeded(t)
	data := randomBytes(r, 24*ChunkSize)
	_, rdr, root := holderAndReader(t, data)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rd, err := rdr.store.Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	head := make([]byte, 2*ChunkSize)
	if _, err := io.ReadFull(rd, head); err != nil {
		t.Fatal(err)
	}
	hs := rd.(*reader).g.Holders()
	if len(hs) != 1 {
		t.Fatalf("%d blocks streams, want 1 to the holder", len(hs))
	}
	// As if the connection broke.
	broken := 0
	for _, c := range rdr.host.Network().ConnsToPeer(hs[0]) {
		for _, st := range c.GetStreams() {
			if st.Protocol() == rdr.store.blocksProto {
				_ = st.Reset()
				broken++
			}
		}
	}
	if broken != 1 {
		t.Fatalf("%d blocks streams to the holder reset, want 1", broken)
	}
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, data) {
		t.Fatal("read wrong bytes after the stream broke")
	}
	if len(rd.(*reader).g.Holders()) != 0 {
		t.Fatal("the broken stream is still in use")
	}
}

// TestBadHolderIsLeft: a replica that says it holds the whole file, then
// never answers, says it lacks every block, or answers with a length over
// the limit, is left for bitswap: the read completes from an honest
// replica, and the bad holder is not banned (none of these proves
// forgery); the malformed answer is counted.
func TestBadHolderIsLeft(t *testing.T) {
	waitForHolders(t)
	old := directStall
	directStall = 300 * time.Millisecond
	t.Cleanup(func() { directStall = old })
	for _, mode := range []string{"stall", "miss", "huge"} {
		t.Run(mode, func(t *testing.T) {
			r := seeded(t)
			data := randomBytes(r, 12*ChunkSize)
			ctx := context.Background()
			honest, root := addedOn(t, data)
			liar := startLiar(t, honest.store, root, mode)
			rdr := startReplica(t, NewMemRegistry(), nil)
			connect(t, rdr, &replica{host: liar.host})
			rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			rd, err := rdr.store.Open(rctx, root)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			if hs := rd.(*reader).g.Holders(); len(hs) != 1 || hs[0] != liar.host.ID() {
				t.Fatal("the reader did not take the bad holder's stream")
			}
			connect(t, rdr, honest)
			got, err := io.ReadAll(rd)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("read wrong bytes")
			}
			if liar.forged.Load() == 0 {
				t.Fatal("the bad holder was never asked")
			}
			if len(rd.(*reader).g.Holders()) != 0 {
				t.Fatal("the reader still asks the bad holder")
			}
			if rdr.store.Banned(liar.host.ID()) {
				t.Fatal("a holder that only failed to answer was banned")
			}
			if bad := rdr.store.Metrics().BadBlocks; (mode == "huge") != (bad > 0) {
				t.Fatalf("BadBlocks = %d after mode %q", bad, mode)
			}
		})
	}
}

// TestReadFromSeveralHolders: with two replicas holding the whole file, a
// reader streams from both, and gets every byte right.
func TestReadFromSeveralHolders(t *testing.T) {
	waitForHolders(t)
	r := seeded(t)
	data := randomBytes(r, 48*ChunkSize+5)
	a, root := addedOn(t, data)
	b, rootB := addedOn(t, data)
	if rootB != root {
		t.Fatalf("the same bytes added twice gave %s and %s", root, rootB)
	}
	rdr := startReplica(t, NewMemRegistry(), nil)
	connect(t, rdr, a)
	connect(t, rdr, b)
	if got := readAll(t, rdr.store, root, time.Minute); !bytes.Equal(got, data) {
		t.Fatal("read wrong bytes")
	}
	fromA, fromB := a.store.Metrics().StreamServedBytes, b.store.Metrics().StreamServedBytes
	t.Logf("served over the blocks protocol: %d bytes by one holder, %d by the other", fromA, fromB)
	if fromA == 0 || fromB == 0 {
		t.Fatal("the reader did not stream from both holders")
	}
	if got := rdr.store.Metrics().StreamFetchedBytes; got != fromA+fromB || got < uint64(len(data)) {
		t.Fatalf("fetched %d bytes over the protocol; holders served %d", got, fromA+fromB)
	}
}
