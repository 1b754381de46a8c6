// Package dapp runs an instance of a decentralized app: a Node.
//
// Every running instance of a program built on dpaas is a full peer
// replica of its DApp. A Node is one such instance: a libp2p host (TCP and
// QUIC, Noise and TLS, with resource and connection managers), the
// instance's Pebble database and key, the DApp's messaging, and discovery
// of the other instances. No instance is special; any may stop and the
// others carry on.
//
// # Usage
//
//	node, err := dapp.Open(ctx, dapp.Config{
//		Dir: "/var/lib/rides",             // "" keeps everything in memory
//		App: dapp.Manifest{Name: "rides"}, // the same on every instance
//		Bootstrap: []string{"/ip4/198.51.100.7/tcp/4001/p2p/16Uiu2..."},
//		DHT: true,                         // find instances by AppID
//	})
//	if err != nil {
//		return err
//	}
//	defer node.Close()
//	fmt.Println(node.ID(), node.Account(), node.Addrs())
//
// # Identity
//
// The manifest's hash is the AppID (Manifest.AppID). Every protocol ID,
// topic and rendezvous key carries it, so instances of different DApps,
// or of different genesis settings, never mix even when they share
// connections. The instance's one secp256k1 key, kept in Dir/node.key with
// mode 0600, is both its libp2p peer ID (ID) and its Ethereum account
// (Account).
//
// # Discovery
//
// An instance finds the others through, in any combination: Bootstrap
// addresses, which it dials at start and re-dials with backoff whenever
// they are not connected; mDNS on the local network (Config.MDNS); and a
// rendezvous on the AppID in a Kademlia DHT (Config.DHT), under its own
// protocol prefix unless told to use the public IPFS DHT. Peers lists the
// connected instances of the same DApp, which are protected from
// connection trimming.
//
// # Caller duties
//
//  1. Use the same Manifest on every instance of the DApp.
//  2. Give each instance its own Dir; two processes must never share one.
//  3. Call Close when done: it stops everything the Node started and waits
//     for it. After Close, methods that do work return ErrClosed.
//
// For tests, package dapptest runs clusters of real Nodes in one process.
package dapp
