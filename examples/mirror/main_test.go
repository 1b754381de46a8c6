package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dpaas/dpaas/dapp"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
	)
}

// TestMirror starts a DApp's instance, then the README's command against
// it: the mirror joins, serves its gateway, and the other instance shows
// in its mirror list.
func TestMirror(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	app := dapp.Manifest{Name: "rides", Version: "1", Params: map[string]string{"fee-bps": "250"}}
	seed, err := dapp.Open(ctx, dapp.Config{App: app, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	raw, err := json.Marshal(seed.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(t.TempDir(), "rides.json")
	if err := os.WriteFile(mf, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(runCtx, []string{"-manifest", mf, "-join", seed.Addrs()[0].String(), "-http", "127.0.0.1:0",
			"-listen", "/ip4/127.0.0.1/tcp/0"}, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	lines := bufio.NewScanner(pr)
	var gateway, badges string
	for gateway == "" || badges == "" {
		if !lines.Scan() {
			t.Fatalf("mirror stopped: %v", lines.Err())
		}
		line := lines.Text()
		t.Log(line)
		if strings.HasPrefix(line, "mirror of rides (AppID "+seed.AppID().String()) {
			continue
		}
		if v, ok := strings.CutPrefix(line, "gateway  "); ok {
			gateway = v
		}
		if v, ok := strings.CutPrefix(line, "badges   "); ok {
			badges = strings.Fields(v)[0]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	res, err := http.Get(badges)
	if err != nil {
		t.Fatal(err)
	}
	svg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(svg), "backup server") {
		t.Fatalf("badge %s: %d %s", badges, res.StatusCode, svg)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(gateway + "/dpaas/mirrors")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(body), `"gateway":"`+seed.GatewayURL()+`"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror's list never named the seed's gateway: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
