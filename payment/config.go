package payment

import (
	"crypto/ecdsa"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/internal/kv"
)

// DefaultExpiryMargin is Config.ExpiryMargin's default: ten minutes
// before a channel's expiry the payee stops accepting vouchers on it and
// redeems what it holds, leaving ten minutes for the transaction to be
// mined (and retried) even on a slow public chain.
const DefaultExpiryMargin = 10 * time.Minute

// KeySpace is one component's share of a database that the components of
// an instance share: a dapp Node gives one to its Payments. Only the dapp
// package makes them, and Open refuses any other implementation; outside
// dapp, set Config.Dir instead.
type KeySpace interface {
	// Prefix is the bytes every key of the space begins with.
	Prefix() []byte
}

// Config configures Open. Zero values mean defaults; Open copies it.
type Config struct {
	// RPCURL is an Ethereum JSON-RPC endpoint (http, https, ws or ipc).
	// Empty means use Dev. For a dev chain shared by several processes,
	// run the examples/devchain program and set only this field to its
	// URL (http://127.0.0.1:8545 by default): Open learns the contracts
	// from it, and DialDevChain reaches its faucet. An endpoint that does
	// not answer fails Open with ErrChainUnreachable.
	RPCURL string
	// Dev is an embedded development chain, shareable by several
	// in-process Payments. Used when RPCURL is empty. Nothing outside the
	// process sees it unless it is served (DevChain.Serve).
	Dev *DevChain

	// Token and Channels are the ERC-20 and payment-channel contracts.
	// Zero means Dev's, or, with an RPCURL, those a served DevChain
	// reports (dpaas_info); any other endpoint needs them set.
	Token    common.Address
	Channels common.Address
	// Escrow is the escrow contract (OpenEscrow...). Zero means Dev's, or
	// the one a served DevChain reports; left zero, the escrow calls fail
	// with ErrNoEscrow.
	Escrow common.Address

	// Confirmations is how many blocks, counting the one that includes a
	// transaction, must exist before a call that sends it returns.
	// 0 means 1. A DevChain seals blocks only for transactions: in process
	// (Dev) Payments seals the missing empty blocks itself, but through a
	// served DevChain's URL keep 1, or calls wait for others' traffic.
	Confirmations uint64
	// PollInterval is how often receipts and logs are polled. 0 means 1s
	// on an RPC endpoint and 5ms on an in-process DevChain.
	PollInterval time.Duration
	// ExpiryMargin is the payee's safety margin before a channel's
	// expiry. Inside it, Accept refuses new vouchers on the channel
	// (ErrExpired), and the Payments redeems the best voucher it holds on
	// the channel on its own, retrying failures until the expiry, so a
	// payee that never calls Redeem is still paid. A payer's Meter does not
	// pay through a channel inside its own margin either. 0 means
	// DefaultExpiryMargin; negative means none: vouchers are accepted
	// until the expiry and nothing is redeemed automatically.
	ExpiryMargin time.Duration
	// AutoPayLimit is, for a payer, the most it pays any one payee in total
	// when that payee's Meter asks for it (see Meter). Nil or zero means
	// never pay automatically. SetAutoPayLimit changes it per payee.
	AutoPayLimit *big.Int
	// Now is the clock for expiries. Nil means the DevChain's clock with
	// Dev, and time.Now otherwise.
	Now func() time.Time
	// Dir is where a Payments used without a Space (outside a dapp Node)
	// keeps its private Pebble database. Empty means in memory: held
	// vouchers and channels are then lost on Close. Ignored with Space.
	Dir string

	// The fields below are filled in by the dapp Node.

	// Key is the instance key, and so its Ethereum account. Nil means a
	// fresh random key (useful only for tests and demos).
	Key *ecdsa.PrivateKey
	// Space persists the payee's best vouchers and the payer's channels so
	// they survive restarts, inside a dapp Node's database. Nil means a
	// private database in Dir.
	Space KeySpace
	// Host carries the metering protocol. Nil means no metering.
	Host host.Host
	// AppID is part of the metering protocol ID.
	AppID string
	// Logger receives diagnostics. Nil discards them.
	Logger *slog.Logger
	// Metrics, when set, receives the Payments' Prometheus metrics
	// (Collector) from Open until Close.
	Metrics prometheus.Registerer
}

func (c *Config) ensureDefaults() {
	if c.Confirmations == 0 {
		c.Confirmations = 1
	}
	if c.PollInterval <= 0 {
		if c.RPCURL == "" {
			c.PollInterval = 5 * time.Millisecond
		} else {
			c.PollInterval = time.Second
		}
	}
	if c.ExpiryMargin == 0 {
		c.ExpiryMargin = DefaultExpiryMargin
	} else if c.ExpiryMargin < 0 {
		c.ExpiryMargin = 0
	}
	if c.AutoPayLimit != nil {
		c.AutoPayLimit = new(big.Int).Set(c.AutoPayLimit)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		if c.RPCURL == "" && c.Dev != nil {
			c.Now = c.Dev.Now
		} else {
			c.Now = time.Now
		}
	}
}

func (c *Config) validate() error {
	if c.RPCURL == "" && c.Dev == nil {
		return &alsoMatches{err: ErrNoChain, public: ErrInvalidConfig}
	}
	if c.AutoPayLimit != nil && c.AutoPayLimit.Sign() < 0 {
		return fmt.Errorf("payment: config: negative AutoPayLimit %v: %w", c.AutoPayLimit, ErrInvalidConfig)
	}
	if c.Host != nil && c.AppID == "" {
		return fmt.Errorf("payment: config: Host given without AppID: %w", ErrInvalidConfig)
	}
	if _, ok := c.Space.(*kv.Space); c.Space != nil && !ok {
		return fmt.Errorf("payment: config: Space %T is not a dapp key space: %w", c.Space, ErrInvalidConfig)
	}
	return nil
}
