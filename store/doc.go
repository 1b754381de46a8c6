// Package store is the DApp's replicated document store: named collections
// of JSON documents with string IDs, held in full by every instance, that
// converge to the same state on every replica whatever order changes arrive
// in, and never lose an acknowledged write.
//
// # Usage
//
//	s, err := store.Open(ctx, store.Config{Dir: dir, Key: key, Host: h, PubSub: ps, AppID: appID})
//	defer s.Close()
//	rides := s.Collection("rides")
//	err = rides.Put(ctx, "r1", Ride{From: "A", To: "B", Fare: 12})           // durable on return
//	err = rides.Update(ctx, "r1", store.Set("driver", "d7"), store.Inc("views", 1))
//	err = rides.Get(ctx, "r1", &ride)                                        // ErrNotFound if absent
//	err = rides.Index(ctx, "city")                                           // once, at startup
//	for doc, err := range rides.Find(ctx, store.Where("city", "==", "Oslo"), store.OrderBy("-fare"), store.Limit(50)) { ... }
//	groups, err := rides.Aggregate(ctx, "city", "fare")                      // count/sum/min/max/avg per city
//	for ch := range rides.Watch(ctx) { ... }                                 // local and remote changes
//
// The CRAB verbs map to: Create = Put, Retrieve = Get/Find, Append = Append
// (or any Update), Burn = Delete.
//
// # What the caller must do
//
//  1. Give every replica of a DApp the same validators (SetValidator) and
//     install them before the store receives deltas; a validator must be a
//     deterministic function of its Write.
//  2. Declare indexes (Index) on the fields queries filter on; indexes are
//     local, so declare them on every replica that queries.
//  3. Close the store before closing the database its Space belongs to.
//
// # How it works
//
// Every local change becomes a delta: one or more operations stamped with a
// hybrid logical clock, signed by the replica's secp256k1 key (the same key
// as its libp2p identity and Ethereum account), encoded as a dag-cbor block
// named by its CID and linked to the heads it was made on. Deltas form a
// Merkle DAG. The merge rules (package internal/crdt) are per-field
// last-writer-wins registers ordered by (HLC, author), delete tombstones
// that a later write revives, PN-counters, add-wins observed-remove sets and
// logs ordered by (HLC, author). A replica applies a delta only after its
// parents, and the result never depends on the order.
//
// Writes go through one goroutine that gathers the writes waiting at that
// moment (at most 64 deltas' worth of operations and 32 MiB) into one
// commit, cut into deltas of at most Config.MaxDeltaOps operations and
// about 7.4 MiB each (between writes where it can, so a write's operations
// travel together), applies them to the materialized documents and
// indexes, and commits them to Pebble; writers return once the commit is
// synced, and concurrent writers share both the signature and the fsync.
// A small write is signed while the disk syncs, not before: the documents
// and the unsigned delta are made durable together, and the signed delta
// is filed right after. If a crash comes between the two, Open signs the
// delta again; signatures are deterministic, so it is the same delta.
// Reads (Get, Find, Count, Aggregate) come from the materialized documents
// and indexes, never from history.
//
// Replication: each new delta is pushed in full on the pubsub topic
// "store/deltas", so peers apply it on arrival. A peer verifies a pushed
// delta before GossipSub passes it on; one that no validator guards is
// then accepted at once and applied with whatever else arrived meanwhile,
// in one batch and one commit, so that applying peers' deltas takes little
// from the replica's own writers; one that a validator guards waits for
// the validator's verdict. Each replica compares versions (highest
// sequence number per author) with one neighbour, a peer of the topic
// picked at random, about once per Config.AnnounceInterval while that
// finds deltas, and up to eight times less often while it does not: it
// asks the neighbour for what it lacks of what the neighbour held an
// interval before, and the neighbour answers with nothing when it has
// nothing more, so an idle DApp gossips nothing and each replica opens
// and serves about one small stream per turn however many replicas there
// are (Stats.Announcements, AnnouncementsSkipped). A delta
// that gossip lost reaches a replica from any neighbour that holds it, and
// spreads from neighbour to neighbour; a delta too large for a pubsub
// message is announced to its writer's neighbours instead (its author and
// sequence number), which catch up from the writer at once. A replica that finds it is behind that way, holds a delta
// whose parents have not arrived within a fifth of a second, or connects
// to a peer, opens a catch-up
// stream (ProtocolID) to that peer and receives every delta it lacks in
// one stream, in causal order, verified on all cores and applied in
// batches of about 8,192 documents, each read from Pebble at once in key
// order and committed together, so that catch-up takes time linear in the
// documents and memory bounded whatever their number; an interrupted
// catch-up resumes from what was applied. Progress
// is visible through SyncStatus and the logs.
//
// A replica keeps every delta it processed in a log, in the order it
// processed them (a causal order); catch-up streams from that log.
//
// Bad input: a delta that is malformed or badly signed is never applied,
// stored or passed on; one refused by a validator, or signed by its author
// but invalid (by the validity rule: a name that is not UTF-8, holds a zero byte
// or is too long, a value that is not JSON, a part its kind does not
// take), is never applied and never gossiped. Each is counted in Stats
// (DeltasRejected; the invalid ones also in DeltasInvalid) and logged once
// with its reason. A refused delta is remembered as refused and kept in
// the log: catch-up hands it to replicas that lack it, which refuse it by
// the same deterministic rule, and the author's later valid deltas, which
// name it as a parent, are applied on every replica as if it had never
// been written. The rule a remote delta is checked by is the one a local
// write is checked by before it is queued and again before it is signed,
// so what one replica accepts, every replica accepts. A delta that names
// as parent a block nobody can authenticate (no replica's writes ever do)
// waits for it, with its descendants, and catch-up asks again.
// A delta stamped more than Config.MaxClockSkew ahead of the local clock is
// held until the clock reaches it. At most 65,536 deltas wait for parents
// in memory (Stats.Pending); beyond that new orphans are dropped and
// catch-up brings them again, in order. These delivery rules are one pure
// function, internal/causal's, tested as tables apart from Pebble.
//
// # Faults
//
// A write is acknowledged only once durable; a replica killed at any point
// reopens with every acknowledged write. A write whose context ends after
// the store took it may still be committed: only a nil error says whether
// it is durable. A lone write waits for its own fsync once its commit is
// on its way to the disk, and returns when the fsync does even if its
// context ends meanwhile: the disk bounds that wait, not the context. Deltas applied from peers are committed without a sync of
// their own: they are durable at their author, they become durable here
// with the next synced write (writes reach the disk in order), and a
// replica killed before that reopens without them and fetches them again
// by catch-up. A commit that fails (a full disk,
// an I/O error) fails its writes with the cause and stops the store's
// writes: every later write fails at once with the same error, wrapping
// ErrWritesStopped and the cause, while
// reads, Watch and serving peers go on. Reopening the store once the cause
// is fixed recovers the durable state, and catch-up brings the rest.
// A write that is too big or invalid is refused before anything is
// written and never stops the store, and never fails the writes it would
// have been committed with. Older versions could commit a local delta
// they could not sign (8 MiB and more, or a name peers refuse) and then
// failed every Open on it: Open now sets such a record aside (kept under
// its own key, counted in Stats.SetAside, logged once) and opens; the
// documents it wrote stay as they are on that replica, and no peer gets
// them. One
// case still ends the process: Pebble treats a failed write of its
// MANIFEST (the record of its files, appended after a background flush or
// compaction has written its tables) as fatal, since it could no longer
// say which files hold the data. Nothing acknowledged is lost then
// either: the write-ahead log still holds it, and the next Open replays it.
//
// # Limits
//
// Every limit a caller can hit, and its error. They are constants, the
// same on every replica; a write within them makes deltas every replica
// accepts.
//
//	collection name, document ID, field name  1 to MaxNameLen (1024) bytes of UTF-8, no zero byte  ErrInvalid
//	one write (Put, Update, Delete; each      MaxWriteSize (7 MiB), measured as encoded in a       ErrTooLarge
//	  write added to a Batch)                   delta: for a Put about its compact JSON
//	one Batch                                 MaxBatchSize (64 MiB), measured the same way         ErrTooLarge
//	a write with what it must carry of its    8 MiB - 64 KiB, what one delta holds: a Put or       ErrTooLarge
//	  document's state                          Delete carries every element of the document's sets
//	operations in one delta                   Config.MaxDeltaOps (512); more are split, never refused
//	document                                  a JSON object (ErrInvalid otherwise); its size is bounded by
//	                                            the write that makes it, Updates may grow it further
//	delta block on the wire                   8 MiB; deltas over the pubsub message limit
//	                                            are announced and reach peers by catch-up instead
//
// A too-big or invalid write fails with nothing written, and the message
// gives the limit and the size. Errors quote at most 64 bytes of a name.
//
// # Watch and slow consumers
//
// Watch never blocks the store. A consumer more than Config.WatchBuffer
// changes behind loses the changes that do not fit and then receives one
// Change with Lagged set, its cue to re-read with Find.
//
// # Benchmarks
//
//	go test -run '^$' -bench 'PutSequential$|PutConcurrent16$|BatchPut$|BatchPut4$' -benchtime 3s ./store/
//	go test -run '^$' -bench 'Indexed1M|GroupCount1M|GroupScan1M' -benchtime 3s -timeout 30m ./store/
//	go test -run '^$' -bench 'Convergence2000|Latency500|CatchUp(10k|100k|300k|1M)$' -benchtime 1x -timeout 30m ./store/
//	go test -run '^$' -bench 'PutSequentialLive$' -benchtime 3000x ./store/
//
// Durable-write figures are bounded by the disk's fsync rate, which the
// benchmarks measure before and after and report beside their own.
// PutSequentialLive writes on one of three replicas in one process, each
// on its own directory on the same disk, while the two others apply its
// deltas live; its cpu-µs/put counts all three. The
// Sync200us variants replace the disk by one whose syncs take a fixed time,
// to compare versions of the write path on a machine whose disk varies.
//
// # Not yet
//
// History is kept forever (no compaction), documents are not encrypted,
// and a counter incremented or a set changed concurrently with a Delete
// keeps the increments and elements the Delete did not observe.
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
package store
