package dapp_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/internal/mirror"
	"github.com/dpaas/dpaas/internal/systopic"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// Heartbeats travel in unsigned pubsub envelopes, their own signature
// authenticating them. One in a signed envelope (an instance of an
// earlier version) is still taken; one that this instance did not sign is
// refused before it leaves.
func TestHeartbeatEnvelopes(t *testing.T) {
	c := dapptest.New(t, 2, dapptest.Options{Topology: dapptest.Star})
	c.WaitConnected()
	a, b := c.Node(0), c.Node(1)
	topic, err := systopic.Join[*pubsub.Topic](a.PubSub(), dapp.HeartbeatTopic)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seal := func(key crypto.PrivKey, release string) []byte {
		t.Helper()
		hb := mirror.Heartbeat{Peer: a.ID(), Account: a.Account(), Release: release, Time: time.Now().UnixNano()}
		raw, err := mirror.SealHeartbeat(key, a.AppID().String(), hb)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	own := a.Host().Peerstore().PrivKey(a.ID())
	// Published again, with a later time, until b has it: a heartbeat of
	// a's own sent meanwhile may be newer than one, or b may not yet be
	// on the topic.
	deadline := time.Now().Add(20 * time.Second)
	for seen := false; !seen; {
		if err := topic.Publish(ctx, seal(own, "in a signed envelope")); err != nil {
			t.Fatal(err)
		}
		for wait := time.Now().Add(time.Second); !seen && time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			r, err := b.Replicas().Get(ctx, a.ID())
			seen = err == nil && r.Release == "in a signed envelope"
		}
		if !seen && time.Now().After(deadline) {
			t.Fatal("the heartbeat in a signed envelope never arrived")
		}
	}
	other, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := topic.PublishSigned(ctx, seal(other, "forged")); !errors.Is(err, pubsub.ErrRejected) {
		t.Fatalf("a heartbeat signed by another key: %v, want ErrRejected", err)
	}
	if _, malformed := dapp.MirrorCounts(b); malformed != 0 {
		t.Fatalf("b refused %d heartbeats", malformed)
	}
}
