// Package blobs stores a DApp's files as standard IPFS data, replicated
// across the DApp's instances and served like download mirrors.
//
// A blob is a UnixFS file: CIDv1, raw leaves, 256 KiB chunks, balanced
// layout, exactly what Kubo's `ipfs add --cid-version=1` makes of the same
// bytes, so any IPFS tool can check, import or serve it; or a UnixFS
// directory tree of such files (see Directories). Blocks live in the
// instance's Pebble database (internal/blockstore), travel over bitswap
// (boxo) on the instance's libp2p host, and move without a network as CAR
// files (go-car).
//
// # Usage
//
//	s, err := blobs.Open(ctx, blobs.Config{
//		Dir:      dir,      // where blocks and pins persist; "" keeps them in memory
//		Host:     h,        // the instance's libp2p host
//		AppID:    appID,    // namespaces every protocol ID
//		Registry: registry, // the DApp's replicated blob set
//	})
//	defer s.Close()
//
//	c, err := s.Add(ctx, file)       // import, pin, tell every replica
//	r, err := s.Open(ctx, c)         // io.ReadSeekCloser; fetches as it reads
//	r, err = s.Open(ctx, c, blobs.WaitForHolder()) // wait for a holder to appear
//	ok, err := s.Has(ctx, c)         // whole here?
//	st, err := s.Stat(ctx, c)        // size and how much is here
//	err = s.Burn(ctx, c)             // gone from every replica
//	mux.Handle("/blobs/", s.Handler()) // GET /blobs/{cid} with Range, ETag
//	err = s.Export(ctx, c, w)        // CARv1
//	c, err = s.Import(ctx, carReader)
//
//	d, err := s.AddDir(ctx, os.DirFS("dist"))   // a tree, as `ipfs add -r`
//	r, err = s.OpenPath(ctx, d, "css/site.css") // a file inside it
//	ents, err := s.ReadDir(ctx, d, "css")       // a directory's entries
//	mux.Handle("/ipfs/", s.Handler())           // GET /ipfs/{cid}/{path}
//
// # Directories
//
// AddDir imports an fs.FS as a UnixFS directory tree with the CIDs of
// Kubo's `ipfs add -r -H --cid-version=1`: files as Add makes them,
// directories as dag-pb nodes with links sorted by name, turned into HAMT
// shards (fanout 256) once their names and CIDs exceed 256 KiB, empty
// directories kept, symlinks stored as UnixFS symlinks (not followed).
// testdata/kubo-vectors.txt holds the CIDs Kubo 0.38.1 gave for a fixture
// tree (HAMT directories, both sides of the threshold, symlinks, non-ASCII
// names), which the tests check; the one known difference is a directory
// whose estimate is exactly 256 KiB, sharded by Kubo up to 0.39 and not by
// boxo v0.37+ (and AddDir). A directory root is a blob like a file: one
// record, one pin, replicated, held (Has), collected and exported whole.
// A replica fetches a directory's nodes and files eight at a time, from
// the replicas that hold its root first.
//
// OpenPath resolves a path through basic and HAMT directories, fetching
// what it lacks as Open does; ReadDir lists a directory. Directory nodes
// from the network are checked as they are decoded: a malformed one is
// ErrBadDAG (counted in Metrics.BadDAG), never a panic; HAMT lookups stop
// after 64 bits of hash, listings after 1,048,576 entries.
//
// # Replication
//
// Which blobs the DApp holds is replicated state, kept outside this
// package behind the Registry interface (the dapp package backs it with a
// store collection; MemRegistry backs it in memory). Every replica watches
// the registry and compares it in full every ReconcileInterval:
//
//   - With ReplicationFactor 0 (the default) every replica pins every blob
//     and fetches it in the background, resuming after restarts.
//   - With ReplicationFactor k, the replicas rank the live replicas (peers
//     of the same DApp connected to the host, plus self) by rendezvous
//     hashing of (CID, peer ID); the first k pin the blob. A replica seen
//     within HolderGrace still counts, so a brief disconnection moves
//     nothing; one that stays gone longer drops out of the ranking and the
//     next replica in line fetches its blobs. A replica holding a blob it is
//     not ranked for (the adder, typically) drops its copy once every ranked
//     replica reports, over a small AppID-namespaced protocol, that it holds
//     the blob whole.
//   - A burned blob is unpinned on every replica and garbage-collected.
//
// Bitswap asks connected peers first; when Config.Routing is set (the DHT)
// it also looks for providers there, and blobs held here are announced.
//
// Between replicas of the DApp, a reader (and a background fetch, which is
// a read) first asks its connected replicas whether they hold the whole
// file, and takes the blocks from up to three that do, each over one
// stream of a small AppID-namespaced blocks protocol: requests pipelined
// as the read-ahead window moves, each to the holder with the fewest
// unanswered, answers in order, no want lists. When no connected replica
// holds it and Config.Routing is set, the providers it names are asked
// too. Every block is
// hashed against its CID on arrival; any block that peer does not hold, or
// everything after its stream breaks, comes over bitswap. See
// internal/blockxfer for the wire format and limits.
//
// The readers of one Store, background replication included, share their
// fetches: a block that one of them is fetching is waited for by the
// others, not asked for again, so a blob read while it replicates crosses
// the network once (Metrics.SharedFetches counts the blocks taken so). A
// reader that gives up on a block (a seek, a Close, its context) leaves it
// to the next one that needs it. A reader that found no holder of its own
// (a replication that started before any holder was connected) borrows
// the holder streams of another reader of the same blob.
//
// Files of other shapes read the same way: CIDv0 files with dag-pb leaves
// (Kubo's default `ipfs add`) are fetched ahead in parallel like raw
// leaves; see internal/unixfs for how a leaf is told from an interior node
// before it arrives.
//
// By default bitswap runs on AppID-prefixed protocol IDs
// (/dpaas/<appid>/blobs/ipfs/bitswap/...), so DApps never mix; set
// IPFSBitswap to speak the standard protocol IDs with any IPFS node.
//
// # Blobs nobody has
//
// Open of a blob not held here waits for its root only while someone may
// have it: a connected replica of the DApp that keeps it (whole, or still
// fetching it), a provider record (with Routing), or, with IPFSBitswap, a
// connected IPFS peer that says HAVE within two seconds. When the search
// finds none of these, Open fails at once with an error wrapping both
// ErrNotFound and ErrUnavailable that says what was asked, and the HTTP
// handler answers 404. The search takes a round trip to the connected
// replicas, or as long as Routing takes to find no provider (at most 30
// s). A caller that knows the blob is coming (its holder is about to
// connect, its record was just added by a replica not reachable yet)
// passes WaitForHolder: Open then waits until ctx ends, as background
// replication always does. Either way, the context is the bound: with a
// claim but no root, Open fails at ctx's end with ErrUnavailable. Limits:
// at most 64 connected replicas are asked; with more, Open cannot tell
// that nobody has the blob, and waits. A replica that claims blobs it
// does not have (by bug or malice) makes Open wait too, never fail wrongly.
//
// # Pins and garbage collection
//
// A pin is a durable record of a root this replica keeps (whole, or still
// being fetched). GC marks every block reachable from a pin or from the
// root of an open reader and deletes the rest. GC and writes exclude each
// other with one lock: an Add holds it shared for its whole run, a block
// arriving from the network holds it shared while it is written, GC holds
// it exclusively. So GC never frees what an Add in progress or an open
// reader needs. What a GC kept only for open readers (of a blob burned or
// unpinned while it was read, or fetched) is collected by another GC when
// the last of them closes.
//
// Crash consistency: blocks are content-addressed and can be fetched
// again, so they skip Pebble's write-ahead log: internal/blockstore buffers
// them and ingests them as sstables straight into the bottom of the LSM,
// each followed by a small index. A pin is written only after every block
// put before it has been ingested, and synced, which makes their index
// durable too (one write-ahead log); a crash never leaves a pin whose
// blocks are missing, only unpinned blocks to collect. A marker written when an Add starts and deleted once its pin is
// durable tells a restart that blocks may have been orphaned; Open then
// schedules a GC. GC deletes in batches of unreachable blocks only, so a
// crash in the middle of it loses nothing that is pinned.
//
// A full disk (or an I/O error) fails the Add or fetch that hits it with
// an error wrapping ErrWritesStopped, and every later write with the same
// error; reads of what is held go on. Reopening once the cause is fixed
// recovers every durable pin and collects what the failed Add left.
//
// # Bad input
//
// Bitswap names every received block by the hash of its bytes, so a forged
// block never passes for the one asked for; a peer that keeps sending
// blocks nobody asked for is counted (Metrics.BadBlocks), disconnected and
// banned for ten minutes (Metrics.BannedPeers, Store.Banned): bitswap
// sends it nothing, so does not dial it, and a connection it makes is
// closed at once. A peer that answers a blocks-protocol request with bytes
// of another hash is banned at once the same way. A replica serves at most
// 64 blocks streams, 4 per peer, each closed after 30 s without a request.
// CAR imports check every block against its CID and require the whole DAG
// of exactly one root (ErrBadCAR otherwise). Malformed requests get errors
// and counters, never panics.
//
// # Caller duties
//
//  1. Give each Store its own Dir (or key space); nothing else may write to it.
//  2. Register nothing else on the host under /dpaas/<appid>/blobs/.
//  3. Close every reader Open returns: an open reader keeps its blocks
//     from GC.
//  4. Bound Open with its context (a deadline, or a cancel): a blob that
//     someone claims but never sends, and with WaitForHolder any blob not
//     held here, is waited for until ctx ends.
//  5. Close the Store before the host and the database it was given.
//
// All methods are safe for concurrent use.
//
// # Lifecycle
//
// Every component of the SDK (store, blobs, pubsub, payment, governance,
// dapp) has one lifecycle. Open(ctx, Config) starts it; a zero Config
// field means its default (Config says which fields are required), and
// Open copies the Config. A Config that Open cannot use fails it with an
// error wrapping the package's ErrInvalidConfig. A nil Config.Logger
// discards logs; Config.Metrics, when set, receives the component's
// Prometheus metrics from Open until Close; a clock, where a component
// takes one, is Config.Now. Close stops the component and waits for
// every goroutine it started; it is safe to call more than once, and every
// call after the first returns an error wrapping the package's ErrClosed.
package blobs
