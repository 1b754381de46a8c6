package pubsub_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p"
	gossip "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/dpaas/dpaas/pubsub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newPeer starts a libp2p host on loopback with a PubSub for app.
func newPeer(t *testing.T, app string, cfg pubsub.Config) (host.Host, *pubsub.PubSub) {
	t.Helper()
	h := newHost(t)
	cfg.Host, cfg.AppID = h, app
	ps, err := pubsub.Open(context.Background(), cfg)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ps.Close()
		h.Close()
	})
	return h, ps
}

// newHost starts a libp2p host on loopback with a secp256k1 identity, as
// dpaas instances have.
func newHost(t *testing.T) host.Host {
	t.Helper()
	k, _, err := p2pcrypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// waitPeer waits until t sees p subscribed.
func waitPeer(t *testing.T, topic *pubsub.Topic, p peer.ID) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(topic.Peers(), p) {
		if time.Now().After(deadline) {
			t.Fatalf("peer %s never joined topic %s", p, topic.Name())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitMesh waits until topic has every one of peers in its mesh.
func waitMesh(t *testing.T, topic *pubsub.Topic, peers ...peer.ID) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for slices.ContainsFunc(peers, func(p peer.ID) bool { return !slices.Contains(topic.MeshPeers(), p) }) {
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: mesh %v never held %v", topic.Name(), topic.MeshPeers(), peers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func join(t *testing.T, ps *pubsub.PubSub, name string) (*pubsub.Topic, *pubsub.Subscription) {
	t.Helper()
	topic, err := ps.Join(name)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return topic, sub
}

func next(t *testing.T, sub *pubsub.Subscription) *pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPublishDeliversSignedSender(t *testing.T) {
	ha, a := newPeer(t, "app", pubsub.Config{})
	hb, b := newPeer(t, "app", pubsub.Config{})
	connect(t, ha, hb)
	ta, subA := join(t, a, "chat")
	_, subB := join(t, b, "chat")
	waitPeer(t, ta, hb.ID())

	if err := ta.Publish(context.Background(), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m := next(t, subB)
	if m.From != ha.ID() || string(m.Data) != "hi" || m.Topic != "chat" {
		t.Fatalf("got %+v", m)
	}
	own := next(t, subA)
	if own.From != ha.ID() || own.ReceivedFrom != ha.ID() {
		t.Fatalf("own message: %+v", own)
	}
	if again, err := a.Join("chat"); err != nil || again != ta {
		t.Fatalf("second Join: %v, same topic %v", err, again == ta)
	}
	if s := b.Stats(); s.Delivered != 1 || s.Dropped != 0 {
		t.Fatalf("b stats: %+v", s)
	}
}

func TestAppsDoNotMix(t *testing.T) {
	ha, a := newPeer(t, "app-one", pubsub.Config{})
	hb, b := newPeer(t, "app-two", pubsub.Config{})
	hc, c := newPeer(t, "app-one", pubsub.Config{})
	connect(t, ha, hb)
	connect(t, hb, hc)
	connect(t, ha, hc)
	ta, _ := join(t, a, "chat")
	_, subB := join(t, b, "chat")
	_, subC := join(t, c, "chat")
	waitPeer(t, ta, hc.ID())

	if err := ta.Publish(context.Background(), []byte("for app-one")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, subC); string(m.Data) != "for app-one" {
		t.Fatalf("c got %q", m.Data)
	}
	if slices.Contains(ta.Peers(), hb.ID()) {
		t.Fatal("a peer of another app is subscribed to our topic")
	}
	// c has the message, so a's flood publish reached every subscriber of
	// the topic; b of the other app must have nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if m, err := subB.Next(ctx); err == nil {
		t.Fatalf("app-two received %q", m.Data)
	}
}

func TestPublishRefusesOversize(t *testing.T) {
	_, a := newPeer(t, "app", pubsub.Config{MaxMessageSize: 1024})
	topic, _ := join(t, a, "big")
	err := topic.Publish(context.Background(), make([]byte, 1025))
	if !errors.Is(err, pubsub.ErrTooLarge) {
		t.Fatalf("Publish 1025 bytes: %v, want ErrTooLarge", err)
	}
	if err := topic.Publish(context.Background(), make([]byte, 1024)); err != nil {
		t.Fatalf("Publish at the limit: %v", err)
	}
	if s := a.Stats(); s.TooLarge != 1 || s.Published != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestValidatorRejects(t *testing.T) {
	ha, a := newPeer(t, "app", pubsub.Config{})
	hb, b := newPeer(t, "app", pubsub.Config{})
	connect(t, ha, hb)
	ta, _ := join(t, a, "rides")
	tb, subB := join(t, b, "rides")
	waitPeer(t, ta, hb.ID())

	bad := []byte("bad")
	unregister, err := tb.SetValidator(func(_ context.Context, m *pubsub.Message) error {
		if bytes.Equal(m.Data, bad) {
			return fmt.Errorf("refusing %q", m.Data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.SetValidator(func(context.Context, *pubsub.Message) error { return nil }); err == nil {
		t.Fatal("second validator accepted")
	}
	ctx := context.Background()
	if err := ta.Publish(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if err := ta.Publish(ctx, []byte("good")); err != nil {
		t.Fatal(err)
	}
	// GossipSub validates messages concurrently, so "good" may be delivered
	// before "bad" is refused. Once the rejection is counted, "bad" can no
	// longer be delivered; a sentinel published afterwards ends the check.
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().Rejected == 0 {
		if time.Now().After(deadline) {
			t.Fatal("validator never rejected the bad message")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := ta.Publish(ctx, []byte("end")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seen["good"] == 0 || seen["end"] == 0 {
		m := next(t, subB)
		seen[string(m.Data)]++
		if string(m.Data) == "bad" {
			t.Fatal("rejected message delivered")
		}
	}
	if got := b.Stats().Rejected; got != 1 {
		t.Fatalf("rejected = %d, want 1", got)
	}
	// The instance's own message goes through its own validator too.
	if err := tb.Publish(ctx, bad); !errors.Is(err, pubsub.ErrRejected) {
		t.Fatalf("own bad publish: %v, want ErrRejected", err)
	}
	unregister()
	if err := tb.Publish(ctx, bad); err != nil {
		t.Fatalf("after unregister: %v", err)
	}
}

func TestSubscriptionEnds(t *testing.T) {
	_, a := newPeer(t, "app", pubsub.Config{})
	topic, err := a.Join("t")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	byCtx, err := topic.Subscribe(pubsub.Until(ctx))
	if err != nil {
		t.Fatal(err)
	}
	byClose, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { _, err := byCtx.Next(context.Background()); done <- err }()
	go func() { _, err := byClose.Next(context.Background()); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Next after Until ctx: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if err := topic.Publish(context.Background(), []byte("x")); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := a.Join("u"); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Join after Close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
}

func TestBadConfig(t *testing.T) {
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := pubsub.Open(context.Background(), pubsub.Config{Host: h}); !errors.Is(err, pubsub.ErrInvalidConfig) {
		t.Fatalf("Open without AppID: %v, want ErrInvalidConfig", err)
	}
	if _, err := pubsub.Open(context.Background(), pubsub.Config{AppID: "x"}); !errors.Is(err, pubsub.ErrInvalidConfig) {
		t.Fatalf("Open without host: %v, want ErrInvalidConfig", err)
	}
	// Instances sign with secp256k1; a host with another key type needs
	// Config.Key, and it must be the host's own.
	if _, err := pubsub.Open(context.Background(), pubsub.Config{Host: h, AppID: "x"}); !errors.Is(err, pubsub.ErrInvalidConfig) || !strings.Contains(err.Error(), "secp256k1") {
		t.Fatalf("Open on an ed25519 host: %v", err)
	}
	other, _ := ethcrypto.GenerateKey()
	if _, err := pubsub.Open(context.Background(), pubsub.Config{Host: h, AppID: "x", Key: other}); !errors.Is(err, pubsub.ErrInvalidConfig) {
		t.Fatalf("Open with a key that is not the host's: %v, want ErrInvalidConfig", err)
	}
	h2 := newHost(t)
	defer h2.Close()
	reg := prometheus.NewRegistry()
	ps, err := pubsub.Open(context.Background(), pubsub.Config{Host: h2, AppID: "x", Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || !slices.ContainsFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == "dpaas_pubsub_published_total" }) {
		t.Fatalf("metrics on Config.Metrics: %v, %v", mfs, err)
	}
	defer ps.Close()
	if _, err := ps.Join(""); !errors.Is(err, pubsub.ErrBadTopic) {
		t.Fatalf("Join empty: %v", err)
	}
}

// TestForgedMessagesAreRejected has a raw GossipSub peer, which speaks the
// wire protocol but not the envelope, inject garbage, a tampered message
// and an impersonation. None is delivered; each is counted; a valid
// message after them still is.
func TestForgedMessagesAreRejected(t *testing.T) {
	hv, victim := newPeer(t, "app", pubsub.Config{})
	hr, receiver := newPeer(t, "app", pubsub.Config{})
	ha := newHost(t)
	defer ha.Close()
	raw := rawRouter(t, ha)
	connect(t, ha, hr)
	connect(t, hv, hr)
	tv, subV := join(t, victim, "chat")
	tr, sub := join(t, receiver, "chat")
	attacker, err := raw.Join("/dpaas/app/chat")
	if err != nil {
		t.Fatal(err)
	}
	// The attacker subscribes too, to capture a genuine envelope of the
	// victim's off the wire.
	capture, err := attacker.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Cancel()
	defer attacker.Close()
	waitMesh(t, tr, ha.ID(), hv.ID())
	if err := tv.Publish(context.Background(), []byte("pay 1 token")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, sub); m.From != hv.ID() {
		t.Fatalf("genuine message from %s, want victim %s", m.From, hv.ID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	genuine, err := capture.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}

	tampered := bytes.Clone(genuine.Data)
	tampered[len(tampered)-1] = 'X' // "pay 1 tokeX"
	impostor := bytes.Clone(genuine.Data)
	impostor[len(impostor)-1] = 'Y'
	for _, bad := range [][]byte{[]byte("garbage"), tampered, impostor} {
		if err := attacker.Publish(context.Background(), bad); err != nil {
			t.Fatal(err)
		}
	}
	if err := tv.Publish(context.Background(), []byte("after the forgeries")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, sub); string(m.Data) != "after the forgeries" || m.From != hv.ID() {
		t.Fatalf("delivered %q from %s", m.Data, m.From)
	}
	deadline := time.Now().Add(10 * time.Second)
	for receiver.Stats().Invalid < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("invalid = %d, want 3", receiver.Stats().Invalid)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The attacker's own message with a signature of zeros, sent straight
	// to the receiver: the connection proves who sent it, so the receiver
	// delivers it as the attacker's. Relayed to the victim, it is checked
	// and refused.
	raw2, _ := ha.Peerstore().PrivKey(ha.ID()).Raw()
	ak, _ := ethcrypto.ToECDSA(raw2)
	addr := ethcrypto.PubkeyToAddress(ak.PublicKey)
	unsigned := append(append(append([]byte{1}, addr[:]...), make([]byte, 8+65)...), "unsigned, from the attacker"...)
	if err := attacker.Publish(context.Background(), unsigned); err != nil {
		t.Fatal(err)
	}
	if m := next(t, sub); string(m.Data) != "unsigned, from the attacker" || m.From != ha.ID() {
		t.Fatalf("receiver delivered %q from %s", m.Data, m.From)
	}
	for _, want := range []string{"pay 1 token", "after the forgeries"} {
		if m := next(t, subV); string(m.Data) != want {
			t.Fatalf("victim's own message %q, want %q", m.Data, want)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for victim.Stats().Invalid < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the relayed unsigned message was not refused by the victim")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctxV, cancelV := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelV()
	if m, err := subV.Next(ctxV); err == nil {
		t.Fatalf("victim delivered %q", m.Data)
	}
}

// What a validator stores in Message.Decoded reaches the subscriber with
// the message.
func TestValidatorHandsDecodedToSubscriber(t *testing.T) {
	ha, a := newPeer(t, "app", pubsub.Config{})
	hb, b := newPeer(t, "app", pubsub.Config{})
	connect(t, ha, hb)
	ta, _ := join(t, a, "rides")
	tb, subB := join(t, b, "rides")
	waitPeer(t, ta, hb.ID())
	if _, err := tb.SetValidator(func(_ context.Context, m *pubsub.Message) error {
		m.Decoded = strings.ToUpper(string(m.Data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := ta.Publish(context.Background(), []byte("ride")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, subB); m.Decoded != "RIDE" {
		t.Fatalf("Decoded = %v, want RIDE", m.Decoded)
	}
}

// In a triangle the instances relay a message to each other: at least one
// of them gets it twice, the second copy counted as a duplicate.
func TestDuplicatesCounted(t *testing.T) {
	ha, a := newPeer(t, "app", pubsub.Config{})
	hb, b := newPeer(t, "app", pubsub.Config{})
	hc, c := newPeer(t, "app", pubsub.Config{})
	connect(t, ha, hb)
	connect(t, hb, hc)
	connect(t, ha, hc)
	ta, _ := join(t, a, "chat")
	tb, subB := join(t, b, "chat")
	tc, subC := join(t, c, "chat")
	waitMesh(t, ta, hb.ID(), hc.ID())
	waitMesh(t, tb, ha.ID(), hc.ID())
	waitMesh(t, tc, ha.ID(), hb.ID())
	deadline := time.Now().Add(20 * time.Second)
	if err := ta.Publish(context.Background(), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	next(t, subB)
	next(t, subC)
	dups := func() uint64 { return a.Stats().Duplicates + b.Stats().Duplicates + c.Stats().Duplicates }
	for dups() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no duplicate counted in a triangle")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := b.Stats(); s.Delivered != 1 {
		t.Fatalf("b delivered %d, want 1 (a duplicate is not delivered)", s.Delivered)
	}
}

// rawRouter is a GossipSub router on h with the envelope's wire settings,
// but it publishes whatever bytes the test gives it: an attacker.
func rawRouter(t *testing.T, h host.Host) *gossip.PubSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	raw, err := gossip.NewGossipSub(ctx, h,
		gossip.WithNoAuthor(), gossip.WithMessageSignaturePolicy(gossip.StrictNoSign),
		gossip.WithMessageIdFn(func(m *pb.Message) string { return string(m.Data) }))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
