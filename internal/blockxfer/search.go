package blockxfer

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// FindHolders looks for replicas that hold g's root in full and opens a
// blocks stream to each of the first maxHolders: among the connected
// peers of the DApp first, then, when none of them holds it and there is
// a Routing, among the providers it names. connected is called once the
// connected peers have answered. Until a stream is up, and if none is, the
// reader fetches from its fallback.
//
// The search also tells whether anyone claims the blob at all: a connected
// replica that keeps it (whole or still fetching), a provider record, or,
// with IPFSBitswap, a connected IPFS peer that says HAVE for the root. When
// no one does, nobody is called with what was tried, once the search is
// over.
func (g *Source) FindHolders(ctx context.Context, connected func(), nobody func(tried string)) {
	x := g.x
	root := g.root
	h := x.cfg.Hooks.Host
	// Peers known to speak the protocol first, then those whose protocols
	// are not known yet (identification still under way).
	var candidates, unknown []peer.ID
	others := 0 // connected peers that are not replicas of the DApp
	for _, p := range h.Network().Peers() {
		if x.banned(p) {
			continue
		}
		if protos, err := h.Peerstore().SupportsProtocols(p, x.cfg.Proto); err == nil && len(protos) > 0 {
			candidates = append(candidates, p)
		} else if known, err := h.Peerstore().GetProtocols(p); err == nil && len(known) == 0 {
			unknown = append(unknown, p)
		} else {
			others++
		}
	}
	candidates = append(candidates, unknown...)
	unasked := 0
	if len(candidates) > maxClaimsAsked {
		unasked = len(candidates) - maxClaimsAsked
		candidates = candidates[:maxClaimsAsked]
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// With IPFSBitswap, peers outside the DApp may hold the blob: a HAVE
	// (or the block) for the root from any of them is a claim.
	var have <-chan struct{}
	if x.cfg.IPFSBitswap && x.cfg.Liars != nil {
		var unwatch func()
		have, unwatch = x.cfg.Liars.WatchHave(root)
		defer unwatch()
	}
	type answer struct {
		p     peer.ID
		state byte
		ok    bool
	}
	found := make(chan answer, len(candidates))
	for _, p := range candidates {
		if !x.cfg.Tasks.Go(func(context.Context) {
			st, ok := x.cfg.AskHolds(ctx, p, root)
			found <- answer{p, st, ok}
		}) {
			found <- answer{p: p} // closing: not asked
		}
	}
	opened, claimed, replicas := 0, false, 0
	for range candidates {
		a := <-found
		if a.ok {
			replicas++
		} else if x.cfg.IPFSBitswap {
			others++ // not a replica after all; bitswap may ask it
		}
		if a.ok && a.state != HoldNone {
			claimed = true
		}
		if a.ok && a.state == HoldComplete && opened < maxHolders {
			if !g.open(ctx, a.p) {
				connected()
				return
			}
			opened++
		}
	}
	connected()
	tried := fmt.Sprintf("%d connected replicas asked", replicas)
	if unasked > 0 {
		claimed = true // cannot tell: some were not asked
	}
	if opened > 0 || (claimed && x.cfg.Routing == nil) {
		return
	}
	if x.cfg.Routing != nil {
		tried += ", provider records searched"
		rctx, rcancel := context.WithTimeout(ctx, providerSearch)
		defer rcancel()
		for ai := range x.cfg.Routing.FindProvidersAsync(rctx, root, directHoldersAsked) {
			if ai.ID == h.ID() || x.banned(ai.ID) {
				continue
			}
			claimed = true
			if slices.Contains(candidates, ai.ID) {
				continue
			}
			if err := h.Connect(rctx, ai); err != nil {
				continue
			}
			if st, ok := x.cfg.AskHolds(rctx, ai.ID, root); !ok || st != HoldComplete {
				continue
			}
			if !g.open(rctx, ai.ID) {
				return
			}
			if opened++; opened == maxHolders {
				return
			}
		}
	}
	if claimed || ctx.Err() != nil {
		return
	}
	if have != nil && x.cfg.IPFSBitswap && others > 0 {
		tried += fmt.Sprintf(", %d IPFS peers given %v to say HAVE", others, x.cfg.HaveWait)
		t := time.NewTimer(x.cfg.HaveWait)
		defer t.Stop()
		select {
		case <-have:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	nobody(tried)
}

// open opens a blocks stream to p, a holder of the file, and adds it. It
// reports false once the reader is closed.
func (g *Source) open(ctx context.Context, p peer.ID) bool {
	st, err := g.x.cfg.Hooks.Host.NewStream(network.WithNoDial(ctx, "blocks"), p, g.x.cfg.Proto)
	if err != nil {
		return true
	}
	d := newBlockStream(g.x, p, st)
	d.owner = g
	if !g.add(d) {
		d.close()
		return false
	}
	return true
}
