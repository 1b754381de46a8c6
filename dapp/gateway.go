package dapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/blobs"
	"github.com/dpaas/dpaas/internal/gateway"
)

const (
	// maxGatewayURL bounds a gateway URL, ours or a peer's.
	maxGatewayURL = 2048
	// gatewayURLTTL is how long a peer's announced gateway URL is kept
	// before it is asked again.
	gatewayURLTTL = 30 * time.Second
	// gatewayAskTimeout bounds asking a peer for its gateway URL.
	gatewayAskTimeout = 2 * time.Second
	// httpShutdownTimeout bounds how long Close waits for HTTP requests in
	// flight (their contexts end at once) before closing their connections.
	httpShutdownTimeout = 2 * time.Second
)

// GatewayStats counts what the instance's HTTP gateway served and refused.
type GatewayStats struct {
	// UIServed counts files of the web UI served.
	UIServed uint64
	// BadRequests counts malformed badge requests and refused methods;
	// NotFound, paths and instances not found.
	BadRequests, NotFound uint64
	// SourceErrors counts failures to read the releases or the mirrors.
	SourceErrors uint64
	// BadAnnouncements counts gateway URLs from peers refused as malformed.
	BadAnnouncements uint64
}

// gatewayState is the Node's HTTP side.
type gatewayState struct {
	gw       *gateway.Gateway
	url      string // announced to peers; "" when none
	ln       net.Listener
	proto    protocol.ID
	badAnnos atomic.Uint64

	mu    sync.Mutex
	peers map[peer.ID]peerGateway // peers' announced URLs
}

type peerGateway struct {
	url string
	at  time.Time
}

// validateHTTP checks the HTTP fields of c.
func (c *config) validateHTTP() error {
	if c.GatewayURL == "" {
		return nil
	}
	if err := checkGatewayURL(c.GatewayURL); err != nil {
		return fmt.Errorf("dapp: GatewayURL: %w", err)
	}
	return nil
}

func checkGatewayURL(s string) error {
	if len(s) > maxGatewayURL {
		return fmt.Errorf("longer than %d bytes", maxGatewayURL)
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want http(s)://host[:port][/path]", s)
	}
	return nil
}

// startGateway builds the gateway, answers peers asking for its URL and,
// if Config.HTTPAddr is set, serves it there until Close.
func (n *Node) startGateway() error {
	c := n.cfg
	n.http.proto = protocol.ID("/dpaas/" + c.appID.String() + "/gateway/1.0.0")
	n.http.peers = make(map[peer.ID]peerGateway)
	gw, err := gateway.New(gateway.Config{
		Self:    n.ID().String(),
		UI:      releaseUI{n},
		IPFS:    n.ipfsHandler(),
		Mirrors: replicaMirrors{n},
		API:     c.API,
		Logger:  n.log,
	})
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	n.http.gw = gw
	if reg := c.Metrics; reg != nil {
		col := gatewayCollector{n}
		if err := reg.Register(col); err != nil {
			return fmt.Errorf("dapp: open: register metrics: %w", err)
		}
		n.closers = append(n.closers, func() error { reg.Unregister(col); return nil })
	}
	if n.http.ln != nil {
		n.serveHTTP()
	}
	n.host.SetStreamHandler(n.http.proto, n.serveGatewayURL)
	return nil
}

// listenHTTP opens Config.HTTPAddr's listener, if set, and settles the
// gateway's URL (Config.GatewayURL, or the listener's address), which the
// heartbeats announce. startGateway serves on the listener.
func (n *Node) listenHTTP() error {
	n.http.url = n.cfg.GatewayURL
	if n.cfg.HTTPAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("dapp: open: HTTP gateway: %w", err)
	}
	n.http.ln = ln
	// Closed here if Open fails before serving; Shutdown closes it too.
	n.closers = append(n.closers, ignoreClosed(ln.Close, net.ErrClosed))
	if n.http.url == "" {
		if ip := ln.Addr().(*net.TCPAddr).IP; ip.IsUnspecified() {
			n.log.Warn("dapp: the HTTP gateway listens on every interface: set Config.GatewayURL so that users can find it through the other instances", "addr", ln.Addr().String())
		} else {
			n.http.url = "http://" + ln.Addr().String()
		}
	}
	return nil
}

func (n *Node) serveHTTP() {
	ln := n.http.ln
	srv := &http.Server{
		Handler:           n.http.gw,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
		// Requests end when the instance closes.
		BaseContext: func(net.Listener) context.Context { return n.tasks.Context() },
	}
	n.tasks.Go(func(context.Context) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("dapp: HTTP gateway stopped", "err", err)
		}
	})
	n.tasks.Go(func(ctx context.Context) {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	})
	n.log.Info("dapp: HTTP gateway", "addr", ln.Addr().String(), "url", n.http.url)
}

// Gateway is the instance's HTTP gateway, to mount on a server of the
// application's own (Config.HTTPAddr serves it without one). It serves:
//
//	/                              the web UI of the latest approved release
//	                               (index.html, paths, SPA fallback)
//	/ipfs/{cid}                    blobs, with Range (see blobs.Store.Handler)
//	/api/...                       Config.API, with CORS open
//	/dpaas/mirrors                 the instances, their health and gateway URLs (JSON)
//	/dpaas/badge/{id}/{kind}.svg   badges for a peer ID or "self": online,
//	                               verified, availability
//	/dpaas/ping                    {"id": ...}, for latency and failover
//	/dpaas/client.js               the failover client for web pages
//
// Badges and mirrors show what other instances observed, never what an
// instance says of itself. The handler is safe for concurrent use; its
// requests fail once the Node is closed.
func (n *Node) Gateway() http.Handler { return n.http.gw }

// HTTPAddr is the address the gateway listens on (with the port chosen
// when Config.HTTPAddr asked for port 0), or "" when Config.HTTPAddr is
// empty.
func (n *Node) HTTPAddr() string {
	if n.http.ln == nil {
		return ""
	}
	return n.http.ln.Addr().String()
}

// GatewayURL is the URL announced to the other instances for this one's
// gateway: Config.GatewayURL, else http://HTTPAddr() when the gateway
// listens on one address, else "".
func (n *Node) GatewayURL() string { return n.http.url }

// GatewayStats returns the gateway's counters.
func (n *Node) GatewayStats() GatewayStats {
	st := n.http.gw.Stats()
	return GatewayStats{
		UIServed:         st.UIServed,
		BadRequests:      st.BadRequests,
		NotFound:         st.NotFound,
		SourceErrors:     st.SourceErrs,
		BadAnnouncements: n.http.badAnnos.Load(),
	}
}

// serveGatewayURL answers a peer with this instance's gateway URL, empty
// when it has none.
func (n *Node) serveGatewayURL(s network.Stream) {
	defer s.Close()
	_ = s.SetWriteDeadline(time.Now().Add(gatewayAskTimeout))
	_, _ = io.WriteString(s, n.http.url)
}

// peerGatewayURL asks p for its gateway URL, or returns the one it gave
// within gatewayURLTTL.
func (n *Node) peerGatewayURL(ctx context.Context, p peer.ID) string {
	n.http.mu.Lock()
	e, ok := n.http.peers[p]
	n.http.mu.Unlock()
	if ok && time.Since(e.at) < gatewayURLTTL {
		return e.url
	}
	got, err := n.askGatewayURL(ctx, p)
	switch {
	case err != nil:
		// Keep the last known until it answers again, and do not ask
		// again before the TTL: a peer that never answers must not slow
		// every mirror list down.
		got = e.url
	case got != "":
		if err := checkGatewayURL(got); err != nil {
			n.http.badAnnos.Add(1)
			n.log.Debug("dapp: peer announced a malformed gateway URL", "peer", p, "err", err)
			got = ""
		}
	}
	n.http.mu.Lock()
	n.http.peers[p] = peerGateway{url: got, at: time.Now()}
	// Forget peers no longer connected.
	for q := range n.http.peers {
		if n.host.Network().Connectedness(q) != network.Connected && q != p {
			delete(n.http.peers, q)
		}
	}
	n.http.mu.Unlock()
	return got
}

func (n *Node) askGatewayURL(ctx context.Context, p peer.ID) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, gatewayAskTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, n.http.proto)
	if err != nil {
		return "", err
	}
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(gatewayAskTimeout))
	b, err := io.ReadAll(io.LimitReader(s, maxGatewayURL+1))
	return string(b), err
}

// replicaMirrors lists the other instances of the DApp from the
// directory (Node.Replicas): what their probers verified (Verified,
// Availability), the gateway URL their signed heartbeats announce, the
// round trip from here. Online is connected now or heard from within two
// heartbeat intervals. An instance whose heartbeat names no gateway but
// that is connected is asked for its URL directly; with Mirror.Disabled,
// the directory is empty and the connected instances are listed so, with
// nothing verified.
type replicaMirrors struct{ n *Node }

func (m replicaMirrors) Mirrors(ctx context.Context) ([]gateway.Mirror, error) {
	n := m.n
	rs, err := n.Replicas().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("dapp: mirrors: %w", err)
	}
	now := time.Now()
	fresh := 2 * n.mirror.beatPeriod()
	listed := make(map[peer.ID]bool, len(rs))
	var out []gateway.Mirror
	for _, r := range rs {
		if r.Self {
			continue
		}
		listed[r.ID] = true
		mr := gateway.Mirror{
			ID: r.ID.String(), Gateway: r.Gateway, Verified: r.Verified, Availability: r.Availability,
			RTT: r.RTT, LastSeen: r.LastSeen,
			Online: n.host.Network().Connectedness(r.ID) == network.Connected || now.Sub(r.LastSeen) < fresh,
		}
		if r.Probers == 0 {
			mr.Availability = -1
		}
		out = append(out, mr)
	}
	for _, p := range n.Peers() {
		if !listed[p] {
			out = append(out, gateway.Mirror{ID: p.String(), Availability: -1,
				RTT: n.host.Peerstore().LatencyEWMA(p), LastSeen: now, Online: true})
		}
	}
	var wg sync.WaitGroup
	for i := range out {
		if p, err := peer.Decode(out[i].ID); err == nil && out[i].Gateway == "" &&
			n.host.Network().Connectedness(p) == network.Connected {
			wg.Go(func() { out[i].Gateway = n.peerGatewayURL(ctx, p) })
		}
	}
	wg.Wait()
	return out, nil
}

// releaseUI is the web UI of the latest approved release that has one.
type releaseUI struct{ n *Node }

func (u releaseUI) Root(ctx context.Context) (string, bool, error) {
	rs, err := u.n.gov.Releases(ctx)
	if err != nil {
		return "", false, err
	}
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].UI != "" {
			return rs[i].UI, true, nil
		}
	}
	return "", false, nil
}

func (u releaseUI) Open(ctx context.Context, root, p string) (io.ReadSeekCloser, error) {
	c, err := cid.Decode(root)
	if err != nil {
		return nil, fmt.Errorf("dapp: web UI %q: %w", root, err)
	}
	return u.n.openUIFile(ctx, c, p)
}

// openUIFile opens p inside the UI c: a UnixFS directory (index.html,
// assets, subdirectories), or a single file served as index.html.
// Missing paths wrap fs.ErrNotExist and directories gateway.ErrIsDir, as
// the gateway expects.
func (n *Node) openUIFile(ctx context.Context, c cid.Cid, p string) (io.ReadSeekCloser, error) {
	f, err := n.blobs.OpenPath(ctx, c, p)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, blobs.ErrNotDir) && p == "index.html":
		// The UI is one file: it is the page.
		return n.blobs.Open(ctx, c)
	case errors.Is(err, blobs.ErrNotFound), errors.Is(err, blobs.ErrNotDir):
		return nil, fmt.Errorf("dapp: web UI %s: %s: %w", c, p, fs.ErrNotExist)
	case errors.Is(err, blobs.ErrIsDir):
		return nil, fmt.Errorf("dapp: web UI %s: %s: %w", c, p, gateway.ErrIsDir)
	}
	return nil, err
}

// ipfsHandler serves /ipfs/{cid} with the blob store's handler (Range,
// ETag, CORS, sandboxed).
func (n *Node) ipfsHandler() http.Handler {
	bh := n.blobs.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/ipfs/"), "/")
		if rest == "" || strings.Contains(rest, "/") {
			http.Error(w, "dapp: /ipfs/: want /ipfs/{cid} of a file", http.StatusNotFound)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/blobs/"+rest, ""
		bh.ServeHTTP(w, r2)
	})
}

var (
	descGatewayUI      = prometheus.NewDesc("dpaas_dapp_gateway_ui_served_total", "Files of the web UI served by the HTTP gateway.", nil, nil)
	descGatewayRefused = prometheus.NewDesc("dpaas_dapp_gateway_refused_total", "Requests and announcements the HTTP gateway refused: bad_request (malformed badge path, method), not_found, source_error (releases or mirrors unreadable), bad_announcement (a peer's malformed gateway URL).", []string{"reason"}, nil)
)

type gatewayCollector struct{ n *Node }

func (c gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descGatewayUI
	ch <- descGatewayRefused
}

func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.GatewayStats()
	ch <- prometheus.MustNewConstMetric(descGatewayUI, prometheus.CounterValue, float64(st.UIServed))
	for reason, v := range map[string]uint64{"bad_request": st.BadRequests, "not_found": st.NotFound,
		"source_error": st.SourceErrors, "bad_announcement": st.BadAnnouncements} {
		ch <- prometheus.MustNewConstMetric(descGatewayRefused, prometheus.CounterValue, float64(v), reason)
	}
}
