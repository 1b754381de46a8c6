package governance

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/govern"
)

// Journal remembers which actions an instance has run, so that a restart
// never runs one twice. Keys are opaque strings. Implementations must be
// safe for concurrent use and durable before they return, when the
// instance is.
type Journal interface {
	// Begin records that the action named key is about to run. It reports
	// false, and records nothing, if key was begun before.
	Begin(key string) (bool, error)
	// Finish records how the action ended: msg is "" on success, else the
	// handler's error.
	Finish(key string, msg string) error
	// Lookup returns what was recorded for key.
	Lookup(key string) (JournalEntry, bool, error)
}

// JournalEntry is what a Journal holds for one action.
type JournalEntry struct {
	Finished bool
	// Err is the handler's error, "" if it succeeded. An entry begun and
	// never finished was interrupted (the process stopped while the
	// handler ran); it is not run again.
	Err string
}

// NewMemJournal returns a Journal kept in memory.
func NewMemJournal() Journal { return &memJournal{m: map[string]JournalEntry{}} }

type memJournal struct {
	mu sync.Mutex
	m  map[string]JournalEntry
}

func (j *memJournal) Begin(key string) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.m[key]; ok {
		return false, nil
	}
	j.m[key] = JournalEntry{}
	return true, nil
}

func (j *memJournal) Finish(key, msg string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m[key] = JournalEntry{Finished: true, Err: msg}
	return nil
}

func (j *memJournal) Lookup(key string) (JournalEntry, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.m[key]
	return e, ok, nil
}

// Handle registers fn to run the actions of kind, once each on this
// instance, when the proposal that holds them is final and passed. Actions
// of a kind with no handler wait until one is registered. The built-in
// kinds (SetParam, AdmitMember, RemoveMember) need none, but may have one
// too (to react to a change). A handler that returns an error is not
// called again for that action; the error is recorded (ActionStatus). The
// returned function unregisters fn.
func (g *Governance) Handle(kind string, fn func(context.Context, Action) error) (unregister func()) {
	e := &handlerEntry{fn: fn}
	g.mu.Lock()
	g.handlers[kind] = e
	g.mu.Unlock()
	g.poke()
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.handlers[kind] == e {
			delete(g.handlers, kind)
		}
	}
}

func actionKey(p common.Hash, i int) string { return fmt.Sprintf("%x/%d", p[:], i) }

// runActions runs, in order, the handled actions of passed proposals that
// this instance has not run yet.
func (g *Governance) runActions(ctx context.Context, st *govern.State) {
	for _, e := range st.Executed {
		for i, a := range e.Actions {
			g.mu.Lock()
			h := g.handlers[a.Kind]
			g.mu.Unlock()
			if h == nil {
				continue
			}
			key := actionKey(e.Proposal, i)
			first, err := g.cfg.Journal.Begin(key)
			if err != nil {
				g.log.Error("governance: journal", "err", err)
				return
			}
			if !first {
				continue
			}
			act := Action{Kind: a.Kind, Name: a.Name, Value: json.RawMessage(a.Value)}
			msg := ""
			if err := callHandler(ctx, h.fn, act); err != nil {
				msg = err.Error()
				g.metrics.actions.WithLabelValues("failed").Inc()
				g.log.Warn("governance: an action failed", "proposal", e.Proposal, "action", i, "kind", a.Kind, "err", err)
			} else {
				g.metrics.actions.WithLabelValues("ran").Inc()
			}
			if err := g.cfg.Journal.Finish(key, msg); err != nil {
				g.log.Error("governance: journal", "err", err)
				return
			}
		}
	}
}

// callHandler runs fn, turning a panic into an error.
func callHandler(ctx context.Context, fn func(context.Context, Action) error, a Action) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return fn(ctx, a)
}

// ActionStatus says what this instance did with action i of proposal id:
// ran (err nil), failed (err set), or not yet run (ran false).
func (g *Governance) ActionStatus(id ID, i int) (ran bool, err error) {
	e, ok, lerr := g.cfg.Journal.Lookup(actionKey(common.Hash(id), i))
	if lerr != nil {
		return false, lerr
	}
	if !ok {
		return false, nil
	}
	if !e.Finished {
		return true, fmt.Errorf("governance: action %d of %s was interrupted", i, id)
	}
	if e.Err != "" {
		return true, fmt.Errorf("governance: action %d of %s: %s", i, id, e.Err)
	}
	return true, nil
}
