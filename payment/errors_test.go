package payment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestTransferWithoutGas: an account with tokens but no ether for gas gets
// ErrNoGas naming the account and the amounts, not a bare go-ethereum
// "insufficient funds for transfer"; one with gas but no tokens gets
// ErrInsufficientFunds.
func TestTransferWithoutGas(t *testing.T) {
	for _, served := range []bool{false, true} {
		t.Run(fmt.Sprintf("served=%v", served), func(t *testing.T) {
			d := newDev(t)
			cfg := Config{Dev: d}
			if served {
				url, err := d.Serve("")
				if err != nil {
					t.Fatal(err)
				}
				cfg = Config{RPCURL: url, PollInterval: 5 * time.Millisecond}
			}
			ctx := testCtx(t)
			rich := openFunded(t, d, cfg, tokens(10))
			cfg.Key = newKey(t)
			gasless, err := Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer gasless.Close()

			// No gas and no tokens.
			_, err = gasless.Transfer(ctx, rich.Account(), tokens(1))
			if !errors.Is(err, ErrNoGas) {
				t.Fatalf("Transfer with no gas = %v, want ErrNoGas", err)
			}
			if !strings.Contains(err.Error(), gasless.Account().Hex()) || !strings.Contains(err.Error(), "holds 0 wei") {
				t.Fatalf("ErrNoGas message %q does not name the account and its balance", err)
			}

			// Tokens but no gas: ErrNoGas only, with what it needs.
			if _, err := rich.Transfer(ctx, gasless.Account(), tokens(2)); err != nil {
				t.Fatal(err)
			}
			_, err = gasless.Transfer(ctx, rich.Account(), tokens(1))
			if !errors.Is(err, ErrNoGas) || errors.Is(err, ErrInsufficientFunds) {
				t.Fatalf("Transfer with tokens, no gas = %v, want ErrNoGas only", err)
			}
			t.Logf("no gas: %v", err)
			if !strings.Contains(err.Error(), gasless.Account().Hex()) || !strings.Contains(err.Error(), "needs about") {
				t.Fatalf("ErrNoGas message %q does not name the account and the cost", err)
			}
			if _, err := gasless.OpenChannel(ctx, rich.Account(), tokens(1), time.Hour); !errors.Is(err, ErrNoGas) {
				t.Fatalf("OpenChannel with no gas = %v, want ErrNoGas", err)
			}

			// Gas but too few tokens: ErrInsufficientFunds, not ErrNoGas.
			if err := d.Fund(ctx, gasless.Account(), nil); err != nil {
				t.Fatal(err)
			}
			_, err = gasless.Transfer(ctx, rich.Account(), tokens(3))
			if !errors.Is(err, ErrInsufficientFunds) || errors.Is(err, ErrNoGas) {
				t.Fatalf("Transfer beyond the token balance = %v, want ErrInsufficientFunds only", err)
			}
			if _, err := gasless.Transfer(ctx, rich.Account(), tokens(2)); err != nil {
				t.Fatalf("Transfer with gas and tokens: %v", err)
			}
		})
	}
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestUnreachableChain: a URL where nothing listens is reported as an
// unreachable chain, not as missing contract addresses.
func TestUnreachableChain(t *testing.T) {
	url := "http://" + freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{RPCURL: url})
	if !errors.Is(err, ErrChainUnreachable) || errors.Is(err, ErrNoContracts) {
		t.Fatalf("Open(%s) = %v, want ErrChainUnreachable", url, err)
	}
	t.Logf("unreachable: %v", err)
	if !strings.Contains(err.Error(), "cannot reach chain at "+url) {
		t.Fatalf("Open error %q does not say it cannot reach %s", err, url)
	}
	// With the contracts configured it is the same.
	_, err = Open(ctx, Config{RPCURL: url, Token: common.Address{1}, Channels: common.Address{2}})
	if !errors.Is(err, ErrChainUnreachable) {
		t.Fatalf("Open(%s) with contracts = %v, want ErrChainUnreachable", url, err)
	}
	if _, err := DialDevChain(ctx, url); !errors.Is(err, ErrChainUnreachable) {
		t.Fatalf("DialDevChain(%s) = %v, want ErrChainUnreachable", url, err)
	}
	if _, err := Open(ctx, Config{RPCURL: "ftp://" + freeAddr(t)}); !errors.Is(err, ErrChainUnreachable) {
		t.Fatalf("Open on an unsupported scheme = %v, want ErrChainUnreachable", err)
	}
}

// TestPrivateChainsDiffer: two private dev chains have different, random
// chain IDs (not go-ethereum's 1337), so a voucher or a transaction made
// for one is refused by the other with an error that says so.
func TestPrivateChainsDiffer(t *testing.T) {
	a, b := newDev(t), newDev(t)
	if a.ChainID().Cmp(b.ChainID()) == 0 || a.ChainID().Int64() == 1337 || b.ChainID().Int64() == 1337 {
		t.Fatalf("chain IDs %v and %v: want two random IDs", a.ChainID(), b.ChainID())
	}
	payer := openFunded(t, a, Config{}, tokens(10))
	payee := openFunded(t, b, Config{}, nil)
	ctx := testCtx(t)
	v, err := signWith(payer.key, payer.domain, common.Hash{7}, big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	err = payee.Accept(ctx, v)
	if !errors.Is(err, ErrWrongDomain) || !strings.Contains(err.Error(), "another chain") ||
		!strings.Contains(err.Error(), a.ChainID().String()) {
		t.Fatalf("Accept of a voucher from chain %v on chain %v = %v", a.ChainID(), b.ChainID(), err)
	}
	t.Logf("foreign voucher: %v", err)
	// A transaction signed for chain a, sent to chain b.
	key := newKey(t)
	if err := b.Fund(ctx, crypto.PubkeyToAddress(key.PublicKey), nil); err != nil {
		t.Fatal(err)
	}
	to := common.Address{0x42}
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(a.ChainID()), &types.DynamicFeeTx{
		ChainID: a.ChainID(), Gas: 21000, GasFeeCap: big.NewInt(1e10), GasTipCap: big.NewInt(1e9), To: &to, Value: big.NewInt(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.backend().SendTransaction(ctx, tx)
	t.Logf("foreign transaction: %v", err)
	if err == nil || !strings.Contains(err.Error(), "chain id") {
		t.Fatalf("transaction for chain %v sent to chain %v = %v, want a chain id error", a.ChainID(), b.ChainID(), err)
	}
}

// records keeps the log records a handler receives.
type records struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *records) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *records) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// TestWarnTransferOnPrivateChain: the first transfer to an account that no
// Payments of this process uses, on a chain nobody else can reach, logs a
// warning that says what to do; transfers between local accounts, later
// transfers and transfers on a served chain do not.
func TestWarnTransferOnPrivateChain(t *testing.T) {
	var logs records
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d := newDev(t)
	ctx := testCtx(t)
	payer := openFunded(t, d, Config{Logger: log}, tokens(10))
	local := openFunded(t, d, Config{Logger: log}, nil)
	if _, err := payer.Transfer(ctx, local.Account(), tokens(1)); err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); strings.Contains(s, "WARN") {
		t.Fatalf("transfer to a local account warned: %s", s)
	}
	stranger := common.Address{0x77}
	if _, err := payer.Transfer(ctx, stranger, tokens(1)); err != nil {
		t.Fatal(err)
	}
	s := logs.String()
	if strings.Count(s, "level=WARN") != 1 || !strings.Contains(s, "examples/devchain") || !strings.Contains(s, "RPCURL") ||
		!strings.Contains(s, stranger.Hex()) {
		t.Fatalf("first transfer to an unseen account logged %q, want one warning naming examples/devchain and RPCURL", s)
	}
	if _, err := payer.Transfer(ctx, common.Address{0x78}, tokens(1)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings after a second transfer, want 1", n)
	}

	// On a served chain other processes can see the account: no warning.
	var served records
	d2 := newDev(t)
	if _, err := d2.Serve(""); err != nil {
		t.Fatal(err)
	}
	p2 := openFunded(t, d2, Config{Logger: slog.New(slog.NewTextHandler(&served, nil))}, tokens(10))
	if _, err := p2.Transfer(ctx, stranger, tokens(1)); err != nil {
		t.Fatal(err)
	}
	if s := served.String(); strings.Contains(s, "WARN") {
		t.Fatalf("transfer on a served chain warned: %s", s)
	}
}
