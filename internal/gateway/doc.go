// Package gateway is the HTTP face of a DApp instance: the web UI of the
// approved release, /ipfs/ content, the list of mirrors with their health,
// SVG badges, and a JavaScript client that fails over between mirrors.
//
// It knows nothing of the node behind it: every source is a small
// interface of Config, and package dapp plugs in the real ones. The
// in-memory implementations beside them (FSUI, StaticMirrors) serve tests.
//
// # Usage
//
//	g, err := gateway.New(gateway.Config{
//		Self:    node.ID().String(),
//		UI:      ui,             // approved release's UI directory
//		IPFS:    ipfsHandler,    // serves /ipfs/{cid}[/path]
//		Mirrors: directory,      // what other instances attested
//		API:     appAPI,         // the DApp's own API under /api/
//	})
//	http.ListenAndServe(addr, g)
//
// # Routes
//
//	GET /                              the web UI (index.html, paths, SPA fallback)
//	GET /ipfs/...                      Config.IPFS
//	    /api/...                       Config.API, CORS open
//	GET /dpaas/ping                    {"id": Self}, for latency and failover
//	GET /dpaas/mirrors                 {"self": Self, "mirrors": [Mirror...]}
//	GET /dpaas/badge/{peer}/{kind}.svg kind online, verified or availability;
//	                                   peer a peer ID or "self"
//	GET /dpaas/client.js               the failover client (client.js)
//
// Everything under /dpaas/ and /api/ answers CORS (any origin, and
// preflight OPTIONS), so a page served by one mirror can call any other.
//
// # Trust
//
// Badges and the mirror list are drawn from Mirrors alone, which must
// hold what other instances attested (the directory), never what an
// instance says of itself: the badge of "self" is the directory's view of
// this instance (also when named by its peer ID), and shows "unknown"
// when the directory has none.
//
// # Bad input
//
// A badge request naming a malformed peer ID or kind is a 400, a peer the
// directory does not list a 404; UI paths are cleaned (no escape from the
// release's directory) and methods other than GET and HEAD are refused
// with 405. Each refusal is counted in Stats.
package gateway
