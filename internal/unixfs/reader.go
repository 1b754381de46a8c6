// Package unixfs reads UnixFS files block by block with adaptive
// read-ahead.
//
// Reader walks a file's DAG from its root: interior nodes (dag-pb) say how
// many bytes each child covers, so a seek descends straight to the leaf it
// needs without fetching the ones it skips. While reading forward, Reader
// keeps a window of leaf fetches in flight ahead of the read position; the
// window starts small after every seek and doubles as reading stays
// sequential, so random reads fetch little and streaming reads keep the
// network busy.
//
// Leaves may be raw blocks (what `ipfs add --cid-version=1` makes) or
// dag-pb nodes carrying their data inline (what `ipfs add` makes by
// default, CIDv0). Both are fetched ahead in parallel. A dag-pb child's
// CID does not say whether it is a leaf or an interior node, so Reader
// takes it for a leaf when its parent's link says so (a cumulative block
// size, Tsize, barely above the file bytes it covers, which no interior
// node can have) and fetches it in the window; should it turn out to be an
// interior node after all (a lying or missing Tsize), the window is
// refilled through it, so a wrong guess costs a round trip, never a wrong
// byte.
//
// Interior nodes are fetched once per Reader. When the window enters the
// subtree of one, the next sibling's node is fetched in the background, so
// that streaming does not stall at the subtree's end waiting for it (a
// round trip queued behind a full window; one such stall every 174
// leaves halved throughput between replicas).
package unixfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

var (
	// ErrNotFile means the root is not a UnixFS file (a directory, a
	// symlink, or not UnixFS at all).
	ErrNotFile = errors.New("unixfs: not a file")
	// ErrCorrupt means the DAG contradicts itself: sizes that do not add
	// up, or a block of the wrong length.
	ErrCorrupt = errors.New("unixfs: corrupt file DAG")
)

// Read-ahead window bounds, in leaves (256 KiB each for Kubo's chunker).
const (
	minAhead = 4
	maxAhead = 64
	// maxDepth bounds the descent through interior nodes: a balanced DAG
	// of 174-link nodes holds more than any disk at depth 8.
	maxDepth = 32
	// maxLeafOverhead is the most a dag-pb leaf's block may exceed the
	// file bytes it holds: the dag-pb and UnixFS framing of one data field
	// and a file size (about 14 bytes for a 256 KiB chunk). An interior
	// node adds at least one link of some 40 bytes to its children's.
	maxLeafOverhead = 32
)

// BlockGetter fetches one block, from wherever it may be. It must be safe
// for concurrent use.
type BlockGetter interface {
	GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error)
}

// Reader is an io.ReadSeekCloser over a UnixFS file. It is not safe for
// concurrent use, like any io.Reader; Close may be called from any
// goroutine.
type Reader struct {
	ctx    context.Context
	cancel context.CancelFunc
	get    BlockGetter
	root   cid.Cid
	rootNd *node // nil when the root is a raw leaf
	rawEnd []byte
	size   uint64

	pos    uint64
	window []*fetch
	ahead  int

	mu       sync.Mutex
	interior map[cid.Cid]*interiorFetch // fetched or being fetched
	wg       sync.WaitGroup
	closed   bool
}

// interiorFetch is the fetch of one interior node; nd and err are set when
// done is closed. A failed fetch is forgotten, so that the next need of the
// node tries again.
type interiorFetch struct {
	done chan struct{}
	nd   *node
	err  error
}

// node is a decoded dag-pb UnixFS node.
type node struct {
	data     []byte // inline file bytes, before the children
	children []cid.Cid
	sizes    []uint64 // bytes each child covers
	tsizes   []uint64 // each link's Tsize: the bytes of the blocks under it, as the link claims
}

// leaf is a run of file bytes that one block holds.
type leaf struct {
	c      cid.Cid
	off    uint64
	size   uint64
	inline []byte // set when the bytes are inline in an interior node
	pb     bool   // a dag-pb block taken for a leaf: its bytes are inline in it
}

// fetch is a leaf being fetched.
type fetch struct {
	leaf
	cancel context.CancelFunc
	done   chan struct{}
	data   []byte
	err    error
	// nd is set instead of data when a dag-pb block taken for a leaf
	// turned out to be an interior node.
	nd *node
}

// NewReader returns a reader of the file whose root block is root. ctx
// bounds every fetch the reader makes; Close ends them too.
func NewReader(ctx context.Context, root blocks.Block, get BlockGetter) (*Reader, error) {
	r := &Reader{get: get, root: root.Cid(), ahead: minAhead, interior: make(map[cid.Cid]*interiorFetch)}
	switch root.Cid().Type() {
	case cid.Raw:
		r.rawEnd = root.RawData()
		r.size = uint64(len(r.rawEnd))
	case cid.DagProtobuf:
		nd, size, err := decode(root.RawData(), true)
		if err != nil {
			return nil, err
		}
		r.rootNd, r.size = nd, size
	default:
		return nil, fmt.Errorf("%w: codec %#x", ErrNotFile, root.Cid().Type())
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	return r, nil
}

// decode parses a dag-pb UnixFS file node; at the root it also returns the
// declared file size.
func decode(raw []byte, isRoot bool) (*node, uint64, error) {
	pn, err := merkledag.DecodeProtobuf(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrNotFile, err)
	}
	fs, err := unixfs.FSNodeFromBytes(pn.Data())
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrNotFile, err)
	}
	switch fs.Type() {
	case unixfs.TFile, unixfs.TRaw:
	default:
		return nil, 0, fmt.Errorf("%w: UnixFS type %s", ErrNotFile, fs.Type())
	}
	links := pn.Links()
	if fs.NumChildren() != len(links) {
		return nil, 0, fmt.Errorf("%w: %d links but %d block sizes", ErrCorrupt, len(links), fs.NumChildren())
	}
	nd := &node{data: fs.Data(), children: make([]cid.Cid, len(links)), sizes: make([]uint64, len(links)), tsizes: make([]uint64, len(links))}
	total := uint64(len(nd.data))
	for i, l := range links {
		nd.children[i] = l.Cid
		nd.sizes[i] = fs.BlockSize(i)
		nd.tsizes[i] = l.Size
		total += nd.sizes[i]
	}
	if total != fs.FileSize() {
		return nil, 0, fmt.Errorf("%w: node declares %d bytes, parts add up to %d", ErrCorrupt, fs.FileSize(), total)
	}
	return nd, total, nil
}

// Size is the file size in bytes.
func (r *Reader) Size() int64 { return int64(r.size) }

// Read reads from the current position, waiting for the blocks it needs.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := r.chunk()
	if err != nil {
		return 0, err
	}
	n := copy(p, b)
	return n, r.advance(n)
}

// WriteTo writes the file from the current position to its end into w, a
// block at a time, without copying the bytes first: io.Copy uses it.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		b, err := r.chunk()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, werr := w.Write(b)
		total += int64(n)
		if err := r.advance(n); err != nil && werr == nil {
			werr = err
		}
		if werr != nil {
			return total, werr
		}
	}
}

// chunk returns the bytes from the current position to the end of the
// block that holds it, waiting for that block; io.EOF at the end. The
// bytes are the block's own: they must not be changed.
func (r *Reader) chunk() ([]byte, error) {
	if r.pos >= r.size {
		return nil, io.EOF
	}
	if r.rawEnd != nil {
		return r.rawEnd[r.pos:], nil
	}
	for {
		if err := r.align(); err != nil {
			return nil, err
		}
		head := r.window[0]
		select {
		case <-head.done:
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		}
		if head.err != nil {
			err := head.err
			r.drop(len(r.window))
			return nil, err
		}
		if head.nd == nil {
			return head.data[r.pos-head.off:], nil
		}
		// Not a leaf after all: keep the node and fill the window again
		// through it.
		r.keepInterior(head.c, head.nd)
		r.drop(len(r.window))
	}
}

// advance moves the position n bytes on, n at most what chunk returned.
// Leaving a block widens the window and starts the fetches it adds; an
// error doing so is returned if bytes remain to read.
func (r *Reader) advance(n int) error {
	r.pos += uint64(n)
	if r.rawEnd != nil || len(r.window) == 0 {
		return nil
	}
	if head := r.window[0]; r.pos >= head.off+head.size {
		r.drop(1)
		r.ahead = min(2*r.ahead, maxAhead)
		if err := r.fill(); err != nil && r.pos < r.size {
			return err
		}
	}
	return nil
}

// align makes the window start at the leaf holding pos and fills it.
func (r *Reader) align() error {
	for len(r.window) > 0 {
		h := r.window[0]
		if r.pos >= h.off && r.pos < h.off+h.size {
			break
		}
		if r.pos < h.off || r.pos >= r.window[len(r.window)-1].off+r.window[len(r.window)-1].size {
			// A jump out of the window: start over with a small one.
			r.drop(len(r.window))
			r.ahead = minAhead
			break
		}
		r.drop(1)
	}
	return r.fill()
}

// drop cancels and forgets the first n fetches of the window.
func (r *Reader) drop(n int) {
	for _, f := range r.window[:n] {
		f.cancel()
	}
	r.window = r.window[n:]
}

// fill starts fetches until the window holds r.ahead leaves.
func (r *Reader) fill() error {
	if len(r.window) >= r.ahead {
		return nil
	}
	from := r.pos
	if n := len(r.window); n > 0 {
		from = r.window[n-1].off + r.window[n-1].size
	}
	if from >= r.size {
		return nil
	}
	var leaves []leaf
	if err := r.collect(r.root, r.rootNd, 0, r.size, from, r.ahead-len(r.window), &leaves, 0); err != nil {
		return err
	}
	if len(r.window) == 0 && len(leaves) == 0 {
		return fmt.Errorf("%w: no block holds offset %d", ErrCorrupt, from)
	}
	for _, l := range leaves {
		r.start(l)
	}
	return nil
}

// collect appends to out, in file order, up to max leaves of the subtree
// (c, nd) covering [base, base+size) that end after from.
func (r *Reader) collect(c cid.Cid, nd *node, base, size, from uint64, max int, out *[]leaf, depth int) error {
	if len(*out) >= max || base+size <= from {
		return nil
	}
	if depth > maxDepth {
		return fmt.Errorf("%w: deeper than %d", ErrCorrupt, maxDepth)
	}
	if c.Type() == cid.Raw {
		*out = append(*out, leaf{c: c, off: base, size: size})
		return nil
	}
	if nd == nil {
		var err error
		if nd, err = r.interiorNode(c, size); err != nil {
			return err
		}
	}
	off := base
	if n := uint64(len(nd.data)); n > 0 {
		if off+n > from {
			*out = append(*out, leaf{c: c, off: off, size: n, inline: nd.data})
		}
		off += n
	}
	for i, child := range nd.children {
		if len(*out) >= max {
			return nil
		}
		if off+nd.sizes[i] <= from {
			off += nd.sizes[i]
			continue
		}
		if r.pbLeaf(nd, i) {
			*out = append(*out, leaf{c: child, off: off, size: nd.sizes[i], pb: true})
			off += nd.sizes[i]
			continue
		}
		if child.Type() != cid.Raw && i+1 < len(nd.children) && nd.children[i+1].Type() != cid.Raw && !r.pbLeaf(nd, i+1) {
			// The window reaches into this subtree: have the next one's
			// node by the time it gets there.
			r.fetchInterior(nd.children[i+1], nd.sizes[i+1])
		}
		if err := r.collect(child, nil, off, nd.sizes[i], from, max, out, depth+1); err != nil {
			return err
		}
		off += nd.sizes[i]
	}
	return nil
}

// pbLeaf reports whether child i of nd is to be fetched as a dag-pb leaf:
// its link's Tsize leaves no room for a link of its own, and it is not
// known to be an interior node.
func (r *Reader) pbLeaf(nd *node, i int) bool {
	if nd.children[i].Type() != cid.DagProtobuf {
		return false
	}
	size, tsize := nd.sizes[i], nd.tsizes[i]
	if tsize < size || tsize-size > maxLeafOverhead {
		return false
	}
	r.mu.Lock()
	_, interior := r.interior[nd.children[i]]
	r.mu.Unlock()
	return !interior
}

// keepInterior records nd, fetched as a leaf, as the interior node c.
func (r *Reader) keepInterior(c cid.Cid, nd *node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.interior[c]; ok {
		return
	}
	f := &interiorFetch{done: make(chan struct{}), nd: nd}
	close(f.done)
	r.interior[c] = f
}

// interiorNode returns the decoded dag-pb node c, which must cover size
// bytes, waiting for its fetch. A prefetch that failed is tried again once,
// so that its error is reported only if the node's own fetch fails too.
func (r *Reader) interiorNode(c cid.Cid, size uint64) (*node, error) {
	for attempt := 0; ; attempt++ {
		f, mine := r.fetchInterior(c, size)
		select {
		case <-f.done:
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		}
		if f.err == nil || mine || attempt > 0 {
			return f.nd, f.err
		}
	}
}

// fetchInterior starts fetching and decoding interior node c, unless it is
// fetched or being fetched already, and returns that fetch; mine reports
// whether this call started it.
func (r *Reader) fetchInterior(c cid.Cid, size uint64) (f *interiorFetch, mine bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.interior[c]; ok {
		return f, false
	}
	f = &interiorFetch{done: make(chan struct{})}
	if r.closed {
		f.err = errClosed
		close(f.done)
		return f, true
	}
	r.interior[c] = f
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(f.done)
		f.nd, f.err = r.loadInterior(c, size)
		if f.err != nil {
			r.mu.Lock()
			delete(r.interior, c)
			r.mu.Unlock()
		}
	}()
	return f, true
}

// errClosed is what fetches started after Close report.
var errClosed = fmt.Errorf("unixfs: reader closed: %w", context.Canceled)

func (r *Reader) loadInterior(c cid.Cid, size uint64) (*node, error) {
	blk, err := r.get.GetBlock(r.ctx, c)
	if err != nil {
		return nil, err
	}
	nd, total, err := decode(blk.RawData(), false)
	if err != nil {
		return nil, err
	}
	if total != size {
		return nil, fmt.Errorf("%w: %s covers %d bytes, its parent says %d", ErrCorrupt, c, total, size)
	}
	return nd, nil
}

// start launches the fetch of one leaf.
func (r *Reader) start(l leaf) {
	ctx, cancel := context.WithCancel(r.ctx)
	f := &fetch{leaf: l, cancel: cancel, done: make(chan struct{})}
	r.window = append(r.window, f)
	if l.inline != nil {
		f.data = l.inline
		close(f.done)
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(f.done)
		blk, err := r.get.GetBlock(ctx, l.c)
		if err != nil {
			f.err = err
			return
		}
		if l.pb {
			nd, total, err := decode(blk.RawData(), false)
			switch {
			case err != nil:
				f.err = err
			case total != l.size:
				f.err = fmt.Errorf("%w: %s covers %d bytes, its parent says %d", ErrCorrupt, l.c, total, l.size)
			case len(nd.children) > 0:
				f.nd = nd
			default:
				f.data = nd.data
			}
			return
		}
		if uint64(len(blk.RawData())) != l.size {
			f.err = fmt.Errorf("%w: leaf %s holds %d bytes, its parent says %d", ErrCorrupt, l.c, len(blk.RawData()), l.size)
			return
		}
		f.data = blk.RawData()
	}()
}

// Seek sets the position for the next Read. Seeking past the end is
// allowed; reads there return io.EOF.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = int64(r.pos) + offset
	case io.SeekEnd:
		abs = int64(r.size) + offset
	default:
		return int64(r.pos), fmt.Errorf("unixfs: seek: bad whence %d", whence)
	}
	if abs < 0 {
		return int64(r.pos), fmt.Errorf("unixfs: seek to negative offset %d", abs)
	}
	r.pos = uint64(abs)
	return abs, nil
}

// Close stops every fetch and waits for them. It is idempotent.
func (r *Reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	return nil
}
