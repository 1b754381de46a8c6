package payment

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// rpcPost sends body to url with the given content type and origin ("" for
// none) and returns the HTTP status and the answer.
func rpcPost(t *testing.T, url, contentType, origin, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

type rpcAnswer struct {
	Result json.RawMessage
	Error  *struct {
		Code    int
		Message string
	}
}

func rpcCall(t *testing.T, url, method string, params ...any) rpcAnswer {
	t.Helper()
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	code, out := rpcPost(t, url, "application/json", "", string(body))
	if code != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", method, code, out)
	}
	var a rpcAnswer
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("%s: answer %s: %v", method, out, err)
	}
	return a
}

func blockNumber(t *testing.T, url string) uint64 {
	t.Helper()
	a := rpcCall(t, url, "eth_blockNumber")
	var n hexutil.Uint64
	if a.Error != nil || json.Unmarshal(a.Result, &n) != nil {
		t.Fatalf("eth_blockNumber = %s %+v", a.Result, a.Error)
	}
	return uint64(n)
}

// TestServeOnlyPublicNamespaces: the node's admin, debug, miner, txpool
// and engine modules are not reachable over HTTP; debug_setHead used to
// rewind the chain.
func TestServeOnlyPublicNamespaces(t *testing.T) {
	d := newDev(t)
	url, err := d.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for range 3 {
		if err := d.Fund(ctx, common.Address{1}, big.NewInt(1)); err != nil {
			t.Fatal(err)
		}
	}
	head := blockNumber(t, url)
	if head < 6 {
		t.Fatalf("head %d after three Funds, want >= 6", head)
	}
	for _, call := range []struct {
		method string
		params []any
	}{
		{"debug_setHead", []any{"0x1"}},
		{"admin_nodeInfo", nil},
		{"admin_peers", nil},
		{"miner_setExtra", []any{"0x00"}},
		{"txpool_content", nil},
		{"debug_chaindbCompact", nil},
		{"engine_forkchoiceUpdatedV3", []any{}},
		{"personal_listAccounts", nil},
		{"rpc_modules", nil},
	} {
		a := rpcCall(t, url, call.method, call.params...)
		if a.Error == nil || a.Error.Code != -32601 || !strings.Contains(a.Error.Message, "not available") {
			t.Errorf("%s answered %s %+v, want method not available", call.method, a.Result, a.Error)
		}
	}
	if got := blockNumber(t, url); got != head {
		t.Fatalf("head moved from %d to %d", head, got)
	}
	// eth, net and web3 work, alone and in a batch.
	for _, m := range []string{"eth_chainId", "net_version", "web3_clientVersion", "eth_gasPrice"} {
		if a := rpcCall(t, url, m); a.Error != nil || len(a.Result) == 0 {
			t.Errorf("%s = %s %+v", m, a.Result, a.Error)
		}
	}
	code, body := rpcPost(t, url, "application/json", "",
		`[{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"},{"jsonrpc":"2.0","id":2,"method":"debug_setHead","params":["0x0"]}]`)
	if code != http.StatusOK || !strings.Contains(body, "-32601") || !strings.Contains(body, fmt.Sprintf("%#x", head)) {
		t.Fatalf("batch answered %d %s", code, body)
	}
	if got := blockNumber(t, url); got != head {
		t.Fatalf("head moved from %d to %d after a batch", head, got)
	}
	huge := "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},`, maxRPCBatch) + `{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}]`
	if code, body := rpcPost(t, url, "application/json", "", huge); code != http.StatusOK || !strings.Contains(body, "-32600") {
		t.Fatalf("oversized batch answered %d %.200s", code, body)
	}
}

// TestServeRefusesBrowserRequests: a text/plain POST (which a web page
// sends without a CORS preflight) and a request from a foreign origin are
// refused before anything runs; an allowed origin gets CORS answers.
func TestServeRefusesBrowserRequests(t *testing.T) {
	d := newDev(t)
	url, err := d.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	fund := `{"jsonrpc":"2.0","id":1,"method":"dpaas_fund","params":["0x9900000000000000000000000000000000000000","5"]}`
	for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		if code, body := rpcPost(t, url, ct, "", fund); code != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q answered %d %s, want 415", ct, code, body)
		}
	}
	if code, body := rpcPost(t, url, "application/json", "https://evil.example", fund); code != http.StatusForbidden {
		t.Errorf("foreign origin answered %d %s, want 403", code, body)
	}
	if code, _ := rpcPost(t, url, "text/plain", "https://evil.example", fund); code != http.StatusForbidden {
		t.Errorf("foreign origin with text/plain answered %d, want 403", code)
	}
	// None of them minted anything.
	p := openFunded(t, d, Config{}, nil)
	if b := balance(t, p, common.Address{0x99}); b.Sign() != 0 {
		t.Fatalf("refused requests minted %v", b)
	}
	// application/json with a charset is fine, and the faucet works.
	if code, body := rpcPost(t, url, "application/json; charset=utf-8", "", fund); code != http.StatusOK || strings.Contains(body, "error") {
		t.Fatalf("faucet answered %d %s", code, body)
	}
	if b := balance(t, p, common.Address{0x99}); b.Cmp(big.NewInt(5)) != 0 {
		t.Fatalf("faucet gave %v tokens, want 5", b)
	}

	// An origin the caller allows: preflight and request get CORS headers.
	allowedURL, err := d.Serve("", "http://localhost:3000")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodOptions, allowedURL, nil)
	req.Header.Set("Origin", "http://localhost:3000")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "content-type") {
		t.Fatalf("preflight answered %d %v", resp.StatusCode, resp.Header)
	}
	code, body := rpcPost(t, allowedURL, "application/json", "http://localhost:3000", `{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}`)
	if code != http.StatusOK || !strings.Contains(body, fmt.Sprintf("%#x", d.ChainID())) {
		t.Fatalf("allowed origin answered %d %s", code, body)
	}
	if code, _ := rpcPost(t, allowedURL, "application/json", "http://localhost:3001", `{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}`); code != http.StatusForbidden {
		t.Fatalf("another origin on the allowing server answered %d", code)
	}
	if code, body := rpcPost(t, url, "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"dpaas_fund","params":["0x12"]}`); code != http.StatusOK || !strings.Contains(body, "-32602") {
		t.Fatalf("bad faucet address answered %d %s", code, body)
	}
}
