package pubsub_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/pubsub"
)

// Two instances of one DApp on loopback: one publishes on a topic, the
// other receives the message, signed by its author.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Instances sign messages with their host's secp256k1 key.
	newHost := func() host.Host {
		k, _, err := p2pcrypto.GenerateSecp256k1Key(rand.Reader)
		if err != nil {
			panic(err)
		}
		h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			panic(err)
		}
		return h
	}
	alice, bob := newHost(), newHost()
	defer alice.Close()
	defer bob.Close()
	if err := bob.Connect(ctx, peer.AddrInfo{ID: alice.ID(), Addrs: alice.Addrs()}); err != nil {
		panic(err)
	}

	open := func(h host.Host) *pubsub.PubSub {
		ps, err := pubsub.Open(ctx, pubsub.Config{Host: h, AppID: "rides"})
		if err != nil {
			panic(err)
		}
		return ps
	}
	pa, pb := open(alice), open(bob)
	defer pa.Close()
	defer pb.Close()
	ta, _ := pa.Join("ride-requests")
	tb, _ := pb.Join("ride-requests")
	sub, _ := tb.Subscribe()
	defer sub.Close()

	// Publish reaches the peers known to be on the topic: wait for bob's
	// subscription to reach alice.
	for len(ta.Peers()) == 0 {
		select {
		case <-ctx.Done():
			panic("bob's subscription never reached alice")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := ta.Publish(ctx, []byte("from the station to the airport")); err != nil {
		panic(err)
	}
	msg, err := sub.Next(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("bob received %q, from alice: %v\n", msg.Data, msg.From == alice.ID())
	// Output:
	// bob received "from the station to the airport", from alice: true
}
