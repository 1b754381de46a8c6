package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dpaas/dpaas/internal/blockxfer"
	"github.com/dpaas/dpaas/internal/unixfs"
	"github.com/ipfs/boxo/blockservice"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Open returns a reader of the blob's bytes that seeks and streams. Blocks
// not held here are fetched from peers as the reader reaches them, a few
// ahead of the read position; a seek skips the blocks it jumps over. ctx
// also bounds every later read, as does the Store: close the reader when
// done.
//
// Open itself waits only for the root block, and only while someone may
// have it. When the blob is not held here, Open asks the connected
// replicas of the DApp whether they keep it and, with Config.Routing, looks
// for provider records. When none of them claims it (and, with
// IPFSBitswap, no connected IPFS peer says HAVE within two seconds),
// Open fails at once with an error wrapping ErrNotFound and ErrUnavailable
// that says what was tried. When someone claims it, Open waits for the
// root until ctx ends, then fails with ErrUnavailable and ctx's error. The
// option WaitForHolder makes Open wait until ctx ends in any case, for a
// blob that is about to be offered (by a replica not yet connected, or a
// provider not yet announced).
//
// While the reader is open, GC keeps every block of the blob held here,
// burned or not.
func (s *Store) Open(ctx context.Context, c cid.Cid, opts ...OpenOption) (io.ReadSeekCloser, error) {
	var o openOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	r, err := s.open(ctx, ctx, c, o.wait)
	if err != nil {
		// A nil *reader in the interface would not compare equal to nil.
		return nil, err
	}
	return r, nil
}

// OpenOption changes what Open does; see WaitForHolder.
type OpenOption func(*openOptions)

type openOptions struct {
	wait bool
}

// WaitForHolder makes Open wait for the blob's root until ctx ends even
// when no peer claims the blob: for a caller that knows it is coming (a
// replica about to connect, a record just added to the DApp's blob set by
// a replica not reachable yet). Background replication opens this way.
func WaitForHolder() OpenOption {
	return func(o *openOptions) { o.wait = true }
}

// noHolder is the cause with which the wait for a root is cancelled when
// the search found no peer that claims the blob; tried says what it asked.
type noHolder struct{ tried string }

func (e *noHolder) Error() string { return "no peer claims it: " + e.tried }

// open is Open with the wait for the root bounded by rootCtx and the reads
// by ctx; wait is WaitForHolder.
func (s *Store) open(ctx, rootCtx context.Context, c cid.Cid, wait bool) (*reader, error) {
	ses, err := s.openRoot(ctx, rootCtx, c, wait)
	if err != nil {
		return nil, err
	}
	return ses.fileReader(c, ses.root)
}

// session is the fetching state of one reader of the DAG under a root: its
// block source (with the holders of the root found for it), its GC lease,
// and the root block.
type session struct {
	s       *Store
	g       *blockxfer.Source
	get     unixfs.BlockGetter // g, or a fake in tests
	ctx     context.Context    // bounds every fetch; ends at close
	root    blocks.Block
	cancel  context.CancelFunc
	release func()
}

// close ends the session's fetches and its GC lease.
func (ses *session) close() {
	ses.cancel()
	ses.release()
}

// fileReader makes a reader of the UnixFS file whose root block is blk, a
// block of the session's DAG; it takes over the session, closing it on
// failure. c names what was asked, for errors.
func (ses *session) fileReader(c cid.Cid, blk blocks.Block) (*reader, error) {
	fr, err := unixfs.NewReader(ses.ctx, blk, ses.g)
	if err != nil {
		ses.close()
		return nil, fmt.Errorf("blobs: open %s: %w: %w", c, ErrNotFile, err)
	}
	return &reader{s: ses.s, fr: fr, g: ses.g, cancel: ses.cancel, release: ses.release, cid: c}, nil
}

// openRoot starts a session for the DAG under c and waits for its root
// block: rootCtx bounds that wait, ctx the session; wait is WaitForHolder.
// The caller must close the session or hand it to a reader.
func (s *Store) openRoot(ctx, rootCtx context.Context, c cid.Cid, wait bool) (*session, error) {
	if err := checkCID(c); err != nil {
		return nil, fmt.Errorf("blobs: open: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("blobs: open %s: %w", c, ErrClosed)
	}
	defer s.exit()
	rec, err := s.cfg.Registry.Get(ctx, c)
	switch {
	case err == nil && rec.Burned:
		return nil, fmt.Errorf("blobs: open %s: %w", c, ErrBurned)
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("blobs: open %s: %w", c, err)
	}
	release := s.lease(c)
	rctx, cancel := s.opContext(ctx)
	// One bitswap session per reader: it learns which peers answer and
	// asks them first for the blocks that follow.
	g := s.direct.NewSource(c, blockservice.NewSession(rctx, s.bserv))
	// The wait for the root ends early, with noHolder as its cause, when
	// the search finds nobody that claims the blob.
	gctx, gcancel := context.WithCancelCause(rootCtx)
	defer gcancel(nil)
	nobody := func(tried string) {
		if !wait {
			gcancel(&noHolder{tried: tried})
		}
	}
	searched := make(chan struct{})
	if p, ok, err := s.getPin(c); s.repl != nil && err == nil && (!ok || p.state != pinComplete) {
		// Look for replicas holding the whole file (internal/blockxfer).
		done := sync.OnceFunc(func() { close(searched) })
		if !s.goTracked(func() { g.FindHolders(rctx, done, nobody) }) {
			done() // closing: nobody to look for
		}
	} else {
		close(searched)
	}
	stopDirect := context.AfterFunc(rctx, g.Close)
	cancel = func(cancel context.CancelFunc) context.CancelFunc {
		return func() {
			cancel()
			stopDirect()
			g.Close()
		}
	}(cancel)
	// Let the root and the first window of leaves come from the holders
	// found among the connected peers, if they answer soon: bitswap takes
	// tens of milliseconds for a first block, the question a round trip.
	holders := time.NewTimer(holderWait)
	select {
	case <-searched:
	case <-holders.C:
	case <-rctx.Done():
	case <-gctx.Done():
	}
	holders.Stop()
	stop := context.AfterFunc(rctx, func() { gcancel(nil) })
	root, err := g.GetBlock(gctx, c)
	stop()
	if err != nil {
		cause := context.Cause(gctx)
		gcancel(nil)
		cancel()
		release()
		var nh *noHolder
		if errors.As(cause, &nh) && rootCtx.Err() == nil {
			return nil, fmt.Errorf("blobs: open %s: %w (%w): %w", c, ErrNotFound, ErrUnavailable, cause)
		}
		if ctxErr := rootCtx.Err(); ctxErr != nil {
			// Bitswap may report a context of its own; the caller's is
			// the reason.
			return nil, fmt.Errorf("blobs: open %s: %w: %w", c, ErrUnavailable, ctxErr)
		}
		if ipld.IsNotFound(err) {
			// Nowhere to look: a Store without a host.
			return nil, fmt.Errorf("blobs: open %s: %w (%w): %w", c, ErrNotFound, ErrUnavailable, err)
		}
		return nil, fmt.Errorf("blobs: open %s: %w", c, err)
	}
	return &session{s: s, g: g, get: g, ctx: rctx, root: root, cancel: cancel, release: release}, nil
}

// reader is the io.ReadSeekCloser Open returns.
type reader struct {
	s       *Store
	fr      *unixfs.Reader
	g       *blockxfer.Source
	cid     cid.Cid
	cancel  context.CancelFunc
	release func()
	once    sync.Once
	err     error
}

func (r *reader) Read(p []byte) (int, error) {
	if !r.s.enter() {
		return 0, fmt.Errorf("blobs: read %s: %w", r.cid, ErrClosed)
	}
	defer r.s.exit()
	n, err := r.fr.Read(p)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("blobs: read %s: %w", r.cid, err)
	}
	return n, err
}

// WriteTo writes the rest of the blob into w a block at a time, without
// copying it first (io.Copy uses it).
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	if !r.s.enter() {
		return 0, fmt.Errorf("blobs: read %s: %w", r.cid, ErrClosed)
	}
	defer r.s.exit()
	n, err := r.fr.WriteTo(w)
	if err != nil {
		return n, fmt.Errorf("blobs: read %s: %w", r.cid, err)
	}
	return n, nil
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	if !r.s.enter() {
		return 0, fmt.Errorf("blobs: seek %s: %w", r.cid, ErrClosed)
	}
	defer r.s.exit()
	n, err := r.fr.Seek(offset, whence)
	if err != nil {
		return n, fmt.Errorf("blobs: seek %s: %w", r.cid, err)
	}
	return n, nil
}

// Size is the file size in bytes.
func (r *reader) Size() int64 { return r.fr.Size() }

func (r *reader) Close() error {
	r.once.Do(func() {
		r.err = r.fr.Close()
		r.cancel()
		r.release()
	})
	return r.err
}
