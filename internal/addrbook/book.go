package addrbook

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/internal/kv"
)

// Defaults of Options.
const (
	DefaultMaxVerified       = 256
	DefaultMaxCandidates     = 64
	DefaultMaxPerSource      = 16
	DefaultMaxSourceFailures = 8
	DefaultVerifiedTTL       = 14 * 24 * time.Hour
	DefaultCandidateTTL      = time.Hour
	DefaultSourcePenalty     = time.Hour
)

const (
	firstBackoff = time.Second
	maxBackoff   = 10 * time.Minute
	// A candidate is dropped at its second failed dial.
	candidateTries = 2
	maxSources     = 1024
	maxDialling    = 256
)

// Errors of AddCandidate.
var (
	ErrDistrusted = errors.New("addrbook: source distrusted")
	ErrSelf       = errors.New("addrbook: record of the instance itself")
)

// Options configure Open. Zero values mean defaults.
type Options struct {
	// Space persists verified entries; nil keeps the book in memory.
	Space             *kv.Space
	Self              peer.ID // never entered in the book
	MaxVerified       int
	MaxCandidates     int
	MaxPerSource      int
	MaxSourceFailures int
	VerifiedTTL       time.Duration
	CandidateTTL      time.Duration
	SourcePenalty     time.Duration
	Now               func() time.Time
	Logger            *slog.Logger
}

// Entry is what the book knows of one instance.
type Entry struct {
	Record
	Verified bool
	LastGood time.Time // verified entries: last connected
	Added    time.Time // candidates: when learned
	Source   peer.ID   // candidates: who passed the record on
	Failures int       // failed dials since the last success
	NextDial time.Time // not dialled before this
}

// Stats counts what the book holds and refused.
type Stats struct {
	Verified   int
	Candidates int
	Refused    uint64 // candidates refused: distrusted source, stale record
	Evicted    uint64 // entries pushed out by the bounds
	Expired    uint64 // entries aged out or failed out
	Corrupt    uint64 // stored entries that did not decode
}

type source struct {
	failures, successes int
	distrustedUntil     time.Time
	seen                time.Time
}

// Book is the address book. Safe for concurrent use.
type Book struct {
	o Options

	mu      sync.Mutex
	entries map[peer.ID]*Entry
	sources map[peer.ID]*source
	dirty   map[peer.ID]bool // verified entries to write, or deleted ones to remove
	// dialling: the source of each candidate being dialled, so that a
	// failure is charged to it even when the bounds pushed the candidate
	// out meanwhile.
	dialling map[peer.ID]peer.ID
	stats    Stats

	flushMu sync.Mutex // serialises Flush, so writes of one key land in order
}

type stored struct {
	Envelope []byte `cbor:"e"`
	LastGood int64  `cbor:"g"` // unix nanoseconds
	Failures int    `cbor:"f,omitempty"`
}

var decMode, _ = cbor.DecOptions{MaxArrayElements: 16, MaxNestedLevels: 4}.DecMode()
var encMode, _ = cbor.CoreDetEncOptions().EncMode()

// Open loads the verified entries stored in o.Space, dropping those that
// aged out or no longer decode.
func Open(o Options) (*Book, error) {
	o.MaxVerified = cmp.Or(o.MaxVerified, DefaultMaxVerified)
	o.MaxCandidates = cmp.Or(o.MaxCandidates, DefaultMaxCandidates)
	o.MaxPerSource = cmp.Or(o.MaxPerSource, DefaultMaxPerSource)
	o.MaxSourceFailures = cmp.Or(o.MaxSourceFailures, DefaultMaxSourceFailures)
	o.VerifiedTTL = cmp.Or(o.VerifiedTTL, DefaultVerifiedTTL)
	o.CandidateTTL = cmp.Or(o.CandidateTTL, DefaultCandidateTTL)
	o.SourcePenalty = cmp.Or(o.SourcePenalty, DefaultSourcePenalty)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Book{
		o:        o,
		entries:  make(map[peer.ID]*Entry),
		sources:  make(map[peer.ID]*source),
		dirty:    make(map[peer.ID]bool),
		dialling: make(map[peer.ID]peer.ID),
	}
	if o.Space == nil {
		return b, nil
	}
	it, err := o.Space.Iter(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("addrbook: open: %w", err)
	}
	now := o.Now()
	var loaded []*Entry
	for ok := it.First(); ok; ok = it.Next() {
		key := peer.ID(o.Space.Strip(it.Key()))
		e, err := decodeStored(it.Value())
		if err != nil || e.ID != key {
			b.stats.Corrupt++
			b.dirty[key] = true
			o.Logger.Warn("addrbook: dropping a stored entry that does not decode", "peer", key, "err", err)
			continue
		}
		if now.Sub(e.LastGood) > o.VerifiedTTL || e.ID == o.Self {
			b.stats.Expired++
			b.dirty[key] = true
			continue
		}
		loaded = append(loaded, e)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("addrbook: open: %w", err)
	}
	// A smaller bound than the stored book had keeps the freshest.
	slices.SortFunc(loaded, func(a, b *Entry) int { return b.LastGood.Compare(a.LastGood) })
	for i, e := range loaded {
		if i >= o.MaxVerified {
			b.stats.Evicted++
			b.dirty[e.ID] = true
			continue
		}
		b.entries[e.ID] = e
	}
	return b, b.Flush()
}

func decodeStored(v []byte) (*Entry, error) {
	var s stored
	if err := decMode.Unmarshal(v, &s); err != nil {
		return nil, err
	}
	r, err := ParseRecord(s.Envelope)
	if err != nil {
		return nil, err
	}
	return &Entry{Record: r, Verified: true, LastGood: time.Unix(0, s.LastGood), Failures: s.Failures}, nil
}

// AddCandidate enters a record that source passed on. A record of a
// verified entry, or of a known candidate, only refreshes its addresses
// when its sequence number is higher. It reports whether the record was
// new to the book.
func (b *Book) AddCandidate(r Record, from peer.ID) (bool, error) {
	if r.ID == b.o.Self {
		return false, ErrSelf
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.o.Now()
	if e, ok := b.entries[r.ID]; ok {
		if r.Seq > e.Seq {
			e.Record = r
			if e.Verified {
				b.dirty[r.ID] = true
			}
		}
		return false, nil
	}
	src := b.source(from, now)
	if now.Before(src.distrustedUntil) {
		b.stats.Refused++
		return false, fmt.Errorf("addrbook: record from %s: %w", from, ErrDistrusted)
	}
	// Bounds: a source that passes on many records only pushes out its own.
	var mine, all []*Entry
	for _, e := range b.entries {
		if !e.Verified {
			all = append(all, e)
			if e.Source == from {
				mine = append(mine, e)
			}
		}
	}
	if len(mine) >= b.o.MaxPerSource {
		b.evict(oldest(mine))
	} else if len(all) >= b.o.MaxCandidates {
		b.evict(oldest(largestSource(all)))
	}
	b.entries[r.ID] = &Entry{Record: r, Added: now, Source: from}
	return true, nil
}

func oldest(es []*Entry) *Entry {
	return slices.MinFunc(es, func(a, b *Entry) int { return a.Added.Compare(b.Added) })
}

// largestSource returns the candidates of the source with most of them.
func largestSource(es []*Entry) []*Entry {
	by := make(map[peer.ID][]*Entry)
	var top peer.ID
	for _, e := range es {
		by[e.Source] = append(by[e.Source], e)
		if len(by[e.Source]) > len(by[top]) {
			top = e.Source
		}
	}
	return by[top]
}

func (b *Book) evict(e *Entry) {
	delete(b.entries, e.ID)
	if e.Verified {
		b.dirty[e.ID] = true
	}
	b.stats.Evicted++
}

func (b *Book) source(id peer.ID, now time.Time) *source {
	s, ok := b.sources[id]
	if !ok {
		if len(b.sources) >= maxSources {
			// Forget the source heard from least recently; it is not
			// distrusted for long anyway.
			var old peer.ID
			var at time.Time
			for k, v := range b.sources {
				if at.IsZero() || v.seen.Before(at) {
					old, at = k, v.seen
				}
			}
			delete(b.sources, old)
		}
		s = &source{}
		b.sources[id] = s
	}
	s.seen = now
	return s
}

// MarkGood records that the instance of r is connected: a secure
// connection proved its key and it speaks the DApp's protocol. The entry
// becomes (or stays) verified, with r's addresses, good as of now. It
// reports whether the entry was not verified before.
func (b *Book) MarkGood(r Record) bool {
	if r.ID == b.o.Self {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.o.Now()
	delete(b.dialling, r.ID)
	e, ok := b.entries[r.ID]
	if ok && !e.Verified {
		if s, ok := b.sources[e.Source]; ok {
			s.successes++
		}
	}
	if !ok {
		var verified []*Entry
		for _, e := range b.entries {
			if e.Verified {
				verified = append(verified, e)
			}
		}
		if len(verified) >= b.o.MaxVerified {
			b.evict(slices.MinFunc(verified, func(a, b *Entry) int { return a.LastGood.Compare(b.LastGood) }))
		}
		e = &Entry{}
		b.entries[r.ID] = e
	}
	if !ok || r.Seq >= e.Seq {
		e.Record = r
	}
	wasVerified := e.Verified
	e.Verified, e.LastGood, e.Failures, e.NextDial = true, now, 0, time.Time{}
	e.Source, e.Added = "", time.Time{}
	b.dirty[r.ID] = true
	return !wasVerified
}

// Touch refreshes LastGood of verified entries still connected.
func (b *Book) Touch(ids ...peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.o.Now()
	for _, id := range ids {
		if e, ok := b.entries[id]; ok && e.Verified {
			e.LastGood = now
			b.dirty[id] = true
		}
	}
}

// Dialing marks id as being dialled, so that it is not due again until
// its backoff has passed.
func (b *Book) Dialing(id peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[id]; ok {
		e.NextDial = b.o.Now().Add(backoff(e.Failures))
		if !e.Verified {
			if len(b.dialling) >= maxDialling {
				clear(b.dialling) // dials that never reported back
			}
			b.dialling[id] = e.Source
		}
	}
}

func backoff(failures int) time.Duration {
	d := firstBackoff
	for range failures {
		d *= 2
		if d >= maxBackoff {
			return maxBackoff
		}
	}
	return d
}

// DialFailed records a failed dial of id. A candidate is dropped at its
// second failure, and its source is charged with it.
func (b *Book) DialFailed(id peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	src, wasCandidate := b.dialling[id]
	delete(b.dialling, id)
	now := b.o.Now()
	e, ok := b.entries[id]
	if !ok {
		if wasCandidate {
			b.charge(src, now)
		}
		return
	}
	e.Failures++
	e.NextDial = now.Add(backoff(e.Failures))
	if e.Verified {
		b.dirty[id] = true
		return
	}
	if b.charge(e.Source, now) {
		return
	}
	if e.Failures >= candidateTries {
		delete(b.entries, id)
		b.stats.Expired++
	}
}

// charge counts a failed dial of a candidate against its source, and
// reports whether that made the source distrusted (its candidates are
// then dropped).
func (b *Book) charge(from peer.ID, now time.Time) bool {
	s, ok := b.sources[from]
	if !ok {
		return false
	}
	s.failures++
	if s.failures < b.o.MaxSourceFailures || s.failures <= 4*s.successes {
		return false
	}
	s.distrustedUntil = now.Add(b.o.SourcePenalty)
	s.failures, s.successes = 0, 0
	b.o.Logger.Warn("addrbook: distrusting a peer whose records do not answer", "peer", from, "for", b.o.SourcePenalty)
	for _, c := range b.entries {
		if !c.Verified && c.Source == from {
			delete(b.entries, c.ID)
			b.stats.Expired++
		}
	}
	return true
}

// Hold keeps id from being dialled for d, e.g. after it disconnected.
func (b *Book) Hold(id peer.ID, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[id]; ok {
		if t := b.o.Now().Add(d); t.After(e.NextDial) {
			e.NextDial = t
		}
	}
}

// Due returns the entries that may be dialled now and for which skip
// (nil: none) is false: verified ones first, most recently good first,
// then candidates, newest first. It also ages entries out.
func (b *Book) Due(skip func(peer.ID) bool) []Entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire()
	now := b.o.Now()
	var out []Entry
	for _, e := range b.entries {
		if now.Before(e.NextDial) || (skip != nil && skip(e.ID)) {
			continue
		}
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if a.Verified != b.Verified {
			if a.Verified {
				return -1
			}
			return 1
		}
		if a.Verified {
			return b.LastGood.Compare(a.LastGood)
		}
		return b.Added.Compare(a.Added)
	})
	return out
}

func (b *Book) expire() {
	now := b.o.Now()
	for id, e := range b.entries {
		var old bool
		if e.Verified {
			old = now.Sub(e.LastGood) > b.o.VerifiedTTL
		} else {
			old = now.Sub(e.Added) > b.o.CandidateTTL
		}
		if old {
			delete(b.entries, id)
			if e.Verified {
				b.dirty[id] = true
			}
			b.stats.Expired++
		}
	}
}

// Get returns the entry of id.
func (b *Book) Get(id peer.ID) (Entry, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[id]
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// Stats reports what the book holds and what it refused.
func (b *Book) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	for _, e := range b.entries {
		if e.Verified {
			s.Verified++
		} else {
			s.Candidates++
		}
	}
	return s
}

// Flush writes the verified entries changed since the last Flush to the
// space (unsynced). The owner calls it now and then and before closing.
func (b *Book) Flush() error {
	if b.o.Space == nil {
		b.mu.Lock()
		clear(b.dirty)
		b.mu.Unlock()
		return nil
	}
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	if len(b.dirty) == 0 {
		b.mu.Unlock()
		return nil
	}
	batch := b.o.Space.NewBatch() // Commit closes it; Close only if not committed
	var err error
	for id := range b.dirty {
		e, ok := b.entries[id]
		if !ok || !e.Verified {
			err = errors.Join(err, batch.Delete([]byte(id)))
			continue
		}
		v, eerr := encMode.Marshal(stored{Envelope: e.Envelope, LastGood: e.LastGood.UnixNano(), Failures: e.Failures})
		err = errors.Join(err, eerr, batch.Set([]byte(id), v))
	}
	clear(b.dirty)
	b.mu.Unlock()
	if err != nil {
		_ = batch.Close()
		return fmt.Errorf("addrbook: flush: %w", err)
	}
	if err := batch.Commit(false); err != nil {
		return fmt.Errorf("addrbook: flush: %w", err)
	}
	return nil
}
