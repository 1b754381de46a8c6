package dapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/governance"
)

func TestGatewayURLValidated(t *testing.T) {
	for _, u := range []string{"ftp://example.org", "http://", "example.org", "http://user:pw@example.org",
		"https://example.org/?q=1", "https://example.org/" + strings.Repeat("a", 2048)} {
		_, err := dapp.Open(context.Background(), dapp.Config{App: dapp.Manifest{Name: "gw"}, GatewayURL: u})
		if err == nil || !strings.Contains(err.Error(), "GatewayURL") {
			t.Errorf("GatewayURL %q: %v, want an error naming GatewayURL", u, err)
		}
	}
}

func httpGet(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// TestGatewayServesUntilClose checks the HTTPAddr server: ping, /ipfs/
// with Range, the page shown before any release is approved, the self
// badge, and that Close stops it.
func TestGatewayServesUntilClose(t *testing.T) {
	n := open(t, dapp.Config{App: dapp.Manifest{Name: "gw"}, HTTPAddr: "127.0.0.1:0"})
	base := n.GatewayURL()
	if base != "http://"+n.HTTPAddr() || n.HTTPAddr() == "127.0.0.1:0" {
		t.Fatalf("GatewayURL %q, HTTPAddr %q", base, n.HTTPAddr())
	}
	res, body := httpGet(t, base+"/dpaas/ping", nil)
	if res.StatusCode != 200 || body != `{"id":"`+n.ID().String()+`"}`+"\n" {
		t.Fatalf("ping: %d %q", res.StatusCode, body)
	}
	res, body = httpGet(t, base+"/", nil)
	if res.StatusCode != 404 || !strings.Contains(body, "no release of this DApp's web UI has been approved") {
		t.Fatalf("no release: %d %q", res.StatusCode, body)
	}
	data := bytes.Repeat([]byte("0123456789"), 100_000)
	c, err := n.Blobs().Add(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	res, body = httpGet(t, base+"/ipfs/"+c.String(), map[string]string{"Range": "bytes=500000-500009"})
	if res.StatusCode != http.StatusPartialContent || body != "0123456789" || res.Header.Get("ETag") != `"`+c.String()+`"` {
		t.Fatalf("/ipfs/ Range: %d %q %v", res.StatusCode, body, res.Header)
	}
	if res, _ := httpGet(t, base+"/ipfs/not-a-cid", nil); res.StatusCode != 400 {
		t.Fatalf("/ipfs/ bad CID: %d", res.StatusCode)
	}
	// Nobody attested this instance: its own badge says unknown.
	res, body = httpGet(t, base+"/dpaas/badge/self/online.svg", nil)
	if res.StatusCode != 200 || !strings.Contains(body, `aria-label="backup server: unknown"`) {
		t.Fatalf("self badge: %d %q", res.StatusCode, body)
	}
	if st := n.GatewayStats(); st.NotFound == 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/dpaas/ping"); err == nil {
		t.Fatal("the gateway still answers after Close")
	}
}

// TestGatewayWithoutHTTPAddr mounts Node.Gateway on a server of the
// application's own.
func TestGatewayWithoutHTTPAddr(t *testing.T) {
	n := open(t, dapp.Config{App: dapp.Manifest{Name: "gw"}})
	if n.HTTPAddr() != "" || n.GatewayURL() != "" {
		t.Fatalf("HTTPAddr %q GatewayURL %q without Config.HTTPAddr", n.HTTPAddr(), n.GatewayURL())
	}
	srv := httptest.NewServer(n.Gateway())
	defer srv.Close()
	res, body := httpGet(t, srv.URL+"/dpaas/mirrors", nil)
	if res.StatusCode != 200 || !strings.Contains(body, `"self":"`+n.ID().String()+`"`) {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
}

// testClock is a governance clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestGatewayServesApprovedUI approves a release whose web UI is a blob,
// by a vote of the DApp's one member, and checks the gateway serves it.
func TestGatewayServesApprovedUI(t *testing.T) {
	n, approve := uiNode(t)
	ctx := context.Background()
	page := "<!doctype html><title>rides</title>"
	ui, err := n.Blobs().Add(ctx, strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	approve(ui.String())
	base := n.GatewayURL()
	for _, p := range []string{"/", "/index.html", "/rides/42"} {
		res, body := httpGet(t, base+p, nil)
		if res.StatusCode != 200 || body != page || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("%s: %d %q %v", p, res.StatusCode, body, res.Header)
		}
	}
	if res, _ := httpGet(t, base+"/app.js", nil); res.StatusCode != 404 {
		t.Errorf("/app.js: %d, want 404", res.StatusCode)
	}
	res, body := httpGet(t, base+"/dpaas/mirrors", nil)
	var list struct {
		Self string `json:"self"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || res.StatusCode != 200 || list.Self != n.ID().String() {
		t.Fatalf("mirrors: %d %q", res.StatusCode, body)
	}
}

// TestGatewayServesUIDirectory: a release's UI is a UnixFS directory
// (blobs.AddDir): its files by path with their types, index.html of a
// subdirectory, a redirect to add the slash, the SPA fallback for routes,
// 404 for a missing asset.
func TestGatewayServesUIDirectory(t *testing.T) {
	n, approve := uiNode(t)
	files := fstest.MapFS{
		"index.html":      {Data: []byte("<!doctype html><script src=app.js></script>")},
		"app.js":          {Data: []byte("console.log('rides')")},
		"css/site.css":    {Data: []byte("body{margin:0}")},
		"help/index.html": {Data: []byte("<!doctype html><title>help</title>")},
		"img/logo.svg":    {Data: []byte("<svg xmlns='http://www.w3.org/2000/svg'/>")},
	}
	root, err := n.Blobs().AddDir(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	approve(root.String())
	base := n.GatewayURL()
	for _, tc := range []struct{ path, body, ctype string }{
		{"/", string(files["index.html"].Data), "text/html; charset=utf-8"},
		{"/app.js", string(files["app.js"].Data), "text/javascript; charset=utf-8"},
		{"/css/site.css", string(files["css/site.css"].Data), "text/css; charset=utf-8"},
		{"/help/", string(files["help/index.html"].Data), "text/html; charset=utf-8"},
		{"/help", string(files["help/index.html"].Data), "text/html; charset=utf-8"}, // redirected to /help/
		{"/rides/42", string(files["index.html"].Data), "text/html; charset=utf-8"},  // the app's route
	} {
		res, body := httpGet(t, base+tc.path, nil)
		if res.StatusCode != 200 || body != tc.body || res.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: %d %q %q", tc.path, res.StatusCode, body, res.Header.Get("Content-Type"))
		}
	}
	for _, p := range []string{"/missing.js", "/css/missing.css", "/app.js/x.js"} {
		if res, _ := httpGet(t, base+p, nil); res.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, res.StatusCode)
		}
	}
}

// uiNode opens an instance whose one member is its own key, with an HTTP
// gateway, and returns a function that approves a release with the given
// UI by a vote and waits until it is approved.
func uiNode(t *testing.T) (*dapp.Node, func(ui string)) {
	t.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.UnixMilli(1_800_000_000_000)}
	n := open(t, dapp.Config{
		App:        dapp.Manifest{Name: "gw-ui", Members: []common.Address{crypto.PubkeyToAddress(key.PublicKey)}},
		Key:        key,
		HTTPAddr:   "127.0.0.1:0",
		Governance: governance.Config{Now: clock.Now, CloseDelay: 100 * time.Millisecond},
	})
	return n, func(ui string) {
		t.Helper()
		ctx := context.Background()
		id, err := n.Governance().Propose(ctx, governance.Proposal{
			Title: "release 1.0.0",
			End:   clock.Now().Add(time.Hour),
			Actions: []governance.Action{governance.ApproveRelease(governance.Release{
				Version: "1.0.0", Executables: map[string]string{"linux/amd64": "ab12"}, UI: ui})},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Governance().Vote(ctx, id, governance.For()); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour + time.Second)
		deadline := time.Now().Add(30 * time.Second)
		for {
			rs, err := n.Governance().Releases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) == 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("release not approved after 30 s: %v", rs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestGatewayURLFromHostilePeer connects a peer that speaks the DApp's
// hello and announces a gateway URL that is no URL, then one far over the
// bound: neither is listed, both are counted, and the list still serves.
func TestGatewayURLFromHostilePeer(t *testing.T) {
	app := dapp.Manifest{Name: "gw-hostile"}
	n := open(t, dapp.Config{App: app, HTTPAddr: "127.0.0.1:0"})
	for i, announced := range []string{"javascript:alert(1)", "https://example.org/" + strings.Repeat("a", 1<<20)} {
		hostile, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		defer hostile.Close()
		prefix := "/dpaas/" + app.AppID().String()
		hostile.SetStreamHandler(protocol.ID(prefix+"/hello/1.0.0"), func(s network.Stream) { s.Close() })
		hostile.SetStreamHandler(protocol.ID(prefix+"/gateway/1.0.0"), func(s network.Stream) {
			defer s.Close()
			_, _ = io.WriteString(s, announced)
		})
		if err := n.Connect(context.Background(), hostile.Addrs()[0].String()+"/p2p/"+hostile.ID().String()); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the hostile peer listed as an instance", func() bool { return slices.Contains(n.Peers(), hostile.ID()) })
		res, body := httpGet(t, n.GatewayURL()+"/dpaas/mirrors", nil)
		var list struct {
			Mirrors []struct {
				ID      string `json:"id"`
				Gateway string `json:"gateway"`
			} `json:"mirrors"`
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil || res.StatusCode != 200 {
			t.Fatalf("mirrors: %d %q", res.StatusCode, body)
		}
		found := false
		for _, m := range list.Mirrors {
			if m.Gateway != "" {
				t.Fatalf("a refused gateway URL is listed: %q", m.Gateway)
			}
			found = found || m.ID == hostile.ID().String()
		}
		if !found {
			t.Fatalf("the hostile peer is not listed: %s", body)
		}
		if got := n.GatewayStats().BadAnnouncements; got != uint64(i+1) {
			t.Fatalf("BadAnnouncements = %d, want %d", got, i+1)
		}
	}
}

func TestGatewayMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := open(t, dapp.Config{App: dapp.Manifest{Name: t.Name()}, Metrics: reg})
	srv := httptest.NewServer(n.Gateway())
	defer srv.Close()
	if res, _ := httpGet(t, srv.URL+"/dpaas/badge/nope/online.svg", nil); res.StatusCode != 400 {
		t.Fatalf("bad peer ID: %d", res.StatusCode)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := -1.0
	for _, f := range families {
		if f.GetName() != "dpaas_dapp_gateway_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "bad_request" {
					got = m.GetCounter().GetValue()
				}
			}
		}
	}
	if got != 1 {
		t.Fatalf("dpaas_dapp_gateway_refused_total{reason=bad_request} = %v, want 1", got)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if families, _ := reg.Gather(); len(families) != 0 {
		t.Fatalf("%d metric families still registered after Close", len(families))
	}
}

// TestGatewayMirrorsFromDirectory: the mirror list is the directory, with
// what probers attested (availability), the gateway URL each instance's
// heartbeat announces, and the others' badges drawn from it.
func TestGatewayMirrorsFromDirectory(t *testing.T) {
	const n = 3
	c := dapptest.New(t, n, dapptest.Options{
		ListenIP: diverseIPs(n),
		Configure: func(i int, cfg *dapp.Config) {
			cfg.HTTPAddr = "127.0.0.1:0"
			cfg.Mirror = fastMirror(time.Hour)
		},
	})
	c.WaitConnected()
	a := c.Node(0)
	want := map[string]string{}
	for _, node := range c.Nodes()[1:] {
		want[node.ID().String()] = node.GatewayURL()
	}
	var last string
	c.WaitFor("instance 0's mirror list to hold the others, probed, with their heartbeats' URLs", func() bool {
		res, body := httpGet(t, a.GatewayURL()+"/dpaas/mirrors", nil)
		last = body
		if res.StatusCode != http.StatusOK {
			return false
		}
		var list struct {
			Mirrors []struct {
				ID           string   `json:"id"`
				Gateway      string   `json:"gateway"`
				Availability *float64 `json:"availability"`
				Online       bool     `json:"online"`
			} `json:"mirrors"`
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("mirrors: %v: %s", err, body)
		}
		seen := 0
		for _, m := range list.Mirrors {
			if m.ID == a.ID().String() {
				t.Fatalf("the instance lists itself: %s", body)
			}
			if u, ok := want[m.ID]; ok && m.Gateway == u && m.Online && m.Availability != nil && *m.Availability > 0.5 {
				seen++
			}
		}
		return seen == n-1
	})
	t.Logf("mirrors: %s", last)
	// The directory's URL is what the heartbeat said: the others learnt it
	// without asking (the heartbeat carries the gateway's URL by default).
	rs, err := a.Replicas().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if !r.Self && r.Gateway != want[r.ID.String()] {
			t.Fatalf("directory entry %s: gateway %q, want %q", r.ID, r.Gateway, want[r.ID.String()])
		}
	}
	res, body := httpGet(t, a.GatewayURL()+"/dpaas/badge/"+c.Node(1).ID().String()+"/availability.svg", nil)
	if res.StatusCode != http.StatusOK || strings.Contains(body, "unknown") {
		t.Fatalf("availability badge of node 1: %d %s", res.StatusCode, body)
	}
}
