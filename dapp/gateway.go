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
		Mirrors: peerMirrors{n},
		API:     c.API,
		Logger:  n.log,
	})
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	n.http.gw = gw
	n.http.url = c.GatewayURL
	if reg := c.Metrics; reg != nil {
		col := gatewayCollector{n}
		if err := reg.Register(col); err != nil {
			return fmt.Errorf("dapp: open: register metrics: %w", err)
		}
		n.closers = append(n.closers, func() error { reg.Unregister(col); return nil })
	}
	if c.HTTPAddr != "" {
		if err := n.serveHTTP(); err != nil {
			return err
		}
	}
	n.host.SetStreamHandler(n.http.proto, n.serveGatewayURL)
	return nil
}

func (n *Node) serveHTTP() error {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("dapp: open: HTTP gateway: %w", err)
	}
	n.http.ln = ln
	if n.http.url == "" {
		if ip := ln.Addr().(*net.TCPAddr).IP; ip.IsUnspecified() {
			n.log.Warn("dapp: the HTTP gateway listens on every interface: set Config.GatewayURL so that users can find it through the other instances", "addr", ln.Addr().String())
		} else {
			n.http.url = "http://" + ln.Addr().String()
		}
	}
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
	return nil
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

// peerMirrors lists the connected instances of the DApp as this one sees
// them: online (connected), with their announced gateway URLs and the
// measured round trip. Nothing here is self-reported except the URL, and
// nothing is attested yet: Verified is false and Availability unknown for
// every instance, and the instance itself is not listed.
type peerMirrors struct{ n *Node }

func (m peerMirrors) Mirrors(ctx context.Context) ([]gateway.Mirror, error) {
	n := m.n
	if n.isClosed() {
		return nil, fmt.Errorf("dapp: mirrors: %w", ErrClosed)
	}
	peers := n.Peers()
	out := make([]gateway.Mirror, len(peers))
	now := time.Now()
	var wg sync.WaitGroup
	for i, p := range peers {
		out[i] = gateway.Mirror{
			ID:           p.String(),
			Availability: -1,
			RTT:          n.host.Peerstore().LatencyEWMA(p),
			LastSeen:     now,
			Online:       true,
		}
		wg.Go(func() { out[i].Gateway = n.peerGatewayURL(ctx, p) })
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

// openUIFile opens p inside the UI c. blobs reads files only, so a UI is
// one file, served as index.html; a directory CID fails with
// blobs.ErrNotFile.
func (n *Node) openUIFile(ctx context.Context, c cid.Cid, p string) (io.ReadSeekCloser, error) {
	if p != "index.html" {
		return nil, fmt.Errorf("dapp: web UI %s: %s: %w", c, p, fs.ErrNotExist)
	}
	return n.blobs.Open(ctx, c)
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
