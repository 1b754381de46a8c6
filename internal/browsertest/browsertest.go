// Package browsertest starts headless Chromium for tests of web pages,
// through chromedp.
//
// Start finds Debian's chromium (or chromium-browser, google-chrome,
// headless-shell) on PATH. Without one the test is skipped with a message
// saying how to install it, except when CI=true, where a missing browser
// fails the test: .ci/run installs it. The browser runs without its
// sandbox, which needs privileges a container run as root lacks.
package browsertest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Start starts a browser with one tab and returns the tab's context for
// chromedp.Run. The browser is closed when the test ends.
func Start(t testing.TB) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("browsertest: no Chromium on PATH (chromium, chromium-browser, google-chrome): .ci/run installs Debian's chromium")
		}
		t.Skip("browsertest: no Chromium on PATH: install it (apt-get install -y chromium) to run the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-gpu", true),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("browsertest: start %s: %v", path, err)
	}
	return ctx
}

// Eval evaluates the JavaScript expression js in the tab, awaiting it if
// it is a promise, and decodes its JSON value into out.
func Eval(t testing.TB, ctx context.Context, js string, out any) {
	t.Helper()
	var raw json.RawMessage
	err := chromedp.Run(ctx, chromedp.Evaluate(js, &raw, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	if err != nil {
		t.Fatalf("browsertest: evaluate %q: %v", js, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("browsertest: evaluate %q: decode %s: %v", js, raw, err)
		}
	}
}
