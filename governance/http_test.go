package governance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/governance"
)

// TestHandlerWalletVote: a web page's user, whose key never leaves their
// wallet, gets the typed data to sign, posts the signature, and sees the
// ballot counted.
func TestHandlerWalletVote(t *testing.T) {
	ctx := context.Background()
	key, _ := crypto.GenerateKey()
	wallet, _ := crypto.GenerateKey()
	voter := crypto.PubkeyToAddress(wallet.PublicKey)
	node, err := dapp.Open(ctx, dapp.Config{
		Key:         key,
		App:         dapp.Manifest{Name: t.Name(), Members: []common.Address{crypto.PubkeyToAddress(key.PublicKey), voter}},
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	g := node.Governance()
	id, err := g.Propose(ctx, governance.Proposal{Title: "from the web", Type: governance.SingleChoice,
		Choices: []string{"a", "b"}, End: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/gov", g.Handler()))
	defer srv.Close()
	get := func(path string, wantStatus int) []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + "/gov" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, body, wantStatus)
		}
		return body
	}
	post := func(body any, wantStatus int) []byte {
		t.Helper()
		raw, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL+"/gov/submit", "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("POST /submit: %d %s, want %d", resp.StatusCode, out, wantStatus)
		}
		return out
	}

	var list []governance.Result
	if err := json.Unmarshal(get("/proposals", 200), &list); err != nil || len(list) != 1 || list[0].Title != "from the web" {
		t.Fatalf("proposals: %+v, %v", list, err)
	}
	typed := get("/ballot?proposal="+id.String()+"&voter="+voter.Hex()+"&choice=1&reason=web", 200)
	digest, err := governance.Digest(node.AppID(), governance.Genesis{}, typed)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := governance.KeySigner(wallet).Sign(ctx, typed, digest) // what the wallet does
	if err != nil {
		t.Fatal(err)
	}
	post(map[string]any{"typedData": json.RawMessage(typed), "signature": hexutil.Bytes(sig)}, 200)
	var res governance.Result
	if err := json.Unmarshal(get("/proposals/"+id.String(), 200), &res); err != nil {
		t.Fatal(err)
	}
	if res.Voters != 1 || res.Scores[1].Int64() != 1 {
		t.Fatalf("after the wallet's ballot: voters %d scores %v", res.Voters, res.Scores)
	}

	// Bad input gets a 4xx and changes nothing.
	sig[10] ^= 1
	post(map[string]any{"typedData": json.RawMessage(typed), "signature": hexutil.Bytes(sig)}, 400)
	post(map[string]any{"typedData": json.RawMessage(`{"primaryType":"Mail"}`), "signature": "0x00"}, 400)
	post("not an object", 400)
	get("/proposals/0x1234", 400)
	get("/proposals/"+governance.ID{9}.String(), 404)
	get("/ballot?proposal="+id.String()+"&voter=nobody&choice=1", 400)
	get("/ballot?proposal="+id.String()+"&voter="+voter.Hex()+"&choice=x", 400)
	if r, _ := g.Result(ctx, id); r.Voters != 1 {
		t.Fatalf("bad input changed the count: %d voters", r.Voters)
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(get("/params", 200), &params); err != nil {
		t.Fatal(err)
	}
	var members []common.Address
	if err := json.Unmarshal(get("/members", 200), &members); err != nil || len(members) != 2 {
		t.Fatalf("members %v, %v", members, err)
	}
}
