package pubsub_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	gossip "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/dpaas/dpaas/pubsub"
)

// A payload signed by its author: signature (65 bytes) | text.
func signedPayload(t *testing.T, key *ecdsa.PrivateKey, text string) []byte {
	t.Helper()
	sig, err := ethcrypto.Sign(ethcrypto.Keccak256([]byte(text)), key)
	if err != nil {
		t.Fatal(err)
	}
	return append(sig, text...)
}

// authenticator recovers the signer of a signedPayload and hands its text
// on as the decoded form; it counts its calls.
func authenticator(calls *atomic.Int64) pubsub.Authenticator {
	return func(payload []byte) ([]byte, any, error) {
		calls.Add(1)
		if len(payload) < 65 {
			return nil, nil, errors.New("no signature")
		}
		pub, err := ethcrypto.Ecrecover(ethcrypto.Keccak256(payload[65:]), payload[:65])
		return pub, string(payload[65:]), err
	}
}

func hostKey(t *testing.T, h host.Host) *ecdsa.PrivateKey {
	t.Helper()
	raw, err := h.Peerstore().PrivKey(h.ID()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ethcrypto.ToECDSA(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A self-signed payload crosses a line of three: the relayed copy is
// authenticated by the topic's Authenticator alone, which names the
// sender and hands its decoded form to the validator and subscribers.
func TestPublishSignedAcrossALine(t *testing.T) {
	ha, a := newPeer(t, "app", pubsub.Config{})
	hb, b := newPeer(t, "app", pubsub.Config{})
	hc, c := newPeer(t, "app", pubsub.Config{})
	connect(t, ha, hb)
	connect(t, hb, hc)
	var calls [3]atomic.Int64
	var topics [3]*pubsub.Topic
	var subs [3]*pubsub.Subscription
	for i, ps := range []*pubsub.PubSub{a, b, c} {
		topics[i], subs[i] = join(t, ps, "votes")
		if err := topics[i].SetAuthenticator(authenticator(&calls[i])); err != nil {
			t.Fatal(err)
		}
	}
	if err := topics[2].SetAuthenticator(authenticator(&calls[2])); err == nil {
		t.Fatal("a second authenticator was accepted")
	}
	var validated atomic.Value
	if _, err := topics[2].SetValidator(func(_ context.Context, m *pubsub.Message) error {
		validated.Store(m.Decoded)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitMesh(t, topics[0], hb.ID())
	waitMesh(t, topics[1], ha.ID(), hc.ID())
	waitMesh(t, topics[2], hb.ID())
	payload := signedPayload(t, hostKey(t, ha), "yes to proposal 7")
	if err := topics[0].PublishSigned(context.Background(), payload); err != nil {
		t.Fatal(err)
	}
	m := next(t, subs[2])
	if m.From != ha.ID() || m.ReceivedFrom != hb.ID() || string(m.Data) != string(payload) || m.Decoded != "yes to proposal 7" {
		t.Fatalf("relayed: from %s via %s, data %q, decoded %v", m.From, m.ReceivedFrom, m.Data, m.Decoded)
	}
	if got := validated.Load(); got != "yes to proposal 7" {
		t.Fatalf("the validator saw Decoded = %v", got)
	}
	if own := next(t, subs[0]); own.From != ha.ID() || own.Decoded != "yes to proposal 7" {
		t.Fatalf("own message: from %s, decoded %v", own.From, own.Decoded)
	}
	if calls[1].Load() != 1 || calls[2].Load() != 1 {
		t.Fatalf("authenticator calls: relay %d, end %d, want 1 each", calls[1].Load(), calls[2].Load())
	}
	if s := c.Stats(); s.Invalid != 0 || s.Delivered != 1 {
		t.Fatalf("end of the line: %+v", s)
	}
}

// PublishSigned sends nothing that its receivers would refuse.
func TestPublishSignedRefusesWhatReceiversWould(t *testing.T) {
	_, a := newPeer(t, "app", pubsub.Config{})
	topic, _ := join(t, a, "votes")
	other, err := ethcrypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	payload := signedPayload(t, other, "not mine")
	if err := topic.PublishSigned(context.Background(), payload); !errors.Is(err, pubsub.ErrRejected) {
		t.Fatalf("without an authenticator: %v, want ErrRejected", err)
	}
	var calls atomic.Int64
	if err := topic.SetAuthenticator(authenticator(&calls)); err != nil {
		t.Fatal(err)
	}
	if err := topic.PublishSigned(context.Background(), payload); !errors.Is(err, pubsub.ErrRejected) {
		t.Fatalf("signed by another key: %v, want ErrRejected", err)
	}
	if err := topic.PublishSigned(context.Background(), []byte("short")); !errors.Is(err, pubsub.ErrRejected) {
		t.Fatalf("unsigned: %v, want ErrRejected", err)
	}
	if s := a.Stats(); s.Published != 0 {
		t.Fatalf("published %d", s.Published)
	}
}

// A raw GossipSub peer injects unsigned envelopes: one naming another
// instance as its sender over a payload the attacker signed, one over a
// payload signed by nobody, and one on a topic that takes none. Each is
// refused and counted; the attacker's own genuine one is delivered.
func TestSelfSignedForgeriesRefused(t *testing.T) {
	hv, _ := newPeer(t, "app", pubsub.Config{})
	hr, receiver := newPeer(t, "app", pubsub.Config{})
	ha := newHost(t)
	defer ha.Close()
	raw := rawRouter(t, ha)
	connect(t, ha, hr)
	var calls atomic.Int64
	votes, sub := join(t, receiver, "votes")
	if err := votes.SetAuthenticator(authenticator(&calls)); err != nil {
		t.Fatal(err)
	}
	plain, _ := join(t, receiver, "plain")
	attackerVotes, err := raw.Join("/dpaas/app/votes")
	if err != nil {
		t.Fatal(err)
	}
	defer attackerVotes.Close()
	attackerPlain, err := raw.Join("/dpaas/app/plain")
	if err != nil {
		t.Fatal(err)
	}
	defer attackerPlain.Close()
	// Subscribed, so the receiver sees the attacker on both topics.
	for _, topic := range []*gossip.Topic{attackerVotes, attackerPlain} {
		s, err := topic.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Cancel()
	}
	waitMesh(t, votes, ha.ID())
	waitMesh(t, plain, ha.ID())
	deadline := time.Now().Add(10 * time.Second)
	unsigned := func(sender host.Host, payload []byte) []byte {
		addr := ethcrypto.PubkeyToAddress(hostKey(t, sender).PublicKey)
		return append(append([]byte{2}, addr[:]...), payload...)
	}
	mine := signedPayload(t, hostKey(t, ha), "the attacker's own")
	if err := attackerVotes.Publish(context.Background(), unsigned(ha, mine)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("the genuine message was not delivered: %v; stats %+v, %d authenticator calls", err, receiver.Stats(), calls.Load())
	}
	if m.From != ha.ID() || m.Decoded != "the attacker's own" {
		t.Fatalf("delivered from %s: %v", m.From, m.Decoded)
	}
	for _, bad := range [][]byte{
		unsigned(hv, mine), // names the victim, signed by the attacker
		unsigned(ha, []byte("signed by nobody")),
		{2, 1, 2}, // too short
	} {
		if err := attackerVotes.Publish(context.Background(), bad); err != nil {
			t.Fatal(err)
		}
	}
	if err := attackerPlain.Publish(context.Background(), unsigned(ha, signedPayload(t, hostKey(t, ha), "on a topic without an authenticator"))); err != nil {
		t.Fatal(err)
	}
	for receiver.Stats().Invalid < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 4 invalid", receiver.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := receiver.Stats(); s.Delivered != 1 {
		t.Fatalf("delivered %d, want 1", s.Delivered)
	}
}
