package payment

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/rawdb"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth"
	"github.com/ethereum/go-ethereum/eth/catalyst"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/eth/filters"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/ethdb"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/dpaas/dpaas/payment/contracts"
)

// DevGas is the ether (in wei) DevChain.Fund gives an account for gas.
var DevGas = new(big.Int).Mul(big.NewInt(10), big.NewInt(1e18))

// DevChainConfig configures OpenDevChain. Zero values mean defaults.
type DevChainConfig struct {
	// Dir keeps the chain (blocks and state), the faucet's key and the
	// contract addresses, so that a DevChain opened again on the same
	// directory continues the same chain with the same contracts and
	// balances. "" keeps everything in memory.
	Dir string
	// ChainID of a new chain. Nil or zero means a random one, so that
	// vouchers and transactions made for another development chain are
	// refused as such. A chain reopened from Dir keeps the chain ID it was
	// created with, whatever ChainID says (a different one is logged).
	ChainID *big.Int
	// Logger receives the dev chain's diagnostics (the warning about
	// transfers nobody else can see). Nil means slog.Default().
	Logger *slog.Logger
}

// DevChain is a development chain: go-ethereum's Ethereum service driven
// by a simulated beacon, with the Token and Channels contracts deployed and
// a faucet. Every transaction is mined as soon as it arrives (one block per
// transaction), so calls never wait for a block. Several in-process
// Payments may share one DevChain (Config.Dev); Serve exposes it over
// JSON-RPC for other processes (Config.RPCURL), which is what the runnable
// examples/devchain program does with a chain kept in a directory.
//
// It is safe for concurrent use.
type DevChain struct {
	stack   *node.Node
	beacon  *catalyst.SimulatedBeacon
	db      ethdb.Database // the chain's database, synced after each block when in Dir
	rpc     *rpc.Client    // in-process JSON-RPC to the node, all modules
	client  *ethclient.Client
	chainID *big.Int
	faucet  *ecdsa.PrivateKey
	dir     string
	log     *slog.Logger

	token    common.Address
	channels common.Address
	escrow   common.Address

	// mineMu orders "send a transaction, seal its block" so that a block
	// never seals half of two concurrent senders' work out of order, and
	// AdjustTime never meets a non-empty pool.
	mineMu   sync.Mutex
	faucetMu sync.Mutex

	// local are the accounts this process uses on the chain (Payments
	// opened on it, accounts the faucet funded); warned is set once a
	// transfer to another account on an unserved chain was warned about.
	local  sync.Map // common.Address -> struct{}
	warned atomic.Bool

	// blocks counts the blocks sealed through this DevChain, and clock
	// caches the head's timestamp for the count it was read at, so Now
	// (called by every Accept) reads the chain only after a new block.
	blocks atomic.Uint64
	clock  atomic.Pointer[headTime]

	mu       sync.Mutex
	closed   bool
	servers  []*http.Server
	serveWG  sync.WaitGroup
	firstURL string
}

// devState is what a DevChain keeps in Dir besides the chain itself.
type devState struct {
	ChainID  *hexutil.Big   `json:"chainId"`
	Faucet   hexutil.Bytes  `json:"faucetKey"`
	Token    common.Address `json:"token"`
	Channels common.Address `json:"channels"`
	Escrow   common.Address `json:"escrow,omitempty"`
}

const devStateFile = "devchain.json"

// NewDevChain starts an in-memory development chain with a random chain
// ID and deploys the contracts. It is OpenDevChain with a zero config.
func NewDevChain(ctx context.Context) (*DevChain, error) {
	return OpenDevChain(ctx, DevChainConfig{})
}

// OpenDevChain starts a development chain, or continues the one kept in
// cfg.Dir, and deploys the contracts if the chain has none yet.
func OpenDevChain(ctx context.Context, cfg DevChainConfig) (*DevChain, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ChainID != nil && cfg.ChainID.Sign() < 0 {
		return nil, fmt.Errorf("payment: dev chain: negative chain ID %v", cfg.ChainID)
	}
	st, err := loadDevState(cfg)
	if err != nil {
		return nil, fmt.Errorf("payment: dev chain: %w", err)
	}
	faucet, err := crypto.ToECDSA(st.Faucet)
	if err != nil {
		return nil, fmt.Errorf("payment: dev chain: faucet key in %s: %w", cfg.Dir, err)
	}
	d := &DevChain{
		chainID: st.ChainID.ToInt(), faucet: faucet, dir: cfg.Dir,
		log: cfg.Logger.With("component", "payment"),
	}
	if err := d.start(); err != nil {
		return nil, fmt.Errorf("payment: dev chain: %w", err)
	}
	fail := func(err error) (*DevChain, error) {
		d.stop()
		return nil, fmt.Errorf("payment: dev chain: %w", err)
	}
	if got, err := d.client.ChainID(ctx); err != nil {
		return fail(fmt.Errorf("chain id: %w", err))
	} else if got.Cmp(d.chainID) != 0 {
		return fail(fmt.Errorf("chain in %s has chain ID %v, its state file says %v", cfg.Dir, got, d.chainID))
	}
	if st.Token != (common.Address{}) {
		// A chain reopened from its directory: its contracts must still be
		// there, or the directory lost blocks it had acknowledged.
		for name, addr := range map[string]common.Address{"token": st.Token, "channels": st.Channels} {
			code, err := d.client.CodeAt(ctx, addr, nil)
			if err != nil {
				return fail(fmt.Errorf("%s contract: %w", name, err))
			}
			if len(code) == 0 {
				return fail(fmt.Errorf("no %s contract at %s in the chain kept in %s", name, addr, cfg.Dir))
			}
		}
		d.token, d.channels = st.Token, st.Channels
		if st.Escrow != (common.Address{}) {
			code, err := d.client.CodeAt(ctx, st.Escrow, nil)
			if err != nil {
				return fail(fmt.Errorf("escrow contract: %w", err))
			}
			if len(code) == 0 {
				return fail(fmt.Errorf("no escrow contract at %s in the chain kept in %s", st.Escrow, cfg.Dir))
			}
			d.escrow = st.Escrow
			return d, nil
		}
		// A directory from before the Escrow contract: deploy it now.
		if err := d.deployEscrow(ctx); err != nil {
			return fail(fmt.Errorf("deploy: %w", err))
		}
		st.Escrow = d.escrow
		if err := saveDevState(cfg.Dir, st); err != nil {
			return fail(err)
		}
		return d, nil
	}
	if err := d.deploy(ctx); err != nil {
		return fail(fmt.Errorf("deploy: %w", err))
	}
	if cfg.Dir != "" {
		st.Token, st.Channels, st.Escrow = d.token, d.channels, d.escrow
		if err := saveDevState(cfg.Dir, st); err != nil {
			return fail(err)
		}
	}
	return d, nil
}

// loadDevState reads the state file of cfg.Dir, or makes (and, with a
// Dir, saves) the state of a new chain: its faucet key and chain ID. The
// file is written before the chain exists, so a chain in Dir always has
// the genesis its state file describes.
func loadDevState(cfg DevChainConfig) (*devState, error) {
	if cfg.Dir != "" {
		b, err := os.ReadFile(filepath.Join(cfg.Dir, devStateFile))
		if err == nil {
			var st devState
			if err := json.Unmarshal(b, &st); err != nil || st.ChainID == nil || len(st.Faucet) == 0 {
				return nil, fmt.Errorf("state file %s: unreadable (%v)", filepath.Join(cfg.Dir, devStateFile), err)
			}
			if cfg.ChainID != nil && cfg.ChainID.Sign() != 0 && cfg.ChainID.Cmp(st.ChainID.ToInt()) != 0 {
				cfg.Logger.Warn("payment: dev chain reopened with the chain ID it was created with, not the one asked for",
					"dir", cfg.Dir, "chainID", st.ChainID.ToInt(), "asked", cfg.ChainID)
			}
			return &st, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if entries, err := os.ReadDir(cfg.Dir); err == nil && len(entries) > 0 {
			return nil, fmt.Errorf("%s is not empty and holds no %s: not a dev chain directory", cfg.Dir, devStateFile)
		}
	}
	id := cfg.ChainID
	if id == nil || id.Sign() == 0 {
		var err error
		if id, err = randomChainID(); err != nil {
			return nil, err
		}
	}
	key, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	st := &devState{ChainID: (*hexutil.Big)(new(big.Int).Set(id)), Faucet: crypto.FromECDSA(key)}
	if cfg.Dir != "" {
		if err := saveDevState(cfg.Dir, st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// randomChainID picks a chain ID in [2^20, 2^31): clear of the well-known
// chains and development IDs (1337, 31337), and exact in JavaScript.
func randomChainID() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<31-1<<20))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1<<20)), nil
}

// saveDevState writes st to dir atomically and durably.
func saveDevState(dir string, st *devState) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, devStateFile)
	f, err := os.CreateTemp(dir, devStateFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	return df.Sync()
}

// start runs the Ethereum service on a node with no network and no RPC
// endpoints of its own, on a database in d.dir or in memory. Unlike
// go-ethereum's simulated backend it never rewinds to genesis, so a chain
// reopened from its directory carries on.
func (d *DevChain) start() error {
	nc := node.DefaultConfig
	nc.Name = "devchain"
	nc.DataDir = ""
	if d.dir != "" {
		nc.DataDir = d.dir
	}
	nc.IPCPath = ""
	nc.HTTPHost, nc.WSHost, nc.AuthAddr = "", "", ""
	nc.P2P = p2p.Config{NoDiscovery: true, MaxPeers: 0}
	stack, err := node.New(&nc)
	if err != nil {
		return err
	}
	chainCfg := *params.AllDevChainProtocolChanges
	chainCfg.ChainID = new(big.Int).Set(d.chainID)
	alloc := core.SystemContractAllocs()
	alloc[crypto.PubkeyToAddress(d.faucet.PublicKey)] = types.Account{
		Balance: new(big.Int).Mul(big.NewInt(1e9), big.NewInt(1e18)),
	}
	ec := ethconfig.Defaults
	ec.Genesis = &core.Genesis{Config: &chainCfg, GasLimit: ethconfig.Defaults.Miner.GasCeil, Alloc: alloc}
	ec.SyncMode = ethconfig.FullSync
	ec.TxPool.NoLocals = true
	ec.LogNoHistory = true
	if d.dir != "" {
		// An archive node on the hash scheme writes every block's state as
		// it is sealed, so a dev chain killed without Close restarts where
		// it was instead of rewinding to the last flushed state.
		ec.NoPruning = true
		ec.StateScheme = rawdb.HashScheme
	}
	backend, err := eth.New(stack, &ec)
	if err != nil {
		stack.Close()
		return err
	}
	stack.RegisterAPIs([]rpc.API{{
		Namespace: "eth",
		Service:   filters.NewFilterAPI(filters.NewFilterSystem(backend.APIBackend, filters.Config{})),
	}})
	if err := stack.Start(); err != nil {
		stack.Close()
		return err
	}
	beacon, err := catalyst.NewSimulatedBeacon(0, common.Address{}, backend)
	if err != nil {
		stack.Close()
		return err
	}
	d.stack, d.beacon, d.db = stack, beacon, backend.ChainDb()
	d.rpc = stack.Attach()
	d.client = ethclient.NewClient(d.rpc)
	return nil
}

// stop shuts the node down; the database in Dir is flushed.
func (d *DevChain) stop() error {
	d.client.Close()
	return errors.Join(d.beacon.Stop(), d.stack.Close())
}

func (d *DevChain) deploy(ctx context.Context) error {
	be := d.backend()
	opts := bind.NewKeyedTransactor(d.faucet, d.chainID)
	opts.Context = ctx
	tokenABI := contracts.NewToken()
	addr, tx, err := bind.DeployContract(opts, common.FromHex(contracts.TokenMetaData.Bin), be,
		tokenABI.PackConstructor("dpaas dev token", "DPT"))
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if _, err := waitReceipt(ctx, be, tx.Hash(), time.Millisecond, nil); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	d.token = addr
	chABI := contracts.NewChannels()
	addr, tx, err = bind.DeployContract(opts, common.FromHex(contracts.ChannelsMetaData.Bin), be,
		chABI.PackConstructor(d.token))
	if err != nil {
		return fmt.Errorf("channels: %w", err)
	}
	if _, err := waitReceipt(ctx, be, tx.Hash(), time.Millisecond, nil); err != nil {
		return fmt.Errorf("channels: %w", err)
	}
	d.channels = addr
	return d.deployEscrow(ctx)
}

// deployEscrow deploys the Escrow contract on the dev chain's token.
func (d *DevChain) deployEscrow(ctx context.Context) error {
	be := d.backend()
	opts := bind.NewKeyedTransactor(d.faucet, d.chainID)
	opts.Context = ctx
	addr, tx, err := bind.DeployContract(opts, common.FromHex(contracts.EscrowMetaData.Bin), be,
		contracts.NewEscrow().PackConstructor(d.token))
	if err != nil {
		return fmt.Errorf("escrow: %w", err)
	}
	if _, err := waitReceipt(ctx, be, tx.Hash(), time.Millisecond, nil); err != nil {
		return fmt.Errorf("escrow: %w", err)
	}
	d.escrow = addr
	return nil
}

// ChainID is the dev chain's chain ID: random unless DevChainConfig.ChainID
// chose it.
func (d *DevChain) ChainID() *big.Int { return new(big.Int).Set(d.chainID) }

// Token is the address of the dev chain's ERC-20 token.
func (d *DevChain) Token() common.Address { return d.token }

// Channels is the address of the dev chain's payment-channel contract.
func (d *DevChain) Channels() common.Address { return d.channels }

// Escrow is the address of the dev chain's escrow contract.
func (d *DevChain) Escrow() common.Address { return d.escrow }

// Dir is the directory the chain is kept in, "" in memory.
func (d *DevChain) Dir() string { return d.dir }

// Fund is the faucet: it gives to DevGas ether for gas and mints tokens
// (in the token's smallest unit; nil or zero mints none).
func (d *DevChain) Fund(ctx context.Context, to common.Address, tokens *big.Int) error {
	if d.isClosed() {
		return fmt.Errorf("payment: fund: %w", ErrClosed)
	}
	if tokens != nil && tokens.Sign() < 0 {
		return fmt.Errorf("payment: fund %s: %v tokens: %w", to, tokens, ErrBadAmount)
	}
	d.markLocal(to)
	d.faucetMu.Lock()
	defer d.faucetMu.Unlock()
	be := d.backend()
	opts := bind.NewKeyedTransactor(d.faucet, d.chainID)
	opts.Context = ctx
	gas, err := d.sendEther(ctx, to, DevGas)
	if err != nil {
		return fmt.Errorf("payment: fund %s: gas: %w", to, err)
	}
	if _, err := waitReceipt(ctx, be, gas, time.Millisecond, nil); err != nil {
		return fmt.Errorf("payment: fund %s: gas: %w", to, err)
	}
	if tokens == nil || tokens.Sign() == 0 {
		return nil
	}
	tokenABI := contracts.NewToken()
	tx, err := bind.Transact(tokenABI.Instance(be, d.token), opts, tokenABI.PackMint(to, tokens))
	if err != nil {
		return fmt.Errorf("payment: fund %s: mint: %w", to, err)
	}
	if _, err := waitReceipt(ctx, be, tx.Hash(), time.Millisecond, nil); err != nil {
		return fmt.Errorf("payment: fund %s: mint: %w", to, err)
	}
	return nil
}

// sendEther sends a plain value transfer from the faucet.
func (d *DevChain) sendEther(ctx context.Context, to common.Address, wei *big.Int) (common.Hash, error) {
	from := crypto.PubkeyToAddress(d.faucet.PublicKey)
	nonce, err := d.client.PendingNonceAt(ctx, from)
	if err != nil {
		return common.Hash{}, err
	}
	tip, err := d.client.SuggestGasTipCap(ctx)
	if err != nil {
		return common.Hash{}, err
	}
	head, err := d.client.HeaderByNumber(ctx, nil)
	if err != nil {
		return common.Hash{}, err
	}
	feeCap := new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))
	tx, err := types.SignNewTx(d.faucet, types.LatestSignerForChainID(d.chainID), &types.DynamicFeeTx{
		ChainID: d.chainID, Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: 21000, To: &to, Value: wei,
	})
	if err != nil {
		return common.Hash{}, err
	}
	if err := d.backend().SendTransaction(ctx, tx); err != nil {
		return common.Hash{}, err
	}
	return tx.Hash(), nil
}

// markLocal records that this process uses account on the chain.
func (d *DevChain) markLocal(account common.Address) { d.local.Store(account, struct{}{}) }

// warnUnseen logs, once per DevChain, a warning when a transfer goes to an
// account that only this process could ever see: the chain is not served
// and no Payments or faucet call of this process used that account. It is
// almost always an instance in another process, on a chain of its own.
func (d *DevChain) warnUnseen(log *slog.Logger, to common.Address) {
	if _, ok := d.local.Load(to); ok || d.URL() != "" || d.warned.Load() {
		return
	}
	if !d.warned.CompareAndSwap(false, true) {
		return
	}
	log.Warn("payment: transfer on a private development chain that only this process sees: "+
		"an instance in another process will never receive it. To pay between processes, run one shared dev chain "+
		"(go run github.com/dpaas/dpaas/examples/devchain -dir DIR -http 127.0.0.1:8545) and set "+
		"payment.Config.RPCURL (dapp.Config.Payment.RPCURL) to http://127.0.0.1:8545 in every instance",
		"to", to, "chainID", d.chainID)
}

// headTime is the head block's timestamp after a number of sealed blocks.
type headTime struct {
	blocks uint64
	time   time.Time
}

// Now is the dev chain's clock: the later of the wall clock and the
// newest block's timestamp, which AdjustTime moves forward.
func (d *DevChain) Now() time.Time {
	now := time.Now()
	n := d.blocks.Load()
	c := d.clock.Load()
	if c == nil || c.blocks != n {
		h, err := d.client.HeaderByNumber(context.Background(), nil)
		if err != nil {
			return now
		}
		c = &headTime{blocks: n, time: unixTime(h.Time)}
		d.clock.Store(c)
	}
	if c.time.After(now) {
		return c.time
	}
	return now
}

// AdjustTime moves the chain's clock forward by dt by sealing an empty
// block that much later, so tests can pass channel expiries without
// waiting.
func (d *DevChain) AdjustTime(dt time.Duration) error {
	if d.isClosed() {
		return fmt.Errorf("payment: adjust time: %w", ErrClosed)
	}
	d.mineMu.Lock()
	defer d.mineMu.Unlock()
	if d.pendingTxs() > 0 {
		// what a block built under load left behind (see seal)
		d.seal()
	}
	err := d.beacon.AdjustTime(dt)
	d.blocks.Add(1)
	if err != nil {
		return fmt.Errorf("payment: adjust time: %w", err)
	}
	return d.syncDir()
}

// mine seals one block, with whatever the pool holds.
func (d *DevChain) mine() {
	d.mineMu.Lock()
	defer d.mineMu.Unlock()
	if !d.isClosed() {
		d.seal()
	}
}

// seal seals a block with what the pool holds; the caller holds mineMu.
// A chain kept in a directory syncs it before the block counts as mined,
// so a transaction acknowledged to a sender survives the process being
// killed.
//
// The simulated beacon only logs a block it failed to build in time (a
// loaded machine): the pool keeps the transactions, and a sender would
// wait for a receipt that never comes, or AdjustTime refuse to run. So
// seal seals again, a few times at most, until the pool is empty.
func (d *DevChain) seal() {
	for range sealTries {
		d.beacon.Commit()
		d.blocks.Add(1)
		if d.pendingTxs() == 0 {
			break
		}
	}
	if err := d.syncDir(); err != nil {
		d.log.Error("payment: dev chain: sync to disk", "dir", d.dir, "err", err)
	}
}

// sealTries bounds the blocks one seal makes to empty the pool.
const sealTries = 5

// pendingTxs is how many transactions wait in the pool to be mined (0 when
// it cannot tell).
func (d *DevChain) pendingTxs() int {
	var st struct {
		Pending hexutil.Uint `json:"pending"`
	}
	if err := d.rpc.Call(&st, "txpool_status"); err != nil {
		return 0
	}
	return int(st.Pending)
}

func (d *DevChain) syncDir() error {
	if d.dir == "" {
		return nil
	}
	return d.db.SyncKeyValue()
}

// backend is the chain as Payments on this process see it: the in-process
// client, except that a sent transaction is mined before SendTransaction
// returns.
func (d *DevChain) backend() chainBackend { return devBackend{Client: d.client, dev: d} }

type devBackend struct {
	*ethclient.Client
	dev *DevChain
}

func (b devBackend) SendTransaction(ctx context.Context, tx *types.Transaction) error {
	b.dev.mineMu.Lock()
	defer b.dev.mineMu.Unlock()
	if b.dev.isClosed() {
		return fmt.Errorf("payment: send transaction: %w", ErrClosed)
	}
	if err := b.Client.SendTransaction(ctx, tx); err != nil {
		return err
	}
	b.dev.seal()
	return nil
}

func (d *DevChain) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Close stops the HTTP servers and the chain; a chain kept in a directory
// is flushed to it. Payments still using it fail with ErrClosed-wrapped
// errors afterwards. Calling it again returns ErrClosed.
func (d *DevChain) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("payment: dev chain close: %w", ErrClosed)
	}
	d.closed = true
	servers := d.servers
	d.servers = nil
	d.mu.Unlock()
	var errs []error
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	d.serveWG.Wait()
	d.mineMu.Lock()
	errs = append(errs, d.stop())
	d.mineMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("payment: dev chain close: %w", err)
	}
	return nil
}
