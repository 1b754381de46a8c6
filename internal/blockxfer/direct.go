package blockxfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/dpaas/dpaas/internal/frame"
	"github.com/dpaas/dpaas/internal/group"
)

// Direct block transfer between replicas of one DApp.
//
// Bitswap is how an instance trades blocks with any IPFS peer, and it stays
// the fallback for every block. But between two replicas of a DApp, one of
// which holds a whole file, most of what bitswap does is overhead: want
// lists, message assembly and protobuf copies, per-peer send delays. So a
// reader first looks for replicas that hold its file in full (the holdings
// protocol, asked of the connected peers, then of the providers Routing
// names) and asks up to maxHolders of them for the file's blocks, over one
// stream of the blocks protocol each, pipelined, as the read-ahead window
// needs them.
//
// Blocks protocol: the asker writes requests, each a frame holding a CID
// (internal/frame). The answerer answers every request in order with an
// optional frame: a uvarint, 0 when it does not hold the block, else the
// block's length plus one, followed by the block's bytes. Either side may
// end the stream at any time.
//
// Every block received is hashed against the CID asked for: a mismatch bans
// the peer, like a forged bitswap block, and the reader goes on over
// bitswap. A block the peer does not hold, a stream that fails or a peer
// that stops answering are not errors of the read: that block, and those
// after it, come over bitswap.

const (
	// MaxBlockSize bounds a block read from the blocks protocol (bitswap
	// refuses larger ones too).
	MaxBlockSize = 2 << 20
	// directIdle bounds how long a blocks stream may wait for the next
	// request, or for the answer being written to leave.
	directIdle = 30 * time.Second
	// Streams of the blocks protocol one replica serves at once, in all and
	// to one peer.
	maxDirectStreams        = 64
	maxDirectStreamsPerPeer = 4
	// directHoldersAsked bounds how many providers Routing is asked for.
	directHoldersAsked = 8
	// maxHolders is how many holders of a file one reader streams from.
	maxHolders = 3
	// providerSearch bounds the search for holders through Routing.
	providerSearch = 30 * time.Second
	// maxClaimsAsked bounds how many connected peers a reader asks whether
	// they keep its file; with more connected, it cannot tell that nobody
	// does, and waits.
	maxClaimsAsked = 64
	// directMaxMisses is how many blocks a replica that said it holds the
	// whole file may say it lacks before its stream is dropped.
	directMaxMisses = 4

	// DefaultHaveWait is DirectConfig.HaveWait's default.
	DefaultHaveWait = 2 * time.Second
	// DefaultStall is DirectConfig.Stall's default.
	DefaultStall = 15 * time.Second
)

var (
	errForged     = errors.New("blobs: peer answered with a block whose hash does not match")
	errBadAnswer  = errors.New("blobs: malformed answer on the blocks protocol")
	errStreamDone = errors.New("blobs: blocks stream closed")
)

// Blockstore is the component's local block store: where a reader looks
// for a block first and puts the blocks it fetches, and what the blocks
// protocol serves. It must be safe for concurrent use.
type Blockstore interface {
	Get(ctx context.Context, c cid.Cid) (blocks.Block, error)
	Put(ctx context.Context, b blocks.Block) error
	// WriteBlock writes the bytes of block c to w, after calling before
	// with their length; found is false, nothing called, when c is not
	// held (internal/blockstore.Store.WriteBlock).
	WriteBlock(c cid.Cid, w io.Writer, before func(size int) error) (found bool, err error)
}

// BlockGetter is where a reader's blocks come from when no holder stream
// has them: a bitswap session, typically.
type BlockGetter interface {
	GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error)
}

// DirectConfig connects a Direct to the component it serves.
type DirectConfig struct {
	// Hooks give the host (nil for a component without one: then neither
	// Serve nor FindHolders may be used), the logger, the counters and the
	// lifecycle.
	Hooks Hooks
	// Proto is the blocks protocol's ID.
	Proto protocol.ID
	// Blocks is the local block store.
	Blocks Blockstore
	// Liars, when set, bans a peer that answers with bytes of another hash,
	// keeps banned peers from being asked or served, and, with IPFSBitswap,
	// tells when an IPFS peer says HAVE for a root.
	Liars *LiarDetector
	// Routing, when set, names providers of a file no connected replica
	// holds.
	Routing routing.ContentDiscovery
	// IPFSBitswap says that peers outside the DApp may hold a blob: a HAVE
	// from any of them is a claim.
	IPFSBitswap bool
	// AskHolds asks p whether it keeps c: HoldNone, HoldPending or
	// HoldComplete, ok false when p could not be asked (AskHolds over the
	// holdings protocol, typically). Required with a host.
	AskHolds func(ctx context.Context, p peer.ID, c cid.Cid) (answer byte, ok bool)
	// Tasks runs the goroutines of the readers (one per holder stream, to
	// read its answers, and the searches for holders); the component's
	// Close stops it. Required.
	Tasks *group.Group
	// Context ends when the component closes: every blocks stream served
	// is reset then. Nil means never.
	Context context.Context
	// HaveWait is how long, with IPFSBitswap, a search that found no
	// replica and no provider lets connected IPFS peers say HAVE for the
	// root before it reports that nobody has it. Zero means
	// DefaultHaveWait.
	HaveWait time.Duration
	// Stall is how long a blocks stream may leave its oldest request
	// unanswered before it is dropped and its requests go to bitswap. Zero
	// means DefaultStall.
	Stall time.Duration
}

// Direct runs the blocks protocol of one component: it serves the blocks
// held here (Serve) and gives each reader a Source that takes blocks from
// the replicas holding its file. The readers of one Direct share their
// fetches: a block that one of them is fetching is waited for by the
// others, not asked for a second time. Safe for concurrent use.
type Direct struct {
	cfg   DirectConfig
	admit admission

	// fetchMu guards fetching: the blocks being fetched from peers, by
	// CID, shared by every reader.
	fetchMu  sync.Mutex
	fetching map[cid.Cid]*blockFetch

	// readersMu guards readers: the sources of the open readers, by root,
	// so that one without a holder stream borrows another's.
	readersMu sync.Mutex
	readers   map[cid.Cid][]*Source
}

// NewDirect returns a Direct; register its Serve as the handler of
// cfg.Proto on the host.
func NewDirect(cfg DirectConfig) *Direct {
	cfg.Hooks.ensureDefaults()
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if cfg.HaveWait <= 0 {
		cfg.HaveWait = DefaultHaveWait
	}
	if cfg.Stall <= 0 {
		cfg.Stall = DefaultStall
	}
	return &Direct{cfg: cfg, fetching: make(map[cid.Cid]*blockFetch), readers: make(map[cid.Cid][]*Source)}
}

// banned reports whether p is banned for forgery.
func (x *Direct) banned(p peer.ID) bool {
	return x.cfg.Liars != nil && x.cfg.Liars.Banned(p)
}

// ReadAnswer decodes one answer of the blocks protocol, an optional frame
// (internal/frame): the block's bytes, or held false when the peer does
// not hold it. A malformed answer fails with an error that says so; a
// failing reader with its own error.
func ReadAnswer(r frame.Reader) ([]byte, bool, error) {
	data, held, err := frame.ReadOptional(r, MaxBlockSize)
	if errors.Is(err, frame.ErrTooLarge) {
		return nil, false, fmt.Errorf("%w: %w", errBadAnswer, err)
	}
	return data, held, err
}

// appendAnswer appends the answer for a block of size bytes, not its
// bytes; held false appends the answer "not held".
func appendAnswer(b []byte, size int, held bool) []byte {
	return frame.AppendOptionalHeader(b, size, held)
}
