// Command devchain runs a dpaas development chain as a process of its
// own, so that instances in several processes pay each other on one chain.
// It keeps the chain in a directory (same chain, contracts and balances
// after a restart), serves Ethereum JSON-RPC (the eth, net and web3
// namespaces) on loopback, tells instances its contract addresses
// (dpaas_info) and has a faucet (dpaas_fund) for gas and tokens.
//
//	go run ./examples/devchain -dir ~/.dpaas-devchain -http 127.0.0.1:8545
//
// Then give every instance the URL, and nothing else:
//
//	payment.Config{RPCURL: "http://127.0.0.1:8545"}       // or
//	dapp.Config{Payment: payment.Config{RPCURL: "http://127.0.0.1:8545"}}
//
// and fund accounts from Go (payment.DialDevChain(ctx, url) then Fund)
// or with curl:
//
//	curl -H 'Content-Type: application/json' http://127.0.0.1:8545 \
//	  -d '{"jsonrpc":"2.0","id":1,"method":"dpaas_fund","params":["0xYourAccount","1000000000000000000000"]}'
//
// Stop it with Ctrl-C: it flushes the chain to the directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dpaas/dpaas/payment"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devchain:", err)
		os.Exit(1)
	}
}

func run(args []string, out *os.File) error {
	fs := flag.NewFlagSet("devchain", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory that keeps the chain; empty keeps it in memory (lost on exit)")
	addr := fs.String("http", "127.0.0.1:8545", "host:port to serve JSON-RPC on (port 0: any free port)")
	chainID := fs.Int64("chainid", 1337, "chain ID of a new chain; a chain reopened from -dir keeps its own (0: random)")
	origins := fs.String("allow-origin", "", "comma-separated web origins allowed to call the chain from a browser (\"*\": any)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var allow []string
	for o := range strings.SplitSeq(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			allow = append(allow, o)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	openCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cfg := payment.DevChainConfig{Dir: *dir}
	if *chainID != 0 {
		cfg.ChainID = big.NewInt(*chainID)
	}
	chain, err := payment.OpenDevChain(openCtx, cfg)
	if err != nil {
		return err
	}
	url, err := chain.Serve(*addr, allow...)
	if err != nil {
		return errors.Join(err, chain.Close())
	}
	info := chain.Info()
	kept := "in memory: lost on exit (use -dir to keep it)"
	if *dir != "" {
		kept = "kept in " + *dir
	}
	fmt.Fprintf(out, "dpaas dev chain %v, %s\n", info.ChainID, kept)
	fmt.Fprintf(out, "  token    %s\n  channels %s\n  escrow   %s\n", info.Token, info.Channels, info.Escrow)
	fmt.Fprintf(out, "  set payment.Config.RPCURL (dapp.Config.Payment.RPCURL) to %s\n", url)
	fmt.Fprintf(out, "listening %s\n", url)
	<-ctx.Done()
	fmt.Fprintln(out, "stopping")
	return chain.Close()
}
