// Package group tracks the goroutines a component starts, so that its
// Close can stop them all and wait until the last one has returned.
package group

import (
	"context"
	"sync"
)

// Group is a set of goroutines sharing one context. The zero value is not
// usable; call New. Safe for concurrent use.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	stopped bool
}

// New returns a Group whose context ends when parent's does or on Stop.
func New(parent context.Context) *Group {
	ctx, cancel := context.WithCancel(parent)
	return &Group{ctx: ctx, cancel: cancel}
}

// Context is the group's context: it ends when Stop is called.
func (g *Group) Context() context.Context { return g.ctx }

// Go runs fn in a new goroutine with the group's context. After Stop it
// does nothing and reports false.
func (g *Group) Go(fn func(ctx context.Context)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn(g.ctx)
	}()
	return true
}

// Stop cancels the group's context and waits for every goroutine started
// with Go to return. It is safe to call more than once.
func (g *Group) Stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}
