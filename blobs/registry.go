package blobs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// Record is what the DApp knows about one blob: an entry of its replicated
// blob set. Backed by a document collection, a Record is one document whose
// ID is CID.String() and whose fields are size, addedAt and burned.
type Record struct {
	CID     cid.Cid
	Size    uint64    // file size in bytes
	AddedAt time.Time // when it was first added, as stamped by the adder
	Burned  bool      // removed from the DApp: every replica drops it
}

// Registry is the DApp's replicated set of blobs. The dapp package backs it
// with a store collection so that every replica sees every Add and Burn;
// MemRegistry backs it in memory for tests and single-process use.
//
// Implementations must be safe for concurrent use. Changes need not be
// delivered exactly once or in order: Store reconciles against List
// periodically, so Watch is only the fast path.
type Registry interface {
	// Add records c as held by the DApp. It revives a burned record.
	Add(ctx context.Context, r Record) error
	// Burn marks c as removed from the DApp.
	Burn(ctx context.Context, c cid.Cid) error
	// Get returns the record of c, or an error wrapping ErrNotFound.
	Get(ctx context.Context, c cid.Cid) (Record, error)
	// List returns every record, burned ones included.
	List(ctx context.Context) ([]Record, error)
	// Watch delivers records as they change, on this replica or another,
	// until ctx ends; then the channel is closed.
	Watch(ctx context.Context) <-chan Record
}

// MemRegistry is an in-memory Registry. Several Stores in one process may
// share one to behave like replicas of the same DApp. The zero value is
// ready to use.
type MemRegistry struct {
	mu       sync.Mutex
	records  map[cid.Cid]Record
	watchers map[*memWatcher]struct{}
}

var _ Registry = (*MemRegistry)(nil)

// NewMemRegistry returns an empty in-memory registry.
func NewMemRegistry() *MemRegistry { return &MemRegistry{} }

// Add records r, keeping the earliest AddedAt if c was known already.
func (m *MemRegistry) Add(ctx context.Context, r Record) error {
	if !r.CID.Defined() {
		return fmt.Errorf("blobs: registry add: %w", ErrInvalidCID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.records == nil {
		m.records = make(map[cid.Cid]Record)
	}
	if old, ok := m.records[r.CID]; ok && !old.AddedAt.IsZero() && old.AddedAt.Before(r.AddedAt) {
		r.AddedAt = old.AddedAt
	}
	r.Burned = false
	m.records[r.CID] = r
	m.notifyLocked(r)
	return nil
}

// Burn marks c as burned; an unknown c gets a burned record.
func (m *MemRegistry) Burn(ctx context.Context, c cid.Cid) error {
	if !c.Defined() {
		return fmt.Errorf("blobs: registry burn: %w", ErrInvalidCID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.records == nil {
		m.records = make(map[cid.Cid]Record)
	}
	r, ok := m.records[c]
	if !ok {
		r = Record{CID: c}
	}
	r.Burned = true
	m.records[c] = r
	m.notifyLocked(r)
	return nil
}

// Get returns the record of c.
func (m *MemRegistry) Get(ctx context.Context, c cid.Cid) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[c]
	if !ok {
		return Record{}, fmt.Errorf("blobs: registry get %s: %w", c, ErrNotFound)
	}
	return r, nil
}

// List returns every record ordered by CID.
func (m *MemRegistry) List(ctx context.Context) ([]Record, error) {
	m.mu.Lock()
	out := make([]Record, 0, len(m.records))
	for _, r := range m.records {
		out = append(out, r)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.CID.KeyString(), b.CID.KeyString()) })
	return out, nil
}

// Watch delivers every change made after the call until ctx ends. A slow
// reader never blocks writers: each watcher queues its own changes.
func (m *MemRegistry) Watch(ctx context.Context) <-chan Record {
	w := &memWatcher{wake: make(chan struct{}, 1)}
	out := make(chan Record)
	m.mu.Lock()
	if m.watchers == nil {
		m.watchers = make(map[*memWatcher]struct{})
	}
	m.watchers[w] = struct{}{}
	m.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			m.mu.Lock()
			delete(m.watchers, w)
			m.mu.Unlock()
		}()
		for {
			r, ok := w.pop()
			if !ok {
				select {
				case <-w.wake:
					continue
				case <-ctx.Done():
					return
				}
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (m *MemRegistry) notifyLocked(r Record) {
	for w := range m.watchers {
		w.push(r)
	}
}

type memWatcher struct {
	mu    sync.Mutex
	queue []Record
	wake  chan struct{}
}

func (w *memWatcher) push(r Record) {
	w.mu.Lock()
	w.queue = append(w.queue, r)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *memWatcher) pop() (Record, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return Record{}, false
	}
	r := w.queue[0]
	w.queue = w.queue[1:]
	return r, true
}
