// Command mirror runs a backup instance of an existing DApp: a full
// replica that holds its documents and files, serves its web UI and API
// to users from its HTTP gateway, and shows its health as badges.
//
//	go run ./examples/mirror -manifest rides.json \
//	  -join /ip4/198.51.100.7/tcp/4001/p2p/16Uiu2... \
//	  -dir /var/lib/rides-mirror -http :8080 -url https://mirror.example.org \
//	  -listen /ip4/0.0.0.0/tcp/4001,/ip4/0.0.0.0/udp/4001/quic-v1
//
// The manifest is the DApp's, byte for byte what its instances use (its
// hash is the AppID); -join names any running instance. The program
// prints the gateway's URL and its badges, and runs until Ctrl-C.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dpaas/dpaas/dapp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mirror:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("mirror", flag.ContinueOnError)
	manifest := fs.String("manifest", "", "the DApp's manifest, a JSON file (required)")
	join := fs.String("join", "", "comma-separated multiaddrs of running instances, each ending in /p2p/<id>")
	dir := fs.String("dir", "", "directory that keeps the replica and its key; empty keeps it in memory")
	addr := fs.String("http", ":8080", "host:port of the HTTP gateway (port 0: any free port)")
	url := fs.String("url", "", "public URL of the gateway, announced to the other instances (default http://<-http> when it names one address)")
	listen := fs.String("listen", "", "comma-separated multiaddrs to listen on for peers (default: TCP and QUIC, random ports, all interfaces)")
	dht := fs.Bool("dht", false, "find instances through the DHT as well")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *manifest == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: mirror -manifest app.json -join /ip4/.../p2p/<id> [-dir d] [-http :8080] [-url https://...]")
	}
	raw, err := os.ReadFile(*manifest)
	if err != nil {
		return err
	}
	var m dapp.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", *manifest, err)
	}
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	node, err := dapp.Open(openCtx, dapp.Config{
		Dir: *dir, App: m, Bootstrap: list(*join), ListenAddrs: list(*listen), DHT: *dht,
		HTTPAddr: *addr, GatewayURL: *url,
	})
	if err != nil {
		return err
	}
	base := node.GatewayURL()
	if base == "" {
		base = "http://" + node.HTTPAddr()
	}
	badge := base + "/dpaas/badge/" + node.ID().String()
	fmt.Fprintf(out, "mirror of %s (AppID %s), instance %s\n", m.Name, node.AppID(), node.ID())
	fmt.Fprintf(out, "gateway  %s\n", base)
	fmt.Fprintf(out, "mirrors  %s/dpaas/mirrors\n", base)
	fmt.Fprintf(out, "badges   %s/online.svg %s/verified.svg %s/availability.svg\n", badge, badge, badge)
	fmt.Fprintf(out, "embed    <img src=\"%s/online.svg\" alt=\"backup server\">\n", badge)
	<-ctx.Done()
	fmt.Fprintln(out, "stopping")
	return node.Close()
}

// list splits a comma-separated flag.
func list(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
