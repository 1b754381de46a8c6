package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
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

func TestServeRelaysJSONRPC(t *testing.T) {
	d := newDev(t)
	url, err := d.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	if d.URL() != url {
		t.Fatalf("URL() = %q, Serve returned %q", d.URL(), url)
	}
	code, body := post(t, url, `[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":"x","method":"dpaas_contracts"},{"jsonrpc":"2.0","id":3,"method":"no_such"}]`)
	if code != http.StatusOK {
		t.Fatalf("batch: HTTP %d %s", code, body)
	}
	var batch []struct {
		ID     json.RawMessage
		Result json.RawMessage
		Error  *struct{ Code int }
	}
	if err := json.Unmarshal([]byte(body), &batch); err != nil || len(batch) != 3 {
		t.Fatalf("batch answer %s: %v", body, err)
	}
	if want := fmt.Sprintf(`"%#x"`, d.ChainID()); string(batch[0].Result) != want {
		t.Fatalf("eth_chainId = %s, want %s", batch[0].Result, want)
	}
	if string(batch[1].ID) != `"x"` || !strings.Contains(strings.ToLower(string(batch[1].Result)), strings.ToLower(d.Channels().Hex())) {
		t.Fatalf("dpaas_contracts = %s", batch[1].Result)
	}
	if batch[2].Error == nil || batch[2].Error.Code != -32601 {
		t.Fatalf("unknown method answered %s", body)
	}
	if _, body := post(t, url, `{not json`); !strings.Contains(body, "-32700") {
		t.Fatalf("garbage answered %s", body)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET answered %d", resp.StatusCode)
	}
}

func TestOpenForeignEndpointNeedsContracts(t *testing.T) {
	// An Ethereum endpoint that is not a DevChain: it knows no
	// dpaas_contracts, so Open must ask for the addresses.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage
			Method string
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		if req.Method == "eth_chainId" {
			_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": "0x1"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"jsonrpc": "2.0", "id": req.ID,
			"error": map[string]any{"code": -32601, "message": "the method does not exist"},
		})
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{RPCURL: srv.URL})
	if !errors.Is(err, ErrNoContracts) {
		t.Fatalf("Open on a foreign endpoint = %v, want ErrNoContracts", err)
	}
	srv.CloseClientConnections()
}
