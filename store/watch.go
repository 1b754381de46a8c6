package store

import (
	"context"
	"encoding/json"
)

// Change is one change of a document, local or remote, as Watch reports
// it. A Change with Lagged set carries no document: the watcher fell
// behind, some changes were dropped for it, and it should re-read what it
// needs (with Find) before relying on later changes.
type Change struct {
	Collection string
	ID         string
	Doc        json.RawMessage // the document after the change; nil when deleted
	Deleted    bool
	Remote     bool // the change came from a peer
	Lagged     bool
}

type watcher struct {
	coll   string
	q      *query
	ch     chan Change
	cap    int
	lagged bool
	closed bool
	undo   func() bool
}

// Watch reports the changes of the collection's documents, local ones
// once durable and remote ones once applied, until ctx ends or the store
// closes, when the channel is closed. Where options filter the documents
// reported (deletions are always reported). A consumer that falls more than
// Config.WatchBuffer changes behind never blocks the store: it loses the
// changes that do not fit and then receives one Change with Lagged set.
func (c *Collection) Watch(ctx context.Context, opts ...QueryOption) <-chan Change {
	s := c.s
	q := &query{}
	for _, o := range opts {
		o(q)
	}
	w := &watcher{coll: c.name, q: q, cap: s.cfg.WatchBuffer, ch: make(chan Change, s.cfg.WatchBuffer+1)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() || c.err != nil || q.err != nil {
		close(w.ch)
		return w.ch
	}
	s.watchers[w] = struct{}{}
	w.undo = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.watchers, w)
		w.stop()
	})
	return w.ch
}

// stop closes the channel; s.mu is held.
func (w *watcher) stop() {
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
}

func (s *Store) notify(changes []Change) {
	if len(changes) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers {
		if w.closed {
			continue
		}
		for _, ch := range changes {
			if ch.Collection != w.coll || (!ch.Deleted && !w.q.match(ch.Doc)) {
				continue
			}
			if w.lagged {
				if len(w.ch) > 0 {
					continue
				}
				w.lagged = false
			}
			if len(w.ch) >= w.cap {
				w.lagged = true
				w.ch <- Change{Collection: w.coll, Lagged: true} // the spare slot
				continue
			}
			w.ch <- ch
		}
	}
}
