// Command rides is a decentralized ride-hailing DApp: passengers post ride
// requests to the replicated store, drivers take them, every step is
// signed by the user's own key and checked by every replica, the fare
// waits in an escrow contract, and a governance vote sets the DApp's fee.
// Every instance serves the web UI and the same HTTP API.
//
// With no flags it runs a local demo: a development chain and three
// instances on loopback, with a few funded users, and prints each
// instance's web address:
//
//	go run ./examples/rides
//
// With -dir it runs one instance, so that the same program is a real
// deployment or a mirror (every instance of one DApp needs the same
// -members, -fund and -fee, and the same chain):
//
//	go run ./examples/devchain -dir /tmp/chain -http 127.0.0.1:8545
//	go run ./examples/rides -dir /tmp/r1 -listen /ip4/127.0.0.1/tcp/4001 -http 127.0.0.1:8081 \
//		-rpc http://127.0.0.1:8545 -members 0xA...,0xB...
//	go run ./examples/rides -dir /tmp/r2 -listen /ip4/127.0.0.1/tcp/4002 -http 127.0.0.1:8082 \
//		-rpc http://127.0.0.1:8545 -members 0xA...,0xB... -bootstrap /ip4/127.0.0.1/tcp/4001/p2p/16Uiu2...
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/examples/rides/cluster"
	"github.com/dpaas/dpaas/payment"
)

//go:embed web
var webFiles embed.FS

// Web is the web UI, served by every instance.
func Web() fs.FS {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	return sub
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", "", "run one instance with its data in this directory (no -dir: the three-instance demo)")
	flag.StringVar(&o.listen, "listen", "/ip4/127.0.0.1/tcp/0", "libp2p listen multiaddrs, comma-separated")
	flag.StringVar(&o.bootstrap, "bootstrap", "", "multiaddrs of running instances, comma-separated")
	flag.StringVar(&o.http, "http", "127.0.0.1:0", "web UI and API address")
	flag.StringVar(&o.rpc, "rpc", "", "the chain's JSON-RPC URL (required with -dir)")
	flag.StringVar(&o.members, "members", "", "governance members (arbiters), comma-separated addresses; the same on every instance")
	flag.StringVar(&o.fund, "fund", "", "the address the fee goes to; default: the first member")
	flag.IntVar(&o.fee, "fee", 250, "the genesis fee in basis points")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if o.dir == "" {
		err = demo(ctx, os.Stdout)
	} else {
		err = one(ctx, o)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "rides:", err)
		os.Exit(1)
	}
}

type options struct {
	dir, listen, bootstrap, http, rpc, members, fund string
	fee                                              int
}

func one(ctx context.Context, o options) error {
	if o.rpc == "" {
		return errors.New("-rpc is required with -dir: every instance pays on the same chain")
	}
	ec, err := ethclient.DialContext(ctx, o.rpc)
	if err != nil {
		return fmt.Errorf("chain %s: %w", o.rpc, err)
	}
	chainID, err := ec.ChainID(ctx)
	ec.Close()
	if err != nil {
		return fmt.Errorf("chain %s: %w", o.rpc, err)
	}
	members, err := addresses(o.members)
	if err != nil {
		return err
	}
	fund := common.Address{}
	switch {
	case o.fund != "":
		if !common.IsHexAddress(o.fund) {
			return fmt.Errorf("-fund %q is not an address", o.fund)
		}
		fund = common.HexToAddress(o.fund)
	case len(members) > 0:
		fund = members[0]
	default:
		return errors.New("-members (the arbiters) or -fund is required: the fee needs a fund")
	}
	var faucet func(context.Context, common.Address, *big.Int) error
	if dev, err := payment.DialDevChain(ctx, o.rpc); err == nil {
		defer dev.Close()
		faucet = dev.Fund
	}
	in, err := cluster.Start(ctx, cluster.InstanceConfig{
		Dir: o.dir, App: cluster.Manifest(chainID.Uint64(), members, nil, fund, o.fee), Listen: split(o.listen),
		Bootstrap: split(o.bootstrap), HTTP: o.http, ChainURL: o.rpc, Faucet: faucet, Web: Web(),
	})
	if err != nil {
		return err
	}
	defer in.Close()
	fmt.Printf("rides instance %s (account %s), AppID %s\n", in.Node.ID(), in.Node.Account(), in.Node.AppID())
	for _, a := range in.Node.Addrs() {
		fmt.Println("  join with -bootstrap", a)
	}
	fmt.Println("  web UI:", in.Server.URL())
	<-ctx.Done()
	return ctx.Err()
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func addresses(s string) ([]common.Address, error) {
	var out []common.Address
	for _, p := range split(s) {
		if !common.IsHexAddress(p) {
			return nil, fmt.Errorf("%q is not an address", p)
		}
		out = append(out, common.HexToAddress(p))
	}
	return out, nil
}

func demo(ctx context.Context, out *os.File) error {
	d, err := cluster.StartDemo(ctx, cluster.DemoConfig{HTTP: []string{"127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"}, Web: Web()})
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Fprintf(out, "rides demo: dev chain %s (chain ID %s), AppID %s\n", d.ChainURL, d.Chain.ChainID(), d.Instances[0].Node.AppID())
	for i, in := range d.Instances {
		fmt.Fprintf(out, "  instance %c: %s  (account %s)\n", 'A'+i, in.Server.URL(), in.Node.Account())
	}
	fmt.Fprintln(out, "seeded users (each page keeps its key in the browser; these links hand it one):")
	for i, u := range d.Users {
		in := d.Instances[i%len(d.Instances)]
		fmt.Fprintf(out, "  %-8s %-9s %s/#role=%s&key=0x%x\n", u.Name, u.Role, in.Server.URL(), u.Role, crypto.FromECDSA(u.Key))
	}
	fmt.Fprintln(out, "Ctrl-C stops the demo.")
	// The instances ship the web UI as a release: a UnixFS directory they
	// approve by a short vote. Until it passes they serve the built-in
	// files; from then on, the release's, through their gateways.
	published := make(chan struct{})
	go func() {
		defer close(published)
		nodes := make([]*dapp.Node, len(d.Instances))
		for i, in := range d.Instances {
			nodes[i] = in.Node
		}
		root, err := cluster.PublishUI(ctx, nodes, Web(), "1", 3*time.Second)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "rides: web UI release:", err)
			}
			return
		}
		fmt.Fprintf(out, "web UI release 1 approved (/ipfs/%s): every instance serves it from there, its build verified\n", root)
	}()
	<-ctx.Done()
	<-published
	return ctx.Err()
}
