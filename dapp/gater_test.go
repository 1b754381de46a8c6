package dapp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dpaas/dpaas/dapp"
)

// TestForgerIsBannedByTheHost: a peer that pushes blocks nobody asked for
// over the DApp's bitswap is banned by the node's host: the node will not
// dial it, and its own dials are refused.
func TestForgerIsBannedByTheHost(t *testing.T) {
	n := open(t, dapp.Config{App: dapp.Manifest{Name: "rides"}})
	lh, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer lh.Close()
	ctx := context.Background()
	self := peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}
	if err := lh.Connect(ctx, self); err != nil {
		t.Fatal(err)
	}
	net := bsnet.NewFromIpfsHost(lh, bsnet.Prefix(protocol.ID("/dpaas/"+n.AppID().String()+"/blobs")))
	msg := bsmsg.New(false)
	for i := range 3 {
		msg.AddBlock(blocks.NewBlock([]byte(fmt.Sprint("never asked for ", i))))
	}
	if err := net.SendMessage(ctx, n.ID(), msg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !n.Blobs().Banned(lh.ID()) || n.Host().Network().Connectedness(lh.ID()) == network.Connected {
		if time.Now().After(deadline) {
			t.Fatalf("forger not banned and disconnected (banned %v, forged blocks %d)",
				n.Blobs().Banned(lh.ID()), n.Blobs().Metrics().BadBlocks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	liar := peer.AddrInfo{ID: lh.ID(), Addrs: lh.Addrs()}
	if err := n.Host().Connect(ctx, liar); err == nil {
		t.Fatal("the node dialled a banned peer")
	}
	lh.Network().ClosePeer(n.ID())
	lh.Peerstore().RemovePeer(n.ID())
	if err := lh.Connect(ctx, self); err == nil {
		// The dialer may finish its side of the handshake before the node
		// refuses; the connection must not stay.
		for n.Host().Network().Connectedness(lh.ID()) == network.Connected ||
			lh.Network().Connectedness(n.ID()) == network.Connected {
			if time.Now().After(deadline) {
				t.Fatal("a banned peer's dial was accepted")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
