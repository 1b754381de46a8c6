package gateway

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrIsDir is what UI.Open returns (wrapped) for a path that names a
// directory.
var ErrIsDir = errors.New("gateway: is a directory")

// UI is the web UI of the DApp's approved release.
type UI interface {
	// Root returns the CID of the UI directory to serve, and false when no
	// approved release has a UI.
	Root(ctx context.Context) (root string, ok bool, err error)
	// Open opens the file at p (slash-separated, cleaned, without a
	// leading slash, never "") inside the directory root. It returns an
	// error wrapping fs.ErrNotExist when there is no such path and one
	// wrapping ErrIsDir when p names a directory. The caller closes the
	// file.
	Open(ctx context.Context, root, p string) (io.ReadSeekCloser, error)
}

// Mirror is one instance of the DApp as the directory sees it: what other
// instances attested about it, never what it says of itself.
type Mirror struct {
	// ID is the instance's peer ID.
	ID string `json:"id"`
	// Gateway is the URL of the instance's HTTP gateway, "" if it serves
	// none.
	Gateway string `json:"gateway,omitempty"`
	// Verified says the instance runs the code of an approved release.
	Verified bool `json:"verified"`
	// Availability is the instance's availability score, 0 to 1, or a
	// negative number when no instance has probed it yet.
	Availability float64 `json:"-"`
	// RTT is the round-trip time to the instance, 0 when unknown.
	RTT time.Duration `json:"-"`
	// LastSeen is when an instance last heard from it.
	LastSeen time.Time `json:"lastSeen"`
	// Online says the instance answers now.
	Online bool `json:"online"`
}

// MarshalJSON writes Availability as null when unknown and RTT in
// milliseconds, which is what a browser wants.
func (m Mirror) MarshalJSON() ([]byte, error) {
	type plain Mirror
	out := struct {
		plain
		Availability *float64 `json:"availability"`
		RTTMillis    *float64 `json:"rttMs"`
	}{plain: plain(m)}
	if m.Availability >= 0 {
		a := m.Availability
		out.Availability = &a
	}
	if m.RTT > 0 {
		ms := float64(m.RTT) / float64(time.Millisecond)
		out.RTTMillis = &ms
	}
	return json.Marshal(out)
}

// Mirrors is the directory of the DApp's instances.
type Mirrors interface {
	// Mirrors lists the instances the directory knows, this one included
	// if others attested it.
	Mirrors(ctx context.Context) ([]Mirror, error)
}

// Config configures New. Self is required; a nil source serves nothing
// from it (no UI page, 404 under /ipfs/ and /api/, no mirrors).
type Config struct {
	// Self is this instance's peer ID, answered by /dpaas/ping and meant
	// by "self" in badge paths.
	Self string
	// UI is the approved release's web UI.
	UI UI
	// IPFS serves /ipfs/{cid}[/path]; it sees the full request path.
	IPFS http.Handler
	// Mirrors lists the instances with what others attested of them.
	Mirrors Mirrors
	// API is the DApp's own HTTP API, served under /api/ (it sees the full
	// path) with CORS open, so that pages served by any mirror can call it.
	API http.Handler
	// Logger receives errors of the sources; default: discard.
	Logger *slog.Logger
}

// Stats counts what the gateway served and refused.
type Stats struct {
	UIServed    uint64 // UI files served (SPA fallbacks included)
	BadRequests uint64 // malformed badge paths, refused methods
	NotFound    uint64 // UI paths, badge peers and routes not found
	SourceErrs  uint64 // errors of UI or Mirrors
}

// Gateway is the HTTP handler. It is safe for concurrent use.
type Gateway struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	uiServed, badRequests, notFound, sourceErrs atomic.Uint64
}

//go:embed client.js
var clientJS []byte

// clientETag names the embedded client's content.
var clientETag = func() string {
	sum := sha256.Sum256(clientJS)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// New returns a gateway serving cfg's sources.
func New(cfg Config) (*Gateway, error) {
	if _, err := peer.Decode(cfg.Self); err != nil {
		return nil, fmt.Errorf("gateway: Self %q is not a peer ID: %w", cfg.Self, err)
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.mux.HandleFunc("GET /dpaas/ping", g.servePing)
	g.mux.HandleFunc("GET /dpaas/mirrors", g.serveMirrors)
	g.mux.HandleFunc("GET /dpaas/badge/{peer}/{file}", g.serveBadge)
	g.mux.HandleFunc("GET /dpaas/client.js", g.serveClient)
	g.mux.HandleFunc("/dpaas/", g.serveUnknown)
	g.mux.Handle("/ipfs/", orNotFound(cfg.IPFS, g))
	g.mux.Handle("/api/", orNotFound(cfg.API, g))
	g.mux.HandleFunc("/", g.serveUI)
	return g, nil
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() Stats {
	return Stats{
		UIServed:    g.uiServed.Load(),
		BadRequests: g.badRequests.Load(),
		NotFound:    g.notFound.Load(),
		SourceErrs:  g.sourceErrs.Load(),
	}
}

// ServeHTTP routes the request; /dpaas/ and /api/ answer CORS.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if strings.HasPrefix(p, "/dpaas/") || strings.HasPrefix(p, "/api/") {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag, Date")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
			if want := r.Header.Get("Access-Control-Request-Headers"); want != "" {
				h.Set("Access-Control-Allow-Headers", want)
			}
			h.Set("Access-Control-Max-Age", "600")
			h.Add("Vary", "Access-Control-Request-Headers")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	g.mux.ServeHTTP(w, r)
}

func orNotFound(h http.Handler, g *Gateway) http.Handler {
	if h != nil {
		return h
	}
	return http.HandlerFunc(g.serveUnknown)
}

func (g *Gateway) serveUnknown(w http.ResponseWriter, r *http.Request) {
	g.notFound.Add(1)
	http.Error(w, "gateway: not found", http.StatusNotFound)
}

func (g *Gateway) servePing(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, struct {
		ID string `json:"id"`
	}{g.cfg.Self})
}

func (g *Gateway) mirrors(ctx context.Context) ([]Mirror, error) {
	if g.cfg.Mirrors == nil {
		return nil, nil
	}
	ms, err := g.cfg.Mirrors.Mirrors(ctx)
	if err != nil {
		g.sourceErrs.Add(1)
		g.log.Warn("gateway: mirrors", "err", err)
	}
	return ms, err
}

func (g *Gateway) serveMirrors(w http.ResponseWriter, r *http.Request) {
	ms, err := g.mirrors(r.Context())
	if err != nil {
		http.Error(w, "gateway: the mirror list is unavailable", http.StatusServiceUnavailable)
		return
	}
	if ms == nil {
		ms = []Mirror{}
	}
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, struct {
		Self    string   `json:"self"`
		Mirrors []Mirror `json:"mirrors"`
	}{g.cfg.Self, ms})
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

func (g *Gateway) serveBadge(w http.ResponseWriter, r *http.Request) {
	kind, ok := strings.CutSuffix(r.PathValue("file"), ".svg")
	if !ok || (kind != badgeOnline && kind != badgeVerified && kind != badgeAvailability) {
		g.badRequests.Add(1)
		http.Error(w, "gateway: badge: want online.svg, verified.svg or availability.svg", http.StatusBadRequest)
		return
	}
	id := r.PathValue("peer")
	self := id == "self" || id == g.cfg.Self
	if self {
		id = g.cfg.Self
	} else if _, err := peer.Decode(id); err != nil {
		g.badRequests.Add(1)
		http.Error(w, "gateway: badge: not a peer ID", http.StatusBadRequest)
		return
	}
	ms, err := g.mirrors(r.Context())
	if err != nil {
		http.Error(w, "gateway: the mirror list is unavailable", http.StatusServiceUnavailable)
		return
	}
	var m *Mirror
	for i := range ms {
		if ms[i].ID == id {
			m = &ms[i]
			break
		}
	}
	if m == nil && !self {
		g.notFound.Add(1)
		http.Error(w, "gateway: badge: no such instance in the directory", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml; charset=utf-8")
	// Short: a badge shows health, which changes.
	h.Set("Cache-Control", "public, max-age=30")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(drawBadge(kind, m))
}

func (g *Gateway) serveClient(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", clientETag)
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(clientJS)))
}

// serveUI serves the approved release's web UI: index.html for a
// directory, the file at a path, and index.html for an unknown path
// without an extension, which a single-page app routes itself.
func (g *Gateway) serveUI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		g.badRequests.Add(1)
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "gateway: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if g.cfg.UI == nil {
		g.noUI(w)
		return
	}
	root, ok, err := g.cfg.UI.Root(r.Context())
	if err != nil {
		g.sourceErrs.Add(1)
		g.log.Warn("gateway: UI release", "err", err)
		http.Error(w, "gateway: cannot read the approved releases", http.StatusServiceUnavailable)
		return
	}
	if !ok {
		g.noUI(w)
		return
	}
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if p == "" || strings.HasSuffix(r.URL.Path, "/") {
		p = path.Join(p, "index.html")
	}
	f, err := g.cfg.UI.Open(r.Context(), root, p)
	switch {
	case errors.Is(err, ErrIsDir):
		// Relative links in the directory's index.html need the slash.
		http.Redirect(w, r, "/"+p+"/", http.StatusMovedPermanently)
		return
	case errors.Is(err, fs.ErrNotExist) && path.Ext(p) == "":
		p = "index.html"
		f, err = g.cfg.UI.Open(r.Context(), root, p)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		g.notFound.Add(1)
		http.Error(w, "gateway: not found", http.StatusNotFound)
		return
	case err != nil:
		g.sourceErrs.Add(1)
		g.log.Warn("gateway: UI file", "root", root, "path", p, "err", err)
		http.Error(w, "gateway: cannot read the web UI", http.StatusBadGateway)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", contentType(p))
	sum := sha256.Sum256([]byte(root + "\x00" + p))
	h.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	if path.Ext(p) == ".html" {
		// Pages name the other files: revalidate them every time, so a
		// newly approved release shows at once.
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Cache-Control", "public, max-age=300")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	g.uiServed.Add(1)
	http.ServeContent(w, r, "", time.Time{}, f)
}

const noUIPage = `<!doctype html>
<meta charset="utf-8">
<title>No web UI approved</title>
<p>This instance runs, but no release of this DApp's web UI has been approved yet.
<p><a href="/dpaas/mirrors">Mirrors</a>
`

func (g *Gateway) noUI(w http.ResponseWriter) {
	g.notFound.Add(1)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, noUIPage)
}

// webTypes are the types a web UI depends on, fixed here rather than left
// to the machine's MIME database, which differs between systems (a module
// script or WebAssembly served under another type does not run).
var webTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".svg":         "image/svg+xml",
	".wasm":        "application/wasm",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".ico":         "image/x-icon",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".txt":         "text/plain; charset=utf-8",
}

// contentType is the type of the file at p, from its extension.
func contentType(p string) string {
	ext := strings.ToLower(path.Ext(p))
	if t, ok := webTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}
