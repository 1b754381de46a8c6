package payment

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/dpaas/dpaas/payment/contracts"
)

// DevGas is the ether (in wei) DevChain.Fund gives an account for gas.
var DevGas = new(big.Int).Mul(big.NewInt(10), big.NewInt(1e18))

// DevChain is an embedded development chain: go-ethereum's simulated
// backend with the Token and Channels contracts deployed and a faucet.
// Every transaction is mined as soon as it arrives (one block per
// transaction), so calls never wait for a block. Several in-process
// Payments may share one DevChain (Config.Dev), and Serve exposes it over
// JSON-RPC on loopback for other processes (Config.RPCURL).
//
// It is safe for concurrent use.
type DevChain struct {
	sim     *simulated.Backend
	client  simulated.Client
	rpc     *rpc.Client // raw JSON-RPC to the node, over IPC
	ipcDir  string
	chainID *big.Int
	faucet  *ecdsa.PrivateKey

	token    common.Address
	channels common.Address

	// mineMu orders "send a transaction, seal its block" so that a block
	// never seals half of two concurrent senders' work out of order, and
	// AdjustTime never meets a non-empty pool.
	mineMu   sync.Mutex
	faucetMu sync.Mutex

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

// NewDevChain starts a development chain and deploys the contracts.
func NewDevChain(ctx context.Context) (*DevChain, error) {
	faucet, err := crypto.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("payment: dev chain: %w", err)
	}
	// The simulated backend keeps its node private; its IPC endpoint, on
	// a socket in a private temporary directory, is how Serve reaches the
	// node's raw JSON-RPC.
	ipcDir, err := os.MkdirTemp("", "dpaas-dev")
	if err != nil {
		return nil, fmt.Errorf("payment: dev chain: %w", err)
	}
	ipcPath := filepath.Join(ipcDir, "dev.ipc")
	rich := new(big.Int).Mul(big.NewInt(1e9), big.NewInt(1e18))
	sim := simulated.NewBackend(types.GenesisAlloc{
		crypto.PubkeyToAddress(faucet.PublicKey): {Balance: rich},
	}, func(nc *node.Config, ec *ethconfig.Config) {
		nc.IPCPath = ipcPath
	})
	d := &DevChain{sim: sim, client: sim.Client(), faucet: faucet, ipcDir: ipcDir}
	fail := func(err error) (*DevChain, error) {
		if d.rpc != nil {
			d.rpc.Close()
		}
		sim.Close()
		os.RemoveAll(ipcDir)
		return nil, fmt.Errorf("payment: dev chain: %w", err)
	}
	if d.rpc, err = rpc.DialIPC(ctx, ipcPath); err != nil {
		return fail(err)
	}
	if d.chainID, err = d.client.ChainID(ctx); err != nil {
		return fail(fmt.Errorf("chain id: %w", err))
	}
	if err := d.deploy(ctx); err != nil {
		return fail(fmt.Errorf("deploy: %w", err))
	}
	return d, nil
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
	return nil
}

// ChainID is the dev chain's chain ID (1337).
func (d *DevChain) ChainID() *big.Int { return new(big.Int).Set(d.chainID) }

// Token is the address of the dev chain's ERC-20 token.
func (d *DevChain) Token() common.Address { return d.token }

// Channels is the address of the dev chain's payment-channel contract.
func (d *DevChain) Channels() common.Address { return d.channels }

// Fund is the faucet: it gives to DevGas ether for gas and mints tokens
// (in the token's smallest unit; nil or zero mints none).
func (d *DevChain) Fund(ctx context.Context, to common.Address, tokens *big.Int) error {
	if d.isClosed() {
		return fmt.Errorf("payment: fund: %w", ErrClosed)
	}
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
	err := d.sim.AdjustTime(dt)
	d.blocks.Add(1)
	if err != nil {
		return fmt.Errorf("payment: adjust time: %w", err)
	}
	return nil
}

// mine seals one block, with whatever the pool holds.
func (d *DevChain) mine() {
	d.mineMu.Lock()
	defer d.mineMu.Unlock()
	if !d.isClosed() {
		d.sim.Commit()
		d.blocks.Add(1)
	}
}

// backend is the chain as Payments on this process see it: the simulated
// client, except that a sent transaction is mined before SendTransaction
// returns.
func (d *DevChain) backend() chainBackend { return devBackend{Client: d.client, dev: d} }

type devBackend struct {
	simulated.Client
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
	b.dev.sim.Commit()
	b.dev.blocks.Add(1)
	return nil
}

// Serve answers Ethereum JSON-RPC over HTTP at addr (host:port; "" means
// 127.0.0.1 on a free port) and returns the URL to put in Config.RPCURL.
// A sent raw transaction is mined before its answer goes back, as in
// process. The extra method dpaas_contracts returns the token and channel
// contract addresses, so a Payments given only the URL finds them. The
// server stops on Close.
func (d *DevChain) Serve(addr string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("payment: serve dev chain: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(d.serveRPC), ReadHeaderTimeout: 10 * time.Second}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		ln.Close()
		return "", fmt.Errorf("payment: serve dev chain: %w", ErrClosed)
	}
	d.servers = append(d.servers, srv)
	url := "http://" + ln.Addr().String()
	if d.firstURL == "" {
		d.firstURL = url
	}
	d.serveWG.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.serveWG.Done()
		_ = srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	return url, nil
}

// URL is the address of the first Serve, or "" when not serving.
func (d *DevChain) URL() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.firstURL
}

type rpcRequest struct {
	JSONRPC string            `json:"jsonrpc"`
	ID      json.RawMessage   `json:"id,omitempty"`
	Method  string            `json:"method"`
	Params  []json.RawMessage `json:"params,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

const maxRPCBody = 8 << 20

// serveRPC relays JSON-RPC requests (single or batched) to the in-process
// node, which keeps the simulated backend's node private.
func (d *DevChain) serveRPC(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "JSON-RPC over POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRPCBody+1))
	if err != nil || len(body) > maxRPCBody {
		http.Error(w, "request too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	var out any
	trimmed := trimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var batch []rpcRequest
		if err := json.Unmarshal(body, &batch); err != nil {
			out = parseError(err)
		} else {
			res := make([]rpcResponse, 0, len(batch))
			for _, req := range batch {
				res = append(res, d.relay(r.Context(), req))
			}
			out = res
		}
	} else {
		var req rpcRequest
		if err := json.Unmarshal(body, &req); err != nil {
			out = parseError(err)
		} else {
			out = d.relay(r.Context(), req)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func parseError(err error) rpcResponse {
	return rpcResponse{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{Code: -32700, Message: err.Error()}}
}

func (d *DevChain) relay(ctx context.Context, req rpcRequest) rpcResponse {
	resp := rpcResponse{JSONRPC: "2.0", ID: req.ID}
	if resp.ID == nil {
		resp.ID = json.RawMessage("null")
	}
	if req.Method == "dpaas_contracts" {
		res, _ := json.Marshal(map[string]common.Address{"token": d.token, "channels": d.channels})
		resp.Result = res
		return resp
	}
	args := make([]any, len(req.Params))
	for i, p := range req.Params {
		args[i] = p
	}
	var result json.RawMessage
	var err error
	if req.Method == "eth_sendRawTransaction" {
		d.mineMu.Lock()
		err = d.rpc.CallContext(ctx, &result, req.Method, args...)
		if err == nil && !d.isClosed() {
			d.sim.Commit()
			d.blocks.Add(1)
		}
		d.mineMu.Unlock()
	} else {
		err = d.rpc.CallContext(ctx, &result, req.Method, args...)
	}
	if err != nil {
		re := &rpcError{Code: -32603, Message: err.Error()}
		var coded rpc.Error
		if errors.As(err, &coded) {
			re.Code = coded.ErrorCode()
		}
		var withData rpc.DataError
		if errors.As(err, &withData) {
			re.Data = withData.ErrorData()
		}
		resp.Error = re
		return resp
	}
	if result == nil {
		result = json.RawMessage("null")
	}
	resp.Result = result
	return resp
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func (d *DevChain) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Close stops the HTTP servers and the chain. Payments still using it
// fail with ErrClosed-wrapped errors afterwards. Calling it again returns
// ErrClosed.
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
	d.rpc.Close()
	errs = append(errs, d.sim.Close(), os.RemoveAll(d.ipcDir))
	d.mineMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("payment: dev chain close: %w", err)
	}
	return nil
}
