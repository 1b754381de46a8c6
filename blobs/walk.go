package blobs

import (
	"context"
	"fmt"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// walkVisit is told about each block of a DAG as the local walk meets it:
// its CID, whether it is held here and, when held, its data (valid only
// during the call). Returning an error stops the walk.
type walkVisit func(c cid.Cid, held bool, data []byte) error

// walkLocal visits the DAG under root using only blocks held here: the
// children of a missing node are unknown and not visited. Raw leaves are
// visited without reading their data unless wantLeafData is set. Interior
// nodes are visited once even when linked several times; leaves are visited
// once per link, as a file repeats them.
func (s *Store) walkLocal(ctx context.Context, root cid.Cid, wantLeafData bool, visit walkVisit) error {
	seen := make(map[cid.Cid]struct{})
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.Type() == cid.Raw && !wantLeafData {
			held, err := s.blocks.Has(ctx, c)
			if err != nil {
				return err
			}
			if err := visit(c, held, nil); err != nil {
				return err
			}
			continue
		}
		if c.Type() != cid.Raw {
			if _, ok := seen[c]; ok {
				continue
			}
			seen[c] = struct{}{}
		}
		blk, err := s.blocks.Get(ctx, c)
		if ipld.IsNotFound(err) {
			if err := visit(c, false, nil); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := visit(c, true, blk.RawData()); err != nil {
			return err
		}
		if c.Type() != cid.DagProtobuf {
			continue
		}
		nd, err := merkledag.DecodeProtobuf(blk.RawData())
		if err != nil {
			return fmt.Errorf("blobs: block %s: %w", c, err)
		}
		links := nd.Links()
		// Push in reverse so that the walk meets leaves in file order.
		for i := len(links) - 1; i >= 0; i-- {
			stack = append(stack, links[i].Cid)
		}
	}
	return nil
}

// Stat describes what this instance holds of one blob.
type Stat struct {
	CID cid.Cid
	// Size is the file size in bytes (for a directory, the bytes of every
	// block of its DAG): from the root block when it is held here,
	// otherwise from the DApp's record; zero when neither is known.
	Size uint64
	// Blocks counts the blocks of the DAG known here; the children of a
	// missing interior node are unknown until it arrives.
	Blocks int
	// LocalBlocks and LocalBytes count the blocks (and their bytes) held.
	LocalBlocks int
	LocalBytes  uint64
	// Complete is true when every block of the DAG is held here.
	Complete bool
	// Pinned is true when this replica keeps the blob (fetched or not).
	Pinned bool
}

// Stat reports the blob's size and how much of it is held here. It never
// touches the network.
func (s *Store) Stat(ctx context.Context, c cid.Cid) (Stat, error) {
	if err := checkCID(c); err != nil {
		return Stat{}, fmt.Errorf("blobs: stat: %w", err)
	}
	if !s.enter() {
		return Stat{}, fmt.Errorf("blobs: stat %s: %w", c, ErrClosed)
	}
	defer s.exit()
	st := Stat{CID: c, Complete: true}
	err := s.walkLocal(ctx, c, false, func(b cid.Cid, held bool, data []byte) error {
		st.Blocks++
		if !held {
			st.Complete = false
			return nil
		}
		n := len(data)
		if data == nil { // a raw leaf, visited without its data
			var err error
			if n, err = s.blocks.GetSize(ctx, b); err != nil {
				return err
			}
		}
		st.LocalBlocks++
		st.LocalBytes += uint64(n)
		if b == c {
			st.Size = fileSize(b, data, uint64(n))
		}
		return nil
	})
	if err != nil {
		return Stat{}, fmt.Errorf("blobs: stat %s: %w", c, err)
	}
	if st.LocalBlocks == 0 {
		st.Complete = false
		if r, err := s.cfg.Registry.Get(ctx, c); err == nil {
			st.Size = r.Size
		}
	}
	_, st.Pinned, err = s.getPin(c)
	if err != nil {
		return Stat{}, fmt.Errorf("blobs: stat %s: %w", c, err)
	}
	return st, nil
}

// fileSize is the UnixFS file size that a root block declares; for a
// directory, its cumulative size (the bytes of every block of its DAG).
func fileSize(c cid.Cid, data []byte, rawLen uint64) uint64 {
	switch c.Type() {
	case cid.Raw:
		return rawLen
	case cid.DagProtobuf:
		nd, err := merkledag.DecodeProtobuf(data)
		if err != nil {
			return 0
		}
		fs, err := unixfs.FSNodeFromBytes(nd.Data())
		if err != nil {
			return 0
		}
		switch fs.Type() {
		case unixfs.TDirectory, unixfs.THAMTShard:
			// A directory's cumulative size, as its links declare it.
			size := uint64(len(data))
			for _, l := range nd.Links() {
				size += l.Size
			}
			return size
		}
		return fs.FileSize()
	}
	return 0
}

// Has reports whether every block of the blob is held here. It never
// touches the network.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if err := checkCID(c); err != nil {
		return false, fmt.Errorf("blobs: has: %w", err)
	}
	if !s.enter() {
		return false, fmt.Errorf("blobs: has %s: %w", c, ErrClosed)
	}
	defer s.exit()
	if p, ok, err := s.getPin(c); err != nil {
		return false, fmt.Errorf("blobs: has %s: %w", c, err)
	} else if ok && p.state == pinComplete {
		return true, nil
	}
	complete, err := s.completeLocally(ctx, c)
	if err != nil {
		return false, fmt.Errorf("blobs: has %s: %w", c, err)
	}
	return complete, nil
}

// errIncomplete stops a walk at the first missing block.
var errIncomplete = fmt.Errorf("blobs: incomplete")

func (s *Store) completeLocally(ctx context.Context, c cid.Cid) (bool, error) {
	err := s.walkLocal(ctx, c, false, func(_ cid.Cid, held bool, _ []byte) error {
		if !held {
			return errIncomplete
		}
		return nil
	})
	if err == errIncomplete {
		return false, nil
	}
	return err == nil, err
}
