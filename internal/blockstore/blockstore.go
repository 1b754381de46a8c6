// Package blockstore keeps IPFS blocks in the instance's Pebble database.
//
// Store implements boxo's blockstore.Blockstore on a kv.Space. Blocks are
// keyed by multihash, not by CID, exactly like boxo's own blockstore: a raw
// leaf and a dag-pb node with the same bytes share one stored copy, and a
// CIDv0 and a CIDv1 of the same block are the same key. Identity CIDs carry
// their data inline and are never stored.
//
// # Layout and write path
//
// Blocks are content-addressed and can be fetched again, so their bytes do
// not go through Pebble's write-ahead log and memtable, nor through its
// compactions. Put buffers blocks in memory (they are readable at once) and
// every Config.FlushBytes writes the buffer as one sstable of values keyed by
// a sequence number, then ingests it with Pebble's Ingest. Sequence numbers
// count down and Config.ValuePrefix sorts before every other key of the
// database, so each ingested table sorts before everything already stored
// and Pebble places it straight in the bottom level, where no compaction
// rewrites it. A small index record per block, written through the ordinary
// write path after the ingestion, maps the multihash to the block's size and
// sequence number; Has, GetSize and Each read only these records.
//
// # Durability
//
// Nothing Put is durable until Flush returns: callers that need durability
// (a pin that names the blocks) call Flush, then commit their own record
// with sync, and Pebble's single write-ahead log makes the index records
// durable with it. A crash loses at most unflushed blocks, which no durable
// record names. Before each ingestion a synced intent record names its
// sequence numbers, and the index batch deletes it; New deletes the values
// of any intent left by a crash, so a crash between the ingestion and the
// index never leaks them.
//
// A Store is safe for concurrent use.
package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/dpaas/dpaas/internal/kv"
	boxobs "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

// DefaultFlushBytes is how many bytes of blocks are buffered before they are
// ingested, when Config.FlushBytes is zero.
const DefaultFlushBytes = 32 << 20

// Config configures New.
type Config struct {
	// Prefix is where, inside the space, the index and the bookkeeping
	// live. The caller must keep its own keys out of it. Required.
	Prefix []byte
	// ValuePrefix is where, inside the space, block bytes live; it must not
	// share keys with Prefix or the caller's keys. Ingested tables land in
	// the bottom level of the LSM only when the space's key plus
	// ValuePrefix sorts before every other key of the database; otherwise
	// they still work but are compacted like ordinary writes. Nil means
	// Prefix + "v".
	ValuePrefix []byte
	// FlushBytes is how many bytes of blocks Put buffers before writing
	// them out. Zero means DefaultFlushBytes.
	FlushBytes int
}

// Store is a boxo Blockstore on a key space of the instance's database.
type Store struct {
	space       *kv.Space
	db          *kv.DB // for Write
	pdb         *pebble.DB
	prefix      []byte
	valuePrefix []byte // full database key prefix of values
	flushBytes  int

	written atomic.Uint64 // bytes of blocks written since New

	mu      sync.Mutex
	pending *buffer   // accepting blocks
	sealed  []*buffer // being written out, still readable

	// flushMu serialises ingestions and deletions, so that the check for
	// blocks already indexed and the deletion of blocks cannot interleave.
	flushMu sync.Mutex
	next    uint64 // next value sequence number (counts down); flushMu

	writers sync.WaitGroup // background writes of full buffers

	// Calls in flight, so that Close waits for them and refuses later ones:
	// a caller may give up on a read (boxo's blockservice reads from a
	// goroutine of its own that outlives its caller) while the database is
	// being closed under it.
	lifeMu  sync.Mutex
	idle    *sync.Cond // on lifeMu: no call in flight
	calls   int
	closing bool
}

// ErrClosed is returned by calls made once Close has begun.
var ErrClosed = errors.New("blockstore: closed")

// enter admits one call, or returns ErrClosed once Close has begun; an
// admitted call must exit.
func (s *Store) enter() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closing {
		return ErrClosed
	}
	s.calls++
	return nil
}

func (s *Store) exit() {
	s.lifeMu.Lock()
	s.calls--
	if s.calls == 0 {
		s.idle.Broadcast()
	}
	s.lifeMu.Unlock()
}

// maxSealed is how many full buffers may wait to be written before PutMany
// waits for the oldest: it bounds memory when the disk is slower than the
// network.
const maxSealed = 2

// buffer is a set of blocks not yet written to the database.
type buffer struct {
	data  map[string][]byte // multihash → block bytes
	bytes int
	done  chan struct{} // closed once written (or failed)
	err   error
}

func newBuffer() *buffer {
	return &buffer{data: make(map[string][]byte), done: make(chan struct{})}
}

func (b *buffer) remove(mh string) {
	if d, ok := b.data[mh]; ok {
		delete(b.data, mh)
		b.bytes -= len(d)
	}
}

var _ boxobs.Blockstore = (*Store)(nil)

// Key tags under Prefix. The index of a block is under "s"+multihash: its
// size as a uvarint, then its value's sequence number (8 bytes, big
// endian). Stores written before values were ingested kept the bytes under
// "d"+multihash and only the size in the index; both are still read.
const (
	tagLegacyData = 'd'
	tagIndex      = 's'
	tagIntent     = 'i' // + first sequence number → last: an ingestion under way
	tagFloor      = 'n' // lowest sequence number ever handed out
)

// New returns a blockstore on space laid out by cfg. It recovers from an
// ingestion that a crash cut short.
func New(space *kv.Space, cfg Config) (*Store, error) {
	if len(cfg.Prefix) == 0 {
		return nil, errors.New("blockstore: Config.Prefix is required")
	}
	vp := cfg.ValuePrefix
	if vp == nil {
		vp = append(append([]byte(nil), cfg.Prefix...), 'v')
	}
	if cfg.FlushBytes <= 0 {
		cfg.FlushBytes = DefaultFlushBytes
	}
	s := &Store{
		space:       space,
		db:          space.DB(),
		pdb:         space.DB().Pebble(),
		prefix:      append([]byte(nil), cfg.Prefix...),
		valuePrefix: space.Key(vp),
		flushBytes:  cfg.FlushBytes,
		pending:     newBuffer(),
		next:        math.MaxUint64,
	}
	s.idle = sync.NewCond(&s.lifeMu)
	if err := s.recover(); err != nil {
		return nil, fmt.Errorf("blockstore: open: %w", err)
	}
	return s, nil
}

// key is the full database key of a tag under the prefix.
func (s *Store) key(tag byte, rest []byte) []byte {
	k := make([]byte, 0, len(s.prefix)+1+len(rest))
	k = append(k, s.prefix...)
	k = append(k, tag)
	return s.space.Key(append(k, rest...))
}

func (s *Store) valueKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), s.valuePrefix...), seq)
}

// A block's bytes are stored as chunks of at most valueChunk bytes, under
// valueKey(seq) + chunk number (2 bytes, big endian). Pebble reads each
// into a block-cache buffer of its own, allocated with the C allocator; at
// 64 KiB these come from the allocator's free lists, where whole 256 KiB
// values would each be a fresh mapping whose page faults cost more than
// the read itself.
const valueChunk = 64 << 10

func (s *Store) chunkKey(seq uint64, i int) []byte {
	return binary.BigEndian.AppendUint16(s.valueKey(seq), uint16(i))
}

// chunks is how many chunks hold size bytes.
func chunks(size uint64) int { return int((size + valueChunk - 1) / valueChunk) }

// tmpPrefix starts the names of the sstables this store builds before
// ingesting them, in the database directory.
func (s *Store) tmpPrefix() string {
	return fmt.Sprintf("blockstore-%x-", s.space.Key(s.prefix))
}

// recover reads the lowest sequence number used, deletes the values of
// ingestions that never got their index, and removes tables that were
// never ingested.
func (s *Store) recover() error {
	v, closer, err := s.pdb.Get(s.key(tagFloor, nil))
	switch {
	case err == nil:
		if len(v) != 8 {
			_ = closer.Close()
			return fmt.Errorf("corrupt floor record %x", v)
		}
		s.next = binary.BigEndian.Uint64(v) - 1
		_ = closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return err
	}

	lo := s.key(tagIntent, nil)
	it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: kv.PrefixEnd(lo)})
	if err != nil {
		return err
	}
	b := s.pdb.NewBatch()
	defer b.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(lo)+8 || len(v) != 8 {
			_ = it.Close()
			return fmt.Errorf("corrupt intent record %x", k)
		}
		first, last := binary.BigEndian.Uint64(k[len(lo):]), binary.BigEndian.Uint64(v)
		end := kv.PrefixEnd(s.valuePrefix)
		if last < math.MaxUint64 {
			end = s.valueKey(last + 1)
		}
		if err := b.DeleteRange(s.valueKey(first), end, nil); err != nil {
			_ = it.Close()
			return err
		}
		if err := b.Delete(append([]byte(nil), k...), nil); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if b.Count() > 0 {
		if err := s.db.Write(func() error { return b.Commit(pebble.Sync) }); err != nil {
			return err
		}
	}

	fs, dir := s.space.DB().FS(), s.space.DB().Dir()
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, s.tmpPrefix()) {
			if err := fs.Remove(fs.PathJoin(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func isIdentity(c cid.Cid) (data []byte, ok bool) {
	if c.Prefix().MhType != multihash.IDENTITY {
		return nil, false
	}
	dec, err := multihash.Decode(c.Hash())
	if err != nil {
		return nil, false
	}
	return dec.Digest, true
}

// buffered returns the bytes of a block not yet written out.
func (s *Store) buffered(mh string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.pending.data[mh]; ok {
		return d, true
	}
	for i := len(s.sealed) - 1; i >= 0; i-- {
		if d, ok := s.sealed[i].data[mh]; ok {
			return d, true
		}
	}
	return nil, false
}

// index is a decoded index record.
type index struct {
	size   uint64
	seq    uint64
	legacy bool // the bytes are under tagLegacyData
}

func decodeIndex(v []byte) (index, bool) {
	size, n := binary.Uvarint(v)
	switch {
	case n <= 0:
		return index{}, false
	case len(v) == n:
		return index{size: size, legacy: true}, true
	case len(v) == n+8:
		return index{size: size, seq: binary.BigEndian.Uint64(v[n:])}, true
	}
	return index{}, false
}

// readIndex returns the index record of mh, or ok=false.
func (s *Store) readIndex(mh []byte) (index, bool, error) {
	v, closer, err := s.pdb.Get(s.key(tagIndex, mh))
	if errors.Is(err, pebble.ErrNotFound) {
		return index{}, false, nil
	}
	if err != nil {
		return index{}, false, err
	}
	ix, ok := decodeIndex(v)
	_ = closer.Close()
	if !ok {
		return index{}, false, fmt.Errorf("blockstore: corrupt index record of %s", multihash.Multihash(mh).B58String())
	}
	return ix, true, nil
}

// Has reports whether the block is stored.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	_, err := s.GetSize(ctx, c)
	if ipld.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Get returns the block, or an error that satisfies ipld.IsNotFound.
func (s *Store) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	if data, ok := isIdentity(c); ok {
		return blocks.NewBlockWithCid(data, c)
	}
	if !c.Defined() {
		return nil, fmt.Errorf("blockstore: get: %w", ipld.ErrNotFound{Cid: c})
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	mh := c.Hash()
	if d, ok := s.buffered(string(mh)); ok {
		return blocks.NewBlockWithCid(d, c)
	}
	ix, ok, err := s.readIndex(mh)
	if err != nil {
		return nil, fmt.Errorf("blockstore: get %s: %w", c, err)
	}
	if !ok {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	data, err := s.readValue(mh, ix)
	if err != nil {
		return nil, fmt.Errorf("blockstore: get %s: %w", c, err)
	}
	return blocks.NewBlockWithCid(data, c)
}

// readValue returns a copy of the bytes an index record points to.
func (s *Store) readValue(mh []byte, ix index) ([]byte, error) {
	data := make([]byte, 0, ix.size)
	err := s.eachChunk(mh, ix, func(v []byte) error {
		data = append(data, v...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

// eachChunk passes the bytes an index record points to, in order, to fn,
// which must not keep them. It fails with errMissing, having passed part of
// them maybe, when they are not all there.
func (s *Store) eachChunk(mh []byte, ix index, fn func([]byte) error) error {
	n := chunks(ix.size)
	switch {
	case ix.legacy:
		return s.wholeValue(s.key(tagLegacyData, mh), ix.size, fn)
	case n == 1:
		return s.wholeValue(s.chunkKey(ix.seq, 0), ix.size, fn)
	}
	got := uint64(0)
	// One iterator over the block's chunks: one seek, then steps, instead
	// of a full lookup per chunk.
	it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: s.chunkKey(ix.seq, 0), UpperBound: s.chunkKey(ix.seq, n)})
	if err != nil {
		return err
	}
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		if !bytes.Equal(it.Key(), s.chunkKey(ix.seq, i)) {
			break
		}
		v, err := it.ValueAndErr()
		if err == nil && got+uint64(len(v)) > ix.size {
			err = fmt.Errorf("%w: more bytes stored than the %d indexed", errMissing, ix.size)
		}
		if err == nil {
			got += uint64(len(v))
			err = fn(v)
		}
		if err != nil {
			it.Close()
			return err
		}
		i++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if i != n || got != ix.size {
		return fmt.Errorf("%w: %d bytes stored, %d indexed", errMissing, got, ix.size)
	}
	return nil
}

// wholeValue passes the value under key, which must be size bytes long, to
// fn.
func (s *Store) wholeValue(key []byte, size uint64, fn func([]byte) error) error {
	v, closer, err := s.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return errMissing
	}
	if err != nil {
		return err
	}
	if uint64(len(v)) != size {
		_ = closer.Close()
		return fmt.Errorf("%w: %d bytes stored, %d indexed", errMissing, len(v), size)
	}
	err = fn(v)
	return errors.Join(err, closer.Close())
}

// WriteBlock writes the bytes of block c to w without copying them into a
// block of their own, after calling before with their length. It reports
// found false, having called nothing, when the block is not stored. When
// it fails after calling before, part of the bytes may have been written.
func (s *Store) WriteBlock(c cid.Cid, w io.Writer, before func(size int) error) (found bool, err error) {
	if data, ok := isIdentity(c); ok {
		return true, writeWhole(data, w, before)
	}
	if !c.Defined() {
		return false, nil
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.exit()
	mh := c.Hash()
	if d, ok := s.buffered(string(mh)); ok {
		return true, writeWhole(d, w, before)
	}
	ix, ok, err := s.readIndex(mh)
	if err != nil {
		return false, fmt.Errorf("blockstore: read %s: %w", c, err)
	}
	if !ok {
		return false, nil
	}
	if err := before(int(ix.size)); err != nil {
		return true, err
	}
	err = s.eachChunk(mh, ix, func(v []byte) error {
		_, err := w.Write(v)
		return err
	})
	if err != nil {
		return true, fmt.Errorf("blockstore: read %s: %w", c, err)
	}
	return true, nil
}

func writeWhole(data []byte, w io.Writer, before func(int) error) error {
	if err := before(len(data)); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

var errMissing = errors.New("indexed but its bytes are missing")

// GetSize returns the size of the block's data.
func (s *Store) GetSize(_ context.Context, c cid.Cid) (int, error) {
	if data, ok := isIdentity(c); ok {
		return len(data), nil
	}
	if !c.Defined() {
		return -1, fmt.Errorf("blockstore: get size: %w", ipld.ErrNotFound{Cid: c})
	}
	if err := s.enter(); err != nil {
		return -1, err
	}
	defer s.exit()
	if d, ok := s.buffered(string(c.Hash())); ok {
		return len(d), nil
	}
	ix, ok, err := s.readIndex(c.Hash())
	if err != nil {
		return -1, fmt.Errorf("blockstore: get size %s: %w", c, err)
	}
	if !ok {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	return int(ix.size), nil
}

// Put stores one block.
func (s *Store) Put(ctx context.Context, b blocks.Block) error {
	return s.PutMany(ctx, []blocks.Block{b})
}

// PutMany adds blocks to the write buffer, where they are readable at once;
// a full buffer is written out in the background. Blocks are not durable
// until Flush returns; an error writing them out is reported by Flush, and
// once the database has failed a write PutMany refuses blocks with that
// error. The blocks' bytes are kept, not copied: blocks are
// immutable.
func (s *Store) PutMany(_ context.Context, bs []blocks.Block) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	if err := s.db.Failed(); err != nil {
		// Nothing more can be written out: buffering would only hold
		// every block offered from now on in memory.
		return fmt.Errorf("blockstore: put: %w", err)
	}
	var added uint64
	var full *buffer
	s.mu.Lock()
	inCall := make(map[string]struct{}, len(bs))
	for _, b := range bs {
		c := b.Cid()
		if _, ok := isIdentity(c); ok {
			continue
		}
		mh := string(c.Hash())
		if _, dup := inCall[mh]; dup {
			continue
		}
		inCall[mh] = struct{}{}
		added += uint64(len(b.RawData()))
		if _, ok := s.pending.data[mh]; !ok {
			s.pending.data[mh] = b.RawData()
			s.pending.bytes += len(b.RawData())
		}
	}
	if s.pending.bytes >= s.flushBytes {
		full = s.seal()
	}
	// Too far behind: wait for the oldest write before buffering more.
	var wait *buffer
	if len(s.sealed) > maxSealed {
		wait = s.sealed[0]
	}
	s.mu.Unlock()
	s.written.Add(added)
	if full != nil {
		// In the background: a reader waiting for this block must not wait
		// for the whole buffer to reach the disk.
		s.writers.Add(1)
		go func() {
			defer s.writers.Done()
			_ = s.write(full)
		}()
	}
	if wait != nil {
		<-wait.done
	}
	return nil
}

// seal moves the pending buffer to the sealed list; s.mu must be held.
func (s *Store) seal() *buffer {
	b := s.pending
	s.sealed = append(s.sealed, b)
	s.pending = newBuffer()
	return b
}

// Flush writes out every block Put before the call and returns once they
// are in the database. Call it before committing a record that needs them
// to survive a crash; that record's synced commit makes them durable.
func (s *Store) Flush() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	return s.flush()
}

func (s *Store) flush() error {
	s.mu.Lock()
	var mine *buffer
	if len(s.pending.data) > 0 {
		mine = s.seal()
	}
	others := append([]*buffer(nil), s.sealed...)
	s.mu.Unlock()
	var errs []error
	if mine != nil {
		errs = append(errs, s.write(mine))
	}
	for _, b := range others {
		if b == mine {
			continue
		}
		<-b.done
		errs = append(errs, b.err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blockstore: flush: %w", err)
	}
	return nil
}

// Close refuses new calls with ErrClosed, waits for those in flight, then
// writes out every buffered block, like Flush, and waits for the background
// writes. Calling it again returns ErrClosed.
func (s *Store) Close() error {
	s.lifeMu.Lock()
	if s.closing {
		s.lifeMu.Unlock()
		return ErrClosed
	}
	s.closing = true
	for s.calls > 0 {
		s.idle.Wait()
	}
	s.lifeMu.Unlock()
	err := s.flush()
	s.writers.Wait()
	return err
}

// write ingests a sealed buffer and indexes its blocks, then drops it from
// the sealed list. On failure its blocks go back to the pending buffer, so
// that the next Flush tries again: a Flush that began before the failure
// waited for this buffer and reports the error, one that begins after it
// writes the blocks itself.
func (s *Store) write(b *buffer) error {
	b.err = s.ingest(b)
	s.mu.Lock()
	for i, x := range s.sealed {
		if x == b {
			s.sealed = append(s.sealed[:i], s.sealed[i+1:]...)
			break
		}
	}
	if b.err != nil {
		for mh, d := range b.data {
			if _, ok := s.pending.data[mh]; !ok {
				s.pending.data[mh] = d
				s.pending.bytes += len(d)
			}
		}
	}
	s.mu.Unlock()
	close(b.done)
	return b.err
}

// entry is one block to write.
type entry struct {
	mh   string
	data []byte
}

func (s *Store) ingest(b *buffer) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	// Read the buffer only now: DeleteMany may have removed blocks from it
	// while it waited.
	s.mu.Lock()
	all := make([]entry, 0, len(b.data))
	for mh, d := range b.data {
		all = append(all, entry{mh, d})
	}
	s.mu.Unlock()
	// Blocks already indexed are not written again: an index points to one
	// value, and a second copy would be garbage no one could find.
	todo := all[:0]
	for _, e := range all {
		_, ok, err := s.readIndex([]byte(e.mh))
		if err != nil {
			return err
		}
		if !ok {
			todo = append(todo, e)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	n := uint64(len(todo))
	if s.next < n {
		return errors.New("blockstore: value sequence numbers exhausted")
	}
	first, last := s.next-n+1, s.next

	// 1. A synced intent, so that a crash after the ingestion but before
	// the index deletes the values at the next New.
	intent := s.key(tagIntent, binary.BigEndian.AppendUint64(nil, first))
	pre := s.pdb.NewBatch()
	_ = pre.Set(intent, binary.BigEndian.AppendUint64(nil, last), nil)
	_ = pre.Set(s.key(tagFloor, nil), binary.BigEndian.AppendUint64(nil, first), nil)
	err := s.db.Write(func() error { return pre.Commit(pebble.Sync) })
	_ = pre.Close()
	if err != nil {
		return err
	}
	s.next = first - 1

	// 2. The values, in key order, as one synced sstable.
	fs, dir := s.space.DB().FS(), s.space.DB().Dir()
	path := fs.PathJoin(dir, fmt.Sprintf("%s%016x.sst", s.tmpPrefix(), first))
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{
		TableFormat: s.pdb.TableFormat(),
		// Blocks are mostly compressed media or random bytes: trying to
		// compress them costs CPU and saves nothing.
		Compression: sstable.NoCompression,
	})
	for i, e := range todo {
		seq := first + uint64(i)
		for j := range chunks(uint64(len(e.data))) {
			chunk := e.data[j*valueChunk : min((j+1)*valueChunk, len(e.data))]
			if err := w.Set(s.chunkKey(seq, j), chunk); err != nil {
				_ = w.Close()
				_ = fs.Remove(path)
				return err
			}
		}
	}
	if err := w.Close(); err != nil { // syncs the file
		_ = fs.Remove(path)
		return err
	}

	// 3. Ingested: every key sorts before the database's others, so the
	// table goes to the bottom level without overlapping anything.
	if err := s.db.Write(func() error { return s.pdb.Ingest(context.Background(), []string{path}) }); err != nil {
		_ = fs.Remove(path)
		return err
	}

	// 4. The index, and the intent gone, atomically; durable with the next
	// synced commit.
	idx := s.pdb.NewBatch()
	defer idx.Close()
	for i, e := range todo {
		v := binary.AppendUvarint(nil, uint64(len(e.data)))
		v = binary.BigEndian.AppendUint64(v, first+uint64(i))
		if err := idx.Set(s.key(tagIndex, []byte(e.mh)), v, nil); err != nil {
			return err
		}
	}
	if err := idx.Delete(intent, nil); err != nil {
		return err
	}
	return s.db.Write(func() error { return idx.Commit(pebble.NoSync) })
}

// DeleteBlock removes a block; removing an absent block is not an error.
func (s *Store) DeleteBlock(_ context.Context, c cid.Cid) error {
	if _, ok := isIdentity(c); ok {
		return nil
	}
	if err := s.DeleteMany([]multihash.Multihash{c.Hash()}, false); err != nil {
		return fmt.Errorf("blockstore: delete %s: %w", c, err)
	}
	return nil
}

// DeleteMany removes the blocks with the given multihashes in one atomic
// batch; with sync it returns once the deletion is durable.
func (s *Store) DeleteMany(mhs []multihash.Multihash, sync bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	for _, mh := range mhs {
		s.pending.remove(string(mh))
		for _, b := range s.sealed {
			b.remove(string(mh))
		}
	}
	s.mu.Unlock()
	batch := s.pdb.NewBatch()
	defer batch.Close()
	for _, mh := range mhs {
		ix, ok, err := s.readIndex(mh)
		if err != nil {
			return fmt.Errorf("blockstore: delete: %w", err)
		}
		if !ok {
			continue
		}
		// Index first: a block without its index is invisible, so the pair
		// is removed atomically anyway, but never the other way round.
		if err := batch.Delete(s.key(tagIndex, mh), nil); err != nil {
			return fmt.Errorf("blockstore: delete: %w", err)
		}
		if ix.legacy {
			if err := batch.Delete(s.key(tagLegacyData, mh), nil); err != nil {
				return fmt.Errorf("blockstore: delete: %w", err)
			}
			continue
		}
		for i := range chunks(ix.size) {
			if err := batch.Delete(s.chunkKey(ix.seq, i), nil); err != nil {
				return fmt.Errorf("blockstore: delete: %w", err)
			}
		}
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := batch.Commit(opts); err != nil {
		return fmt.Errorf("blockstore: delete: %w", err)
	}
	return nil
}

// Each flushes, then calls fn with the multihash and data size of every
// stored block, in key order, until fn returns an error or ctx ends. The
// multihash is a fresh copy that fn may keep.
func (s *Store) Each(ctx context.Context, fn func(mh multihash.Multihash, size int) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	if err := s.flush(); err != nil {
		return fmt.Errorf("blockstore: each: %w", err)
	}
	p := s.key(tagIndex, nil)
	it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: kv.PrefixEnd(p)})
	if err != nil {
		return fmt.Errorf("blockstore: each: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			_ = it.Close()
			return err
		}
		mh := multihash.Multihash(append([]byte(nil), it.Key()[len(p):]...))
		ix, ok := decodeIndex(it.Value())
		if !ok {
			_ = it.Close()
			return fmt.Errorf("blockstore: corrupt index record of %s", mh.B58String())
		}
		if err := fn(mh, int(ix.size)); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("blockstore: each: %w", err)
	}
	return nil
}

// AllKeysChan streams the CIDs (raw codec, as the codec is not stored) of
// every block until ctx ends.
func (s *Store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	ch := make(chan cid.Cid, 64)
	go func() {
		defer close(ch)
		_ = s.Each(ctx, func(mh multihash.Multihash, _ int) error {
			select {
			case ch <- cid.NewCidV1(cid.Raw, mh):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return ch, nil
}

// Written returns how many bytes of blocks were written since New.
func (s *Store) Written() uint64 { return s.written.Load() }
