// Package dpaas is an embeddable SDK for self-replicating decentralized
// apps (DApps).
//
// A Go program imports dpaas, and every running instance of that program
// becomes a full peer replica of the DApp: it keeps and serves the DApp's
// documents and files, relays its messages, takes part in its governance,
// and can pay and be paid in tokens. No instance is special. Any instance
// can go down, or be taken down, and the DApp keeps running; a new
// instance joins through any peer and catches up.
//
// The packages, from the top down (imports only point down):
//
//	dapp        Node: one instance, opened from one Config
//	governance  proposals, signed ballots, deterministic tallies
//	payment     ERC-20 tokens, payment channels, metering
//	store       replicated CRDT document store on Pebble
//	blobs       IPFS (UnixFS) files on boxo and bitswap
//	pubsub      the DApp's messaging on GossipSub
//
// # Usage
//
//	node, err := dapp.Open(ctx, dapp.Config{
//		Dir:       "/var/lib/rides",             // everything the instance keeps
//		App:       dapp.Manifest{Name: "rides"}, // identifies the DApp
//		Bootstrap: []string{"/ip4/198.51.100.7/tcp/4001/p2p/16Uiu2..."},
//	})
//	if err != nil { ... }
//	defer node.Close()
//	topic, _ := node.PubSub().Join("ride-requests")
//	_ = topic.Publish(ctx, []byte(`{"from":"station","to":"airport"}`))
//
// The instance's one secp256k1 key is both its libp2p identity (node.ID)
// and its Ethereum account (node.Account). For tests, dapp/dapptest runs
// clusters of real nodes in one process, with partitions and restarts.
// The examples directory holds runnable programs; start with
// examples/quickstart.
package dpaas
