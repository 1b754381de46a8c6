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
	"crypto/ecdsa"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/examples/rides/server"
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

// Manifest is the rides DApp's manifest on the chain chainID: the same on
// every instance, since its hash is the AppID.
func Manifest(chainID uint64, members, closers []common.Address, fund common.Address, feeBps int) dapp.Manifest {
	return dapp.Manifest{
		Name: "rides", Version: "1", ChainID: chainID, Members: members, Closers: closers,
		Params: map[string]string{server.ParamFee: strconv.Itoa(feeBps), server.ParamFund: fund.Hex()},
	}
}

// Instance is one running instance: its node and its web server.
type Instance struct {
	Node   *dapp.Node
	Server *server.Server
}

// Close stops the web server, then the node.
func (in *Instance) Close() error {
	return errors.Join(in.Server.Close(), in.Node.Close())
}

// InstanceConfig is what Start needs.
type InstanceConfig struct {
	Dir       string
	Key       *ecdsa.PrivateKey // nil: the one kept in Dir
	App       dapp.Manifest
	Listen    []string
	Bootstrap []string
	HTTP      string
	ChainURL  string
	Faucet    func(ctx context.Context, to common.Address, tokens *big.Int) error
	Logger    *slog.Logger
}

// Start opens an instance of the DApp and its web server.
func Start(ctx context.Context, c InstanceConfig) (*Instance, error) {
	node, err := dapp.Open(ctx, dapp.Config{
		Dir: c.Dir, Key: c.Key, App: c.App, ListenAddrs: c.Listen, Bootstrap: c.Bootstrap,
		Payment: payment.Config{RPCURL: c.ChainURL},
		Store:   storeConfig(c.App),
		Logger:  c.Logger,
	})
	if err != nil {
		return nil, err
	}
	srv, err := server.New(ctx, server.Config{Node: node, Addr: c.HTTP, ChainURL: c.ChainURL, Faucet: c.Faucet, Web: Web(), Logger: c.Logger})
	if err != nil {
		node.Close()
		return nil, err
	}
	return &Instance{Node: node, Server: srv}, nil
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
	in, err := Start(ctx, InstanceConfig{
		Dir: o.dir, App: Manifest(chainID.Uint64(), members, nil, fund, o.fee), Listen: split(o.listen),
		Bootstrap: split(o.bootstrap), HTTP: o.http, ChainURL: o.rpc, Faucet: faucet,
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

// demoUser is a seeded user of the demo.
type demoUser struct {
	name, role string
	key        *ecdsa.PrivateKey
}

func demo(ctx context.Context, out *os.File) error {
	d, err := StartDemo(ctx, DemoConfig{HTTP: []string{"127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"}})
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
		fmt.Fprintf(out, "  %-8s %-9s %s/#role=%s&key=0x%x\n", u.name, u.role, in.Server.URL(), u.role, crypto.FromECDSA(u.key))
	}
	fmt.Fprintln(out, "Ctrl-C stops the demo.")
	<-ctx.Done()
	return ctx.Err()
}

// DemoConfig configures StartDemo.
type DemoConfig struct {
	// HTTP are the instances' web addresses; an address in use falls back
	// to a random port. Default: three random ports.
	HTTP []string
	// Dir keeps the instances' data; "" makes a temporary directory.
	Dir    string
	Logger *slog.Logger
}

// Demo is a running demo: a dev chain and three instances.
type Demo struct {
	Chain     *payment.DevChain
	ChainURL  string
	Instances []*Instance
	Users     []demoUser
	// Council is the key of a seeded user who is a governance member.
	Council *ecdsa.PrivateKey
	tmp     string
}

// StartDemo starts a dev chain, three instances connected on loopback and
// funded seeded users.
func StartDemo(ctx context.Context, c DemoConfig) (_ *Demo, err error) {
	d := &Demo{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if c.Dir == "" {
		if d.tmp, err = os.MkdirTemp("", "rides-demo-"); err != nil {
			return nil, err
		}
		c.Dir = d.tmp
	}
	if len(c.HTTP) == 0 {
		c.HTTP = []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}
	}
	if d.Chain, err = payment.NewDevChain(ctx); err != nil {
		return nil, fmt.Errorf("dev chain: %w", err)
	}
	if d.ChainURL, err = d.Chain.Serve("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("dev chain: %w", err)
	}
	keys := make([]*ecdsa.PrivateKey, len(c.HTTP))
	var accounts []common.Address
	for i := range keys {
		if keys[i], err = crypto.GenerateKey(); err != nil {
			return nil, err
		}
		accounts = append(accounts, crypto.PubkeyToAddress(keys[i].PublicKey))
	}
	if d.Council, err = crypto.GenerateKey(); err != nil {
		return nil, err
	}
	fundKey, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	members := append(append([]common.Address(nil), accounts...), crypto.PubkeyToAddress(d.Council.PublicKey))
	app := Manifest(d.Chain.ChainID().Uint64(), members, accounts, crypto.PubkeyToAddress(fundKey.PublicKey), 250)
	for i := range keys {
		var boot []string
		if i > 0 {
			for _, a := range d.Instances[0].Node.Addrs() {
				boot = append(boot, a.String())
			}
		}
		ic := InstanceConfig{
			Dir: filepath.Join(c.Dir, string(rune('a'+i))), Key: keys[i], App: app, Listen: []string{"/ip4/127.0.0.1/tcp/0"},
			Bootstrap: boot, HTTP: c.HTTP[i], ChainURL: d.ChainURL, Faucet: d.Chain.Fund, Logger: c.Logger,
		}
		in, err := Start(ctx, ic)
		if err != nil && c.HTTP[i] != "127.0.0.1:0" && strings.Contains(err.Error(), "listen") {
			ic.HTTP = "127.0.0.1:0"
			in, err = Start(ctx, ic)
		}
		if err != nil {
			return nil, fmt.Errorf("instance %d: %w", i, err)
		}
		d.Instances = append(d.Instances, in)
	}
	for _, u := range []struct{ name, role string }{{"ada", "passenger"}, {"bo", "driver"}, {"cy", "passenger"}, {"dee", "driver"}, {"eli", "driver"}} {
		k, err := crypto.GenerateKey()
		if err != nil {
			return nil, err
		}
		if err := d.Chain.Fund(ctx, crypto.PubkeyToAddress(k.PublicKey), big.NewInt(10_000)); err != nil {
			return nil, fmt.Errorf("fund %s: %w", u.name, err)
		}
		d.Users = append(d.Users, demoUser{name: u.name, role: u.role, key: k})
	}
	d.Users = append(d.Users, demoUser{name: "council", role: "dapp", key: d.Council})
	if err := d.Chain.Fund(ctx, crypto.PubkeyToAddress(d.Council.PublicKey), big.NewInt(10_000)); err != nil {
		return nil, err
	}
	return d, nil
}

// Close stops the instances and the chain, and removes a temporary directory.
func (d *Demo) Close() {
	for _, in := range d.Instances {
		if in != nil {
			_ = in.Close()
		}
	}
	if d.Chain != nil {
		_ = d.Chain.Close()
	}
	if d.tmp != "" {
		_ = os.RemoveAll(d.tmp)
	}
}
