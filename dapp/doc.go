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
// StartPayments call, a count of a token-weighted governance proposal, or
// an escrow case (governance's OpenDeal, OpenCase, or a case document
// arriving: governance settles cases through the instance's payments).
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
// # Self-replication
//
// Every instance announces itself every Config.Mirror.Interval (10 s; in a
// DApp of more than 32 instances, every few Intervals, so that the DApp
// carries about 32 heartbeats per Interval whatever its size) in a
// heartbeat signed with its key, on the reserved topic "dapp/replicas":
// peer ID, account, addresses, gateway URL, build (the SHA-256 of its
// executable, hashed once in the background at start, and the Go build
// info), the release it claims, its declared location and a sample of the
// blobs it holds. A newcomer asks its first four peers for their
// directories and kicks a few heartbeats as it connects, so it knows the
// DApp, and the DApp knows it, within a second (BENCHMARKS.md).
// Replicas().List gives every instance heard from within Expire heartbeat
// periods (default 6), with what the others verified: Verified (its hash matches
// a release approved by governance for its platform), Availability,
// Group, RTT from here.
//
// Every heartbeat period each instance probes Probes (3) random others on
// /dpaas/<appid>/replicas/1.0.0: reachable, store not more than MaxBehind
// deltas behind its own, and a storage challenge (the SHA-256 of a fresh
// nonce and a random 4 KiB range of a blob the probed one claims and the
// prober holds, answered from held blocks only). The outcomes are counted
// per epoch (Config.Mirror.Epoch, one hour) in attestations signed by the
// prober and stored in the replicated collection
// "_replicas.attestations", whose validator on every replica accepts only
// the prober's own signed attestation, put whole. Since every replica
// checks the signature of every attestation written, a prober writes one
// at once when a probe's outcome differs from the one before, when it is
// among the first three of the probed instance that epoch (a newcomer is
// attested within a round), writes at once spaced by a heartbeat period
// (so the DApp carries about as many whatever its size), and on the last
// round of its epoch; the
// others wait for its periodic write, twelve times an epoch, which takes
// all of them in one delta (a prober that dies loses at most the counts
// since). An instance's score is
// the median over its probers of each one's share of passed probes, so a
// minority of lying probers moves nothing; Standings gives every
// instance's per-epoch score, group and build, a pure function of the
// attestations (payouts are computed from it). Each prober deletes its
// attestations older than KeepEpochs (24); those of a prober that never
// returns stay, at most KeepEpochs epochs of them.
//
// Instances whose addresses, as probers that dialled them observed them,
// share a /24 (IPv4) or /48 (IPv6), or that declare the same provider and
// region, form one diversity group; with Blobs.ReplicationFactor, copies
// go to distinct groups first. A probe costs about 0.013% of a core per
// instance at the default interval with 20 instances. A probe that had to
// dial closes its connection when it is over, unless the instance wants
// more peers: in a large DApp most probes dial, and their connections
// would otherwise push the mesh's out.
//
// What is verified and what is declared: the executable hash is what an
// instance's signed heartbeat says; nothing can prove what code a remote
// machine runs, so Verified means "declares an approved build". Reachability,
// store lag and storage are checked by others. A prober challenges only on
// blobs it holds itself, so with a replication factor an instance is
// challenged by the co-holders of its blobs only.
// # Payouts
//
// A DApp pays its instances from its Fund contract (payment.DeployFund,
// committee = the governance members' accounts), named by governance
// parameters: ParamPayoutFund ("payout.fund", unset: no payouts),
// ParamPayoutBudget ("payout.budget", smallest units per epoch, capped by
// the fund's on-chain budget and balance at the epoch's end) and
// ParamPayoutMinAvailability
// ("payout.min_availability_ppm", default 90%).
//
//	rows, hash, _ := node.Payouts().Table(ctx, e)  // anyone can recompute
//	st, _ := node.Payouts().Status(ctx, e)         // signatures, majority, paid
//
// An epoch's table is internal/payout's rule over the epoch's standings
// (verified build, availability) and what the Channels contract paid each
// instance in the epoch's blocks (payment.Payments.RedeemedTo): traffic
// backed by users' vouchers, never declared. An instance whose account is
// on the fund's committee waits Config.Payouts.Grace after each epoch
// (and for the chain to pass its end), computes the table, and writes its
// signature of it (payment.PayoutDigest) to PayoutSignaturesCollection.
// Once a strict majority of the committee signed one table hash, the
// signer with the lowest account submits it; the next ones a Grace
// later each, if it is still unpaid. Epochs with nothing to pay are
// neither signed nor submitted, and only the last three ended epochs
// above the fund's last paid one are considered. Every replica checks a
// signature document alone (ID "<epoch>/<account>", put whole by that
// account, its signature over the fund and chain it names recovers to
// it); refusals are counted (dpaas_dapp_payout_signatures_refused_total).
// Instances agree on a table when they hold the same attestations: the
// rest is read from the chain as it stood at the epoch's end (an
// endpoint that no longer holds that block's state, past a geth full
// node's 128 blocks, cannot compute it; use an archive node or compute
// within the Grace).
//
// # Serving users
//
// Gateway is the instance's HTTP face: the web UI of the latest approved
// release (governance Release.UI), /ipfs/{cid} with Range, the DApp's own
// API under /api/ (Config.API), the mirror list at /dpaas/mirrors, SVG
// badges at /dpaas/badge/{peer ID or "self"}/{online,verified,
// availability}.svg, and a failover client at /dpaas/client.js. With
// Config.HTTPAddr set, Open serves it there and Close stops it (requests
// in flight see their context end); HTTPAddr returns the address bound,
// and GatewayURL the URL announced to the other instances (Config.
// GatewayURL, or http://HTTPAddr when it is one address). Without it,
// mount Gateway on a server of the application's own.
//
// Badges and the mirror list show what other instances observed, never
// what an instance says of itself: "self" badges read "unknown" until
// others have attested the instance. A web page loads the client and
// sends its requests through it:
//
//	<script src="/dpaas/client.js"></script>
//	const res = await dpaas.fetch('/api/rides', {method: 'POST', body});
//
// The client times every mirror with a gateway, sends each request to the
// fastest healthy one (verified ones first), and on a network error,
// timeout or 5xx retries it on the next, so the page keeps working when
// the instance that served it stops (within 0.1 s on loopback, see
// BENCHMARKS.md). It keeps the list in localStorage. A request may thus
// be sent twice: make the API idempotent (a signed request with a nonce
// is). The user's identity is the user's own key in the browser, so any
// instance can serve any user. GatewayStats and the dpaas_dapp_gateway_
// metrics count what the gateway served and refused, including gateway
// URLs from peers that are not http(s) URLs of at most 2 KiB.
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
