package dapp_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/internal/addrbook"
	"github.com/dpaas/dpaas/internal/peerex"
)

// dialCounter is a connection gater that counts dials of the peers in
// fake and refuses nothing.
type dialCounter struct {
	mu    sync.Mutex
	fake  map[peer.ID]bool
	dials int
}

func (d *dialCounter) InterceptPeerDial(p peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fake[p] {
		d.dials++
	}
	return true
}
func (d *dialCounter) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool { return true }
func (d *dialCounter) InterceptAccept(network.ConnMultiaddrs) bool         { return true }
func (d *dialCounter) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (d *dialCounter) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
func (d *dialCounter) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials
}

// TestHostilePeerExchange: a peer that speaks the DApp's protocols answers
// every exchange with records of instances that do not exist (signed by
// keys it made up, at an address where nothing listens), and reconnects
// over and over so that it is asked again: thousands of fake instances.
// The address book stays within its bound, the instance dials only a
// handful of them, and keeps its honest peer.
func TestHostilePeerExchange(t *testing.T) {
	app := dapp.Manifest{Name: t.Name()}
	const fakes = 3000
	var records [][]byte
	counter := &dialCounter{fake: make(map[peer.ID]bool)}
	nowhere := []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/1")}
	for range fakes {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		r, err := addrbook.Seal(key, nowhere)
		if err != nil {
			t.Fatal(err)
		}
		counter.fake[r.ID] = true
		records = append(records, r.Envelope)
	}

	honest := open(t, dapp.Config{App: app})
	victim := open(t, dapp.Config{App: app, ConnectionGater: counter, Bootstrap: []string{honest.Addrs()[0].String()}})
	waitUntil(t, "the victim connected to its honest peer", func() bool { return slices.Contains(victim.Peers(), honest.ID()) })

	hostile, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer hostile.Close()
	hostKey := hostile.Peerstore().PrivKey(hostile.ID())
	own, err := addrbook.Seal(hostKey, hostile.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	prefix := "/dpaas/" + app.AppID().String()
	hostile.SetStreamHandler(protocol.ID(prefix+"/hello/1.0.0"), func(s network.Stream) { s.Close() })
	var served, advertised atomic.Int64
	var mu sync.Mutex
	next := 0
	hostile.SetStreamHandler(protocol.ID(prefix+"/px/1.0.0"), func(s network.Stream) {
		defer s.Close()
		if _, err := peerex.ReadFrame(bufio.NewReader(s)); err != nil {
			s.Reset()
			return
		}
		mu.Lock()
		n := peerex.MaxRecords - 1
		if served.Load() == 0 {
			n = peerex.MaxRecords // one over the bound: refused whole
		}
		recs := [][]byte{own.Envelope}
		for range n {
			recs = append(recs, records[next%len(records)])
			next++
		}
		mu.Unlock()
		b, err := peerex.Encode(peerex.Message{Records: recs[:min(len(recs), peerex.MaxRecords)]})
		if n == peerex.MaxRecords {
			// Encode refuses it too; write it past the encoder.
			b, err = encodeUnchecked(recs)
		}
		if err != nil {
			t.Error(err)
			return
		}
		if err := peerex.WriteFrame(s, b); err == nil {
			advertised.Add(int64(n))
			served.Add(1)
		}
	})

	target := peer.AddrInfo{ID: victim.ID(), Addrs: victim.Host().Addrs()}
	for advertised.Load() < fakes {
		before := served.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := hostile.Connect(ctx, target); err != nil {
			cancel()
			t.Fatal(err)
		}
		cancel()
		waitUntil(t, "the victim to ask the hostile peer", func() bool { return served.Load() > before })
		if before == 0 {
			// The first answer is over the bound: the victim reads it
			// before the connection goes (closed at once, a TCP
			// connection may take the unread answer with it).
			waitUntil(t, "the victim to refuse the answer over the bound", func() bool { return victim.DiscoveryStats().Malformed >= 1 })
		}
		// The victim may dial back (the hostile peer is an instance it
		// verified); every new connection is asked again.
		hostile.Network().ClosePeer(victim.ID())
	}
	// Give the victim time to dial what it would dial (its rounds run at
	// least every 250 ms while it learns): wait until it has dialled and
	// stopped, or seen a few rounds with nothing left to dial.
	waitUntil(t, "the victim to give up on the fake instances", func() bool {
		return victim.DiscoveryStats().Candidates == 0
	})
	st := victim.DiscoveryStats()
	t.Logf("advertised %d fake instances in %d answers; victim dialled %d of them; stats %+v",
		advertised.Load(), served.Load(), counter.count(), st)
	if st.Candidates > addrbook.DefaultMaxCandidates {
		t.Fatalf("%d candidates in the book, over its bound %d", st.Candidates, addrbook.DefaultMaxCandidates)
	}
	// Eight failures distrust the source, with at most four dials in
	// flight when that happens.
	if d := counter.count(); d > addrbook.DefaultMaxSourceFailures+4 {
		t.Fatalf("the victim dialled %d fake instances", d)
	}
	if st.Malformed < 1 {
		t.Fatal("the answer over the bound was not counted as malformed")
	}
	if !slices.Contains(victim.Peers(), honest.ID()) || st.Known < 1 {
		t.Fatalf("the victim lost its honest peer: peers %v, stats %+v", victim.Peers(), st)
	}
}

func encodeUnchecked(recs [][]byte) ([]byte, error) {
	// A CBOR map {"r": [records...]}, built by hand as a peer that does
	// not use the package's encoder would.
	b := []byte{0xa1, 0x61, 'r'}
	b = appendHead(b, 4, uint64(len(recs)))
	for _, r := range recs {
		b = appendHead(b, 2, uint64(len(r)))
		b = append(b, r...)
	}
	return b, nil
}

func appendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major<<5|byte(n))
	case n < 256:
		return append(b, major<<5|24, byte(n))
	default:
		return append(b, major<<5|25, byte(n>>8), byte(n))
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHostileWalks: a peer that speaks the DApp's protocols sends walk
// steps ending at the victim for a thousand instances that do not exist.
// Each would be dialled (a walk's end dials the joining instance), but
// one at a time, and the failures soon make the sender distrusted.
func TestHostileWalks(t *testing.T) {
	app := dapp.Manifest{Name: t.Name()}
	const fakes = 1000
	counter := &dialCounter{fake: make(map[peer.ID]bool)}
	nowhere := []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/1")}
	var records [][]byte
	for range fakes {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		r, err := addrbook.Seal(key, nowhere)
		if err != nil {
			t.Fatal(err)
		}
		counter.fake[r.ID] = true
		records = append(records, r.Envelope)
	}
	victim := open(t, dapp.Config{App: app, ConnectionGater: counter})

	hostile, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer hostile.Close()
	own, err := addrbook.Seal(hostile.Peerstore().PrivKey(hostile.ID()), hostile.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	px := protocol.ID("/dpaas/" + app.AppID().String() + "/px/1.0.0")
	hostile.SetStreamHandler(px, func(s network.Stream) { s.Reset() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := hostile.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	for _, rec := range records {
		b, err := peerex.Encode(peerex.Message{Records: [][]byte{own.Envelope, rec}, Walk: 1})
		if err != nil {
			t.Fatal(err)
		}
		s, err := hostile.NewStream(ctx, victim.ID(), px)
		if err != nil {
			t.Fatal(err)
		}
		if err := peerex.WriteFrame(s, b); err != nil {
			t.Fatal(err)
		}
		// The victim closes the stream once it has taken the step.
		_, _ = s.Read(make([]byte, 1))
		s.Close()
	}
	waitUntil(t, "the victim's dials to end", func() bool { return victim.DiscoveryStats().Candidates == 0 })
	st := victim.DiscoveryStats()
	t.Logf("%d walks to made-up instances; victim dialled %d; stats %+v", fakes, counter.count(), st)
	// Eight failures distrust the sender; at most four dials from the
	// book and one at a walk's end are in flight when that happens.
	if d := counter.count(); d > addrbook.DefaultMaxSourceFailures+5 {
		t.Fatalf("the victim dialled %d made-up instances", d)
	}
}
