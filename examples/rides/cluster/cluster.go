// Package cluster starts instances of the rides DApp: one (Start), or a
// local demo of a dev chain and several connected instances (StartDemo).
// The rides command and its load simulator use it.
package cluster

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/examples/rides/server"
	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/store"
)

// StoreConfig installs the rides validators, which must be the same on
// every instance.
func StoreConfig(app dapp.Manifest) store.Config {
	return store.Config{Validators: server.Validators(server.DomainOf(app))}
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
	Web       fs.FS // the web UI; nil serves none
	Logger    *slog.Logger
}

// Start opens an instance of the DApp and its web server.
func Start(ctx context.Context, c InstanceConfig) (*Instance, error) {
	node, err := dapp.Open(ctx, dapp.Config{
		Dir: c.Dir, Key: c.Key, App: c.App, ListenAddrs: c.Listen, Bootstrap: c.Bootstrap,
		Payment: payment.Config{RPCURL: c.ChainURL},
		Store:   StoreConfig(c.App),
		Logger:  c.Logger,
	})
	if err != nil {
		return nil, err
	}
	srv, err := server.New(ctx, server.Config{Node: node, Addr: c.HTTP, ChainURL: c.ChainURL, Faucet: c.Faucet, Web: c.Web, Logger: c.Logger})
	if err != nil {
		node.Close()
		return nil, err
	}
	return &Instance{Node: node, Server: srv}, nil
}

// User is a seeded user of the demo.
type User struct {
	Name, Role string
	Key        *ecdsa.PrivateKey
}

// DemoConfig configures StartDemo.
type DemoConfig struct {
	// HTTP are the instances' web addresses; an address in use falls back
	// to a random port. Default: three random ports.
	HTTP []string
	// Dir keeps the instances' data; "" makes a temporary directory.
	Dir    string
	Web    fs.FS
	Logger *slog.Logger
	// Instances is how many instances to start when HTTP is empty; 0 means 3.
	Instances int
	// Users: with NoUsers set, StartDemo seeds no users.
	NoUsers bool
}

// Demo is a running demo: a dev chain and three instances.
type Demo struct {
	Chain     *payment.DevChain
	ChainURL  string
	Instances []*Instance
	Users     []User
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
		if c.Instances == 0 {
			c.Instances = 3
		}
		for range c.Instances {
			c.HTTP = append(c.HTTP, "127.0.0.1:0")
		}
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
	// Instances are arbiters (members): their accounts pay the gas of
	// the settlements they send.
	for _, a := range accounts {
		if err := d.Chain.Fund(ctx, a, big.NewInt(0)); err != nil {
			return nil, fmt.Errorf("fund instance %s: %w", a, err)
		}
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
			Dir: filepath.Join(c.Dir, strconv.Itoa(i)), Key: keys[i], App: app, Listen: []string{"/ip4/127.0.0.1/tcp/0"},
			Bootstrap: boot, HTTP: c.HTTP[i], ChainURL: d.ChainURL, Faucet: d.Chain.Fund, Web: c.Web, Logger: c.Logger,
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
	if c.NoUsers {
		return d, nil
	}
	for _, u := range []struct{ name, role string }{{"ada", "passenger"}, {"bo", "driver"}, {"cy", "passenger"}, {"dee", "driver"}, {"eli", "driver"}} {
		k, err := crypto.GenerateKey()
		if err != nil {
			return nil, err
		}
		if err := d.Chain.Fund(ctx, crypto.PubkeyToAddress(k.PublicKey), big.NewInt(10_000)); err != nil {
			return nil, fmt.Errorf("fund %s: %w", u.name, err)
		}
		d.Users = append(d.Users, User{Name: u.name, Role: u.role, Key: k})
	}
	d.Users = append(d.Users, User{Name: "council", Role: "dapp", Key: d.Council})
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
