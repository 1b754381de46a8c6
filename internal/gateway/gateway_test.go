package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newID(t *testing.T) string {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

const rootCID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"

func testUI() FSUI {
	return FSUI{RootCID: rootCID, FS: fstest.MapFS{
		"index.html":         {Data: []byte("<!doctype html><title>app</title>")},
		"app.js":             {Data: []byte("console.log(1)")},
		"mod.MJS":            {Data: []byte("export {}")},
		"app.wasm":           {Data: []byte("\x00asm")},
		"style.css":          {Data: []byte("body{}")},
		"docs/index.html":    {Data: []byte("<p>docs")},
		"docs/guide.html":    {Data: []byte("<p>guide")},
		"img/logo.svg":       {Data: []byte("<svg/>")},
		"data/table.unknown": {Data: []byte("xx")},
	}}
}

func newGateway(t *testing.T, cfg Config) (*Gateway, string) {
	t.Helper()
	if cfg.Self == "" {
		cfg.Self = newID(t)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g, cfg.Self
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewRefusesBadSelf(t *testing.T) {
	if _, err := New(Config{Self: "not-a-peer"}); err == nil {
		t.Fatal("New accepted a Self that is no peer ID")
	}
}

func TestUIPaths(t *testing.T) {
	g, _ := newGateway(t, Config{UI: testUI()})
	for _, tc := range []struct {
		path, want, ctype, cache string
		status                   int
	}{
		{"/", "<!doctype html><title>app</title>", "text/html; charset=utf-8", "no-cache", 200},
		{"/index.html", "<!doctype html><title>app</title>", "text/html; charset=utf-8", "no-cache", 200},
		{"/app.js", "console.log(1)", "text/javascript; charset=utf-8", "public, max-age=300", 200},
		{"/mod.MJS", "export {}", "text/javascript; charset=utf-8", "public, max-age=300", 200},
		{"/app.wasm", "\x00asm", "application/wasm", "public, max-age=300", 200},
		{"/style.css", "body{}", "text/css; charset=utf-8", "public, max-age=300", 200},
		{"/img/logo.svg", "<svg/>", "image/svg+xml", "public, max-age=300", 200},
		{"/data/table.unknown", "xx", "application/octet-stream", "public, max-age=300", 200},
		{"/docs/", "<p>docs", "text/html; charset=utf-8", "no-cache", 200},
		{"/docs/guide.html", "<p>guide", "text/html; charset=utf-8", "no-cache", 200},
		// SPA fallback: an unknown path without an extension is the app's route.
		{"/rides/42", "<!doctype html><title>app</title>", "text/html; charset=utf-8", "no-cache", 200},
		// An unknown path with an extension is a missing file.
		{"/missing.js", "gateway: not found\n", "text/plain; charset=utf-8", "", 404},
	} {
		res := get(t, g, "GET", tc.path, nil)
		if got := body(t, res); res.StatusCode != tc.status || got != tc.want {
			t.Errorf("%s: %d %q, want %d %q", tc.path, res.StatusCode, got, tc.status, tc.want)
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s: Cache-Control %q, want %q", tc.path, got, tc.cache)
		}
		if tc.status == 200 && res.Header.Get("ETag") == "" {
			t.Errorf("%s: no ETag", tc.path)
		}
	}
	// No escape from the release's directory, even past the mux's cleaning.
	req := httptest.NewRequest("GET", "/", nil)
	req.URL.Path = "/docs/../../../missing.css"
	rec := httptest.NewRecorder()
	g.serveUI(rec, req)
	if rec.Code != 404 {
		t.Fatalf("path with ..: %d, want 404", rec.Code)
	}
	// A directory without its slash is redirected, so relative links work.
	res := get(t, g, "GET", "/docs", nil)
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/docs/" {
		t.Fatalf("/docs: %d to %q, want 301 to /docs/", res.StatusCode, res.Header.Get("Location"))
	}
	// ETag revalidation.
	etag := get(t, g, "GET", "/app.js", nil).Header.Get("ETag")
	if res := get(t, g, "GET", "/app.js", map[string]string{"If-None-Match": etag}); res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match with the ETag: %d, want 304", res.StatusCode)
	}
	// Range.
	res = get(t, g, "GET", "/app.js", map[string]string{"Range": "bytes=0-6"})
	if got := body(t, res); res.StatusCode != http.StatusPartialContent || got != "console" {
		t.Fatalf("Range: %d %q", res.StatusCode, got)
	}
	if res := get(t, g, "POST", "/", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %d, want 405", res.StatusCode)
	}
	if st := g.Stats(); st.UIServed == 0 || st.NotFound != 2 || st.BadRequests != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestETagChangesWithRelease(t *testing.T) {
	ui := testUI()
	g1, _ := newGateway(t, Config{UI: ui})
	ui.RootCID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	g2, _ := newGateway(t, Config{UI: ui})
	e1 := get(t, g1, "GET", "/app.js", nil).Header.Get("ETag")
	e2 := get(t, g2, "GET", "/app.js", nil).Header.Get("ETag")
	if e1 == e2 {
		t.Fatalf("same ETag %s for one path in two releases", e1)
	}
}

func TestNoRelease(t *testing.T) {
	for name, ui := range map[string]UI{"nil": nil, "none approved": FSUI{}} {
		g, _ := newGateway(t, Config{UI: ui})
		res := get(t, g, "GET", "/", nil)
		if got := body(t, res); res.StatusCode != 404 || !strings.Contains(got, "no release of this DApp's web UI has been approved") {
			t.Errorf("%s: %d %q", name, res.StatusCode, got)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
	}
}

type failingUI struct{}

func (failingUI) Root(context.Context) (string, bool, error) {
	return "", false, errors.New("disk on fire")
}
func (failingUI) Open(context.Context, string, string) (io.ReadSeekCloser, error) {
	return nil, errors.New("unreachable")
}

func TestUISourceError(t *testing.T) {
	g, _ := newGateway(t, Config{UI: failingUI{}})
	if res := get(t, g, "GET", "/", nil); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("root error: %d, want 503", res.StatusCode)
	}
	if g.Stats().SourceErrs != 1 {
		t.Fatalf("stats %+v", g.Stats())
	}
}

// svgBadge is what the tests read of a badge.
type svgBadge struct {
	XMLName xml.Name `xml:"svg"`
	Label   string   `xml:"aria-label,attr"`
	Title   string   `xml:"title"`
	Rects   []struct {
		Fill string `xml:"fill,attr"`
	} `xml:"rect"`
	Texts []struct {
		State string `xml:"data-state,attr"`
		Text  string `xml:",chardata"`
	} `xml:"g>text"`
}

func readBadge(t *testing.T, h http.Handler, target string) (svgBadge, *http.Response) {
	t.Helper()
	res := get(t, h, "GET", target, nil)
	var b svgBadge
	if res.StatusCode != 200 {
		return b, res
	}
	if err := xml.Unmarshal([]byte(body(t, res)), &b); err != nil {
		t.Fatalf("%s: not XML: %v", target, err)
	}
	return b, res
}

func TestBadges(t *testing.T) {
	self, good, bad, fresh, gone := newID(t), newID(t), newID(t), newID(t), newID(t)
	dir := &StaticMirrors{}
	dir.Set([]Mirror{
		{ID: self, Online: true, Verified: true, Availability: 0.9996},
		{ID: good, Online: true, Verified: true, Availability: 0.995},
		{ID: bad, Online: false, Verified: false, Availability: 0.42},
		{ID: fresh, Online: true, Verified: false, Availability: -1},
		{ID: gone, Online: false, Verified: true, Availability: 0.93},
	}, nil)
	g, _ := newGateway(t, Config{Self: self, Mirrors: dir})
	for _, tc := range []struct {
		peer, kind, label, value, fill string
	}{
		{"self", "online", "backup server", "online", colourGood},
		{"self", "verified", "code integrity", "verified", colourGood},
		{"self", "availability", "availability", "99.9%", colourGood},
		{self, "availability", "availability", "99.9%", colourGood},
		{good, "availability", "availability", "99.5%", colourGood},
		{bad, "online", "backup server", "offline", colourBad},
		{bad, "verified", "code integrity", "unverified", colourWarn},
		{bad, "availability", "availability", "42.0%", colourBad},
		{fresh, "availability", "availability", "unknown", colourUnknown},
		{gone, "availability", "availability", "93.0%", colourWarn},
		{gone, "online", "backup server", "offline", colourBad},
	} {
		target := "/dpaas/badge/" + tc.peer + "/" + tc.kind + ".svg"
		b, res := readBadge(t, g, target)
		if res.StatusCode != 200 {
			t.Errorf("%s: %d", target, res.StatusCode)
			continue
		}
		if b.Label != tc.label+": "+tc.value || b.Title != b.Label {
			t.Errorf("%s: label %q title %q, want %q", target, b.Label, b.Title, tc.label+": "+tc.value)
		}
		if len(b.Texts) != 2 || b.Texts[0].Text != tc.label || b.Texts[1].Text != tc.value || b.Texts[1].State != tc.value {
			t.Errorf("%s: texts %+v", target, b.Texts)
		}
		if len(b.Rects) != 3 || b.Rects[1].Fill != tc.fill {
			t.Errorf("%s: rects %+v, want value fill %s", target, b.Rects, tc.fill)
		}
		if ct := res.Header.Get("Content-Type"); ct != "image/svg+xml; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", target, ct)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=30" {
			t.Errorf("%s: Cache-Control %q", target, cc)
		}
		if res.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS", target)
		}
	}
}

// TestSelfBadgeFromDirectory checks that "self" shows the directory's view:
// unknown while no other instance attested it, never a claim of its own.
func TestSelfBadgeFromDirectory(t *testing.T) {
	dir := &StaticMirrors{}
	dir.Set([]Mirror{{ID: newID(t), Online: true, Verified: true, Availability: 1}}, nil)
	g, _ := newGateway(t, Config{Mirrors: dir})
	for _, kind := range []string{"online", "verified", "availability"} {
		b, res := readBadge(t, g, "/dpaas/badge/self/"+kind+".svg")
		if res.StatusCode != 200 || len(b.Texts) != 2 || b.Texts[1].Text != "unknown" || b.Rects[1].Fill != colourUnknown {
			t.Errorf("self %s unattested: %d %+v", kind, res.StatusCode, b)
		}
	}
	// By its own peer ID, the same.
	if b, res := readBadge(t, g, "/dpaas/badge/"+g.cfg.Self+"/online.svg"); res.StatusCode != 200 || b.Texts[1].Text != "unknown" {
		t.Errorf("own ID unattested: %d %+v", res.StatusCode, b)
	}
	g2, _ := newGateway(t, Config{}) // no directory at all
	if b, res := readBadge(t, g2, "/dpaas/badge/self/online.svg"); res.StatusCode != 200 || b.Texts[1].Text != "unknown" {
		t.Errorf("self without directory: %d %+v", res.StatusCode, b)
	}
}

func TestBadBadgeRequests(t *testing.T) {
	dir := &StaticMirrors{}
	known := newID(t)
	dir.Set([]Mirror{{ID: known, Online: true}}, nil)
	g, _ := newGateway(t, Config{Mirrors: dir})
	for _, tc := range []struct {
		target string
		status int
	}{
		{"/dpaas/badge/not-a-peer-id/online.svg", 400},
		{"/dpaas/badge/" + known + "x/online.svg", 400},
		{"/dpaas/badge/" + known + "/online.png", 400},
		{"/dpaas/badge/" + known + "/speed.svg", 400},
		{"/dpaas/badge/" + known + "/online", 400},
		{"/dpaas/badge/" + newID(t) + "/online.svg", 404},
		{"/dpaas/badge/" + known + "/online.svg/more", 404},
		{"/dpaas/nothing", 404},
	} {
		if res := get(t, g, "GET", tc.target, nil); res.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.target, res.StatusCode, tc.status)
		}
	}
	if st := g.Stats(); st.BadRequests != 5 || st.NotFound != 3 {
		t.Fatalf("stats %+v", st)
	}
	dir.Set(nil, errors.New("directory down"))
	if res := get(t, g, "GET", "/dpaas/badge/"+known+"/online.svg", nil); res.StatusCode != 503 {
		t.Fatalf("directory error: %d, want 503", res.StatusCode)
	}
}

func TestMirrorsJSON(t *testing.T) {
	a, b := newID(t), newID(t)
	seen := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	dir := &StaticMirrors{}
	dir.Set([]Mirror{
		{ID: a, Gateway: "https://a.example", Verified: true, Availability: 0.99, RTT: 12500 * time.Microsecond, LastSeen: seen, Online: true},
		{ID: b, Availability: -1, LastSeen: seen},
	}, nil)
	g, self := newGateway(t, Config{Mirrors: dir})
	res := get(t, g, "GET", "/dpaas/mirrors", map[string]string{"Origin": "https://elsewhere.example"})
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
	var got struct {
		Self    string           `json:"self"`
		Mirrors []map[string]any `json:"mirrors"`
	}
	raw := body(t, res)
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if got.Self != self || len(got.Mirrors) != 2 {
		t.Fatalf("%s", raw)
	}
	m := got.Mirrors[0]
	if m["id"] != a || m["gateway"] != "https://a.example" || m["verified"] != true || m["online"] != true ||
		m["availability"] != 0.99 || m["rttMs"] != 12.5 || m["lastSeen"] != "2026-12-04T18:00:00Z" {
		t.Fatalf("mirror a: %v", m)
	}
	m = got.Mirrors[1]
	if _, ok := m["gateway"]; ok || m["availability"] != nil || m["rttMs"] != nil || m["online"] != false {
		t.Fatalf("mirror b: %v", m)
	}
	// An empty directory is an empty list, not null.
	g2, _ := newGateway(t, Config{})
	if s := body(t, get(t, g2, "GET", "/dpaas/mirrors", nil)); !strings.Contains(s, `"mirrors":[]`) {
		t.Fatalf("empty: %s", s)
	}
	dir.Set(nil, errors.New("directory down"))
	if res := get(t, g, "GET", "/dpaas/mirrors", nil); res.StatusCode != 503 {
		t.Fatalf("directory error: %d", res.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path)
	})
	g, self := newGateway(t, Config{API: api, UI: testUI()})
	// Preflight for a request with a custom header, on the API and /dpaas/.
	for _, p := range []string{"/api/rides", "/dpaas/ping"} {
		res := get(t, g, "OPTIONS", p, map[string]string{
			"Origin":                         "https://mirror.example",
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "content-type, x-signature",
		})
		h := res.Header
		if res.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			h.Get("Access-Control-Allow-Headers") != "content-type, x-signature" {
			t.Errorf("preflight %s: %d %v", p, res.StatusCode, h)
		}
	}
	res := get(t, g, "POST", "/api/rides", map[string]string{"Origin": "https://mirror.example"})
	if got := body(t, res); got != "POST /api/rides" || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("API: %q %v", got, res.Header)
	}
	res = get(t, g, "GET", "/dpaas/ping", nil)
	if got := body(t, res); got != `{"id":"`+self+`"}`+"\n" || res.Header.Get("Access-Control-Allow-Origin") != "*" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("ping: %q %v", got, res.Header)
	}
	// The UI is the DApp's own page, not an API: no CORS there.
	if res := get(t, g, "GET", "/", nil); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS on the UI")
	}
}

func TestIPFSAndAPIMounts(t *testing.T) {
	ipfs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ipfs "+r.URL.Path) })
	g, _ := newGateway(t, Config{IPFS: ipfs})
	if got := body(t, get(t, g, "GET", "/ipfs/"+rootCID+"/a/b.txt", nil)); got != "ipfs /ipfs/"+rootCID+"/a/b.txt" {
		t.Fatalf("ipfs: %q", got)
	}
	if res := get(t, g, "GET", "/api/x", nil); res.StatusCode != 404 {
		t.Fatalf("no API: %d", res.StatusCode)
	}
	g2, _ := newGateway(t, Config{})
	if res := get(t, g2, "GET", "/ipfs/"+rootCID, nil); res.StatusCode != 404 {
		t.Fatalf("no IPFS: %d", res.StatusCode)
	}
}

func TestClientJS(t *testing.T) {
	g, _ := newGateway(t, Config{})
	res := get(t, g, "GET", "/dpaas/client.js", nil)
	got := body(t, res)
	if res.StatusCode != 200 || !bytes.Equal([]byte(got), clientJS) || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("%d %s", res.StatusCode, res.Header)
	}
	if !strings.Contains(got, "global.dpaas = {") {
		t.Fatal("client.js does not define dpaas")
	}
	if res := get(t, g, "GET", "/dpaas/client.js", map[string]string{"If-None-Match": res.Header.Get("ETag")}); res.StatusCode != 304 {
		t.Fatalf("revalidation: %d", res.StatusCode)
	}
}

func TestBadgeEscapesText(t *testing.T) {
	// Labels and values are fixed, but the drawing must stay XML whatever
	// it is given.
	b := drawBadge(badgeAvailability, &Mirror{Availability: 2})
	if err := xml.Unmarshal(b, new(svgBadge)); err != nil || !bytes.Contains(b, []byte("100.0%")) {
		t.Fatalf("%s: %v", b, err)
	}
}
