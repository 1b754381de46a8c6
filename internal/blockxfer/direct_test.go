package blockxfer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"go.uber.org/goleak"

	"github.com/dpaas/dpaas/internal/frame"
	"github.com/dpaas/dpaas/internal/group"
)

const testProto = "/dpaas/test/blobs/blocks/1.0.0"

// TestMain fails the package if a test leaves a goroutine behind: every
// host and group is closed by its test's cleanups.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"))
}

// memBlocks is an in-memory Blockstore.
type memBlocks struct {
	mu sync.Mutex
	m  map[cid.Cid]blocks.Block
}

func newMemBlocks(bs ...blocks.Block) *memBlocks {
	b := &memBlocks{m: make(map[cid.Cid]blocks.Block)}
	for _, blk := range bs {
		b.m[blk.Cid()] = blk
	}
	return b
}

func (b *memBlocks) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if blk, ok := b.m[c]; ok {
		return blk, nil
	}
	return nil, ipld.ErrNotFound{Cid: c}
}

func (b *memBlocks) Put(_ context.Context, blk blocks.Block) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[blk.Cid()] = blk
	return nil
}

func (b *memBlocks) WriteBlock(c cid.Cid, w io.Writer, before func(int) error) (bool, error) {
	blk, err := b.Get(context.Background(), c)
	if err != nil {
		return false, nil
	}
	if err := before(len(blk.RawData())); err != nil {
		return true, err
	}
	_, err = w.Write(blk.RawData())
	return true, err
}

// fallback is a BlockGetter that counts its calls and answers from its
// blocks once release is closed (nil: at once), or fails with ctx.
type fallback struct {
	blocks  *memBlocks
	release chan struct{}
	calls   atomic.Int32
}

func (f *fallback) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	f.calls.Add(1)
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.blocks.Get(ctx, c)
}

// counters are the Hooks' counters, for the tests to read.
type counters struct {
	badBlocks, badRequests, fetched, served, shared atomic.Uint64
}

func (n *counters) hooks(h host.Host) Hooks {
	return Hooks{
		Host:        h,
		BadBlocks:   func(k uint64) { n.badBlocks.Add(k) },
		BadRequest:  func() { n.badRequests.Add(1) },
		Fetched:     func(k uint64) { n.fetched.Add(k) },
		Served:      func(k uint64) { n.served.Add(k) },
		SharedFetch: func() { n.shared.Add(1) },
	}
}

func rawBlock(data string) blocks.Block {
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: -1}.Sum([]byte(data))
	if err != nil {
		panic(err)
	}
	blk, err := blocks.NewBlockWithCid([]byte(data), c)
	if err != nil {
		panic(err)
	}
	return blk
}

// newDirect returns a Direct, and the function that closes its component
// (as the test's cleanup does): stop the goroutines it started.
func newDirect(t *testing.T, cfg DirectConfig) (*Direct, func()) {
	t.Helper()
	tasks := group.New(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	stop := func() {
		cancel()
		tasks.Stop()
	}
	t.Cleanup(stop)
	cfg.Tasks, cfg.Context = tasks, ctx
	return NewDirect(cfg), stop
}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t *testing.T, from, to host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAdmission: at most maxDirectStreamsPerPeer streams from one peer and
// maxDirectStreams in all; a stream that ends makes room, and nothing is
// left of a peer whose streams all ended.
func TestAdmission(t *testing.T) {
	var a admission
	p := peer.ID("p")
	for i := range maxDirectStreamsPerPeer {
		if !a.admit(p) {
			t.Fatalf("stream %d of one peer refused", i)
		}
	}
	if a.admit(p) {
		t.Fatal("a stream over the per-peer limit was admitted")
	}
	a.leave(p)
	if !a.admit(p) {
		t.Fatal("a stream that ended did not make room")
	}
	var others []peer.ID
	for i := maxDirectStreamsPerPeer; i < maxDirectStreams; i++ {
		q := peer.ID(fmt.Sprintf("q%d", i))
		if !a.admit(q) {
			t.Fatalf("stream %d in all refused", i)
		}
		others = append(others, q)
	}
	if a.admit("late") {
		t.Fatal("a stream over the total limit was admitted")
	}
	for _, q := range others {
		a.leave(q)
	}
	for range maxDirectStreamsPerPeer {
		a.leave(p)
	}
	if a.total != 0 || len(a.byPeer) != 0 {
		t.Fatalf("after every stream ended: total %d, %d peers tracked", a.total, len(a.byPeer))
	}
}

// ask writes the requests for cs on st, as the client does.
func ask(t *testing.T, st network.Stream, cs ...cid.Cid) {
	t.Helper()
	for _, c := range cs {
		if err := frame.WriteFrame(st, c.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServe: the server answers pipelined requests in order, says when it
// does not hold a block, counts what it serves, resets a stream that
// sends a malformed request (and counts it), refuses a stream over the
// per-peer limit, and resets idle streams when its component closes.
func TestServe(t *testing.T) {
	held := rawBlock("held")
	var n counters
	srvHost, client := newHost(t), newHost(t)
	x, closeX := newDirect(t, DirectConfig{Hooks: n.hooks(srvHost), Proto: testProto, Blocks: newMemBlocks(held)})
	srvHost.SetStreamHandler(testProto, x.Serve)
	connect(t, client, srvHost)
	open := func() (network.Stream, *bufio.Reader) {
		t.Helper()
		st, err := client.NewStream(context.Background(), srvHost.ID(), testProto)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Reset() })
		_ = st.SetDeadline(time.Now().Add(30 * time.Second))
		return st, bufio.NewReader(st)
	}

	st, br := open()
	ask(t, st, held.Cid(), rawBlock("not held").Cid(), held.Cid())
	for i, want := range []bool{true, false, true} {
		data, ok, err := ReadAnswer(br)
		if err != nil || ok != want || (ok && !bytes.Equal(data, held.RawData())) {
			t.Fatalf("answer %d: held %v, %q, %v; want held %v", i, ok, data, err, want)
		}
	}
	if got := n.served.Load(); got != 2*uint64(len(held.RawData())) {
		t.Fatalf("served %d bytes, want %d", got, 2*len(held.RawData()))
	}

	if _, err := st.Write([]byte{0}); err != nil { // a CID of length 0
		t.Fatal(err)
	}
	if _, _, err := ReadAnswer(br); err == nil {
		t.Fatal("the server answered a malformed request")
	}
	waitFor(t, "the malformed request to be counted", func() bool { return n.badRequests.Load() == 1 })
	// It is counted before its stream leaves the limits.
	waitFor(t, "the reset stream to leave", func() bool {
		x.admit.mu.Lock()
		defer x.admit.mu.Unlock()
		return x.admit.total == 0
	})

	// The per-peer limit: streams kept open, then one more is refused.
	var idle []*bufio.Reader
	for range maxDirectStreamsPerPeer {
		st, br := open()
		ask(t, st, held.Cid()) // the answer proves the stream was admitted
		if _, ok, err := ReadAnswer(br); err != nil || !ok {
			t.Fatalf("stream %d: held %v, err %v", len(idle), ok, err)
		}
		idle = append(idle, br)
	}
	extra, ebr := open()
	ask(t, extra, held.Cid())
	if _, _, err := ReadAnswer(ebr); err == nil {
		t.Fatal("a stream over the per-peer limit was served")
	}

	// The component closes: its idle streams end at once, not after
	// directIdle.
	start := time.Now()
	closeX()
	for i, br := range idle {
		if _, _, err := ReadAnswer(br); err == nil {
			t.Fatalf("idle stream %d answered after close", i)
		}
	}
	if d := time.Since(start); d > directIdle/2 {
		t.Fatalf("idle streams ended %v after close", d)
	}
}

// TestSharedFetch: a reader that wants a block another reader is fetching
// waits for that fetch rather than asking again; when the fetching reader
// gives up, the waiting one fetches the block itself.
func TestSharedFetch(t *testing.T) {
	blk := rawBlock("shared")
	for _, giveUp := range []bool{false, true} {
		t.Run(fmt.Sprintf("giveUp=%v", giveUp), func(t *testing.T) {
			var n counters
			fb := &fallback{blocks: newMemBlocks(blk), release: make(chan struct{})}
			x, _ := newDirect(t, DirectConfig{Hooks: n.hooks(nil), Blocks: newMemBlocks()})
			first, second := x.NewSource(blk.Cid(), fb), x.NewSource(blk.Cid(), fb)
			defer first.Close()
			defer second.Close()

			ctx1, cancel1 := context.WithCancel(context.Background())
			defer cancel1()
			got1 := make(chan error, 1)
			go func() {
				_, err := first.GetBlock(ctx1, blk.Cid())
				got1 <- err
			}()
			waitFor(t, "the first fetch to start", func() bool { return fb.calls.Load() == 1 })
			got2 := make(chan error, 1)
			go func() {
				b, err := second.GetBlock(context.Background(), blk.Cid())
				if err == nil && !bytes.Equal(b.RawData(), blk.RawData()) {
					err = errors.New("wrong bytes")
				}
				got2 <- err
			}()
			waitFor(t, "the second reader to join the fetch", func() bool { return n.shared.Load() == 1 })
			wantCalls := int32(1)
			if giveUp {
				cancel1()
				if err := <-got1; !errors.Is(err, context.Canceled) {
					t.Fatalf("abandoned fetch: %v", err)
				}
				wantCalls = 2
				waitFor(t, "the second reader to fetch for itself", func() bool { return fb.calls.Load() == wantCalls })
			}
			close(fb.release)
			if err := <-got2; err != nil {
				t.Fatal(err)
			}
			if !giveUp {
				if err := <-got1; err != nil {
					t.Fatal(err)
				}
			}
			if got := fb.calls.Load(); got != wantCalls {
				t.Fatalf("the fallback was asked %d times, want %d", got, wantCalls)
			}
			if len(x.fetching) != 0 {
				t.Fatalf("%d fetches left registered", len(x.fetching))
			}
		})
	}
}

// holderPair is a reader's Direct on one host and, on another, a holder
// of blks that answers the blocks protocol with serve.
type holderPair struct {
	n        counters
	x        *Direct
	holder   host.Host
	fallback *fallback
	liars    *LiarDetector
}

func newHolderPair(t *testing.T, blks []blocks.Block, serve network.StreamHandler) *holderPair {
	t.Helper()
	hp := &holderPair{holder: newHost(t), fallback: &fallback{blocks: newMemBlocks(blks...)}}
	rh := newHost(t)
	hp.holder.SetStreamHandler(testProto, serve)
	hp.liars = NewLiarDetector(Hooks{Host: rh})
	hp.x, _ = newDirect(t, DirectConfig{
		Hooks:  hp.n.hooks(rh),
		Proto:  testProto,
		Blocks: newMemBlocks(),
		Liars:  hp.liars,
		AskHolds: func(_ context.Context, p peer.ID, _ cid.Cid) (byte, bool) {
			if p == hp.holder.ID() {
				return HoldComplete, true
			}
			return HoldNone, false
		},
	})
	connect(t, rh, hp.holder)
	return hp
}

// source opens a reader's Source for root and finds the holder.
func (hp *holderPair) source(t *testing.T, root cid.Cid) *Source {
	t.Helper()
	g := hp.x.NewSource(root, hp.fallback)
	t.Cleanup(g.Close)
	connected := false
	g.FindHolders(context.Background(), func() { connected = true }, func(tried string) {
		t.Errorf("nobody holds it: %s", tried)
	})
	if hs := g.Holders(); !connected || len(hs) != 1 || hs[0] != hp.holder.ID() {
		t.Fatalf("holders %v (connected called: %v), want the holder", hs, connected)
	}
	return g
}

// TestStreamFailsOver: blocks come over the holder's stream, checked and
// stored; when the stream breaks, the reader drops it with the stream's
// error and takes the next block from its fallback.
func TestStreamFailsOver(t *testing.T) {
	a, b := rawBlock("first"), rawBlock("second")
	holder, _ := newDirect(t, DirectConfig{Proto: testProto, Blocks: newMemBlocks(a, b)})
	hp := newHolderPair(t, []blocks.Block{a, b}, holder.Serve)
	g := hp.source(t, a.Cid())

	got, err := g.GetBlock(context.Background(), a.Cid())
	if err != nil || !bytes.Equal(got.RawData(), a.RawData()) {
		t.Fatalf("first block: %v", err)
	}
	if hp.fallback.calls.Load() != 0 || hp.n.fetched.Load() != uint64(len(a.RawData())) {
		t.Fatalf("fallback asked %d times, %d bytes over the stream; want 0 and %d",
			hp.fallback.calls.Load(), hp.n.fetched.Load(), len(a.RawData()))
	}
	if _, err := hp.x.cfg.Blocks.Get(context.Background(), a.Cid()); err != nil {
		t.Fatal("a block from the stream was not stored")
	}

	d := g.holders()[0]
	_ = d.st.Reset() // as if the connection broke
	got, err = g.GetBlock(context.Background(), b.Cid())
	if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
		t.Fatalf("second block: %v", err)
	}
	if hp.fallback.calls.Load() != 1 {
		t.Fatalf("fallback asked %d times, want 1", hp.fallback.calls.Load())
	}
	d.mu.Lock()
	serr := d.err
	d.mu.Unlock()
	if serr == nil || errors.Is(serr, errStreamDone) {
		t.Fatalf("stream error %v, want the reset", serr)
	}
	if len(g.Holders()) != 0 {
		t.Fatal("the broken stream is still in use")
	}
}

// badHolder answers every request as mode says: "forge" (flipped bytes),
// "miss" (not held) or "huge" (a length over MaxBlockSize).
func badHolder(mode string) network.StreamHandler {
	return func(st network.Stream) {
		defer st.Close()
		br := bufio.NewReader(st)
		for {
			if _, err := ReadCID(br); err != nil {
				return
			}
			var answer []byte
			switch mode {
			case "forge":
				answer = append(appendAnswer(nil, 4, true), "lies"...)
			case "miss":
				answer = appendAnswer(nil, 0, false)
			case "huge":
				answer = appendAnswer(nil, MaxBlockSize+1, true)
			}
			if _, err := st.Write(answer); err != nil {
				return
			}
		}
	}
}

// TestBadHolder: a holder that answers with bytes of another hash is
// banned and dropped at once; one that lacks directMaxMisses blocks, or
// answers with a length over the limit, is dropped and not banned. The
// blocks come from the fallback; only forged or malformed answers count
// as bad blocks.
func TestBadHolder(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		asks   int // blocks read until the stream is dropped
		banned bool
		bad    uint64
	}{
		{"forge", 1, true, 1},
		{"miss", directMaxMisses, false, 0},
		{"huge", 1, false, 1},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			var blks []blocks.Block
			for i := range directMaxMisses {
				blks = append(blks, rawBlock(fmt.Sprintf("block %d", i)))
			}
			hp := newHolderPair(t, blks, badHolder(tc.mode))
			g := hp.source(t, blks[0].Cid())
			for i, blk := range blks[:tc.asks] {
				got, err := g.GetBlock(context.Background(), blk.Cid())
				if err != nil || !bytes.Equal(got.RawData(), blk.RawData()) {
					t.Fatalf("block %d: %v", i, err)
				}
			}
			if len(g.Holders()) != 0 {
				t.Fatal("the bad holder is still asked")
			}
			if got := hp.liars.Banned(hp.holder.ID()); got != tc.banned {
				t.Fatalf("banned %v, want %v", got, tc.banned)
			}
			// A malformed answer is counted by the stream's reader once it
			// has released the requests waiting on it.
			waitFor(t, fmt.Sprintf("%d bad blocks counted", tc.bad), func() bool { return hp.n.badBlocks.Load() == tc.bad })
		})
	}
}

// FuzzReadAnswer: any bytes from a holder decode into answers or a clear
// error, never a panic or a block over the limit; well-formed answers
// decode to what was encoded.
func FuzzReadAnswer(f *testing.F) {
	f.Add(appendAnswer(nil, 0, false))
	f.Add(append(appendAnswer(nil, 3, true), "abc"...))
	f.Add(appendAnswer(nil, MaxBlockSize+1, true))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add(append(appendAnswer(nil, 5, true), "ab"...))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		var again []byte
		for {
			data, held, err := ReadAnswer(br)
			if err != nil {
				if !errors.Is(err, errBadAnswer) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(data) > MaxBlockSize || (!held && data != nil) {
				t.Fatalf("held %v with %d bytes", held, len(data))
			}
			again = append(appendAnswer(again, len(data), held), data...)
		}
		// What decoded re-encodes to a prefix of the input, unless a
		// length was written in more bytes than it needs.
		if !bytes.HasPrefix(in, again) {
			br := bufio.NewReader(bytes.NewReader(again))
			for {
				if _, _, err := ReadAnswer(br); err != nil {
					if err != io.EOF {
						t.Fatalf("re-encoded answers do not decode: %v", err)
					}
					break
				}
			}
		}
	})
}
