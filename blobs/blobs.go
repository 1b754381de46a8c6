package blobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dpaas/dpaas/internal/blockstore"
	"github.com/dpaas/dpaas/internal/blockxfer"
	"github.com/dpaas/dpaas/internal/group"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ipfs/boxo/bitswap"
	bsclient "github.com/ipfs/boxo/bitswap/client"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	bsserver "github.com/ipfs/boxo/bitswap/server"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ErrClosed is returned by every call on a closed Store.
	ErrClosed = errors.New("blobs: closed")
	// ErrNotFound means a record or a local block does not exist; from
	// Open, that no peer claims the blob (with ErrUnavailable too).
	ErrNotFound = errors.New("blobs: not found")
	// ErrUnavailable means a blob could not be had from this instance or
	// any peer: no peer claims it (with ErrNotFound), or its root did not
	// come before the context ended (with the context's error).
	ErrUnavailable = errors.New("blobs: not available locally or from any peer")
	// ErrBurned means the blob was removed from the DApp.
	ErrBurned = errors.New("blobs: blob was burned")
	// ErrInvalidCID means a CID was undefined or malformed.
	ErrInvalidCID = errors.New("blobs: invalid CID")
	// ErrNotFile means the CID names something other than a UnixFS file.
	ErrNotFile = errors.New("blobs: not a UnixFS file")
	// ErrBadCAR means a CAR stream was malformed, its blocks did not match
	// their CIDs, or it did not hold the whole DAG of its root.
	ErrBadCAR = errors.New("blobs: bad CAR")
	// ErrInvalidConfig means Open was given an unusable Config.
	ErrInvalidConfig = errors.New("blobs: invalid config")
	// ErrWritesStopped is wrapped by every write after one failed (a full
	// disk, an I/O error): the database takes no more writes until it is
	// reopened, while reads of what is held go on.
	ErrWritesStopped = errors.New("blobs: writes stopped")
	// ErrInvalidPath means a path or file name is unusable: empty segments,
	// "." or "..", a '/' inside a name, or bytes that are not UTF-8.
	ErrInvalidPath = errors.New("blobs: invalid path")
	// ErrNotDir means a path goes through something other than a directory.
	ErrNotDir = errors.New("blobs: not a directory")
	// ErrIsDir means a file was asked for and the path names a directory.
	ErrIsDir = errors.New("blobs: is a directory")
	// ErrBadDAG means a directory node (basic or HAMT) is malformed: it
	// does not decode, or contradicts the UnixFS format.
	ErrBadDAG = errors.New("blobs: malformed UnixFS directory")
)

// ErrConfig is the former name of ErrInvalidConfig.
//
// Deprecated: use ErrInvalidConfig.
var ErrConfig = ErrInvalidConfig

func init() { kv.MatchFailed(ErrWritesStopped) }

// KeySpace is one component's share of a database that the components of
// an instance share: a dapp Node gives one to its blob store. Only the
// dapp package makes them, and Open refuses any other implementation;
// outside dapp, set Config.Dir instead.
type KeySpace interface {
	// Prefix is the bytes every key of the space begins with.
	Prefix() []byte
}

// Config configures Open. The zero value is a private in-memory, local-only
// store; the dapp package fills in the instance's key space, host, AppID and
// replicated registry.
type Config struct {
	// Space is where blocks, pins and bookkeeping persist inside a dapp
	// Node's database. Nil means a private database in Dir, closed by Close.
	Space KeySpace
	// Dir is where a Store used without a Space keeps its private Pebble
	// database. Empty means in memory: everything is lost on Close.
	// Ignored with Space.
	Dir string
	// Host is the libp2p host for bitswap and replica discovery. Nil means
	// local only: Open finds only blocks held here and nothing replicates.
	Host host.Host
	// AppID namespaces every protocol ID; required with a Host.
	AppID string
	// Registry is the DApp's replicated blob set. Nil means a private
	// MemRegistry.
	Registry Registry
	// ReplicationFactor is how many live replicas hold each blob. Zero means
	// every replica holds every blob.
	ReplicationFactor int
	// Group, when set, names the diversity group of a replica (instances
	// on one network or in one provider's region share one); with a
	// ReplicationFactor, copies go to distinct groups first (placement.go).
	// It must give the same answer on every replica for placement to
	// agree, and must be safe for concurrent use.
	Group func(peer.ID) string
	// Routing, when set (typically the DHT), is asked for providers when no
	// connected peer has a block, and told about every blob held here.
	Routing routing.ContentRouting
	// IPFSBitswap runs bitswap on the standard /ipfs/bitswap protocol IDs so
	// that any IPFS node can exchange blocks with this instance. By default
	// bitswap runs on AppID-prefixed protocols, shared only within the DApp.
	IPFSBitswap bool
	// HolderGrace is how long a replica that went away still counts as a
	// holder before its blobs are re-replicated. Zero means one minute.
	HolderGrace time.Duration
	// ReconcileInterval is how often the blob set is compared in full with
	// what is held here, as a backstop to Registry.Watch. Zero means 30s.
	ReconcileInterval time.Duration
	// FetchWorkers is how many blobs replicate concurrently. Zero means 2.
	FetchWorkers int
	// Metrics, when set, receives the store's Prometheus metrics from Open
	// until Close.
	Metrics prometheus.Registerer
	// Logger receives operational logs. Nil discards them.
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() error {
	if c.ReplicationFactor < 0 {
		return fmt.Errorf("%w: ReplicationFactor %d < 0", ErrInvalidConfig, c.ReplicationFactor)
	}
	if c.HolderGrace < 0 || c.ReconcileInterval < 0 || c.FetchWorkers < 0 {
		return fmt.Errorf("%w: negative duration or worker count", ErrInvalidConfig)
	}
	if c.Host != nil && c.AppID == "" {
		return fmt.Errorf("%w: AppID is required with a Host", ErrInvalidConfig)
	}
	if c.HolderGrace == 0 {
		c.HolderGrace = time.Minute
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = 30 * time.Second
	}
	if c.FetchWorkers == 0 {
		c.FetchWorkers = 2
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registry == nil {
		c.Registry = NewMemRegistry()
	}
	return nil
}

// Bitswap server tuning for replicas that stream whole files: boxo's
// defaults (1 MiB in flight per peer, 16 KiB messages) suit many small
// blocks from strangers, not 256 KiB chunks between peers of one DApp.
const (
	maxOutstandingBytes = 32 << 20
	targetMessageSize   = 1 << 20
)

// blockFlushBytes is how many bytes of blocks are buffered before they are
// ingested; zero means internal/blockstore's default. Tests lower it.
var blockFlushBytes int

// Key layout inside the Space.
var (
	prefixBlocks = []byte("b/") // multihash → block size and location (internal/blockstore)
	// Block bytes, in sstables ingested by internal/blockstore. The zero
	// byte sorts them before every other key of the space and, the space
	// being named "blobs", of the database, so that ingested tables go
	// straight to the bottom of the LSM and are never compacted.
	prefixValues = []byte("\x00v/")
	prefixPins   = []byte("p/") // root CID bytes → pin record
	prefixAdds   = []byte("a/") // in-progress Add or Import marker
)

// Store holds the DApp's blobs on this instance. It is safe for concurrent
// use. Create it with Open and release it with Close.
type Store struct {
	cfg      Config
	ownDB    *kv.DB // non-nil when Open made a private database
	space    *kv.Space
	blocks   *blockstore.Store
	guarded  *guardedBlockstore
	bswap    *bitswap.Bitswap        // nil when local only
	liars    *blockxfer.LiarDetector // nil when local only
	bserv    blockservice.BlockService
	dag      ipld.DAGService
	metrics  *metrics
	repl     *replicator // nil when local only
	hasProto protocol.ID

	blocksProto protocol.ID
	direct      *blockxfer.Direct // the blocks protocol and the readers' fetches

	// gcMu orders garbage collection against writes: GC holds it
	// exclusively; Add, Import and every block write from the network hold
	// it shared.
	gcMu sync.RWMutex

	// pinMu serialises changes to pin records.
	pinMu sync.Mutex

	mu     sync.Mutex
	closed bool
	leases map[cid.Cid]int // roots of open readers, protected from GC
	// spared: roots leased when a pin was removed (a burn, a blob no
	// longer assigned here): GC runs again when the last lease of one
	// ends, for what a GC meanwhile kept for the readers alone.
	spared  map[cid.Cid]bool
	gcKick  chan struct{}
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	tasks   *group.Group   // goroutines the Store started
	ops     sync.WaitGroup // calls admitted by enter
	closeMu sync.Mutex
}

// Open starts a Store. ctx bounds only the start-up work; the Store runs
// until Close.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:    cfg,
		leases: make(map[cid.Cid]int),
		spared: make(map[cid.Cid]bool),
		gcKick: make(chan struct{}, 1),
		tasks:  group.New(context.Background()),
	}
	if cfg.Space != nil {
		sp, ok := cfg.Space.(*kv.Space)
		if !ok {
			return nil, fmt.Errorf("blobs: open: Space %T is not a dapp key space: %w", cfg.Space, ErrInvalidConfig)
		}
		s.space = sp
	} else {
		db, err := kv.Open(cfg.Dir, nil)
		if err != nil {
			return nil, fmt.Errorf("blobs: open: %w", err)
		}
		sp, err := db.Space("blobs")
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("blobs: open: %w", err)
		}
		s.ownDB, s.space = db, sp
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	blks, err := blockstore.New(s.space, blockstore.Config{Prefix: prefixBlocks, ValuePrefix: prefixValues, FlushBytes: blockFlushBytes})
	if err != nil {
		s.cancel()
		if s.ownDB != nil {
			_ = s.ownDB.Close()
		}
		return nil, fmt.Errorf("blobs: open: %w", err)
	}
	s.blocks = blks
	s.guarded = &guardedBlockstore{Store: s.blocks, mu: &s.gcMu}
	s.metrics = newMetrics(s)

	var exch exchange.Interface
	if cfg.Host != nil {
		prefix := protocol.ID("/dpaas/" + cfg.AppID + "/blobs")
		var netOpts []bsnet.NetOpt
		if !cfg.IPFSBitswap {
			netOpts = append(netOpts, bsnet.Prefix(prefix))
		}
		var finder routing.ContentDiscovery
		if cfg.Routing != nil {
			finder = cfg.Routing
		}
		detector := blockxfer.NewLiarDetector(s.xferHooks())
		s.liars = detector
		cfg.Host.Network().Notify(detector)
		net := &blockxfer.WatchedNetwork{BitSwapNetwork: bsnet.NewFromIpfsHost(cfg.Host, netOpts...), Detector: detector}
		s.bswap = bitswap.New(s.ctx, net, finder, s.guarded,
			bitswap.WithClientOption(bsclient.ProviderSearchDelay(time.Second)),
			// Replicas stream whole files to each other: let a peer have
			// many blocks in flight and pack several into one message.
			bitswap.WithServerOption(bsserver.MaxOutstandingBytesPerPeer(maxOutstandingBytes)),
			bitswap.WithServerOption(bsserver.WithTargetMessageSize(targetMessageSize)),
			bitswap.WithTracer(detector),
		)
		exch = s.bswap
		s.hasProto = prefix + "/has/1.0.0"
		s.blocksProto = prefix + "/blocks/1.0.0"
	}
	s.bserv = blockservice.New(s.guarded, exch)
	s.dag = merkledag.NewDAGService(s.bserv)
	s.direct = newDirect(s)

	if err := s.startup(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	if cfg.Metrics != nil {
		if err := s.metrics.register(cfg.Metrics); err != nil {
			s.shutdown()
			return nil, fmt.Errorf("blobs: open: %w", err)
		}
	}
	s.goTracked(s.gcLoop)
	if cfg.Host != nil {
		r, err := newReplicator(s)
		if err != nil {
			s.shutdown()
			return nil, fmt.Errorf("blobs: open: %w", err)
		}
		s.repl = r
		r.start()
	}
	return s, nil
}

// startup loads pin statistics and schedules a GC when a previous run
// crashed in the middle of an Add.
func (s *Store) startup(ctx context.Context) error {
	if err := s.metrics.loadPins(); err != nil {
		return fmt.Errorf("blobs: open: %w", err)
	}
	it, err := s.space.PrefixIter(prefixAdds)
	if err != nil {
		return fmt.Errorf("blobs: open: %w", err)
	}
	crashed := it.First()
	if err := it.Close(); err != nil {
		return fmt.Errorf("blobs: open: %w", err)
	}
	if crashed {
		s.cfg.Logger.Info("blobs: an Add was interrupted; collecting its blocks")
		s.requestGC()
	}
	return ctx.Err()
}

// goTracked runs fn on a goroutine that Close waits for (internal/group).
// Once Close has begun it runs nothing and reports false.
func (s *Store) goTracked(fn func()) bool {
	return s.tasks.Go(func(context.Context) { fn() })
}

// Close stops replication and bitswap, waits for every goroutine the Store
// started and releases the database when Open made it. Readers still open
// fail afterwards. Calling Close again returns ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("blobs: close: %w", ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	return s.shutdown()
}

func (s *Store) shutdown() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	if s.liars != nil {
		s.cfg.Host.Network().StopNotify(s.liars)
	}
	s.ops.Wait()
	var errs []error
	if s.repl != nil {
		s.repl.stop()
	}
	s.tasks.Stop()
	if s.bserv != nil { // closes bitswap too
		if err := s.bserv.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.blocks != nil {
		// Blocks fetched but not yet written out (a replication under way,
		// a reader's cache) need not survive, but are cheaper kept.
		if err := s.blocks.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.metrics != nil && s.cfg.Metrics != nil {
		s.metrics.unregister(s.cfg.Metrics)
	}
	if s.ownDB != nil {
		if err := s.ownDB.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blobs: close: %w", err)
	}
	return nil
}

// enter admits one call into the Store, or reports false once Close has
// begun; every admitted call must exit. Close waits for admitted calls, so
// none touches the database after it is closed.
func (s *Store) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.ops.Add(1)
	return true
}

func (s *Store) exit() { s.ops.Done() }

// opContext returns a context that ends with ctx or with the Store.
func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// lease protects the DAG under root from GC until the returned func runs.
// When a pin was removed while root was leased (spareLeased), the last
// lease's end runs GC again.
func (s *Store) lease(root cid.Cid) func() {
	s.mu.Lock()
	s.leases[root]++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			again := false
			if s.leases[root]--; s.leases[root] <= 0 {
				delete(s.leases, root)
				again = s.spared[root]
				delete(s.spared, root)
			}
			s.mu.Unlock()
			if again {
				s.requestGC()
			}
		})
	}
}

// spareLeased is called when a pin is removed: the GC that follows keeps
// whatever the open readers and fetches need, the blob unpinned perhaps
// among it (a fetch of a blob burned meanwhile), so each of their roots
// runs GC again when its last lease ends. Pins are removed rarely (burns,
// reassignment), reads often: reads alone never schedule a GC.
func (s *Store) spareLeased() {
	s.mu.Lock()
	for c := range s.leases {
		s.spared[c] = true
	}
	s.mu.Unlock()
}

func (s *Store) leasedRoots() []cid.Cid {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]cid.Cid, 0, len(s.leases))
	for c := range s.leases {
		out = append(out, c)
	}
	return out
}

func checkCID(c cid.Cid) error {
	if !c.Defined() {
		return ErrInvalidCID
	}
	return nil
}
