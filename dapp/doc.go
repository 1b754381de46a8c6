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
// Whatever found the first one, instances then find each other by peer
// exchange, always on: an instance asks every instance that connects to
// it for the instances that one is connected to (signed libp2p peer
// records, on /dpaas/<appid>/px/1.0.0), and dials them until it is
// connected to Config.PeerTarget (default 8), choosing across network
// groups (/24, /48) first. An instance that a newcomer joins through also
// sends the newcomer's record on a few random walks, whose ends dial it,
// so that newcomers link across the DApp and not only to their seed's
// neighbours. Beyond twice the target an instance closes connections
// from the most crowded groups. So instances that joined through one
// seed are connected to each other within a second, and stay one DApp
// when the seed dies.
//
// Each instance keeps an address book in its database (in memory when
// Dir is ""): the instances it was connected to, with their last signed
// addresses and when. At start it dials from the book as well as from
// Bootstrap, so a restart does not need the instance it first joined
// through. DiscoveryStats and the dpaas_dapp_peers metric say how many
// instances it is connected to; a warning is logged when that falls to
// one or none while the book knows others.
//
// # Payments
//
// Payments is the instance's wallet on the chain Config.Payment names,
// opened by Open. When it names none (neither RPCURL nor Dev), nothing is
// started until the instance first uses payments: the first Payments or
// StartPayments call, or a count of a token-weighted governance proposal.
// Then it joins the private development chain of the process, which all
// such instances of the process share: the first to use it starts it, it
// closes when the last that used it closes, and the faucet gives each
// account 1,000 tokens the first time it uses that chain (a restarted
// instance keeps what it held while the chain ran). The chain has a
// random chain ID and is seen by no other process: the first transfer to
// an account no instance of the process uses logs a warning. An instance
// that never uses payments costs no chain (about 5 MiB of heap and 45
// goroutines each, see BENCHMARKS.md) and serves no metering protocol: a
// peer's Meter asking it for payment gets "protocol not supported"
// rather than a refusal. Either way it is not paid, as an instance that
// never used payments has no channel and no auto-pay limit to pay with.
// Its dpaas_payment_ metrics read zero until payments start.
//
// # Faults and bad input
//
// A record passed on by a peer is a candidate, not trusted: its signature
// must name its key, and it enters the book as verified only once a
// connection to it proved the key and it spoke the DApp's exchange.
// Candidates are never passed on. The book holds at most 256 verified
// entries and 64 candidates, 16 of them from any one peer; a peer whose
// records keep failing (8 failed dials, fewer than one success in four)
// is not believed for an hour. At most 4 dials from the book are in
// flight. Messages over their bounds (32 records of 4 KiB) or that do not
// decode are refused and counted (DiscoveryStats.Malformed,
// dpaas_dapp_peerex_malformed_total). Verified entries age out 14 days
// after they were last connected, candidates after an hour.
//
// # Caller duties
//
//  1. Use the same Manifest on every instance of the DApp.
//  2. Give each instance its own Dir; two processes must never share one.
//  3. Call Close when done: it stops everything the Node started and waits
//     for it. After Close, methods that do work return ErrClosed.
//
// For tests, package dapptest runs clusters of real Nodes in one process.
//
// # Lifecycle
//
// Every component of the SDK (store, blobs, pubsub, payment, governance,
// dapp) has one lifecycle. Open(ctx, Config) starts it; a zero Config
// field means its default (Config says which fields are required), and
// Open copies the Config. A Config that Open cannot use fails it with an
// error wrapping the package's ErrInvalidConfig. A nil Config.Logger
// discards logs; Config.Metrics, when set, receives the component's
// Prometheus metrics from Open until Close; a clock, where a component
// takes one, is Config.Now. Close stops the component and waits for
// every goroutine it started; it is safe to call more than once, and every
// call after the first returns an error wrapping the package's ErrClosed.
package dapp
