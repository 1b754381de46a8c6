package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/dapp"
	rides "github.com/dpaas/dpaas/examples/rides/cluster"
	"github.com/dpaas/dpaas/examples/rides/ride"
	"github.com/dpaas/dpaas/governance"
)

// browser starts headless Chromium for the test, or skips it when there
// is none (outside CI, where its absence is a failure).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Chromium at %s: CI must install it (apt-get install -y chromium)", path)
		}
		t.Skipf("no Chromium at %s (set CHROMIUM, or apt-get install chromium); skipping the browser test", path)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.WindowSize(1280, 860), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel2 := chromedp.NewContext(actx)
	if err := chromedp.Run(bctx); err != nil {
		cancel2()
		cancel()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { cancel2(); cancel() })
	return bctx
}

// page opens a tab on url as the user with key, and waits for the app.
func page(t *testing.T, b context.Context, url string, u *user, role string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b)
	t.Cleanup(cancel)
	// The first Run opens the tab and ties it to its context: give it the
	// tab's own, so that run's timeouts do not close the tab.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	full := fmt.Sprintf("%s/#role=%s&key=0x%s", url, role, hex.EncodeToString(crypto.FromECDSA(u.key)))
	run(t, ctx, chromedp.Navigate(full), poll(`document.body.dataset.ready === "1" || !!document.body.dataset.error`))
	var errText string
	run(t, ctx, chromedp.Evaluate(`document.body.dataset.error || ""`, &errText))
	if errText != "" {
		t.Fatalf("page %s: %s", url, errText)
	}
	return ctx
}

func run(t *testing.T, ctx context.Context, actions ...chromedp.Action) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(tctx, actions...); err != nil {
		var msgs string
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = chromedp.Run(ectx, chromedp.Evaluate(`[...document.querySelectorAll('.msg')].map(e => e.id + ": " + e.textContent).join("; ")`, &msgs))
		t.Fatalf("browser: %v (page says: %s)", err, msgs)
	}
}

func poll(expr string) chromedp.Action {
	return chromedp.Poll(expr, nil, chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	var s string
	run(t, ctx, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// click clicks the element sel selects once it is there and enabled. It
// finds and clicks it in one step of the page's own script: a list the page
// redraws between a lookup and a click by node ID (chromedp.Click) fails
// with "Could not find node with given id".
func click(sel string) chromedp.Action {
	return poll(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e || e.disabled || e.hidden) return false; e.click(); return true; })()`, sel))
}

// clickMap clicks the passenger's map at map coordinates (x, y).
func clickMap(x, y int) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`(() => { const m = document.getElementById('map'); const r = m.getBoundingClientRect();
		m.dispatchEvent(new MouseEvent('click', {clientX: r.left + r.width * %d / 1000, clientY: r.top + r.height * %d / 1000, bubbles: true})); })()`, x, y), nil)
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	run(t, ctx, chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join("docs", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func stateIs(prefix, state string) string {
	return fmt.Sprintf(`document.getElementById('%s-state').textContent === %q`, prefix, strings.ReplaceAll(state, "_", " "))
}

// TestBrowserRide: a passenger page on instance A and a driver page on B,
// both loaded from the DApp's approved release (its UI directory, through
// each instance's gateway), complete a ride and see the payment.
func TestBrowserRide(t *testing.T) {
	cl := newCluster(t)
	b := browser(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rides.PublishUI(ctx, cl.c.Nodes(), Web(), "1", time.Second); err != nil {
		t.Fatal(err)
	}
	p, d := cl.user(5000), cl.user(0)
	pp := page(t, b, cl.srv[0].URL(), p, "passenger")
	dp := page(t, b, cl.srv[1].URL(), d, "driver")
	for i := range 2 {
		// index.html, style.css, app.js and the vendored library at least.
		if n := cl.c.Node(i).GatewayStats().UIServed; n < 4 {
			t.Fatalf("instance %d's gateway served %d files of the release's UI", i, n)
		}
	}
	run(t, pp, clickMap(150, 300), clickMap(850, 900), poll(`!document.getElementById('request').disabled`))
	fare := text(t, pp, "#fare")
	screenshot(t, pp, "passenger-request.png")
	run(t, pp, click("#request"), poll(stateIs("p", ride.StateRequested)))
	run(t, dp, poll(`!!document.querySelector('#requests button.accept')`))
	screenshot(t, dp, "driver-requests.png")
	run(t, dp, click("#requests button.accept"), poll(`document.getElementById('d-status').textContent.includes('You won')`))
	run(t, pp, poll(stateIs("p", ride.StateAccepted)), poll(`!document.getElementById('p-confirm').hidden`))
	screenshot(t, pp, "passenger-offer.png")
	run(t, pp, click("#p-confirm"), poll(`(document.querySelector('#p-escrow .escrow-status')||{}).textContent === 'open'`))
	run(t, dp, poll(`document.getElementById('d-status').textContent.includes('in escrow')`),
		click("#d-arrive"), poll(`!document.getElementById('d-start').hidden && !document.getElementById('d-start').disabled`),
		click("#d-start"), poll(stateIs("d", ride.StateInProgress)))
	screenshot(t, dp, "driver-in-progress.png")
	run(t, pp, poll(stateIs("p", ride.StateInProgress)))
	screenshot(t, pp, "passenger-in-progress.png")
	run(t, dp, click("#d-complete"), poll(stateIs("d", ride.StateCompleted)))
	run(t, pp, poll(`!document.getElementById('p-release').hidden`), click("#p-release"),
		poll(`(document.querySelector('#p-escrow .escrow-status')||{}).textContent === 'closed'`))
	// The payment as both pages see it: the passenger paid the fare, the
	// driver got it less the fee.
	var want int
	fmt.Sscan(fare, &want)
	run(t, pp, poll(fmt.Sprintf(`document.getElementById('balance').textContent === '%d'`, 5000-want)))
	run(t, dp, poll(fmt.Sprintf(`document.getElementById('balance').textContent === '%d'`, want-want*250/10000)))
	run(t, pp, click(`.stars[data-who=p] button[data-stars="5"]`), poll(`document.getElementById('p-rate').hidden`))
	run(t, dp, click(`.stars[data-who=d] button[data-stars="4"]`), poll(`document.getElementById('d-rate').hidden`))
	screenshot(t, pp, "passenger-paid.png")
	screenshot(t, dp, "driver-paid.png")
	// Each mirror with the gateway's three badges, loaded from that mirror.
	run(t, pp, click("#tab-dapp"), poll(`document.getElementById('mirrors').children.length === 3`),
		poll(`(() => { const bs = [...document.querySelectorAll('#mirrors img.gw-badge')]; return bs.length === 9 && bs.every((b) => b.complete && b.naturalWidth > 0); })()`))
	screenshot(t, pp, "dapp.png")
}

// TestBrowserDispute: a paid ride goes wrong; the passenger's page
// disputes it. The deal is frozen on-chain, the ride is disputed on every
// replica, and the deal is a governance case, opened and given evidence
// with the passenger's own signatures, whose panel every instance draws.
// An arbiter who is a browser user (a member of the DApp, not an
// instance) rules from the DApp tab with their own key; with a second
// arbiter's ruling from its instance, the deal is settled on-chain and
// the arbiter's page shows it.
func TestBrowserDispute(t *testing.T) {
	arbKey, _ := crypto.GenerateKey()
	arb := &user{key: arbKey, addr: crypto.PubkeyToAddress(arbKey.PublicKey)}
	// Three members, so all three sit on the panel: two instances and the
	// browser arbiter.
	cl := newClusterWith(t, func(in []common.Address) []common.Address { return []common.Address{in[0], in[1], arb.addr} })
	b := browser(t)
	p, d := cl.user(5000), cl.user(0)
	pp := page(t, b, cl.srv[0].URL(), p, "passenger")
	dp := page(t, b, cl.srv[1].URL(), d, "driver")
	run(t, pp, clickMap(150, 300), clickMap(850, 900), poll(`!document.getElementById('request').disabled`),
		click("#request"), poll(stateIs("p", ride.StateRequested)))
	run(t, dp, poll(`!!document.querySelector('#requests button.accept')`),
		click("#requests button.accept"), poll(`document.getElementById('d-status').textContent.includes('You won')`))
	run(t, pp, poll(`!document.getElementById('p-confirm').hidden`), click("#p-confirm"),
		poll(`(document.querySelector('#p-escrow .escrow-status')||{}).textContent === 'open'`))
	run(t, pp, poll(`!document.getElementById('p-dispute-box').hidden`),
		chromedp.SendKeys("#p-reason", "the driver never came", chromedp.ByQuery),
		click("#p-dispute"),
		poll(`document.getElementById('p-msg').textContent.includes('before the arbiters')`))
	ctx := context.Background()
	var c governance.Case
	cl.c.WaitFor("the passenger's case on every instance", func() bool {
		for _, n := range cl.c.Nodes() {
			cs, err := n.Governance().Cases(ctx)
			if err != nil || len(cs) != 1 || cs[0].OpenedBy != p.addr || len(cs[0].Evidence) != 1 || len(cs[0].Panel) == 0 {
				return false
			}
			c = cs[0]
		}
		return true
	})
	if c.Deal.Status != "disputed" || c.Deal.Payer != p.addr || c.Deal.Payee != d.addr || c.Evidence[0].Text != "the driver never came" {
		t.Fatalf("case %+v", c)
	}
	for _, a := range c.Panel {
		if a == p.addr || a == d.addr {
			t.Fatalf("a party on the panel: %v", c.Panel)
		}
	}
	if !slices.Contains(c.Panel, arb.addr) {
		t.Fatalf("the browser arbiter is not on the panel %v", c.Panel)
	}
	ap := page(t, b, cl.srv[2].URL(), arb, "dapp")
	deal := c.Deal.ID.Hex()
	run(t, ap, click(fmt.Sprintf(`#disputes li[data-deal=%q] button.rule[data-bps="10000"]`, deal)),
		poll(`document.getElementById('g-msg').textContent.includes('ruling submitted')`))
	cl.c.WaitFor("the browser arbiter's ballot on every instance", func() bool {
		for _, n := range cl.c.Nodes() {
			x, err := n.Governance().Case(ctx, c.Deal.ID)
			if err != nil || !slices.ContainsFunc(x.Ballots, func(b governance.CaseBallot) bool { return b.Arbiter == arb.addr && b.Counted && b.PayeeBps == 10000 }) {
				return false
			}
		}
		return true
	})
	// A second arbiter agrees from its instance: a majority of three. The
	// instances send the settlement: they need gas.
	for _, n := range cl.c.Nodes() {
		if err := cl.chain.Fund(ctx, n.Account(), big.NewInt(0)); err != nil {
			t.Fatal(err)
		}
	}
	second := slices.IndexFunc(cl.c.Nodes(), func(n *dapp.Node) bool { return n.Account() != arb.addr && slices.Contains(c.Panel, n.Account()) })
	if err := cl.c.Node(second).Governance().Rule(ctx, c.Deal.ID, 10000); err != nil {
		t.Fatal(err)
	}
	cl.c.WaitFor("the settlement on every instance", func() bool {
		for _, n := range cl.c.Nodes() {
			x, err := n.Governance().Case(ctx, c.Deal.ID)
			if err != nil || x.Settlement == nil || !x.Settlement.OnChain || x.Settlement.PayeeBps != 10000 {
				return false
			}
		}
		return true
	})
	run(t, ap, poll(fmt.Sprintf(`((document.querySelector('#disputes li[data-deal=%q] .case-state')||{}).textContent||'').includes('settled on-chain')`, deal)))
	screenshot(t, ap, "arbiter-ruled.png")
}

func TestBrowserConcurrentAccepts(t *testing.T) {
	cl := newCluster(t)
	b := browser(t)
	p, d1, d2 := cl.user(5000), cl.user(0), cl.user(0)
	pages := []context.Context{page(t, b, cl.srv[0].URL(), d1, "driver"), page(t, b, cl.srv[1].URL(), d2, "driver")}
	req := cl.request(p, 400)
	cl.must(2, req)
	for _, pg := range pages {
		run(t, pg, poll(fmt.Sprintf(`!!document.querySelector('#requests li[data-ride=%q] button.accept')`, req.Ride)))
	}
	// At once: neither instance hears of the other's accept before both
	// drivers clicked, as when two drivers tap within the same instant.
	cl.c.Partition([]int{0}, []int{1, 2})
	for _, pg := range pages {
		run(t, pg, click(fmt.Sprintf(`#requests li[data-ride=%q] button.accept`, req.Ride)),
			poll(`document.getElementById('d-status').textContent.includes('You won')`))
	}
	cl.c.Heal()
	st := cl.waitRide(req.Ride, "holding both offers", func(s ride.State) bool { return len(s.Offers) == 2 })
	short := func(a string) string { return a[:6] + "…" + a[len(a)-4:] }
	for i, pg := range pages {
		who := []*user{d1, d2}[i]
		if who.addr == st.Driver {
			run(t, pg, poll(`document.getElementById('d-status').textContent.includes('You won')`))
		} else {
			run(t, pg, poll(fmt.Sprintf(`document.getElementById('d-status').textContent.includes('Taken by %s')`, short(strings.ToLower(st.Driver.Hex())))))
		}
	}
	screenshot(t, pages[0], "driver-race-a.png")
	screenshot(t, pages[1], "driver-race-b.png")
}

func TestBrowserFailover(t *testing.T) {
	cl := newCluster(t)
	b := browser(t)
	p, d := cl.user(5000), cl.user(0)
	pp := page(t, b, cl.srv[0].URL(), p, "passenger")
	run(t, pp, poll(`document.getElementById('mirrors').children.length === 3`))
	run(t, pp, clickMap(200, 200), clickMap(700, 500), click("#request"), poll(stateIs("p", ride.StateRequested)))
	var id string
	run(t, pp, chromedp.Evaluate(`sessionStorage.getItem('rides.myRide')`, &id))
	reqState := cl.waitRide(id, "requested on B", inState(ride.StateRequested), 1)
	acc := cl.sign(d, ride.Action{Kind: ride.KindAccept, Ride: id, Parent: reqState.RequestID})
	cl.must(1, acc)
	run(t, pp, poll(`!document.getElementById('p-confirm').hidden`), click("#p-confirm"),
		poll(`(document.querySelector('#p-escrow .escrow-status')||{}).textContent === 'open'`))
	cl.waitRide(id, "confirmed on B", func(s ride.State) bool { return s.Confirmed }, 1)
	cl.must(1, cl.sign(d, ride.Action{Kind: ride.KindArrive, Ride: id, Parent: cl.domain.Digest(acc)}))
	cl.must(1, cl.sign(d, ride.Action{Kind: ride.KindStart, Ride: id, Parent: cl.domain.Digest(acc)}))
	run(t, pp, poll(stateIs("p", ride.StateInProgress)))
	// Instance A dies mid-ride.
	a := cl.srv[0].URL()
	cl.srv[0].Close()
	cl.c.Stop(0)
	cl.must(2, cl.sign(d, ride.Action{Kind: ride.KindComplete, Ride: id, Parent: cl.domain.Digest(acc)}))
	run(t, pp, poll(stateIs("p", ride.StateCompleted)), poll(`!document.getElementById('p-release').hidden`))
	if serving := text(t, pp, "#serving"); strings.Contains(a, serving) {
		t.Fatalf("the page still says it is served by %s", serving)
	}
	run(t, pp, click("#p-release"), poll(`(document.querySelector('#p-escrow .escrow-status')||{}).textContent === 'closed'`))
	screenshot(t, pp, "passenger-failover.png")
}
