package blobs

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// anyBlockGetter answers every CID with the same bytes, as a peer sending
// forged nodes would (the hash check that bitswap and the blocks protocol
// make is left out, so the fuzzer can shape whole DAGs with two blocks).
type anyBlockGetter struct{ data []byte }

func (g anyBlockGetter) GetBlock(_ context.Context, c cid.Cid) (blocks.Block, error) {
	return blocks.NewBlockWithCid(g.data, c)
}

// fuzzSeeds returns real nodes to start from: a basic directory, the root
// shard of a HAMT and one of its child shards, a file root and a symlink.
func fuzzSeeds(f *testing.F) [][]byte {
	s := newLocal(f)
	root, err := s.AddDir(context.Background(), kuboFixture())
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, p := range []string{"", "nested/a", "sharded", "above", "big.bin", "link"} {
		c, _ := pathCID(f, s, root, p)
		blk, err := s.blocks.Get(context.Background(), c)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, blk.RawData())
		nd, err := decodeNode(blk)
		if err == nil && nd.hamt != nil {
			for _, l := range nd.pb.Links() {
				if len(l.Name) == nd.hamt.padLen {
					child, err := s.blocks.Get(context.Background(), l.Cid)
					if err != nil {
						f.Fatal(err)
					}
					out = append(out, child.RawData())
					break
				}
			}
		}
	}
	return out
}

// FuzzResolvePath resolves and lists paths through a root node and a node
// standing for every other block, both from the fuzzer: malformed dag-pb,
// UnixFS data that lies, HAMT shards of any fanout and depth. None may
// panic, loop, or take more than a bounded effort.
func FuzzResolvePath(f *testing.F) {
	seeds := fuzzSeeds(f)
	for i, root := range seeds {
		child := seeds[(i+1)%len(seeds)]
		for _, p := range []string{"", "index.html", "entry-00042.txt", "a/b/c/deep.txt", "n000000000000000000000000042", "x/y"} {
			f.Add(root, child, p)
		}
	}
	s := newLocal(f)
	f.Fuzz(func(t *testing.T, root, child []byte, p string) {
		c, err := cidBuilder.Sum(root)
		if err != nil {
			t.Fatal(err)
		}
		rootBlk, _ := blocks.NewBlockWithCid(root, c)
		get := anyBlockGetter{child}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ses := &session{s: s, get: get, root: rootBlk, ctx: ctx, cancel: func() {}, release: func() {}}
		if segs, err := splitPath(p); err == nil {
			blk, typ, err := ses.resolve(ctx, segs)
			if err == nil && typ == TypeFile {
				if fr, err := unixfs.NewReader(ctx, blk, get); err == nil {
					_, _ = io.CopyN(io.Discard, fr, 1<<20)
					fr.Close()
				}
			}
		}
		_, _ = ses.list(ctx, rootBlk)
		if ctx.Err() != nil {
			t.Fatalf("resolving %q took more than 10 s", p)
		}
	})
}
