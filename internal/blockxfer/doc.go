// Package blockxfer holds the block-transfer protocol engines that the
// blobs package runs beside bitswap: the holdings protocol (does a replica
// keep a file, whole?), the liar detector (peers that send blocks nobody
// asked for are banned) and the direct block protocol between replicas
// (Direct: a reader streams a file's blocks from the replicas holding it
// whole, pipelined, checked against their CIDs, with bitswap as the
// fallback). Every stream frames its messages with internal/frame. None
// of it knows the blobs package: each engine takes Hooks (host, logger,
// counters, lifecycle) and the small interfaces it consumes.
//
// # Usage
//
//	liars := blockxfer.NewLiarDetector(hooks)
//	h.Network().Notify(liars) // and bitswap over a WatchedNetwork
//	x := blockxfer.NewDirect(blockxfer.DirectConfig{Hooks: hooks, Proto: proto,
//		Blocks: local, Liars: liars, AskHolds: ask, Tasks: tasks, Context: ctx})
//	h.SetStreamHandler(proto, x.Serve)
//	src := x.NewSource(root, bitswapSession) // one per reader
//	tasks.Go(func(context.Context) { src.FindHolders(ctx, connected, nobody) })
//	blk, err := src.GetBlock(ctx, c)
//	src.Close()
//
// # Caller duties
//
//  1. Hooks.Enter must refuse once the component closes, and its Close
//     must wait for every Enter admitted to Exit.
//  2. DirectConfig.Context must end when the component closes, before it
//     waits on Enter: the blocks streams served end then, not when idle.
//  3. Every Source must be closed, at the latest when the component
//     closes and before it stops DirectConfig.Tasks: the goroutine that
//     reads a holder stream's answers returns only once its stream ends.
//  4. The component's Close removes the stream handlers and the network
//     notifiee it registered.
//
// # Bad input
//
// A malformed request resets its stream and counts a bad request. A
// malformed answer drops the holder's stream and counts a bad block; an
// answer whose bytes do not hash to the CID asked for also bans the peer.
// Neither fails a read: the block comes from the fallback.
package blockxfer
