package store

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/causal"
	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/hlc"
	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ErrNotFound is returned by Get for a document that is absent or deleted.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid is wrapped by errors about bad arguments (names, documents,
	// values, query options).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrInvalidConfig is wrapped by Open's errors about a Config it cannot
	// use. It wraps ErrInvalid, which such errors matched before.
	ErrInvalidConfig = fmt.Errorf("store: invalid config: %w", ErrInvalid)
	// ErrRejected is wrapped when a collection's validator refuses a write.
	ErrRejected = errors.New("store: rejected by validator")
	// ErrTooLarge is wrapped when a write or a batch is over its size
	// limit (MaxWriteSize, MaxBatchSize); the message gives both sizes.
	// Nothing of the write is applied.
	ErrTooLarge = errors.New("store: too large")
	// ErrWritesStopped is wrapped by every write after a commit failed (a
	// full disk, an I/O error): the store takes no more writes until it is
	// reopened, while reads, Watch and serving peers go on.
	ErrWritesStopped = errors.New("store: writes stopped")
)

func init() { kv.MatchFailed(ErrWritesStopped) }

// KeySpace is one component's share of a database that the components of
// an instance share: a dapp Node gives one to its store. Only the dapp
// package makes them, and Open refuses any other implementation; outside
// dapp, set Config.Dir instead.
type KeySpace interface {
	// Prefix is the bytes every key of the space begins with.
	Prefix() []byte
}

// Config configures Open. Zero values mean defaults; Open copies it.
type Config struct {
	// Space is where the store persists inside a dapp Node's database;
	// nil means a private database in Dir, closed with the store.
	Space KeySpace
	// Dir is where a store used without a Space keeps its private Pebble
	// database. Empty means in memory: everything is lost on Close.
	// Ignored with Space.
	Dir string
	// Key signs this replica's deltas; nil means a fresh random key.
	Key *ecdsa.PrivateKey
	// Host and PubSub connect the store to its peers; both nil means a
	// local-only store.
	Host   host.Host
	PubSub *pubsub.PubSub
	// AppID namespaces the catch-up protocol ID; required with Host.
	AppID string
	// Logger receives replication progress and rejected input; nil
	// discards them.
	Logger *slog.Logger
	// Metrics, when set, receives the store's Prometheus metrics from Open
	// until Close.
	Metrics prometheus.Registerer
	// Now reads wall time for timestamps; default time.Now.
	Now func() time.Time
	// Clock is the former name of Now, used when Now is nil.
	//
	// Deprecated: set Now.
	Clock func() time.Time
	// MaxClockSkew is how far in the future a delta's timestamp may be
	// before it is held back until the local clock reaches it; default 1m.
	MaxClockSkew time.Duration
	// AnnounceInterval is how often, on average, the replica compares its
	// versions with a neighbour's, so that it finds out it is behind,
	// while that finds deltas; after each comparison that finds none the
	// wait doubles, up to eight intervals. Default 1s.
	AnnounceInterval time.Duration
	// MaxDeltaOps bounds the operations in one delta; larger local batches
	// are split into several deltas committed together. Default 512, at
	// most 100,000 (what every replica accepts in one delta).
	MaxDeltaOps int
	// WatchBuffer is the number of changes a Watch channel holds; default 1024.
	WatchBuffer int
	// Validators are installed on their collections before the store
	// receives anything from peers (see Collection.SetValidator).
	Validators map[string]Validator
}

func (c *Config) setDefaults() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = c.Clock
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Clock = c.Now
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = time.Minute
	}
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = time.Second
	}
	if c.MaxDeltaOps == 0 {
		c.MaxDeltaOps = 512
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = 1024
	}
	if c.MaxClockSkew < 0 || c.AnnounceInterval < 0 || c.MaxDeltaOps < 0 || c.WatchBuffer < 0 {
		return fmt.Errorf("store: open: negative durations or sizes in Config: %w", ErrInvalidConfig)
	}
	if c.MaxDeltaOps > delta.MaxOps {
		return fmt.Errorf("store: open: MaxDeltaOps %d over the %d operations a delta may hold: %w", c.MaxDeltaOps, delta.MaxOps, ErrInvalidConfig)
	}
	if (c.Host == nil) != (c.PubSub == nil) {
		return fmt.Errorf("store: open: Host and PubSub must be set together: %w", ErrInvalidConfig)
	}
	validators := make(map[string]Validator, len(c.Validators))
	for name, v := range c.Validators {
		validators[name] = v
	}
	c.Validators = validators
	if c.Host != nil && c.AppID == "" {
		return fmt.Errorf("store: open: AppID is required with a Host: %w", ErrInvalidConfig)
	}
	return nil
}

// Stats are the store's counters since Open. Totals unless said otherwise.
type Stats struct {
	DeltasCreated  uint64 // local deltas committed
	DeltasApplied  uint64 // remote deltas applied
	DeltasRejected uint64 // remote deltas refused: bad signature, malformed, validator
	Duplicates     uint64 // remote deltas received again
	Pending        int    // remote deltas waiting for parents (now)
	Held           int    // remote deltas stamped in the future, held back (now)
	Heads          int    // current heads (now)
	CatchUps       uint64 // catch-up streams completed as requester
	Served         uint64 // deltas served to peers catching up
	// Announcements counts the times this replica compared versions with
	// a neighbour (see AnnounceInterval), and
	// AnnouncementsSkipped its turns without one: no peer on the topic, or
	// a catch-up from the one picked already queued.
	Announcements, AnnouncementsSkipped uint64
	// DeltasInvalid counts the remote deltas, among DeltasRejected, that
	// were signed by their author but that the validity rule refuses (a name
	// that is not UTF-8, for example). They are recorded as refused, like
	// those a validator refuses, so their descendants apply.
	DeltasInvalid uint64
	// SetAside is the number of local deltas that Open found pending and
	// could not file (written by an older version: too big, or a name
	// peers refuse); they are kept under their own key, and never sent.
	SetAside int
}

// Store is a replicated document store. It is safe for concurrent use.
type Store struct {
	cfg    Config
	space  *kv.Space
	pdb    *pebble.DB
	ownDB  *kv.DB
	key    *ecdsa.PrivateKey
	author common.Address
	clock  *hlc.Clock
	log    *slog.Logger

	writes   chan *writeReq
	remote   chan *remoteReq
	inbox    remoteInbox // verified pushed deltas, applied in groups (inbox.go)
	control  chan func()
	synced   chan *committed
	syncDone chan struct{} // one per durable commit synced
	closing  chan struct{}
	stopped  chan struct{} // closed once the applier and syncer are gone
	closed   atomic.Bool
	once     sync.Once
	wg       sync.WaitGroup        // applier and syncer
	failed   atomic.Pointer[error] // the first failed commit; no writes after it (stopWrites)
	netWG    sync.WaitGroup        // network goroutines

	// owned by the applier goroutine
	heads map[cid.Cid]struct{}
	vv    map[common.Address]uint64
	// changes to heads (true: added, false: removed) and versions not yet
	// written to a batch; writeMeta writes them
	headsDirty map[cid.Cid]bool
	vvDirty    map[common.Address]struct{}
	// versions raised since the last publishSnapshot
	vvPublish map[common.Address]struct{}
	// commits counts commits; written holds, per slot of documents, the
	// number of the last commit that wrote one of them (see adopt)
	commits    uint64
	written    [4096]uint64
	bucketSeed maphash.Seed
	visible    atomic.Uint64 // commits readers see
	order      uint64
	causal     *causal.Queue[*incoming] // remote deltas parked for a parent or held for their time
	orphans    []*incoming              // from the inbox, waiting for a parent since the last tick (inbox.go)

	snap atomic.Pointer[snapshot] // what readers and the network see

	mu       sync.Mutex
	colls    map[string]*Collection
	indexes  map[string]map[string]bool // collection → declared fields
	watchers map[*watcher]struct{}
	syncs    map[string]*SyncStatus

	net atomic.Pointer[network]

	created, applied, rejected, invalid, dups, catchUps, served atomic.Uint64
	announces, announcesSkipped                                 atomic.Uint64
	pendingN, heldN, asideN                                     atomic.Int64
}

// snapshot is the applier's state as of its last commit.
type snapshot struct {
	heads []cid.Cid
	vv    versions
	order uint64 // the last log position
}

// versions is the published version vector. Each author's version is an
// atomic that a commit raises in place, so publishing a commit costs what
// it changed; the map itself is copied only when an author appears (every
// commit used to copy it whole: O(authors) per delta applied).
type versions map[common.Address]*atomic.Uint64

// get returns a's version, 0 if none.
func (v versions) get(a common.Address) uint64 {
	if p := v[a]; p != nil {
		return p.Load()
	}
	return 0
}

// Key layout inside the space (one leading byte names the table).
const (
	tBlock   = 'b' // b cid → order(8): the delta was applied here
	tLog     = 'l' // l order(8) → delta block, applied or refused, in processing order
	tAuthor  = 'a' // a author seq cid → order(8) cid
	tHead    = 'h' // h cid → ""
	tVersion = 'w' // w author → seq(8)
	tReject  = 'r' // r cid → reason: the delta was refused here
	tState   = 's' // s coll 0 id → document record: JSON view and CRDT state (record.go)
	tView    = 'v' // v coll 0 id → JSON, in databases before records (migrateRecords)
	tIndex   = 'x' // x coll 0 field 0 value id → ""
	tIdxDecl = 'i' // i coll 0 field → ""
	tMeta    = 'm' // m name → value
	tPending = 'p' // p order(8) → a local delta, unsigned, not yet filed (commitSignLater)
	tAside   = 'q' // q order(8) → a pending delta Open could not file, kept (setAside)
)

var metaOrder = []byte{tMeta, 'o'}
var metaClock = []byte{tMeta, 'c'}
var metaFormat = []byte{tMeta, 'f'} // the layout of the documents, recordFormat

func docKey(t byte, coll, id string) []byte {
	k := make([]byte, 0, 2+len(coll)+len(id))
	k = append(k, t)
	k = append(k, coll...)
	k = append(k, 0)
	return append(k, id...)
}

func cidKey(t byte, c cid.Cid) []byte { return append([]byte{t}, c.Bytes()...) }

func logKey(order uint64) []byte { return binary.BigEndian.AppendUint64([]byte{tLog}, order) }

func pendingKey(order uint64) []byte { return binary.BigEndian.AppendUint64([]byte{tPending}, order) }

func authorKey(a common.Address, seq uint64) []byte {
	k := append([]byte{tAuthor}, a[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// Open starts a store on cfg.Space, loading what it persisted, and, when
// a Host is given, starts replicating with peers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:        cfg,
		log:        cfg.Logger,
		clock:      hlc.New(cfg.Now),
		writes:     make(chan *writeReq, 1024),
		remote:     make(chan *remoteReq, 16),
		inbox:      remoteInbox{ready: make(chan struct{}, 1)},
		control:    make(chan func()),
		synced:     make(chan *committed, 1024),
		syncDone:   make(chan struct{}, 1024),
		closing:    make(chan struct{}),
		stopped:    make(chan struct{}),
		heads:      make(map[cid.Cid]struct{}),
		vv:         make(map[common.Address]uint64),
		headsDirty: make(map[cid.Cid]bool),
		vvDirty:    make(map[common.Address]struct{}),
		vvPublish:  make(map[common.Address]struct{}),
		bucketSeed: maphash.MakeSeed(),
		causal:     causal.New[*incoming](maxPending),
		colls:      make(map[string]*Collection),
		indexes:    make(map[string]map[string]bool),
		watchers:   make(map[*watcher]struct{}),
		syncs:      make(map[string]*SyncStatus),
	}
	if cfg.Space != nil {
		sp, ok := cfg.Space.(*kv.Space)
		if !ok {
			return nil, fmt.Errorf("store: open: Space %T is not a dapp key space: %w", cfg.Space, ErrInvalidConfig)
		}
		s.space = sp
	} else {
		db, err := kv.Open(cfg.Dir, nil)
		if err != nil {
			return nil, fmt.Errorf("store: open: %w", err)
		}
		sp, err := db.Space("store")
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("store: open: %w", err)
		}
		s.ownDB, s.space = db, sp
	}
	s.pdb = s.space.DB().Pebble()
	s.key = cfg.Key
	if s.key == nil {
		k, err := crypto.GenerateKey()
		if err != nil {
			s.closeDB()
			return nil, fmt.Errorf("store: open: generate key: %w", err)
		}
		s.key = k
	}
	s.author = crypto.PubkeyToAddress(s.key.PublicKey)
	if err := s.load(); err != nil {
		s.closeDB()
		return nil, err
	}
	for name, v := range cfg.Validators {
		c := s.Collection(name)
		if c.err != nil {
			s.closeDB()
			return nil, fmt.Errorf("store: open: validator: %w", c.err)
		}
		c.SetValidator(v)
	}
	s.wg.Add(2)
	go s.runApplier()
	go s.runSyncer()
	go func() { s.wg.Wait(); close(s.stopped) }()
	if cfg.Host != nil {
		if err := startNetwork(ctx, s); err != nil {
			s.Close()
			return nil, err
		}
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(s); err != nil {
			s.cfg.Metrics = nil // not ours to unregister
			s.Close()
			return nil, fmt.Errorf("store: open: register metrics: %w", err)
		}
	}
	return s, nil
}

// closeDB closes the private database, if Open made one.
func (s *Store) closeDB() error {
	if s.ownDB != nil {
		if err := s.ownDB.Close(); err != nil {
			return fmt.Errorf("store: close: %w", err)
		}
	}
	return nil
}

// load reads heads, versions, counters and declared indexes.
func (s *Store) load() error {
	if err := s.migrateRecords(); err != nil {
		return err
	}
	it, err := s.space.PrefixIter([]byte{tHead})
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		c, err := cid.Cast(s.space.Strip(it.Key())[1:])
		if err != nil {
			it.Close()
			return fmt.Errorf("store: open: corrupt head key: %w", err)
		}
		s.heads[c] = struct{}{}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	it, err = s.space.PrefixIter([]byte{tVersion})
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		k := s.space.Strip(it.Key())
		v := it.Value()
		if len(k) != 1+common.AddressLength || len(v) != 8 {
			it.Close()
			return fmt.Errorf("store: open: corrupt version entry")
		}
		s.vv[common.BytesToAddress(k[1:])] = binary.BigEndian.Uint64(v)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	it, err = s.space.PrefixIter([]byte{tIdxDecl})
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		k := s.space.Strip(it.Key())[1:]
		coll, field, ok := cutZero(k)
		if !ok {
			it.Close()
			return fmt.Errorf("store: open: corrupt index declaration")
		}
		if s.indexes[coll] == nil {
			s.indexes[coll] = make(map[string]bool)
		}
		s.indexes[coll][field] = true
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	if v, err := s.space.Get(metaOrder); err == nil && len(v) == 8 {
		s.order = binary.BigEndian.Uint64(v)
	} else if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return fmt.Errorf("store: open: %w", err)
	}
	if v, err := s.space.Get(metaClock); err == nil && len(v) == 8 {
		s.clock.Observe(hlc.Timestamp(binary.BigEndian.Uint64(v)))
	} else if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return fmt.Errorf("store: open: %w", err)
	}
	if err := s.finishPending(); err != nil {
		return err
	}
	s.publishSnapshot()
	return nil
}

// stopWrites makes the store refuse every write from now on, after a
// commit failed (a full disk, an I/O error): Pebble cannot take commits
// after a failed log write, and what the applier holds in memory may be
// ahead of what is durable. Reads go on. Reopening the store, once the
// cause is fixed, recovers the durable state. It returns the error writes
// get, which wraps the first cause.
func (s *Store) stopWrites(cause error) error {
	err := fmt.Errorf("%w after a failed commit; reopen the store once the cause is fixed: %w", ErrWritesStopped, cause)
	if s.failed.CompareAndSwap(nil, &err) {
		s.log.Error("store: a commit failed; the store takes no more writes until it is reopened", "err", cause)
	}
	return *s.failed.Load()
}

// write runs f, which commits to Pebble, so that a failure Pebble deems
// fatal comes back as an error (kv.DB.Write).
func (s *Store) write(f func() error) error { return s.space.DB().Write(f) }

// writesStopped is the error writes get after stopWrites, or nil.
func (s *Store) writesStopped() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// finishPending files the local deltas whose documents a crash left
// durable but whose signed form it lost (see commitSignLater): it signs
// each again, which gives the block and CID it had, and files it where it
// was to go.
func (s *Store) finishPending() error {
	it, err := s.space.PrefixIter([]byte{tPending})
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	type pending struct {
		order    uint64
		unsigned []byte
	}
	var todo []pending
	for it.First(); it.Valid(); it.Next() {
		k := s.space.Strip(it.Key())
		if len(k) != 9 {
			it.Close()
			return fmt.Errorf("store: open: corrupt pending delta key %x", k)
		}
		todo = append(todo, pending{binary.BigEndian.Uint64(k[1:]), bytes.Clone(it.Value())})
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	for _, p := range todo {
		d, err := delta.DecodeTrusted(p.unsigned)
		if err != nil {
			if err := s.setAside(p.order, p.unsigned, err); err != nil {
				return err
			}
			continue
		}
		if d.Author != s.author {
			return fmt.Errorf("store: open: pending delta %d was written by %s and needs that key to be signed; open the store with it", p.order, d.Author)
		}
		unsigned, err := d.Prepare(s.key)
		if err != nil {
			// valid nowhere (too big, a name peers refuse): an older
			// version wrote it, and signing it again cannot succeed
			if err := s.setAside(p.order, p.unsigned, err); err != nil {
				return err
			}
			continue
		}
		block, id, err := d.SignPrepared(s.key, unsigned)
		if err == nil {
			err = s.fileSigned(d, id, block, p.order)
		}
		if err != nil {
			return fmt.Errorf("store: open: pending delta %d: %w", p.order, err)
		}
		s.log.Info("store: filed a local delta a crash left unsigned", "seq", d.Seq, "cid", id)
	}
	if err := s.countAside(); err != nil {
		return err
	}
	if len(todo) > 0 {
		// fileSigned and setAside do not sync; this makes everything
		// before it durable.
		if err := s.write(func() error { return s.pdb.LogData(nil, pebble.Sync) }); err != nil {
			return fmt.Errorf("store: open: %w", err)
		}
	}
	return nil
}

func cutZero(b []byte) (string, string, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), string(b[i+1:]), true
		}
	}
	return "", "", false
}

func (s *Store) publishSnapshot() {
	sn := &snapshot{heads: make([]cid.Cid, 0, len(s.heads)), order: s.order}
	for h := range s.heads {
		sn.heads = append(sn.heads, h)
	}
	sortCids(sn.heads)
	if prev := s.snap.Load(); prev != nil {
		sn.vv = prev.vv
	}
	if sn.vv == nil { // the first snapshot: every version read at open
		sn.vv = make(versions, len(s.vv))
		for a := range s.vv {
			s.vvPublish[a] = struct{}{}
		}
	}
	copied := false
	for a := range s.vvPublish {
		if p := sn.vv[a]; p != nil {
			p.Store(s.vv[a])
			continue
		}
		if !copied {
			sn.vv, copied = maps.Clone(sn.vv), true
		}
		p := new(atomic.Uint64)
		p.Store(s.vv[a])
		sn.vv[a] = p
	}
	clear(s.vvPublish)
	s.snap.Store(sn)
}

// Author returns the address that signs this replica's deltas.
func (s *Store) Author() common.Address { return s.author }

// Heads returns the CIDs of the deltas no other local delta builds on.
func (s *Store) Heads() []cid.Cid { return append([]cid.Cid(nil), s.snap.Load().heads...) }

// Versions returns, for every author, the highest sequence number of its
// deltas processed here (applied, or refused by a validator).
func (s *Store) Versions() map[common.Address]uint64 {
	out := make(map[common.Address]uint64)
	for a, v := range s.snap.Load().vv {
		out[a] = v.Load()
	}
	return out
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		DeltasCreated:        s.created.Load(),
		DeltasApplied:        s.applied.Load(),
		DeltasRejected:       s.rejected.Load(),
		Duplicates:           s.dups.Load(),
		Pending:              int(s.pendingN.Load()),
		Held:                 int(s.heldN.Load()),
		Heads:                len(s.snap.Load().heads),
		CatchUps:             s.catchUps.Load(),
		Served:               s.served.Load(),
		Announcements:        s.announces.Load(),
		AnnouncementsSkipped: s.announcesSkipped.Load(),
		DeltasInvalid:        s.invalid.Load(),
		SetAside:             int(s.asideN.Load()),
	}
}

// Close stops replication, waits for in-flight writes to become durable and
// for every goroutine the store started, and closes a private database,
// returning the error closing it gave. It is safe to call more than once;
// later calls return an error wrapping ErrClosed.
func (s *Store) Close() error {
	err := s.errClosed("close")
	s.once.Do(func() {
		err = nil
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.Unregister(s)
		}
		s.closed.Store(true)
		close(s.closing)
		if n := s.net.Load(); n != nil {
			n.close()
		}
		s.netWG.Wait()
		<-s.stopped
		s.mu.Lock()
		for w := range s.watchers {
			w.stop()
		}
		s.mu.Unlock()
		err = s.closeDB()
	})
	return err
}

func (s *Store) errClosed(op string) error { return fmt.Errorf("store: %s: %w", op, ErrClosed) }
