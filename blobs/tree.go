package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/dpaas/dpaas/internal/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// treeWorkers bounds the files of a directory fetched at once.
const treeWorkers = 8

// fetchAll brings every block of the session's DAG here: a file by reading
// it (with the read-ahead of a reader), a directory by listing it and
// reading each of its files, treeWorkers at a time. The blocks come from
// the holders of the session's root first, bitswap otherwise. read counts
// the bytes read and blocks fetched, for a watchdog. A root that is not
// UnixFS is ErrNotFile. It closes the session.
func (ses *session) fetchAll(ctx context.Context, read *atomic.Int64) error {
	defer ses.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nd, err := decodeNode(ses.root)
	if err != nil {
		// Not UnixFS: the caller fetches the graph as it is.
		return fmt.Errorf("%w: %w", ErrNotFile, err)
	}
	if nd.typ != TypeDir {
		return ses.fetchFile(ctx, ses.root, nd.typ, read)
	}
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		firstEr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstEr == nil {
			firstEr = err
		}
		errMu.Unlock()
		cancel()
	}
	sem := make(chan struct{}, treeWorkers)
	seen := map[cid.Cid]struct{}{ses.root.Cid(): {}}
	dirs := []blocks.Block{ses.root}
	for len(dirs) > 0 && ctx.Err() == nil {
		dir := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		ents, err := ses.list(ctx, dir)
		if err != nil {
			fail(err)
			break
		}
		for _, e := range ents {
			if _, ok := seen[e.CID]; ok {
				continue
			}
			seen[e.CID] = struct{}{}
			blk, err := ses.get.GetBlock(ctx, e.CID)
			if err != nil {
				fail(err)
				break
			}
			read.Add(int64(len(blk.RawData())))
			child, err := decodeNode(blk)
			if err != nil {
				fail(err)
				break
			}
			if child.typ == TypeDir {
				dirs = append(dirs, blk)
				continue
			}
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
				if err := ses.fetchFile(ctx, blk, child.typ, read); err != nil {
					fail(err)
				}
			}()
		}
	}
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	return ctx.Err()
}

// fetchFile brings the blocks of the file (or symlink) whose root block,
// already here, is blk.
func (ses *session) fetchFile(ctx context.Context, blk blocks.Block, typ EntryType, read *atomic.Int64) error {
	if typ != TypeFile || blk.Cid().Type() == cid.Raw {
		return nil
	}
	fr, err := unixfs.NewReader(ctx, blk, ses.get)
	if err != nil {
		return errors.Join(ErrNotFile, err)
	}
	defer fr.Close()
	_, err = io.Copy(countingDiscard{read}, fr)
	return err
}
