package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rpc"
)

// DevChainInfo is what a served DevChain tells about itself (the
// dpaas_info JSON-RPC method): enough for a Payments given only its URL.
type DevChainInfo struct {
	ChainID  *big.Int
	Token    common.Address
	Channels common.Address
	Escrow   common.Address
	// Persistent: the chain is kept in a directory and survives restarts.
	Persistent bool
}

type devInfoJSON struct {
	ChainID    *hexutil.Big   `json:"chainId"`
	Token      common.Address `json:"token"`
	Channels   common.Address `json:"channels"`
	Escrow     common.Address `json:"escrow"`
	Persistent bool           `json:"persistent"`
	Faucet     bool           `json:"faucet"`
}

// Info describes the chain as dpaas_info does.
func (d *DevChain) Info() DevChainInfo {
	return DevChainInfo{ChainID: d.ChainID(), Token: d.token, Channels: d.channels, Escrow: d.escrow, Persistent: d.dir != ""}
}

// servedNamespaces are the JSON-RPC namespaces Serve relays. The node's
// other modules (admin, debug, miner, txpool, engine...) can rewind or
// stall the chain and are never served.
var servedNamespaces = []string{"eth", "net", "web3"}

// Serve answers Ethereum JSON-RPC over HTTP at addr (host:port; "" means
// 127.0.0.1 on a free port) and returns the URL to put in Config.RPCURL.
// It serves only the eth, net and web3 namespaces, plus the dev chain's
// own methods:
//
//   - dpaas_info: {chainId, token, channels, escrow, persistent, faucet}, which a
//     Payments given only the URL reads to find the contracts;
//   - dpaas_contracts: {token, channels, escrow};
//   - dpaas_fund(address, tokens): the faucet, as Fund; tokens is a
//     decimal string or a 0x quantity, in the token's smallest unit.
//
// A sent raw transaction is mined before its answer goes back, as in
// process. Requests must be POSTs with Content-Type application/json.
// Requests from a web page (an Origin header) are refused unless their
// origin is one of allowOrigins ("*" allows any), for which Serve answers
// CORS preflights. The server stops on Close.
func (d *DevChain) Serve(addr string, allowOrigins ...string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("payment: serve dev chain: %w", err)
	}
	h := &devHandler{dev: d, origins: slices.Clone(allowOrigins)}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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

type devHandler struct {
	dev     *DevChain
	origins []string
}

func (h *devHandler) allowed(origin string) bool {
	return slices.Contains(h.origins, "*") || slices.Contains(h.origins, origin)
}

func (h *devHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A browser sends Origin with every cross-origin request, and with a
	// text/plain POST it sends it without asking first: refusing unknown
	// origins and non-JSON bodies keeps web pages off the chain and its
	// faucet.
	if origin := r.Header.Get("Origin"); origin != "" {
		if !h.allowed(origin) {
			http.Error(w, "origin "+origin+" not allowed: serve the dev chain with it allowed", http.StatusForbidden)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Vary", "Origin")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "POST")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	if r.Method != http.MethodPost {
		http.Error(w, "JSON-RPC over POST only", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRPCBody+1))
	if err != nil || len(body) > maxRPCBody {
		http.Error(w, "request too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	var out any
	trimmed := strings.TrimLeft(string(body), " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var batch []rpcRequest
		if err := json.Unmarshal(body, &batch); err != nil {
			out = parseError(err)
		} else if len(batch) > maxRPCBatch {
			out = rpcResponse{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{
				Code: -32600, Message: fmt.Sprintf("batch of %d requests, at most %d", len(batch), maxRPCBatch)}}
		} else {
			res := make([]rpcResponse, 0, len(batch))
			for _, req := range batch {
				res = append(res, h.dev.relay(r.Context(), req))
			}
			out = res
		}
	} else {
		var req rpcRequest
		if err := json.Unmarshal(body, &req); err != nil {
			out = parseError(err)
		} else {
			out = h.dev.relay(r.Context(), req)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
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

const (
	maxRPCBody  = 8 << 20
	maxRPCBatch = 1000 // as go-ethereum's default BatchRequestLimit
)

func parseError(err error) rpcResponse {
	return rpcResponse{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{Code: -32700, Message: err.Error()}}
}

// served reports whether method is in a namespace Serve relays.
func served(method string) bool {
	ns, _, ok := strings.Cut(method, "_")
	return ok && slices.Contains(servedNamespaces, ns)
}

func (d *DevChain) relay(ctx context.Context, req rpcRequest) rpcResponse {
	resp := rpcResponse{JSONRPC: "2.0", ID: req.ID}
	if resp.ID == nil {
		resp.ID = json.RawMessage("null")
	}
	result, err := d.call(ctx, req)
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

// devRPCError is a JSON-RPC error with its code.
type devRPCError struct {
	code int
	msg  string
}

func (e *devRPCError) Error() string  { return e.msg }
func (e *devRPCError) ErrorCode() int { return e.code }

func (d *DevChain) call(ctx context.Context, req rpcRequest) (json.RawMessage, error) {
	switch req.Method {
	case "dpaas_info":
		return json.Marshal(devInfoJSON{
			ChainID: (*hexutil.Big)(d.ChainID()), Token: d.token, Channels: d.channels, Escrow: d.escrow,
			Persistent: d.dir != "", Faucet: true,
		})
	case "dpaas_contracts":
		return json.Marshal(map[string]common.Address{"token": d.token, "channels": d.channels, "escrow": d.escrow})
	case "dpaas_fund":
		to, tokens, err := fundParams(req.Params)
		if err != nil {
			return nil, &devRPCError{code: -32602, msg: "dpaas_fund(address, tokens): " + err.Error()}
		}
		if err := d.Fund(ctx, to, tokens); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]*hexutil.Big{"gas": (*hexutil.Big)(DevGas), "tokens": (*hexutil.Big)(tokens)})
	}
	if !served(req.Method) {
		return nil, &devRPCError{code: -32601, msg: fmt.Sprintf(
			"the method %s is not available: a served dev chain answers only the %s namespaces and dpaas_info, dpaas_contracts, dpaas_fund",
			req.Method, strings.Join(servedNamespaces, ", "))}
	}
	args := make([]any, len(req.Params))
	for i, p := range req.Params {
		args[i] = p
	}
	var result json.RawMessage
	if req.Method == "eth_sendRawTransaction" {
		d.mineMu.Lock()
		defer d.mineMu.Unlock()
		if d.isClosed() {
			return nil, ErrClosed
		}
		if err := d.rpc.CallContext(ctx, &result, req.Method, args...); err != nil {
			return nil, err
		}
		d.seal()
		return result, nil
	}
	err := d.rpc.CallContext(ctx, &result, req.Method, args...)
	return result, err
}

// fundParams decodes dpaas_fund's parameters: an address and, optionally,
// a token amount as a decimal string, a 0x quantity or a JSON number.
func fundParams(params []json.RawMessage) (common.Address, *big.Int, error) {
	if len(params) < 1 || len(params) > 2 {
		return common.Address{}, nil, fmt.Errorf("want 1 or 2 parameters, got %d", len(params))
	}
	var addr string
	if err := json.Unmarshal(params[0], &addr); err != nil || !common.IsHexAddress(addr) {
		return common.Address{}, nil, fmt.Errorf("bad address %s", params[0])
	}
	to := common.HexToAddress(addr)
	if len(params) == 1 || string(params[1]) == "null" {
		return to, new(big.Int), nil
	}
	s := strings.Trim(string(params[1]), `"`)
	n, ok := new(big.Int).SetString(s, 0)
	if !ok || n.Sign() < 0 || n.BitLen() > 256 {
		return common.Address{}, nil, fmt.Errorf("bad token amount %s", params[1])
	}
	return to, n, nil
}
