package blobs

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"unicode/utf8"

	"github.com/ipfs/boxo/blockservice"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	ufs "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Directory layout parameters: Kubo's defaults, which `ipfs add -r
// --cid-version=1` uses.
const (
	// HAMTShardingSize is the size above which a directory is written as a
	// HAMT (sharded) directory: the sum, over its entries, of the length
	// of the name plus the length of the CID in bytes.
	HAMTShardingSize = 256 << 10
	// HAMTFanout is the width of every HAMT node.
	HAMTFanout = 256
	// maxTreeDepth bounds how deep AddDir descends into a file system.
	maxTreeDepth = 256
)

// AddDir imports the tree of fsys (from its root, ".") as a UnixFS
// directory, pins it here and records it in the DApp's blob set, so that
// the other replicas fetch the whole tree. Its CID is the one Kubo's `ipfs
// add -r -H --cid-version=1` gives for the same tree on disk:
//
//   - Files are imported as Add does (raw leaves, 256 KiB chunks,
//     balanced layout, 174 links per node).
//   - Directories are dag-pb UnixFS directory nodes, links sorted by name,
//     without mode or mtime. A directory whose entries' names and CIDs
//     come to more than HAMTShardingSize bytes is a HAMT sharded directory
//     of fanout HAMTFanout (murmur3-x64-64), as boxo v0.43 writes it. Kubo
//     up to 0.39 (boxo before v0.37) also shards a directory whose
//     estimate is exactly HAMTShardingSize; CIDs differ in that case only.
//   - Empty directories are kept, as Kubo does.
//   - A symbolic link is stored as a UnixFS symlink node holding its
//     target, not followed, as Kubo does; fsys must then implement
//     fs.ReadLinkFS (os.DirFS does). OpenPath does not follow symlinks.
//   - Hidden files (names starting with '.') are included: Kubo skips them
//     unless given -H (--hidden), hence the -H above. Without hidden
//     files the CID is that of `ipfs add -r --cid-version=1`.
//   - Other file types (devices, pipes, sockets) fail the call.
//
// Every name must be valid UTF-8, not "." or "..", and hold no '/'
// (ErrInvalidPath otherwise); the tree may be at most 256 levels deep.
// Memory use grows with the entries of the directories being written, not
// with file sizes. If fsys fails or ctx ends, nothing is pinned and the
// blocks written so far are left to GC. Record.Size and Stat.Size of a
// directory are its cumulative size: the bytes of every block of its DAG.
func (s *Store) AddDir(ctx context.Context, fsys fs.FS) (cid.Cid, error) {
	if !s.enter() {
		return cid.Undef, fmt.Errorf("blobs: add dir: %w", ErrClosed)
	}
	defer s.exit()
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var fileBytes uint64
	root, err := s.ingest(ctx, func(ctx context.Context) (cid.Cid, uint64, error) {
		b := &treeBuilder{
			ctx:  ctx,
			fsys: fsys,
			// AddDir holds the GC lock shared, so it writes to the
			// blockstore directly, as Add does.
			dserv: merkledag.NewDAGService(blockservice.New(s.blocks, nil)),
		}
		nd, err := b.dir(".", 0)
		if err != nil {
			return cid.Undef, 0, err
		}
		size, err := nd.Size()
		if err != nil {
			return cid.Undef, 0, err
		}
		fileBytes = b.fileBytes
		return nd.Cid(), size, nil
	})
	if err != nil {
		return cid.Undef, fmt.Errorf("blobs: add dir: %w", err)
	}
	s.metrics.added.Add(fileBytes)
	return root, nil
}

// importFile writes the UnixFS file that r yields to dserv, as `ipfs add
// --cid-version=1` does, and returns its root node and the bytes read.
func importFile(ctx context.Context, dserv ipld.DAGService, r io.Reader) (ipld.Node, uint64, error) {
	cr := &countingReader{ctx: ctx, r: r}
	params := helpers.DagBuilderParams{
		Maxlinks:   helpers.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: cidBuilder,
		Dagserv:    dserv,
	}
	db, err := params.New(chunker.NewSizeSplitter(cr, ChunkSize))
	if err != nil {
		return nil, 0, err
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		return nil, 0, err
	}
	return nd, cr.n, nil
}

// treeBuilder writes a file system's tree bottom-up.
type treeBuilder struct {
	ctx       context.Context
	fsys      fs.FS
	dserv     ipld.DAGService
	fileBytes uint64
}

// dir writes the directory at name (a path in fsys) and everything under it.
func (b *treeBuilder) dir(name string, depth int) (ipld.Node, error) {
	if depth > maxTreeDepth {
		return nil, fmt.Errorf("%s: deeper than %d levels", name, maxTreeDepth)
	}
	entries, err := fs.ReadDir(b.fsys, name)
	if err != nil {
		return nil, err
	}
	d, err := newUnixFSDir(b.dserv)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := b.ctx.Err(); err != nil {
			return nil, err
		}
		if err := checkName(e.Name()); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p := path.Join(name, e.Name())
		var nd ipld.Node
		switch t := e.Type(); {
		case t&fs.ModeSymlink != 0:
			nd, err = b.symlink(p)
		case t.IsDir():
			nd, err = b.dir(p, depth+1)
		case t.IsRegular():
			nd, err = b.file(p)
		default:
			err = fmt.Errorf("%s: unsupported file type %s", p, t)
		}
		if err != nil {
			return nil, err
		}
		if err := d.AddChild(b.ctx, e.Name(), nd); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	nd, err := d.GetNode()
	if err != nil {
		return nil, err
	}
	// A HAMT directory's shards are written by GetNode; a basic directory's
	// node is not.
	if err := b.dserv.Add(b.ctx, nd); err != nil {
		return nil, err
	}
	return nd, nil
}

// newUnixFSDir makes an empty directory that turns into a HAMT as Kubo's
// does, whatever boxo's process-wide defaults were changed to.
func newUnixFSDir(dserv ipld.DAGService) (uio.Directory, error) {
	d, err := uio.NewDirectory(dserv,
		uio.WithCidBuilder(cidBuilder),
		uio.WithMaxHAMTFanout(HAMTFanout),
		uio.WithSizeEstimationMode(uio.SizeEstimationLinks),
	)
	if err != nil {
		return nil, err
	}
	d.SetHAMTShardingSize(HAMTShardingSize)
	return d, nil
}

func (b *treeBuilder) file(name string) (ipld.Node, error) {
	f, err := b.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	nd, n, err := importFile(b.ctx, b.dserv, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	b.fileBytes += n
	return nd, nil
}

func (b *treeBuilder) symlink(name string) (ipld.Node, error) {
	target, err := fs.ReadLink(b.fsys, name)
	if err != nil {
		return nil, fmt.Errorf("%s: symlink: %w", name, err)
	}
	data, err := ufs.SymlinkData(target)
	if err != nil {
		return nil, err
	}
	nd := merkledag.NodeWithData(data)
	if err := nd.SetCidBuilder(cidBuilder); err != nil {
		return nil, err
	}
	if err := b.dserv.Add(b.ctx, nd); err != nil {
		return nil, err
	}
	return nd, nil
}

// checkName reports whether name can be a directory entry.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: name %q", ErrInvalidPath, name)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name %q is not UTF-8", ErrInvalidPath, name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return fmt.Errorf("%w: name %q holds '/'", ErrInvalidPath, name)
		}
	}
	return nil
}
