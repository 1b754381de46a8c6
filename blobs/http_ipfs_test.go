package blobs

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// TestHTTPIPFSPaths: /ipfs/{cid}/{path} serves files with Range, ETag and a
// Content-Type, redirects directories to a trailing '/', serves their
// index.html or a listing, and keeps /blobs/ working.
func TestHTTPIPFSPaths(t *testing.T) {
	s := newLocal(t)
	ctx := context.Background()
	fsys := kuboFixture()
	fsys["docs/readme"] = &fstest.MapFile{Data: []byte("%PDF-1.4 not really")}
	fsys["docs/<b>&amp;.txt"] = &fstest.MapFile{Data: []byte("escaped")}
	root, err := s.AddDir(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(p string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	base := "/ipfs/" + root.String()

	// A file by path, with a Range.
	big := fsys["big.bin"].Data
	resp, body := get(base+"/big.bin", map[string]string{"Range": "bytes=300000-300099"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, big[300000:300100]) {
		t.Fatalf("range on a path: %d, %d bytes", resp.StatusCode, len(body))
	}
	bigCID, _ := pathCID(t, s, root, "big.bin")
	if got := resp.Header.Get("ETag"); got != `"`+bigCID.String()+`"` {
		t.Fatalf("ETag %q, want the file's CID %s", got, bigCID)
	}
	if resp.Header.Get("Content-Security-Policy") != "sandbox" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, _ = get(base+"/big.bin", map[string]string{"If-None-Match": `"` + bigCID.String() + `"`})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}

	// Content-Type from the extension, else sniffed.
	resp, body = get(base+"/css/site.css", nil)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") || string(body) != "body { color: #333 }\n" {
		t.Fatalf("css: %q, %q", ct, body)
	}
	resp, _ = get(base+"/docs/readme", nil)
	if ct := resp.Header.Get("Content-Type"); ct != "application/pdf" {
		t.Fatalf("sniffed type %q", ct)
	}
	resp, body = get(base+"/unicode/%E6%97%A5%E6%9C%AC%E8%AA%9E", nil)
	if resp.StatusCode != http.StatusOK || string(body) != "nihongo\n" {
		t.Fatalf("escaped path: %d %q", resp.StatusCode, body)
	}
	resp, body = get(base+"/sharded/entry-04321.txt", nil)
	if resp.StatusCode != http.StatusOK || string(body) != "entry 4321\n" {
		t.Fatalf("HAMT path: %d %q", resp.StatusCode, body)
	}

	// Directories: redirect, then index.html or a listing.
	for p, loc := range map[string]string{base: "./" + root.String() + "/", base + "/nested": "./nested/", base + "/nested/a?x=1": "./a/?x=1"} {
		resp, _ = get(p, nil)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != loc {
			t.Fatalf("%s: %d to %q, want 301 to %q", p, resp.StatusCode, resp.Header.Get("Location"), loc)
		}
	}
	resp, body = get(base+"/", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, fsys["index.html"].Data) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("index.html: %d %q", resp.StatusCode, body)
	}
	resp, body = get(base+"/docs/", nil)
	page := string(body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `href="./readme"`) || !strings.Contains(page, `href="../"`) ||
		!strings.Contains(page, "&lt;b&gt;&amp;amp;.txt") || strings.Contains(page, "<b>") {
		t.Fatalf("listing: %d\n%s", resp.StatusCode, page)
	}
	if resp.Header.Get("Content-Security-Policy") != "sandbox" {
		t.Fatal("listing without sandbox")
	}
	resp, body = get(base+"/sharded/", nil)
	if resp.StatusCode != http.StatusOK || strings.Count(string(body), "<tr>") != 6001 { // and ../
		t.Fatalf("HAMT listing: %d, %d rows", resp.StatusCode, strings.Count(string(body), "<tr>"))
	}
	resp, body = get(base+"/docs/", map[string]string{"If-None-Match": resp.Header.Get("ETag")})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("listing of another directory answered %d to a stale ETag", resp.StatusCode)
	}
	resp, _ = get(base+"/docs/", map[string]string{"If-None-Match": resp.Header.Get("ETag")})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("listing If-None-Match: %d", resp.StatusCode)
	}

	// Errors.
	for p, code := range map[string]int{
		base + "/missing":        http.StatusNotFound,
		base + "/index.html/x":   http.StatusNotFound,
		base + "/link":           http.StatusUnprocessableEntity,
		base + "/nested/../x":    http.StatusTemporaryRedirect, // cleaned by the mux
		"/ipfs/not-a-cid/x":      http.StatusBadRequest,
		base + "/nested/%2e%2e/": http.StatusBadRequest,
	} {
		if resp, body := get(p, nil); resp.StatusCode != code {
			t.Errorf("%s: %d %q, want %d", p, resp.StatusCode, body, code)
		}
	}

	// A file blob under /ipfs/ and /blobs/.
	fc, err := s.Add(ctx, bytes.NewReader([]byte("plain blob")))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/ipfs/" + fc.String(), "/blobs/" + fc.String()} {
		if resp, body := get(p, nil); resp.StatusCode != http.StatusOK || string(body) != "plain blob" {
			t.Fatalf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	if m := s.Metrics(); m.HTTPServedBytes == 0 || m.BadRequests == 0 {
		t.Fatalf("metrics %+v", m)
	}
}
