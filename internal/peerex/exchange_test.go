package peerex

import (
	"bufio"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/dpaas/dpaas/internal/addrbook"
)

const proto = "/dpaas/test/px/1.0.0"

// TestMain fails the package if a test leaves a goroutine behind: every
// Exchange and host is closed by its test's cleanups.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"))
}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
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

func newExchange(t *testing.T, h host.Host) (*Exchange, *addrbook.Book) {
	t.Helper()
	b, err := addrbook.Open(addrbook.Options{Self: h.ID()})
	if err != nil {
		t.Fatal(err)
	}
	x, err := New(Config{Host: h, Protocol: proto, Book: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x, b
}

// TestThirdLearnsFromSecond: a connects to b, c connects to b; c learns
// of a from b and connects to it, and a's book verifies c.
func TestThirdLearnsFromSecond(t *testing.T) {
	ha, hb, hc := newHost(t), newHost(t), newHost(t)
	xa, ba := newExchange(t, ha)
	_, _ = newExchange(t, hb)
	xc, _ := newExchange(t, hc)
	ctx := context.Background()
	if err := ha.Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to know a", func() bool { return xa.Stats().Exchanges > 0 })
	if err := hc.Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c connected to a through b's records", func() bool {
		e, ok := ba.Get(hc.ID())
		return xc.Stats().Peers == 2 && xa.Stats().Peers == 2 && ok && e.Verified
	})
}

// TestForgedAskerRefused: an asker whose record is another peer's is
// refused and counted, and enters nobody in the book.
func TestForgedAskerRefused(t *testing.T) {
	ha, hm, hv := newHost(t), newHost(t), newHost(t)
	xa, ba := newExchange(t, ha)
	victimRec, err := addrbook.Seal(hv.Peerstore().PrivKey(hv.ID()), hv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := hm.Connect(ctx, peer.AddrInfo{ID: ha.ID(), Addrs: ha.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := hm.NewStream(ctx, ha.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := Encode(Message{Records: [][]byte{victimRec.Envelope}})
	if err := WriteFrame(s, req); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFrame(bufio.NewReader(s)); err == nil {
		t.Fatal("a forged asker got an answer")
	}
	s.Close()
	waitFor(t, "the forged ask counted", func() bool { return xa.Stats().Malformed == 1 })
	if _, ok := ba.Get(hv.ID()); ok {
		t.Fatal("the impersonated peer entered the book")
	}
	if _, ok := ba.Get(hm.ID()); ok {
		t.Fatal("a peer that does not speak the exchange entered the book")
	}
}
