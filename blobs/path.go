package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/ipfs/boxo/ipld/merkledag"
	ufs "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/spaolacci/murmur3"
)

const (
	// maxPathSegments bounds the names of a path.
	maxPathSegments = 256
	// maxHAMTFanout bounds the fanout of a HAMT node read from the network:
	// Kubo writes 256.
	maxHAMTFanout = 4096
	// hamtMurmur3 is the multicodec of murmur3-x64-64, the only HAMT hash
	// UnixFS defines.
	hamtMurmur3 = 0x22
	// listWorkers bounds the HAMT shards a listing fetches at once.
	listWorkers = 16
	// maxDirEntries bounds the entries of a HAMT directory listed.
	maxDirEntries = 1 << 20
)

// EntryType is the kind of a directory entry or of what a path names.
type EntryType int

const (
	// TypeUnknown is a dag-pb entry of a listing whose node was not
	// fetched: its type is known only once it is opened.
	TypeUnknown EntryType = iota
	// TypeFile is a UnixFS file (or a raw block, a file of one chunk).
	TypeFile
	// TypeDir is a UnixFS directory, basic or HAMT sharded.
	TypeDir
	// TypeSymlink is a UnixFS symbolic link, which paths do not follow.
	TypeSymlink
)

func (t EntryType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	}
	return "unknown"
}

// DirEntry is one entry of a directory.
type DirEntry struct {
	Name string
	CID  cid.Cid
	// Size is the cumulative size the directory's link declares: the bytes
	// of every block under the entry. For a file that is its length plus a
	// little framing (a raw-leaf file of one chunk: exactly its length).
	Size uint64
	// Type is TypeFile for a raw block; for a dag-pb entry it is
	// TypeUnknown, as telling would take fetching it.
	Type EntryType
}

// OpenPath opens the UnixFS file at path inside the directory root: a path
// of names separated by '/' (a leading or trailing '/' is ignored; "" is
// root itself). Directories on the way, basic or HAMT sharded, are fetched
// from peers as Open fetches, with the same options and the same rules
// about who may have root; the file's blocks come as Open's do, from the
// replicas that hold root whole first.
//
// Errors: ErrInvalidPath for a malformed path, ErrNotFound for a missing
// name, ErrNotDir when the path goes through a file or a symlink, ErrIsDir
// when it names a directory, ErrNotFile for a symlink or a non-UnixFS
// block, ErrBadDAG for a malformed directory node, and Open's errors about
// root itself. While the reader is open, GC keeps every block of root held
// here.
//
// Replicas claim the roots they keep, not the files inside them: open a
// file of a directory blob through OpenPath from the directory's root.
// Open of the file's own CID finds it only where it is held, or from peers
// that answer bitswap for it (with IPFSBitswap, or WaitForHolder).
func (s *Store) OpenPath(ctx context.Context, root cid.Cid, path string, opts ...OpenOption) (io.ReadSeekCloser, error) {
	var o openOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	segs, err := splitPath(path)
	if err != nil {
		return nil, fmt.Errorf("blobs: open %s/%s: %w", root, path, err)
	}
	ses, err := s.openRoot(ctx, ctx, root, o.wait)
	if err != nil {
		return nil, err
	}
	r, err := ses.openFile(ctx, segs)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// openFile resolves segs from the session's root and opens the file there;
// it takes over the session, closing it on failure.
func (ses *session) openFile(ctx context.Context, segs []string) (*reader, error) {
	blk, typ, err := ses.resolve(ctx, segs)
	if err == nil && typ == TypeDir {
		err = ErrIsDir
	}
	if err != nil {
		ses.close()
		return nil, fmt.Errorf("blobs: open %s/%s: %w", ses.root.Cid(), strings.Join(segs, "/"), err)
	}
	return ses.fileReader(blk.Cid(), blk)
}

// ReadDir lists the directory at path inside root (see OpenPath for paths
// and errors; ErrNotDir when path names no directory), sorted by name. The
// nodes of a HAMT directory are fetched from peers as needed, up to 16 at
// a time; the entries themselves are not. A HAMT directory of more than
// 1,048,576 entries is refused with ErrBadDAG.
func (s *Store) ReadDir(ctx context.Context, root cid.Cid, path string, opts ...OpenOption) ([]DirEntry, error) {
	var o openOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	segs, err := splitPath(path)
	if err != nil {
		return nil, fmt.Errorf("blobs: read dir %s/%s: %w", root, path, err)
	}
	ses, err := s.openRoot(ctx, ctx, root, o.wait)
	if err != nil {
		return nil, err
	}
	defer ses.close()
	blk, typ, err := ses.resolve(ctx, segs)
	if err == nil && typ != TypeDir {
		err = ErrNotDir
	}
	var ents []DirEntry
	if err == nil {
		ents, err = ses.list(ctx, blk)
	}
	if err != nil {
		return nil, fmt.Errorf("blobs: read dir %s/%s: %w", root, path, err)
	}
	return ents, nil
}

// splitPath splits a path into its names.
func splitPath(p string) ([]string, error) {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, nil
	}
	segs := strings.Split(p, "/")
	if len(segs) > maxPathSegments {
		return nil, fmt.Errorf("%w: more than %d names", ErrInvalidPath, maxPathSegments)
	}
	for _, seg := range segs {
		if err := checkName(seg); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// unixfsNode is a decoded block of a UnixFS DAG.
type unixfsNode struct {
	pb  *merkledag.ProtoNode // nil for a raw block
	fs  *ufs.FSNode
	typ EntryType
	// hamt is set for a HAMT shard.
	hamt *hamtShard
}

type hamtShard struct {
	bits   int // hash bits each level consumes
	padLen int // hex digits of the slot prefix of every link name
}

// decodeNode tells what blk is. Blocks that are not UnixFS, or that
// contradict it, are ErrNotFile or ErrBadDAG.
func decodeNode(blk blocks.Block) (*unixfsNode, error) {
	switch blk.Cid().Type() {
	case cid.Raw:
		return &unixfsNode{typ: TypeFile}, nil
	case cid.DagProtobuf:
	default:
		return nil, fmt.Errorf("%w: codec %#x", ErrNotFile, blk.Cid().Type())
	}
	pb, err := merkledag.DecodeProtobuf(blk.RawData())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadDAG, blk.Cid(), err)
	}
	fsn, err := ufs.FSNodeFromBytes(pb.Data())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadDAG, blk.Cid(), err)
	}
	n := &unixfsNode{pb: pb, fs: fsn}
	switch fsn.Type() {
	case ufs.TFile, ufs.TRaw:
		n.typ = TypeFile
	case ufs.TDirectory:
		n.typ = TypeDir
	case ufs.TSymlink:
		n.typ = TypeSymlink
	case ufs.THAMTShard:
		n.typ = TypeDir
		if fsn.HashType() != hamtMurmur3 {
			return nil, fmt.Errorf("%w: %s: HAMT hash %#x", ErrBadDAG, blk.Cid(), fsn.HashType())
		}
		fanout := fsn.Fanout()
		if fanout < 2 || fanout > maxHAMTFanout || fanout&(fanout-1) != 0 {
			return nil, fmt.Errorf("%w: %s: HAMT fanout %d", ErrBadDAG, blk.Cid(), fanout)
		}
		n.hamt = &hamtShard{
			bits:   bits.TrailingZeros64(fanout),
			padLen: len(fmt.Sprintf("%X", fanout-1)),
		}
	default:
		return nil, fmt.Errorf("%w: UnixFS type %s", ErrNotFile, fsn.Type())
	}
	return n, nil
}

// resolve walks segs from the session's root and returns the block the
// path names and its type.
func (ses *session) resolve(ctx context.Context, segs []string) (blocks.Block, EntryType, error) {
	return ses.resolveAt(ctx, ses.root, segs)
}

// resolveAt walks segs from blk, a block of the session's DAG.
func (ses *session) resolveAt(ctx context.Context, blk blocks.Block, segs []string) (blocks.Block, EntryType, error) {
	nd, err := decodeNode(blk)
	if err != nil {
		ses.s.countBadDAG(err)
		return nil, 0, err
	}
	for i, name := range segs {
		if nd.typ != TypeDir {
			return nil, 0, fmt.Errorf("%w: %s", ErrNotDir, strings.Join(segs[:i], "/"))
		}
		var l *ipld.Link
		if nd.hamt == nil {
			l = findBasic(nd.pb, name)
		} else {
			l, err = ses.findHAMT(ctx, nd, name)
			if err != nil {
				ses.s.countBadDAG(err)
				return nil, 0, err
			}
		}
		if l == nil {
			return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, strings.Join(segs[:i+1], "/"))
		}
		if blk, err = ses.get.GetBlock(ctx, l.Cid); err != nil {
			return nil, 0, err
		}
		if nd, err = decodeNode(blk); err != nil {
			ses.s.countBadDAG(err)
			return nil, 0, err
		}
	}
	return blk, nd.typ, nil
}

// countBadDAG counts a malformed node met while resolving or listing.
func (s *Store) countBadDAG(err error) {
	if errors.Is(err, ErrBadDAG) {
		s.metrics.badDAG.Add(1)
	}
}

// findBasic returns the link of a basic directory named name, or nil.
func findBasic(pb *merkledag.ProtoNode, name string) *ipld.Link {
	for _, l := range pb.Links() {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// hamtHash is the hash under which a HAMT files name: murmur3-x64-64, as
// big-endian bytes read from the most significant bit.
func hamtHash(name string) uint64 {
	h := murmur3.New64()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}

// findHAMT returns the entry called name of the HAMT whose root shard is
// nd, or nil, fetching the shards on the way. Each level takes the next
// bits of the name's hash as its slot; a link named by the slot alone is a
// shard one level down, one named by the slot and name is the entry.
func (ses *session) findHAMT(ctx context.Context, nd *unixfsNode, name string) (*ipld.Link, error) {
	h := hamtHash(name)
	used := 0
	for {
		sh := nd.hamt
		if used+sh.bits > 64 {
			return nil, fmt.Errorf("%w: HAMT deeper than its hash", ErrBadDAG)
		}
		slot := (h << used) >> (64 - sh.bits)
		used += sh.bits
		prefix := fmt.Sprintf("%0*X", sh.padLen, slot)
		var next *ipld.Link
		for _, l := range nd.pb.Links() {
			if !strings.HasPrefix(l.Name, prefix) {
				continue
			}
			if len(l.Name) == len(prefix) {
				next = l
				break
			}
			if l.Name[len(prefix):] == name {
				return l, nil
			}
		}
		if next == nil {
			return nil, nil
		}
		blk, err := ses.get.GetBlock(ctx, next.Cid)
		if err != nil {
			return nil, err
		}
		if nd, err = decodeNode(blk); err != nil {
			return nil, err
		}
		if nd.hamt == nil {
			return nil, fmt.Errorf("%w: %s: HAMT link to a %s", ErrBadDAG, blk.Cid(), nd.typ)
		}
	}
}

// list returns the entries of the directory blk, sorted by name.
func (ses *session) list(ctx context.Context, blk blocks.Block) ([]DirEntry, error) {
	nd, err := decodeNode(blk)
	if err != nil {
		ses.s.countBadDAG(err)
		return nil, err
	}
	if nd.typ != TypeDir {
		return nil, ErrNotDir
	}
	var ents []DirEntry
	if nd.hamt == nil {
		for _, l := range nd.pb.Links() {
			if err := checkName(l.Name); err != nil {
				ses.s.metrics.badDAG.Add(1)
				return nil, fmt.Errorf("%w: %s: %w", ErrBadDAG, blk.Cid(), err)
			}
			ents = append(ents, entry(l.Name, l))
		}
	} else if ents, err = ses.listHAMT(ctx, nd); err != nil {
		ses.s.countBadDAG(err)
		return nil, err
	}
	slices.SortFunc(ents, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return ents, nil
}

func entry(name string, l *ipld.Link) DirEntry {
	e := DirEntry{Name: name, CID: l.Cid, Size: l.Size}
	if l.Cid.Type() == cid.Raw {
		e.Type = TypeFile
	}
	return e
}

// listHAMT returns the entries of the HAMT whose root shard is root,
// fetching its shards level by level, listWorkers at a time.
func (ses *session) listHAMT(ctx context.Context, root *unixfsNode) ([]DirEntry, error) {
	var ents []DirEntry
	level := []*unixfsNode{root}
	// A well-formed HAMT never links one shard twice (its entries would
	// share a slot); a forged one that does is listed once per shard, not
	// once per link, which could be 256^8 times.
	seen := make(map[cid.Cid]struct{})
	for used := 0; len(level) > 0; {
		var next []cid.Cid
		bitsUsed := 0
		for _, nd := range level {
			if used+nd.hamt.bits > 64 {
				return nil, fmt.Errorf("%w: HAMT deeper than its hash", ErrBadDAG)
			}
			bitsUsed = max(bitsUsed, nd.hamt.bits)
			for _, l := range nd.pb.Links() {
				if len(l.Name) < nd.hamt.padLen {
					return nil, fmt.Errorf("%w: HAMT link name %q", ErrBadDAG, l.Name)
				}
				if len(l.Name) == nd.hamt.padLen {
					if _, ok := seen[l.Cid]; !ok {
						seen[l.Cid] = struct{}{}
						next = append(next, l.Cid)
					}
					continue
				}
				name := l.Name[nd.hamt.padLen:]
				if err := checkName(name); err != nil {
					return nil, fmt.Errorf("%w: %w", ErrBadDAG, err)
				}
				if len(ents) == maxDirEntries {
					return nil, fmt.Errorf("%w: more than %d entries", ErrBadDAG, maxDirEntries)
				}
				ents = append(ents, entry(name, l))
			}
		}
		used += bitsUsed
		var err error
		if level, err = ses.fetchShards(ctx, next); err != nil {
			return nil, err
		}
	}
	return ents, nil
}

// fetchShards fetches and decodes the HAMT shards cs, listWorkers at a time.
func (ses *session) fetchShards(ctx context.Context, cs []cid.Cid) ([]*unixfsNode, error) {
	out := make([]*unixfsNode, len(cs))
	errs := make([]error, len(cs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, listWorkers)
	for i, c := range cs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			blk, err := ses.get.GetBlock(ctx, c)
			if err == nil {
				out[i], err = decodeNode(blk)
			}
			if err == nil && out[i].hamt == nil {
				err = fmt.Errorf("%w: %s: HAMT link to a %s", ErrBadDAG, c, out[i].typ)
			}
			if err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
