// Command pay is one instance of a small DApp that pays other instances
// in tokens on a shared development chain, each instance in a terminal of
// its own. Start the chain, then two instances:
//
//	go run ./examples/devchain -dir /tmp/dpaas-chain          # terminal 1
//	go run ./examples/pay -dir /tmp/alice                     # terminal 2: prints alice's account, waits
//	go run ./examples/pay -dir /tmp/bob -to 0xALICE -amount 5 # terminal 3: pays alice 5 tokens
//
// Alice's terminal prints the payment as it lands. An instance with no
// gas asks the dev chain's faucet for gas and -fund tokens when it starts.
// The instance keeps its key (and so its account) in -dir.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/payment"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("pay", flag.ContinueOnError)
	chain := fs.String("chain", "http://127.0.0.1:8545", "JSON-RPC URL of the shared dev chain (go run ./examples/devchain)")
	dir := fs.String("dir", "", "directory of this instance: its key and database (required)")
	to := fs.String("to", "", "account to pay (0x...)")
	amount := fs.String("amount", "1", "tokens to pay, e.g. 2.5")
	fund := fs.String("fund", "100", "tokens to ask the faucet for when the account has no gas")
	wait := fs.Bool("wait", true, "keep running and print payments received (with -to: until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required: it keeps the instance's key, so its account stays the same")
	}
	var payee common.Address
	var pay *big.Int
	if *to != "" {
		if !common.IsHexAddress(*to) {
			return fmt.Errorf("-to %q is not an account address", *to)
		}
		payee = common.HexToAddress(*to)
		var err error
		if pay, err = parseTokens(*amount); err != nil || pay.Sign() <= 0 {
			return fmt.Errorf("-amount %q: want a positive number of tokens", *amount)
		}
	}
	gift, err := parseTokens(*fund)
	if err != nil {
		return fmt.Errorf("-fund %q: %v", *fund, err)
	}

	node, err := dapp.Open(ctx, dapp.Config{
		Dir:         *dir,
		App:         dapp.Manifest{Name: "pay-example", Version: "1"},
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		// The one field that puts every instance on the same chain.
		Payment: payment.Config{RPCURL: *chain},
	})
	if errors.Is(err, payment.ErrChainUnreachable) {
		return fmt.Errorf("%w\nstart the shared chain first: go run ./examples/devchain -dir DIR -http %s",
			err, strings.TrimPrefix(*chain, "http://"))
	}
	if err != nil {
		return err
	}
	defer node.Close()
	wallet := node.Payments()
	me := node.Account()

	gas, err := wallet.GasBalance(ctx, me)
	if err != nil {
		return err
	}
	if gas.Sign() == 0 {
		dev, err := payment.DialDevChain(ctx, *chain)
		if err != nil {
			return fmt.Errorf("no gas, and no faucet: %w", err)
		}
		err = dev.Fund(ctx, me, gift)
		dev.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "faucet gave %s tokens and gas\n", formatTokens(gift))
	}
	held, err := wallet.Balance(ctx, me)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "account %s holds %s tokens on chain %v\n", me, formatTokens(held), wallet.ChainID())

	var incoming <-chan payment.Transfer
	if *wait {
		// Watch before paying, so nothing received meanwhile is missed.
		if incoming, err = wallet.WatchTransfers(ctx); err != nil {
			return err
		}
	}
	if pay != nil {
		tx, err := wallet.Transfer(ctx, payee, pay)
		if err != nil {
			return err
		}
		held, err := wallet.Balance(ctx, me)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "paid %s tokens to %s (tx %s); %s left\n", formatTokens(pay), payee, tx, formatTokens(held))
	}
	if !*wait {
		return nil
	}
	fmt.Fprintln(out, "waiting for payments (Ctrl-C to stop)")
	for tr := range incoming {
		fmt.Fprintf(out, "received %s tokens from %s (tx %s)\n", formatTokens(tr.Amount), tr.From, tr.Tx)
	}
	return nil
}

var unit = big.NewInt(1e18) // the token has 18 decimals

// parseTokens reads a decimal number of tokens into the smallest unit.
func parseTokens(s string) (*big.Int, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok || r.Sign() < 0 {
		return nil, fmt.Errorf("not a number of tokens")
	}
	r.Mul(r, new(big.Rat).SetInt(unit))
	if !r.IsInt() {
		return nil, fmt.Errorf("more than 18 decimals")
	}
	return new(big.Int).Set(r.Num()), nil
}

// formatTokens writes an amount in the smallest unit as tokens.
func formatTokens(n *big.Int) string {
	return strings.TrimRight(strings.TrimRight(new(big.Rat).SetFrac(n, unit).FloatString(18), "0"), ".")
}
