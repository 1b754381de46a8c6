package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dpaas/dpaas/internal/browsertest"
)

// clientPage calls /api/whoami through dpaas.fetch every 20 ms and logs
// which gateway answered, with what status.
const clientPage = `<!doctype html>
<meta charset="utf-8">
<script src="/dpaas/client.js"></script>
<script>
dpaas.configure({downFor: 60000});
window.answers = [];
window.errors = [];
(async function loop() {
  for (;;) {
    try {
      const res = await dpaas.fetch('/api/whoami', {method: 'POST', body: 'x', headers: {'Content-Type': 'application/json'}});
      answers.push({status: res.status, node: res.ok ? (await res.json()).node : -1});
    } catch (e) {
      errors.push(String(e));
    }
    await new Promise(r => setTimeout(r, 20));
  }
})();
</script>
`

type clientAnswer struct {
	Status int `json:"status"`
	Node   int `json:"node"`
}

// TestClientPrefersVerifiedAndRetries runs client.js in Chromium against
// three gateways: the page's origin (unverified) and two verified mirrors.
// Requests go to verified mirrors only; when one answers 503 the same
// request goes to the other; when both do, the page gets the 503 rather
// than an answer from the unverified origin.
func TestClientPrefersVerifiedAndRetries(t *testing.T) {
	ctx := browsertest.Start(t)
	dir := &StaticMirrors{}
	var failing [3]atomic.Bool
	var served [3]atomic.Int64
	urls := make([]string, 3)
	ids := make([]string, 3)
	for i := range 3 {
		ids[i] = newID(t)
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/api/page":
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = io.WriteString(w, clientPage)
			case "/api/whoami":
				if body, _ := io.ReadAll(r.Body); r.Method != "POST" || string(body) != "x" {
					http.Error(w, "want POST x", http.StatusBadRequest)
					return
				}
				if failing[i].Load() {
					http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
					return
				}
				served[i].Add(1)
				_, _ = fmt.Fprintf(w, `{"node":%d}`, i)
			}
		})
		g, err := New(Config{Self: ids[i], Mirrors: dir, API: api})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(g)
		t.Cleanup(srv.Close)
		urls[i] = srv.URL
	}
	dir.Set([]Mirror{
		{ID: ids[0], Gateway: urls[0], Online: true, Verified: false, Availability: -1},
		{ID: ids[1], Gateway: urls[1], Online: true, Verified: true, Availability: 1},
		{ID: ids[2], Gateway: urls[2], Online: true, Verified: true, Availability: 1},
	}, nil)

	if err := chromedp.Run(ctx, chromedp.Navigate(urls[0]+"/api/page")); err != nil {
		t.Fatal(err)
	}
	state := func() (as []clientAnswer, errs []string) {
		var st struct {
			Answers []clientAnswer `json:"answers"`
			Errors  []string       `json:"errors"`
		}
		browsertest.Eval(t, ctx, `({answers: window.answers, errors: window.errors})`, &st)
		return st.Answers, st.Errors
	}
	wait := func(what string, cond func(as []clientAnswer) bool) []clientAnswer {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			as, errs := state()
			if len(errs) > 0 {
				t.Fatalf("dpaas.fetch failed while waiting for %s: %q", what, errs)
			}
			if cond(as) {
				return as
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting 10 s for %s: %v", what, as)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	as := wait("10 answers", func(as []clientAnswer) bool { return len(as) >= 10 })
	var first int
	for _, a := range as {
		if a.Status != 200 || a.Node == 0 {
			t.Fatalf("answer %+v: want 200 from a verified mirror (1 or 2)", a)
		}
		first = a.Node
	}
	other := 3 - first
	failing[first].Store(true)
	as, _ = state()
	n := len(as)
	as = wait("answers from the other verified mirror", func(as []clientAnswer) bool {
		return len(as) >= n+10
	})
	// The page calls one at a time: as[n] may have been in flight when
	// the failure began.
	for _, a := range as[n+1:] {
		if a.Status != 200 || a.Node != other {
			t.Fatalf("after mirror %d failed: answer %+v, want 200 from %d", first, a, other)
		}
	}
	failing[other].Store(true)
	n = len(as)
	wait("503s once every verified mirror fails", func(as []clientAnswer) bool {
		return len(as) >= n+3 && as[len(as)-1].Status == 503
	})
	if got := served[0].Load(); got != 0 {
		t.Fatalf("the unverified origin served %d requests", got)
	}
}
