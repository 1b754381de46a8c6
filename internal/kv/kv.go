// Package kv is the instance's one Pebble database, split into key spaces.
//
// Every component of an instance (store, blobs, payment, ...) persists into
// the same Pebble database so that one directory holds everything and one
// write-ahead log orders everything. Each component asks for its own Space
// by name and only ever sees keys inside it.
//
// Key layout: a Space named "store" owns every key that begins with the
// bytes "store\x00". Names may not contain a zero byte, so no space is a
// prefix of another.
//
// Writes that must survive a crash use Sync; Pebble's commit pipeline
// already groups concurrent synced commits into shared fsyncs, so callers
// get group commit by committing from several goroutines. A write without
// Sync can be lost if the process dies, not only if the machine does: on
// disk, the log holds unsynced bytes in memory until the next sync
// (walfs.go). Writes reach the disk in commit order, so a synced write
// makes every write before it durable too.
package kv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

var (
	// ErrNotFound is returned by Get when a key is absent.
	ErrNotFound = errors.New("kv: not found")
	// ErrClosed is returned by operations on a closed DB.
	ErrClosed = errors.New("kv: closed")
	// ErrSpaceTaken is returned when two components ask for one name.
	ErrSpaceTaken = errors.New("kv: key space already taken")
)

// Options tunes Open. The zero value is fine.
type Options struct {
	// FS replaces the filesystem; nil means the OS filesystem when a
	// directory is given and a fresh in-memory one when it is not.
	FS vfs.FS
	// CacheSize is Pebble's block cache size in bytes; 0 means 64 MiB.
	CacheSize int64
	// MemTableSize is the size of one memtable (and about that of one
	// write-ahead log file) in bytes; 0 means 32 MiB.
	MemTableSize uint64
	// Logger receives Pebble's errors (a background compaction or flush
	// that failed, for example on a full disk); nil drops them.
	Logger *slog.Logger
}

// DB is an open Pebble database with named key spaces. It is safe for
// concurrent use.
type DB struct {
	pdb   *pebble.DB
	cache *pebble.Cache
	fs    vfs.FS
	dir   string

	mu     sync.Mutex
	spaces map[string]bool
	closed bool

	failed atomic.Pointer[error] // set by Write when Pebble failed a write
}

// ErrFailed is wrapped by every write after Pebble failed one: a write
// to its log or a sync failed (a full disk, an I/O error), after which
// Pebble cannot take writes. Reads still work; reopening the database
// once the cause is fixed recovers every write that was durable.
var ErrFailed = errors.New("kv: the database failed a write and takes no more until reopened")

// failedAliases are the public packages' sentinels for ErrFailed (for
// example store.ErrWritesStopped), so that callers, who cannot import
// this package, test for a stopped database with errors.Is. Written only
// by MatchFailed from package initialisation, read-only afterwards.
var failedAliases []error

// MatchFailed makes every error wrapping ErrFailed match target with
// errors.Is too. Call it only from a package's init.
func MatchFailed(target error) { failedAliases = append(failedAliases, target) }

// failure is the error a failed write leaves: it wraps ErrFailed and its
// cause, and matches every alias registered with MatchFailed.
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }
func (f failure) Unwrap() error { return f.err }
func (f failure) Is(target error) bool {
	for _, a := range failedAliases {
		if a == target {
			return true
		}
	}
	return false
}

// Write runs f, which commits to the database (a batch, an ingestion).
// Pebble treats a failed commit as fatal to the process; Write turns that
// into an error for f's caller, and every later Write returns the same
// error without calling f, as Pebble's commit pipeline is stuck. Every
// write to the database must go through Write.
func (d *DB) Write(f func() error) (err error) {
	if p := d.failed.Load(); p != nil {
		return *p
	}
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		fp, ok := r.(fatalPanic)
		if !ok {
			panic(r)
		}
		cause := fmt.Errorf("%w: %s", ErrFailed, fp.msg)
		if fp.cause != nil {
			cause = fmt.Errorf("%w: %w", ErrFailed, fp.cause)
		}
		var stopped error = failure{cause}
		d.failed.CompareAndSwap(nil, &stopped)
		err = *d.failed.Load()
	}()
	return f()
}

// Failed returns the error writes get after a failed one, or nil.
func (d *DB) Failed() error {
	if p := d.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Open opens (creating if needed) the database in dir. An empty dir opens
// an in-memory database that vanishes on Close.
func Open(dir string, o *Options) (*DB, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 64 << 20
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = 32 << 20
	}
	fs := opts.FS
	if fs == nil {
		if dir == "" {
			fs = vfs.NewMem()
		} else {
			fs = logFS{FS: vfs.Default}
		}
	}
	if dir == "" {
		dir = "pebble"
	}
	cache := pebble.NewCache(opts.CacheSize)
	popts := &pebble.Options{
		FS:     fs,
		Cache:  cache,
		Logger: &quietLogger{log: opts.Logger},
		// Bulk writes (batched documents, blocks, catch-up) fill small
		// memtables quickly; larger ones mean fewer flushes and stalls.
		MemTableSize: opts.MemTableSize,
	}
	// Components ask for absent keys all the time (is this delta, block or
	// document known?); a bloom filter answers most of those without
	// reading every level. Levels below L0 inherit it.
	popts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	pdb, err := pebble.Open(dir, popts)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("kv: open %s: %w", dir, err)
	}
	return &DB{pdb: pdb, cache: cache, fs: fs, dir: dir, spaces: make(map[string]bool)}, nil
}

// FS is the filesystem the database lives on, and Dir its directory in it:
// components that build sstables for Pebble's Ingest write them there.
func (d *DB) FS() vfs.FS { return d.fs }

// Dir is the database's directory in FS.
func (d *DB) Dir() string { return d.dir }

// Pebble returns the underlying database, for components that need batches,
// snapshots or iterators beyond what Space offers. Keys written through it
// must be built with Space.Key.
func (d *DB) Pebble() *pebble.DB { return d.pdb }

// Space reserves the key space called name. Each name can be taken once
// per DB so that two components never share keys by accident.
func (d *DB) Space(name string) (*Space, error) {
	if name == "" || bytes.IndexByte([]byte(name), 0) >= 0 {
		return nil, fmt.Errorf("kv: space name %q: must be non-empty and contain no zero byte", name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	if d.spaces[name] {
		return nil, fmt.Errorf("kv: space %q: %w", name, ErrSpaceTaken)
	}
	d.spaces[name] = true
	p := append([]byte(name), 0)
	return &Space{db: d, prefix: p}, nil
}

// Close flushes and closes the database. Calling it again returns ErrClosed.
func (d *DB) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.closed = true
	d.mu.Unlock()
	err := d.pdb.Close()
	d.cache.Unref()
	if err != nil {
		return fmt.Errorf("kv: close: %w", err)
	}
	return nil
}

// Space is one component's share of the database: every key it reads or
// writes is transparently prefixed. It is safe for concurrent use.
type Space struct {
	db     *DB
	prefix []byte
}

// DB returns the database the space belongs to.
func (s *Space) DB() *DB { return s.db }

// Prefix returns the bytes that begin every key of the space.
func (s *Space) Prefix() []byte { return s.prefix }

// Key returns the full database key for k in this space.
func (s *Space) Key(k []byte) []byte {
	out := make([]byte, 0, len(s.prefix)+len(k))
	out = append(out, s.prefix...)
	return append(out, k...)
}

// Strip removes the space prefix from a full database key.
func (s *Space) Strip(full []byte) []byte { return full[len(s.prefix):] }

// Get returns a copy of the value stored at k, or ErrNotFound.
func (s *Space) Get(k []byte) ([]byte, error) {
	v, closer, err := s.db.pdb.Get(s.Key(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("kv: get: %w", err)
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	return out, closer.Close()
}

// Has reports whether k is present.
func (s *Space) Has(k []byte) (bool, error) {
	_, closer, err := s.db.pdb.Get(s.Key(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kv: has: %w", err)
	}
	return true, closer.Close()
}

// Set writes one key; with sync it returns only once the write is durable.
func (s *Space) Set(k, v []byte, sync bool) error {
	if err := s.db.Write(func() error { return s.db.pdb.Set(s.Key(k), v, writeOpts(sync)) }); err != nil {
		return fmt.Errorf("kv: set: %w", err)
	}
	return nil
}

// Delete removes one key; with sync it returns only once durable.
func (s *Space) Delete(k []byte, sync bool) error {
	if err := s.db.Write(func() error { return s.db.pdb.Delete(s.Key(k), writeOpts(sync)) }); err != nil {
		return fmt.Errorf("kv: delete: %w", err)
	}
	return nil
}

// NewBatch starts an atomic batch of writes within the space.
func (s *Space) NewBatch() *Batch { return &Batch{space: s, b: s.db.pdb.NewBatch()} }

// Iter returns an iterator over keys k of the space with lower <= k < upper.
// A nil lower starts at the beginning of the space, a nil upper runs to its
// end. Keys returned by the iterator are full keys; use Strip.
func (s *Space) Iter(lower, upper []byte) (*pebble.Iterator, error) {
	lo := s.Key(lower)
	var hi []byte
	if upper == nil {
		hi = PrefixEnd(s.prefix)
	} else {
		hi = s.Key(upper)
	}
	it, err := s.db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("kv: iter: %w", err)
	}
	return it, nil
}

// PrefixIter iterates over every key of the space that starts with p.
func (s *Space) PrefixIter(p []byte) (*pebble.Iterator, error) {
	full := s.Key(p)
	it, err := s.db.pdb.NewIter(&pebble.IterOptions{LowerBound: full, UpperBound: PrefixEnd(full)})
	if err != nil {
		return nil, fmt.Errorf("kv: iter: %w", err)
	}
	return it, nil
}

// Batch is an atomic group of writes inside one space. Not safe for
// concurrent use; commit it once.
type Batch struct {
	space *Space
	b     *pebble.Batch
}

// Set adds a write of k to the batch.
func (b *Batch) Set(k, v []byte) error { return b.b.Set(b.space.Key(k), v, nil) }

// Delete adds a deletion of k to the batch.
func (b *Batch) Delete(k []byte) error { return b.b.Delete(b.space.Key(k), nil) }

// Len is the number of writes in the batch.
func (b *Batch) Len() int { return int(b.b.Count()) }

// Commit applies the batch atomically; with sync it returns once durable.
// Concurrent synced commits share fsyncs.
func (b *Batch) Commit(sync bool) error {
	defer b.b.Close()
	if err := b.space.db.Write(func() error { return b.b.Commit(writeOpts(sync)) }); err != nil {
		return fmt.Errorf("kv: commit: %w", err)
	}
	return nil
}

// Close discards an uncommitted batch.
func (b *Batch) Close() error { return b.b.Close() }

// PrefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func PrefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

func writeOpts(sync bool) *pebble.WriteOptions {
	if sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// quietLogger keeps Pebble's informational chatter out of the app's output
// while still surfacing errors and fatal conditions. A background error
// Pebble retries (a compaction on a full disk) repeats until it clears, so
// each message is logged at most once a minute.
type quietLogger struct {
	log  *slog.Logger
	mu   sync.Mutex
	last map[string]time.Time // format → when last logged
}

func (*quietLogger) Infof(string, ...any) {}

func (l *quietLogger) Errorf(f string, a ...any) {
	if l.log == nil {
		return
	}
	l.mu.Lock()
	now := time.Now()
	if t, ok := l.last[f]; ok && now.Sub(t) < time.Minute {
		l.mu.Unlock()
		return
	}
	if l.last == nil || len(l.last) > 1000 {
		l.last = make(map[string]time.Time)
	}
	l.last[f] = now
	l.mu.Unlock()
	l.log.Error("pebble: " + fmt.Sprintf(f, a...))
}

// Fatalf panics with a fatalPanic, which DB.Write recovers when Pebble
// calls it from a commit; from Pebble's own goroutines it ends the process
// with Pebble's message.
func (*quietLogger) Fatalf(f string, a ...any) {
	fp := fatalPanic{msg: fmt.Sprintf(f, a...)}
	for _, x := range a {
		if err, ok := x.(error); ok {
			fp.cause = err
			break
		}
	}
	panic(fp)
}

// fatalPanic is what Pebble's fatal errors panic with.
type fatalPanic struct {
	msg   string
	cause error // the first error among the message's arguments
}

func (p fatalPanic) String() string { return p.msg }

var _ io.Closer = (*DB)(nil)
