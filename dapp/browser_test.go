package dapp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/internal/browsertest"
)

// failoverPage calls the API of the instance dpaas.fetch picks, every 50
// ms, and logs which instance answered and when.
const failoverPage = `<!doctype html>
<meta charset="utf-8">
<title>failover</title>
<script src="/dpaas/client.js"></script>
<script>
// Loopback round trips differ by noise: stay on the page's origin while it answers.
dpaas.configure({originBias: 1000, timeout: 3000});
window.answers = [];
window.errors = [];
(async function loop() {
  for (;;) {
    try {
      // A custom header: the request needs a CORS preflight on other mirrors.
      const res = await dpaas.fetch('/api/whoami', {headers: {'X-Request-Sig': 'test'}});
      const body = await res.json();
      answers.push({node: body.node, t: Date.now()});
    } catch (e) {
      errors.push(String(e));
    }
    await new Promise(r => setTimeout(r, 50));
  }
})();
</script>
`

type pageAnswer struct {
	Node int   `json:"node"`
	T    int64 `json:"t"`
}

func pageState(t *testing.T, ctx context.Context) (answers []pageAnswer, errs []string) {
	t.Helper()
	var st struct {
		Answers []pageAnswer `json:"answers"`
		Errors  []string     `json:"errors"`
	}
	browsertest.Eval(t, ctx, `({answers: window.answers || [], errors: window.errors || []})`, &st)
	return st.Answers, st.Errors
}

// TestBrowserFailover loads a page from instance 0's gateway in Chromium;
// the page calls the DApp's API through dpaas.fetch. Instance 0 is closed,
// and the page must keep getting answers, now from another instance.
func TestBrowserFailover(t *testing.T) {
	ctx := browsertest.Start(t)
	c := dapptest.New(t, 3, dapptest.Options{Configure: func(i int, cfg *dapp.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.API = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/api/page":
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = io.WriteString(w, failoverPage)
			case "/api/whoami":
				w.Header().Set("Content-Type", "application/json")
				_, _ = fmt.Fprintf(w, `{"node":%d}`, i)
			default:
				http.NotFound(w, r)
			}
		})
	}})
	c.WaitConnected()
	a := c.Node(0)
	if a.HTTPAddr() == "" || a.GatewayURL() != "http://"+a.HTTPAddr() {
		t.Fatalf("HTTPAddr %q, GatewayURL %q", a.HTTPAddr(), a.GatewayURL())
	}
	c.WaitFor("instance 0's mirror list to name the others' gateways", func() bool {
		res, err := http.Get(a.GatewayURL() + "/dpaas/mirrors")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var list struct {
			Mirrors []struct {
				ID      string `json:"id"`
				Gateway string `json:"gateway"`
			} `json:"mirrors"`
		}
		if json.NewDecoder(res.Body).Decode(&list) != nil {
			return false
		}
		want := map[string]string{c.Node(1).ID().String(): c.Node(1).GatewayURL(), c.Node(2).ID().String(): c.Node(2).GatewayURL()}
		for _, m := range list.Mirrors {
			if want[m.ID] == m.Gateway {
				delete(want, m.ID)
			}
		}
		return len(want) == 0
	})

	if err := chromedp.Run(ctx, chromedp.Navigate(a.GatewayURL()+"/api/page")); err != nil {
		t.Fatal(err)
	}
	waitPage := func(what string, cond func([]pageAnswer) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			answers, errs := pageState(t, ctx)
			if cond(answers) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting 10 s for %s: answers %v, errors %v", what, answers, errs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitPage("answers from instance 0, the page's origin", func(as []pageAnswer) bool {
		return len(as) >= 3 && as[len(as)-1].Node == 0
	})

	closed := time.Now()
	c.Stop(0)
	stopped := time.Since(closed)
	var first pageAnswer
	waitPage("an answer from another instance after instance 0 closed", func(as []pageAnswer) bool {
		for _, x := range as {
			if x.T >= closed.UnixMilli() && x.Node != 0 {
				first = x
				return true
			}
		}
		return false
	})
	failover := time.UnixMilli(first.T).Sub(closed)
	t.Logf("failover: first answer from instance %d %v after Close began (Close took %v)", first.Node, failover, stopped)
	if p := os.Getenv("DPAAS_FAILOVER_OUT"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = fmt.Fprintln(f, strconv.FormatInt(failover.Milliseconds(), 10), strconv.FormatInt(stopped.Milliseconds(), 10))
			f.Close()
		}
	}

	// The page's origin is dead: the mirror list still comes, from another
	// instance, and localStorage keeps it.
	var src string
	browsertest.Eval(t, ctx, `dpaas.refresh()`, &src)
	if src != c.Node(1).GatewayURL() && src != c.Node(2).GatewayURL() {
		t.Fatalf("mirror list refreshed from %q, want instance 1 or 2", src)
	}
	var stored int
	browsertest.Eval(t, ctx, `JSON.parse(localStorage.getItem('dpaas.mirrors.v1')).mirrors.length`, &stored)
	if stored < 2 {
		t.Fatalf("localStorage keeps %d mirrors, want the page's origin and the live ones", stored)
	}
	// The page keeps working on the survivors.
	before, _ := pageState(t, ctx)
	waitPage("more answers from the survivors", func(as []pageAnswer) bool {
		return len(as) >= len(before)+5 && as[len(as)-1].Node != 0
	})
	// Transparent: no call of the page failed, before, during or after.
	if _, errs := pageState(t, ctx); len(errs) > 0 {
		t.Fatalf("dpaas.fetch failed %d times: %q", len(errs), errs)
	}
}
