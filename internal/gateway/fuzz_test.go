package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequests sends arbitrary paths and methods to a gateway with every
// source set: no panic, no 5xx (the sources do not fail), and a badge is
// either an SVG or a 4xx.
func FuzzRequests(f *testing.F) {
	for _, s := range []string{"/", "/index.html", "/rides/1", "/docs", "/../x", "/dpaas/badge/self/online.svg",
		"/dpaas/badge/x/y.svg", "/dpaas/mirrors", "/dpaas/ping", "/api/x", "/ipfs/x/y", "/%00", "//a//b/"} {
		f.Add("GET", s)
	}
	f.Add("OPTIONS", "/api/x")
	f.Add("DELETE", "/")
	self := "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	dir := &StaticMirrors{}
	dir.Set([]Mirror{{ID: self, Online: true, Availability: 0.5}}, nil)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	g, err := New(Config{Self: self, UI: testUI(), Mirrors: dir, IPFS: ok, API: ok})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		req, err := http.NewRequest(method, "http://gw.example"+target, nil)
		if err != nil || req.URL.Path == "" {
			return
		}
		req.RequestURI = target
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", method, target, rec.Code, rec.Body)
		}
		if strings.HasPrefix(req.URL.Path, "/dpaas/badge/") && rec.Code == 200 &&
			!strings.HasPrefix(rec.Body.String(), "<svg ") {
			t.Fatalf("%s %q: badge %q", method, target, rec.Body)
		}
	})
}
