package gateway

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
)

// FSUI is a UI held in an fs.FS, for tests: one directory whose name is
// RootCID. An empty RootCID means no release is approved.
type FSUI struct {
	RootCID string
	FS      fs.FS
}

// Root returns RootCID.
func (u FSUI) Root(context.Context) (string, bool, error) { return u.RootCID, u.RootCID != "", nil }

// Open opens p in FS.
func (u FSUI) Open(_ context.Context, root, p string) (io.ReadSeekCloser, error) {
	if root != u.RootCID {
		return nil, fmt.Errorf("gateway: open %s: %w", root, fs.ErrNotExist)
	}
	f, err := u.FS.Open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("gateway: open %s: %w", p, ErrIsDir)
	}
	rs, ok := f.(io.ReadSeekCloser)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("gateway: open %s: file does not seek", p)
	}
	return rs, nil
}

// StaticMirrors is a directory set by hand, for tests. Safe for
// concurrent use.
type StaticMirrors struct {
	mu  sync.Mutex
	ms  []Mirror
	err error
}

// Set replaces the list and the error Mirrors returns.
func (s *StaticMirrors) Set(ms []Mirror, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ms, s.err = slices.Clone(ms), err
}

// Mirrors returns what Set gave.
func (s *StaticMirrors) Mirrors(context.Context) ([]Mirror, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ms), s.err
}
