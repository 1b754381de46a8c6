package dapp

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/blobs"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/dpaas/dpaas/store"
)

// Config configures Open. The zero value of every field except App means
// its default.
type Config struct {
	// Dir holds everything the instance persists: its Pebble database and
	// its key. "" keeps everything in memory (tests, demos).
	Dir string
	// App identifies the DApp; App.Name is required.
	App Manifest
	// Key is the instance's secp256k1 key: its peer identity and Ethereum
	// account. Nil means the key kept in Dir (created on first open), or a
	// fresh one when Dir is "". A Key given with a Dir is stored there on
	// first open; Open fails if Dir already holds another key.
	Key *ecdsa.PrivateKey
	// ListenAddrs are multiaddrs to listen on. Default: TCP and QUIC on
	// all interfaces, random ports. Instances dial each other over TCP
	// first, which costs less per message, and over QUIC when TCP fails
	// or takes over 2 s; hole punching uses both at once.
	ListenAddrs []string
	// Bootstrap are multiaddrs of peers, each ending in /p2p/<id>. The
	// instance dials them at start and re-dials them, with backoff, while
	// they are not connected.
	Bootstrap []string
	// MDNS finds instances of the same DApp on the local network.
	MDNS bool
	// DHT joins a Kademlia DHT and uses it as a rendezvous on the AppID to
	// find instances across networks. It uses its own protocol prefix,
	// DHTPrefix, not the public IPFS DHT's.
	DHT bool
	// DHTPrefix is the DHT protocol prefix; default "/dpaas". Set it to
	// "/ipfs" to use the public IPFS DHT.
	DHTPrefix string
	// PeerTarget is how many instances of the DApp the instance keeps
	// connections to, whatever else finds them: it asks the instances it
	// is connected to for the others (peer exchange) and dials from its
	// address book while it has fewer, and closes connections beyond
	// twice as many. Default 8; at most 32, so that the instances kept
	// stay under the connection manager's low watermark (64).
	PeerTarget int
	// DiscoveryInterval is the longest wait between two rounds of
	// bootstrap re-dials, DHT rendezvous and peer exchange; default one
	// minute.
	DiscoveryInterval time.Duration
	// ConnectionGater, if set, may refuse connections (allow lists,
	// partitions in tests). Peers the instance has banned (blobs bans a
	// peer that sends forged blocks, for ten minutes) are refused before
	// it is asked.
	ConnectionGater connmgr.ConnectionGater
	// PubSub tunes messaging; its AppID and Logger are set by Open.
	PubSub pubsub.Config
	// Store tunes the document store (validators, clock, announce
	// interval...); Space, Key, Host, PubSub, AppID and Logger are set by
	// Open.
	Store store.Config
	// Blobs tunes file storage (replication factor, bitswap protocols...);
	// Space, Host, AppID, Registry, Routing and Logger are set by Open.
	Blobs blobs.Config
	// Governance tunes governance (the closing delay, the clock...); its
	// Store, Key, AppID, Genesis (from App), Journal, Metrics and Logger are
	// set by Open.
	Governance governance.Config
	// Payment names the chain the instance pays and is paid on: an
	// Ethereum JSON-RPC URL, or an embedded payment.DevChain shared by
	// instances in one process. With neither, the instances of the process
	// share a private development chain, started on the first use of
	// payments and closed with the last instance that used it (so
	// Payments works out of the box, but pays no instance in another
	// process), and that first use logs how to change that.
	// Instances in several processes share a dev chain run by the
	// examples/devchain program: Payment.RPCURL set to its URL is enough.
	// Key, Space, Host, AppID and Logger are set by Open.
	Payment payment.Config
	// Mirror tunes the instance's heartbeats, probes and attestations,
	// and says what it declares of itself (gateway URL, location, release);
	// see Replicas.
	Mirror MirrorConfig
	// Payouts tunes how the instance, when its account is on the DApp
	// fund's committee, signs and submits each epoch's payout table (see
	// Payouts).
	Payouts PayoutsConfig
	// HTTPAddr, if set, is a TCP address ("127.0.0.1:8080", ":0") where
	// Open serves the instance's HTTP gateway (Node.Gateway: the web UI,
	// /ipfs/, mirrors, badges) until Close. Node.HTTPAddr says which port
	// was chosen for port 0. Empty: no server; mount Node.Gateway on one
	// of the application's own.
	HTTPAddr string
	// GatewayURL is the URL at which users reach this instance's gateway,
	// announced to the other instances for their mirror lists (e.g.
	// "https://rides.example.org"). Default: http://<HTTPAddr> when
	// HTTPAddr names one address; none when it listens on every interface.
	GatewayURL string
	// API, if set, is the DApp's own HTTP API, served by the gateway under
	// /api/ (it sees the full path) with CORS open, so that a page served
	// by one instance can call any other.
	API http.Handler
	// Metrics, if set, receives the instance's Prometheus metrics (store,
	// blobs, messaging, payments), registered by Open and unregistered by
	// Close. Several instances in one process need one registerer each,
	// e.g. prometheus.WrapRegistererWith(prometheus.Labels{"instance": ...}, reg).
	Metrics prometheus.Registerer
	// Logger receives the instance's logs; default: discard.
	Logger *slog.Logger
}

// maxPeerTarget keeps twice the target within the connection manager's
// low watermark, so protected DApp connections never crowd it out.
const maxPeerTarget = 32

// config is a validated, defaulted copy of a Config.
type config struct {
	Config
	appID     AppID
	listen    []multiaddr.Multiaddr
	bootstrap []peer.AddrInfo
	loopback  bool // every listen address is on loopback
}

func (c Config) validate() (*config, error) {
	v := &config{Config: c}
	v.ListenAddrs = slices.Clone(c.ListenAddrs)
	v.Bootstrap = slices.Clone(c.Bootstrap)
	v.App.Params = maps.Clone(c.App.Params)
	if err := v.App.Validate(); err != nil {
		return nil, err
	}
	v.appID = v.App.AppID()
	if len(v.ListenAddrs) == 0 {
		v.ListenAddrs = []string{
			"/ip4/0.0.0.0/tcp/0",
			"/ip4/0.0.0.0/udp/0/quic-v1",
			"/ip6/::/tcp/0",
			"/ip6/::/udp/0/quic-v1",
		}
	}
	v.loopback = true
	for _, s := range v.ListenAddrs {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("dapp: listen address %q: %w", s, err)
		}
		if !hasTransport(a) {
			return nil, fmt.Errorf("dapp: listen address %q: no supported transport: want .../tcp/<port> or .../udp/<port>/quic-v1", s)
		}
		v.listen = append(v.listen, a)
		if !isLoopback(a) {
			v.loopback = false
		}
	}
	for _, s := range v.Bootstrap {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("dapp: bootstrap address %q: %w", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return nil, fmt.Errorf("dapp: bootstrap address %q: must end in /p2p/<peer id>: %w", s, err)
		}
		v.bootstrap = append(v.bootstrap, *ai)
	}
	if v.DiscoveryInterval < 0 {
		return nil, errors.New("dapp: DiscoveryInterval must not be negative")
	}
	if v.PeerTarget < 0 || v.PeerTarget > maxPeerTarget {
		return nil, fmt.Errorf("dapp: PeerTarget %d: want 0 (default) to %d", v.PeerTarget, maxPeerTarget)
	}
	if v.DiscoveryInterval == 0 {
		v.DiscoveryInterval = time.Minute
	}
	if v.DHTPrefix == "" {
		v.DHTPrefix = "/dpaas"
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.DiscardHandler)
	}
	if _, ok := c.Store.Validators[blobSetCollection]; ok {
		return nil, fmt.Errorf("dapp: collection %q is reserved for the blob set", blobSetCollection)
	}
	for _, coll := range []string{governance.ProposalsCollection, governance.BallotsCollection, governance.ClosingsCollection, governance.DelegationsCollection} {
		if _, ok := c.Store.Validators[coll]; ok {
			return nil, fmt.Errorf("dapp: collection %q is reserved for governance", coll)
		}
	}
	if _, ok := c.Store.Validators[AttestationsCollection]; ok {
		return nil, fmt.Errorf("dapp: collection %q is reserved for attestations", AttestationsCollection)
	}
	if _, ok := c.Store.Validators[PayoutSignaturesCollection]; ok {
		return nil, fmt.Errorf("dapp: collection %q is reserved for payout signatures", PayoutSignaturesCollection)
	}
	if err := v.Mirror.validate(); err != nil {
		return nil, err
	}
	if err := v.Payouts.validate(v.Mirror); err != nil {
		return nil, err
	}
	v.Store.Validators = maps.Clone(c.Store.Validators)
	if err := v.validateHTTP(); err != nil {
		return nil, err
	}
	v.PubSub.AppID = v.appID.String()
	v.PubSub.Logger = v.Logger
	return v, nil
}

// hasTransport reports whether the host can listen on a: TCP, or QUIC v1.
// Checking here rather than letting the host fail matters: go-libp2p leaves
// goroutines behind when it fails to start.
func hasTransport(a multiaddr.Multiaddr) bool {
	var tcp, udp, quic bool
	for _, c := range a {
		switch c.Protocol().Code {
		case multiaddr.P_TCP:
			tcp = true
		case multiaddr.P_UDP:
			udp = true
		case multiaddr.P_QUIC_V1:
			quic = true
		case multiaddr.P_QUIC, multiaddr.P_WS, multiaddr.P_WSS, multiaddr.P_WEBTRANSPORT, multiaddr.P_WEBRTC_DIRECT:
			return false
		}
	}
	return tcp || (udp && quic)
}

func isLoopback(a multiaddr.Multiaddr) bool {
	if v, err := a.ValueForProtocol(multiaddr.P_IP4); err == nil {
		return len(v) >= 4 && v[:4] == "127."
	}
	if v, err := a.ValueForProtocol(multiaddr.P_IP6); err == nil {
		return v == "::1"
	}
	return false
}
