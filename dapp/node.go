package dapp

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/blobs"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/internal/addrbook"
	"github.com/dpaas/dpaas/internal/group"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/nodekey"
	"github.com/dpaas/dpaas/internal/peerex"
	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/dpaas/dpaas/store"
)

var (
	// ErrClosed is returned by calls on a closed Node.
	ErrClosed = errors.New("dapp: node closed")
	// ErrInvalidConfig is wrapped by Open's errors about a Config it
	// cannot use (its message names what is wrong).
	ErrInvalidConfig = errors.New("dapp: invalid config")
)

// invalidConfig is an error of Config.validate: its message, and a match
// for ErrInvalidConfig.
type invalidConfig struct{ err error }

func (e invalidConfig) Error() string   { return e.err.Error() }
func (e invalidConfig) Unwrap() []error { return []error{e.err, ErrInvalidConfig} }

// Node is one running instance of a DApp: a full peer replica. It is safe
// for concurrent use.
type Node struct {
	cfg   *config
	log   *slog.Logger
	key   *ecdsa.PrivateKey
	db    *kv.DB
	host  host.Host
	gater *banGater
	ps    *pubsub.PubSub
	store *store.Store
	blobs *blobs.Store
	pay   struct {
		mu      sync.Mutex
		p       *payment.Payments // nil until started
		release func() error      // leaves the private chain; nil if not on it
		closed  bool
	}
	gov   *governance.Governance
	dht   *dht.IpfsDHT
	tasks *group.Group
	book  *addrbook.Book   // peers.go
	px    *peerex.Exchange // peers.go
	// mirror runs heartbeats, probes and attestations (mirror.go).
	mirror *mirrorEngine
	// payouts signs and submits the fund's payouts (payouts.go).
	payouts payoutEngine
	groups  atomic.Pointer[map[peer.ID]string] // diversity groups, for blobs
	http    gatewayState                       // gateway.go

	helloProto protocol.ID
	// wake is signalled when a bootstrap peer disconnects, so it is
	// re-dialled at once rather than at the next round.
	wake chan struct{}

	closeOnce sync.Once
	closers   []func() error // run in reverse order by Close
}

// Open starts an instance of the DApp described by cfg: it opens (or
// creates) the instance directory, starts the libp2p host, messaging and
// discovery. On error nothing it started is left running.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	c, err := cfg.validate()
	if err != nil {
		return nil, invalidConfig{err}
	}
	n := &Node{
		cfg:        c,
		log:        c.Logger.With("app", c.App.Name, "appid", c.appID.String()),
		helloProto: protocol.ID("/dpaas/" + c.appID.String() + "/hello/1.0.0"),
		wake:       make(chan struct{}, 1),
	}
	defer func() {
		if err != nil {
			n.shutdown()
		}
	}()

	if c.Dir != "" {
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("dapp: open: create dir: %w", err)
		}
	}
	if c.Key != nil {
		n.key, err = c.Key, nodekey.Use(c.Dir, c.Key)
	} else {
		n.key, err = nodekey.LoadOrCreate(c.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("dapp: open: %w", err)
	}
	dbDir := ""
	if c.Dir != "" {
		dbDir = filepath.Join(c.Dir, "db")
	}
	if n.db, err = kv.Open(dbDir, &kv.Options{Logger: n.log}); err != nil {
		return nil, fmt.Errorf("dapp: open: %w", err)
	}
	n.closers = append(n.closers, n.db.Close)

	if err := n.startHost(); err != nil {
		return nil, err
	}
	n.tasks = group.New(context.WithoutCancel(ctx))

	c.PubSub.Host = n.host
	if n.ps, err = pubsub.Open(ctx, c.PubSub); err != nil {
		return nil, fmt.Errorf("dapp: open: %w", err)
	}
	n.closers = append(n.closers, ignoreClosed(n.ps.Close, pubsub.ErrClosed))

	if err := n.startDHT(); err != nil {
		return nil, err
	}
	if err := n.startData(ctx); err != nil {
		return nil, err
	}
	if err := n.startPayments(ctx); err != nil {
		return nil, err
	}
	if err := n.startGovernance(ctx); err != nil {
		return nil, err
	}
	// The gateway's listener first: its URL goes in the heartbeats.
	if err := n.listenHTTP(); err != nil {
		return nil, err
	}
	if err := n.startMirror(ctx); err != nil {
		return nil, err
	}
	n.startPayouts()
	if err := n.registerMetrics(); err != nil {
		return nil, err
	}
	if err := n.startDiscovery(ctx); err != nil {
		return nil, err
	}
	if err := n.startGateway(); err != nil {
		return nil, err
	}
	n.log.Info("dapp: instance started", "id", n.ID(), "account", n.Account(), "addrs", n.Addrs())
	return n, nil
}

func (n *Node) startHost() error {
	c := n.cfg
	pk, err := nodekey.Libp2p(n.key)
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	limiter := rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale())
	rm, err := rcmgr.NewResourceManager(limiter)
	if err != nil {
		return fmt.Errorf("dapp: open: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(64, 256, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		rm.Close()
		return fmt.Errorf("dapp: open: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(pk),
		libp2p.ListenAddrs(c.listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.SwarmOpts(swarm.WithDialRanker(preferTCP)),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("dpaas/" + c.App.Name),
	}
	n.gater = &banGater{user: c.ConnectionGater}
	opts = append(opts, libp2p.ConnectionGater(n.gater))
	if c.loopback {
		// Nothing to map or punch through on loopback, and no relays.
		opts = append(opts, libp2p.DisableRelay())
	} else {
		opts = append(opts, libp2p.NATPortMap(), libp2p.EnableHolePunching())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		cm.Close()
		rm.Close()
		return fmt.Errorf("dapp: open: start host: %w", err)
	}
	n.host = h
	n.closers = append(n.closers, func() error {
		err := h.Close()
		// The host does not own the managers it was given.
		return errors.Join(err, cm.Close(), rm.Close())
	})
	// Instances advertise the DApp's hello protocol through identify, which
	// is how Peers tells instances of this DApp from other libp2p peers.
	h.SetStreamHandler(n.helloProto, n.serveHello)
	return nil
}

// serveHello answers with the DApp's manifest, so a peer (or an operator)
// can see what an instance runs.
func (n *Node) serveHello(s network.Stream) {
	defer s.Close()
	_ = s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = s.Write(n.cfg.App.Canonical())
}

// hello asks peer p which DApp it runs and returns its manifest encoding.
func (n *Node) hello(ctx context.Context, p peer.ID) ([]byte, error) {
	s, err := n.host.NewStream(ctx, p, n.helloProto)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	return io.ReadAll(io.LimitReader(s, 64<<10))
}

// startData opens the document store and, on top of it, the blob store
// whose replicated blob set is a store collection.
func (n *Node) startData(ctx context.Context) error {
	c := n.cfg
	ss, err := n.db.Space("store")
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	sc := c.Store
	sc.Space, sc.Key, sc.Host, sc.PubSub = ss, n.key, n.host, n.ps
	sc.AppID, sc.Logger = c.appID.String(), n.log
	if sc.Validators == nil {
		sc.Validators = make(map[string]store.Validator)
	}
	sc.Validators[blobSetCollection] = validateBlobSet
	sc.Validators[AttestationsCollection] = validateAttestation(c.appID.String())
	sc.Validators[PayoutSignaturesCollection] = validatePayoutSignature(&n.payouts.refused)
	for coll, v := range governance.Validators(c.appID, c.App.genesis()) {
		sc.Validators[coll] = v
	}
	if n.store, err = store.Open(ctx, sc); err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	n.closers = append(n.closers, ignoreClosed(n.store.Close, store.ErrClosed))

	bs, err := n.db.Space("blobs")
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	bc := c.Blobs
	bc.Space, bc.Host, bc.AppID, bc.Logger = bs, n.host, c.appID.String(), n.log
	bc.Metrics = c.Metrics
	bc.Registry = blobSet{n.store.Collection(blobSetCollection)}
	if bc.Group == nil {
		// Copies go to distinct diversity groups first, as attested.
		bc.Group = n.groupOf
	}
	if n.dht != nil {
		bc.Routing = n.dht
	}
	if n.blobs, err = blobs.Open(ctx, bc); err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	n.closers = append(n.closers, ignoreClosed(n.blobs.Close, blobs.ErrClosed))
	banned := n.blobs.Banned
	n.gater.banned.Store(&banned)
	return nil
}

func ignoreClosed(close func() error, closed error) func() error {
	return func() error {
		if err := close(); err != nil && !errors.Is(err, closed) {
			return err
		}
		return nil
	}
}

// registerMetrics hands Config.Metrics the collectors of the components
// that do not register themselves (blobs does, through its Config).
func (n *Node) registerMetrics() error {
	reg := n.cfg.Metrics
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{n.store, n.ps, paymentsCollector{n}, payoutsCollector{n}}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("dapp: open: register metrics: %w", err)
		}
		n.closers = append(n.closers, func() error { reg.Unregister(c); return nil })
	}
	return nil
}

// Store is the DApp's replicated document store.
func (n *Node) Store() *store.Store { return n.store }

// Blobs is the DApp's replicated file store.
func (n *Node) Blobs() *blobs.Store { return n.blobs }

// startPayments connects the instance to the chain Config.Payment names.
// When it names none, nothing starts here: the first use of payments
// (Payments, StartPayments, a token-weighted governance count) joins the
// process's shared private development chain (privatechain.go).
func (n *Node) startPayments(ctx context.Context) error {
	n.closers = append(n.closers, n.closePayments)
	pc := n.cfg.Payment
	if pc.RPCURL == "" && pc.Dev == nil {
		return nil
	}
	p, err := n.openPayments(ctx, pc)
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	n.pay.p = p
	return nil
}

// openPayments opens payments on the chain pc names, with the instance's
// key, database, host and identity.
func (n *Node) openPayments(ctx context.Context, pc payment.Config) (*payment.Payments, error) {
	space, err := n.db.Space("payment")
	if err != nil {
		return nil, err
	}
	pc.Key = n.key
	pc.Space = space
	pc.Host = n.host
	pc.AppID = n.cfg.appID.String()
	pc.Logger = n.log
	return payment.Open(ctx, pc)
}

// StartPayments returns the instance's wallet (see Payments), starting it
// first if nothing has used payments yet. With no chain in Config.Payment
// that joins the process's private development chain, starting it if no
// other instance of the process uses it, and funds the instance on its
// first use of that chain. After Close it fails with ErrClosed if payments
// were never started.
func (n *Node) StartPayments(ctx context.Context) (*payment.Payments, error) {
	n.pay.mu.Lock()
	defer n.pay.mu.Unlock()
	if n.pay.p != nil {
		return n.pay.p, nil
	}
	if n.pay.closed {
		return nil, fmt.Errorf("dapp: start payments: %w", ErrClosed)
	}
	dev, release, err := privateChain.acquire(ctx, n.Account())
	if err != nil {
		return nil, fmt.Errorf("dapp: start payments: %w", err)
	}
	pc := n.cfg.Payment
	pc.Dev = dev
	p, err := n.openPayments(ctx, pc)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("dapp: start payments: %w", err), release())
	}
	n.pay.p, n.pay.release = p, release
	n.log.Info("dapp: payments on a private development chain, shared by the instances of this process only; " +
		"to pay instances in other processes, run a shared chain (go run github.com/dpaas/dpaas/examples/devchain) " +
		"and set Config.Payment.RPCURL")
	return p, nil
}

// closePayments closes payments if they were started and leaves the
// private chain; later StartPayments calls fail.
func (n *Node) closePayments() error {
	n.pay.mu.Lock()
	defer n.pay.mu.Unlock()
	n.pay.closed = true
	var err error
	if n.pay.p != nil {
		err = ignoreClosed(n.pay.p.Close, payment.ErrClosed)()
	}
	if n.pay.release != nil {
		err = errors.Join(err, n.pay.release())
		n.pay.release = nil
	}
	return err
}

// Payments is the instance's wallet on the DApp's chain: balances,
// transfers, payment channels and metering, all signed with the instance
// key. With no chain in Config.Payment the first call starts it on the
// process's private development chain, where the instance holds 1,000
// tokens; it returns nil (and logs why) if that fails or the instance was
// closed first. StartPayments returns the error instead.
func (n *Node) Payments() *payment.Payments {
	p, err := n.StartPayments(context.Background())
	if err != nil {
		n.log.Error("dapp: payments", "err", err)
		return nil
	}
	return p
}

// ID is the instance's libp2p peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Account is the instance's Ethereum address; same key as ID.
func (n *Node) Account() common.Address { return ethcrypto.PubkeyToAddress(n.key.PublicKey) }

// AppID identifies the DApp the instance runs.
func (n *Node) AppID() AppID { return n.cfg.appID }

// Manifest returns the DApp's manifest.
func (n *Node) Manifest() Manifest { return n.cfg.App }

// Host is the instance's libp2p host, for apps that run protocols of their
// own. Protocol IDs should carry AppID so DApps never mix.
func (n *Node) Host() host.Host { return n.host }

// PubSub is the DApp's messaging.
func (n *Node) PubSub() *pubsub.PubSub { return n.ps }

// Addrs returns the instance's dialable addresses, each ending in /p2p/<id>.
func (n *Node) Addrs() []multiaddr.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// Connect dials the peer at addr, a multiaddr ending in /p2p/<id>.
func (n *Node) Connect(ctx context.Context, addr string) error {
	a, err := multiaddr.NewMultiaddr(addr)
	if err != nil {
		return fmt.Errorf("dapp: connect %q: %w", addr, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return fmt.Errorf("dapp: connect %q: must end in /p2p/<peer id>: %w", addr, err)
	}
	if n.isClosed() {
		return fmt.Errorf("dapp: connect %q: %w", addr, ErrClosed)
	}
	if err := n.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("dapp: connect %q: %w", addr, err)
	}
	return nil
}

// Peers lists the connected peers that run the same DApp.
func (n *Node) Peers() []peer.ID {
	var out []peer.ID
	for _, p := range n.host.Network().Peers() {
		if n.sameApp(p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (n *Node) sameApp(p peer.ID) bool {
	ok, err := n.host.Peerstore().SupportsProtocols(p, n.helloProto)
	return err == nil && len(ok) > 0
}

func (n *Node) isClosed() bool {
	select {
	case <-n.tasks.Context().Done():
		return true
	default:
		return false
	}
}

// Close stops everything the instance started and waits for it. It is
// safe to call more than once; later calls return an error wrapping
// ErrClosed.
func (n *Node) Close() error {
	err := fmt.Errorf("dapp: close: %w", ErrClosed)
	n.closeOnce.Do(func() {
		n.log.Info("dapp: instance stopping", "id", n.ID())
		err = n.shutdown()
	})
	return err
}

func (n *Node) shutdown() error {
	// Background work goes first: it uses everything below.
	if n.tasks != nil {
		n.tasks.Stop()
	}
	var errs []error
	for i := len(n.closers) - 1; i >= 0; i-- {
		if err := n.closers[i](); err != nil && !errors.Is(err, kv.ErrClosed) {
			errs = append(errs, err)
		}
	}
	n.closers = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dapp: close: %w", err)
	}
	return nil
}

// watchPeers watches identify and disconnect events to protect DApp peers
// from connection trimming and to re-dial bootstrap peers quickly.
func (n *Node) watchPeers() error {
	sub, err := n.host.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerConnectednessChanged),
	})
	if err != nil {
		return fmt.Errorf("dapp: open: subscribe to peer events: %w", err)
	}
	bootstrap := make(map[peer.ID]bool)
	for _, ai := range n.cfg.bootstrap {
		bootstrap[ai.ID] = true
	}
	n.tasks.Go(func(ctx context.Context) {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				switch e := e.(type) {
				case event.EvtPeerIdentificationCompleted:
					if slices.Contains(e.Protocols, n.helloProto) {
						n.host.ConnManager().Protect(e.Peer, "dapp")
					}
				case event.EvtPeerConnectednessChanged:
					if e.Connectedness != network.Connected && bootstrap[e.Peer] {
						select {
						case n.wake <- struct{}{}:
						default:
						}
					}
				}
			}
		}
	})
	return nil
}
