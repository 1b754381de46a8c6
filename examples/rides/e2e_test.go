package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	rides "github.com/dpaas/dpaas/examples/rides/cluster"
	"github.com/dpaas/dpaas/examples/rides/ride"
	"github.com/dpaas/dpaas/examples/rides/server"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/store"
)

// tcluster is three instances of the DApp (dapptest) on one dev chain, each
// with its HTTP server, as the demo runs them.
type tcluster struct {
	t      *testing.T
	chain  *payment.DevChain
	url    string
	c      *dapptest.Cluster
	srv    []*server.Server
	app    dapp.Manifest
	domain ride.Domain
	fund   common.Address
}

func newCluster(t *testing.T) *tcluster { return newClusterWith(t, nil) }

// newClusterWith starts the test cluster with the members members gives
// for the instances' accounts (nil: the instances' accounts).
func newClusterWith(t *testing.T, members func(instances []common.Address) []common.Address) *tcluster {
	ctx := context.Background()
	chain, err := payment.NewDevChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url, err := chain.Serve("127.0.0.1:0")
	if err != nil {
		chain.Close()
		t.Fatal(err)
	}
	keys := make([]*ecdsa.PrivateKey, 3)
	var accounts []common.Address
	for i := range keys {
		keys[i], _ = crypto.GenerateKey()
		accounts = append(accounts, crypto.PubkeyToAddress(keys[i].PublicKey))
	}
	fund := common.HexToAddress("0xF00D000000000000000000000000000000000001")
	ms := accounts
	if members != nil {
		ms = members(accounts)
	}
	app := rides.Manifest(chain.ChainID().Uint64(), ms, nil, fund, 250)
	cl := &tcluster{t: t, chain: chain, url: url, app: app, domain: server.DomainOf(app), fund: fund}
	cl.c = dapptest.New(t, 3, dapptest.Options{App: app, Configure: func(i int, cfg *dapp.Config) {
		cfg.Key = keys[i]
		cfg.Payment = payment.Config{RPCURL: url}
		cfg.Store = rides.StoreConfig(app)
	}})
	t.Cleanup(func() {
		for _, s := range cl.srv {
			s.Close()
		}
		cl.c.Close()
		chain.Close()
	})
	cl.c.WaitConnected()
	for i := range 3 {
		s, err := server.New(ctx, server.Config{Node: cl.c.Node(i), ChainURL: url, Faucet: chain.Fund, Web: Web()})
		if err != nil {
			t.Fatal(err)
		}
		cl.srv = append(cl.srv, s)
	}
	return cl
}

// user is an end user: their key, and their own wallet on the chain.
type user struct {
	key  *ecdsa.PrivateKey
	addr common.Address
	pay  *payment.Payments
}

func (cl *tcluster) user(tokens int64) *user {
	cl.t.Helper()
	ctx := context.Background()
	k, _ := crypto.GenerateKey()
	u := &user{key: k, addr: crypto.PubkeyToAddress(k.PublicKey)}
	if err := cl.chain.Fund(ctx, u.addr, big.NewInt(tokens)); err != nil {
		cl.t.Fatal(err)
	}
	p, err := payment.Open(ctx, payment.Config{RPCURL: cl.url, Key: k})
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.t.Cleanup(func() { p.Close() })
	u.pay = p
	return u
}

var clock struct {
	sync.Mutex
	last uint64
}

// now is the signing clock: strictly increasing, so that the steps of one
// test never share a millisecond.
func now() uint64 {
	clock.Lock()
	defer clock.Unlock()
	t := uint64(time.Now().UnixMilli())
	if t <= clock.last {
		t = clock.last + 1
	}
	clock.last = t
	return t
}

func (cl *tcluster) sign(u *user, a ride.Action) ride.Action {
	cl.t.Helper()
	if a.TS == 0 {
		a.TS = now()
	}
	if err := cl.domain.Sign(&a, u.key); err != nil {
		cl.t.Fatal(err)
	}
	return a
}

// post sends a signed action to instance i and returns the status and ride.
func (cl *tcluster) post(i int, a ride.Action) (int, ride.State, string) {
	cl.t.Helper()
	b, _ := json.Marshal(a)
	resp, err := http.Post(cl.srv[i].URL()+"/api/actions", "application/json", bytes.NewReader(b))
	if err != nil {
		cl.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&body)
	var st ride.State
	if resp.StatusCode == http.StatusOK {
		_ = json.Unmarshal(body, &st)
	}
	return resp.StatusCode, st, string(body)
}

func (cl *tcluster) must(i int, a ride.Action) ride.State {
	cl.t.Helper()
	code, st, body := cl.post(i, a)
	if code != http.StatusOK {
		cl.t.Fatalf("instance %d refused %s: %d %s", i, a.Kind, code, body)
	}
	return st
}

func (cl *tcluster) get(i int, path string, v any) int {
	cl.t.Helper()
	resp, err := http.Get(cl.srv[i].URL() + path)
	if err != nil {
		cl.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			cl.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// waitRide waits until every instance in on holds ride id in a state cond accepts.
func (cl *tcluster) waitRide(id string, what string, cond func(ride.State) bool, on ...int) ride.State {
	cl.t.Helper()
	if len(on) == 0 {
		on = []int{0, 1, 2}
	}
	var st ride.State
	deadline := time.Now().Add(30 * time.Second)
	for _, i := range on {
		for {
			st = ride.State{}
			if cl.get(i, "/api/rides/"+id, &st) == http.StatusOK && cond(st) {
				break
			}
			if time.Now().After(deadline) {
				cl.t.Fatalf("instance %d: ride %s never %s; last %+v", i, id, what, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return st
}

func inState(s string) func(ride.State) bool {
	return func(st ride.State) bool { return st.State == s }
}

func (cl *tcluster) request(p *user, fare int64) ride.Action {
	ts := now()
	return cl.sign(p, ride.Action{Kind: ride.KindRequest, Ride: ride.RideID(p.addr, ts, 0), TS: ts,
		Data: fmt.Sprintf(`{"from":{"x":100,"y":200},"to":{"x":800,"y":650},"fare":"%d"}`, fare)})
}

func (cl *tcluster) child(u *user, kind string, parent ride.Action, data string) ride.Action {
	return cl.sign(u, ride.Action{Kind: kind, Ride: parent.Ride, Parent: cl.domain.Digest(parent), Data: data})
}

// escrow opens the passenger's deal for the ride's fare on the terms
// instance i serves (governance's fee, fund and panel).
func (cl *tcluster) escrow(i int, p *user, driver common.Address, fare int64) common.Hash {
	cl.t.Helper()
	var info server.Info
	if cl.get(i, "/api/info", &info) != http.StatusOK {
		cl.t.Fatal("no info")
	}
	// The panel as the page asks for it: governance's list for the deal
	// ID a salt makes.
	salt := common.Hash{byte(fare), byte(len(cl.srv))}
	salt[31] = byte(time.Now().UnixNano())
	var panel struct {
		ID        common.Hash      `json:"id"`
		Arbiters  []common.Address `json:"arbiters"`
		PanelSize int              `json:"panelSize"`
	}
	if code := cl.get(i, "/api/panel?payer="+p.addr.Hex()+"&payee="+driver.Hex()+"&salt="+salt.Hex(), &panel); code != http.StatusOK {
		cl.t.Fatalf("panel: HTTP %d", code)
	}
	if slices.Contains(panel.Arbiters, p.addr) || slices.Contains(panel.Arbiters, driver) || panel.PanelSize < 1 || panel.PanelSize > len(panel.Arbiters) {
		cl.t.Fatalf("panel %+v for parties %s, %s", panel, p.addr, driver)
	}
	id, err := p.pay.OpenEscrow(context.Background(), payment.EscrowDeal{Payee: driver, Amount: big.NewInt(fare),
		FeeBps: info.Terms.FeeBps, Fund: info.Terms.Fund, Deadline: time.Now().Add(time.Hour),
		Arbiters: panel.Arbiters, PanelSize: panel.PanelSize, Salt: salt})
	if err != nil {
		cl.t.Fatal(err)
	}
	if id != panel.ID {
		cl.t.Fatalf("deal %s opened, the panel was drawn for %s", id, panel.ID)
	}
	return id
}

func (cl *tcluster) balance(a common.Address) *big.Int {
	b, err := cl.c.Node(0).Payments().Balance(context.Background(), a)
	if err != nil {
		cl.t.Fatal(err)
	}
	return b
}

func TestRideHappyPath(t *testing.T) {
	cl := newCluster(t)
	p, d := cl.user(5000), cl.user(0)
	p0, d0, f0 := cl.balance(p.addr), cl.balance(d.addr), cl.balance(cl.fund)
	const fare = 1000
	req := cl.request(p, fare)
	if st := cl.must(0, req); st.State != ride.StateRequested {
		t.Fatalf("after request: %+v", st)
	}
	cl.waitRide(req.Ride, "requested on B", inState(ride.StateRequested), 1)
	acc := cl.child(d, ride.KindAccept, req, "")
	cl.must(1, acc)
	st := cl.waitRide(req.Ride, "accepted", inState(ride.StateAccepted))
	if st.Driver != d.addr {
		t.Fatalf("driver %s, want %s", st.Driver, d.addr)
	}
	deal := cl.escrow(0, p, d.addr, fare)
	cl.must(0, cl.child(p, ride.KindConfirm, acc, fmt.Sprintf(`{"escrow":"%s"}`, deal.Hex())))
	cl.waitRide(req.Ride, "confirmed", func(s ride.State) bool { return s.Confirmed && s.Escrow == deal }, 1)
	for _, k := range []string{ride.KindArrive, ride.KindStart, ride.KindComplete} {
		cl.must(1, cl.child(d, k, acc, ""))
	}
	cl.waitRide(req.Ride, "completed", inState(ride.StateCompleted))
	if _, err := p.pay.Release(context.Background(), deal); err != nil {
		t.Fatal(err)
	}
	fee := int64(fare * 250 / 10000)
	want := func(who string, a common.Address, before *big.Int, delta int64) {
		if got := new(big.Int).Sub(cl.balance(a), before); got.Int64() != delta {
			t.Errorf("%s: balance changed by %s, want %d", who, got, delta)
		}
	}
	want("passenger", p.addr, p0, -fare)
	want("driver", d.addr, d0, fare-fee)
	want("fund", cl.fund, f0, fee)
	var esc map[string]any
	if cl.get(2, "/api/escrow/"+deal.Hex(), &esc) != http.StatusOK || esc["status"] != "closed" {
		t.Errorf("escrow as instance C reads it: %v", esc)
	}
	cl.must(2, cl.child(p, ride.KindRate, acc, `{"stars":5}`))
	cl.must(0, cl.child(d, ride.KindRate, acc, `{"stars":4}`))
	cl.waitRide(req.Ride, "rated", func(s ride.State) bool { return s.PassengerRating == 5 && s.DriverRating == 4 })
	for i := range 3 {
		var rep ride.Reputation
		cl.get(i, "/api/users/"+d.addr.Hex(), &rep)
		if rep.Driver.Rides != 1 || rep.Driver.Stars != 5 {
			t.Errorf("instance %d: driver reputation %+v", i, rep.Driver)
		}
	}
}

// TestRideSpamNeedsFundsOrReputation: a new key whose wallet cannot pay
// the fare is refused (402), on any instance, and nothing is written; the
// same key with the fare in its wallet is admitted, and not for a fare
// above its balance.
func TestRideSpamNeedsFundsOrReputation(t *testing.T) {
	cl := newCluster(t)
	broke := cl.user(0)
	for i := range cl.srv {
		if code, _, body := cl.post(i, cl.request(broke, 500)); code != http.StatusPaymentRequired || !strings.Contains(body, "must hold the fare") {
			t.Fatalf("instance %d: an unfunded newcomer's request: %d %s", i, code, body)
		}
	}
	if got := cl.srv[0].Rides(); len(got) != 0 {
		t.Fatalf("refused requests were written: %v", got)
	}
	if err := cl.chain.Fund(context.Background(), broke.addr, big.NewInt(500)); err != nil {
		t.Fatal(err)
	}
	if code, _, body := cl.post(1, cl.request(broke, 600)); code != http.StatusPaymentRequired {
		t.Fatalf("a fare over the balance: %d %s", code, body)
	}
	cl.must(1, cl.request(broke, 500))
}

func TestRideCancel(t *testing.T) {
	cl := newCluster(t)
	p, d := cl.user(5000), cl.user(0)
	req := cl.request(p, 500)
	cl.must(2, req)
	cl.waitRide(req.Ride, "requested", inState(ride.StateRequested), 0)
	acc := cl.child(d, ride.KindAccept, req, "")
	cl.must(0, acc)
	cl.waitRide(req.Ride, "accepted", inState(ride.StateAccepted), 2)
	if code, _, _ := cl.post(1, cl.child(d, ride.KindCancel, req, "")); code != http.StatusBadRequest {
		t.Fatalf("a driver's cancel: %d", code)
	}
	cl.must(2, cl.child(p, ride.KindCancel, req, ""))
	cl.waitRide(req.Ride, "cancelled", inState(ride.StateCancelled))
	// Stored, since it is well signed by the driver, but it changes nothing.
	cl.must(1, cl.child(d, ride.KindArrive, acc, ""))
	st := cl.waitRide(req.Ride, "holding 4 actions", func(s ride.State) bool { return s.Actions == 4 })
	if st.State != ride.StateCancelled {
		t.Fatalf("arrive after cancel: %s", st.State)
	}
}

func TestRideConcurrentAccepts(t *testing.T) {
	cl := newCluster(t)
	p, d1, d2 := cl.user(5000), cl.user(0), cl.user(0)
	req := cl.request(p, 700)
	cl.must(0, req)
	cl.waitRide(req.Ride, "requested", inState(ride.StateRequested))
	// Both sign in the same millisecond, so the digest decides.
	ts := now()
	a1 := cl.sign(d1, ride.Action{Kind: ride.KindAccept, Ride: req.Ride, TS: ts, Parent: cl.domain.Digest(req)})
	a2 := cl.sign(d2, ride.Action{Kind: ride.KindAccept, Ride: req.Ride, TS: ts, Parent: cl.domain.Digest(req)})
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, a := range []ride.Action{a1, a2} {
		wg.Go(func() { codes[i], _, _ = cl.post(i, a) })
	}
	wg.Wait()
	if codes[0] != http.StatusOK || codes[1] != http.StatusOK {
		t.Fatalf("accepts answered %v", codes)
	}
	winner := d1.addr
	if bytes.Compare(cl.domain.Digest(a2).Bytes(), cl.domain.Digest(a1).Bytes()) < 0 {
		winner = d2.addr
	}
	for i := range 3 {
		st := cl.waitRide(req.Ride, "holding both offers", func(s ride.State) bool { return len(s.Offers) == 2 }, i)
		if st.Driver != winner || st.State != ride.StateAccepted {
			t.Errorf("instance %d: %s with driver %s, want %s", i, st.State, st.Driver, winner)
		}
	}
	// The loser cannot advance the ride: its steps are stored but skipped.
	loser, lacc := d2, a2
	if winner == d2.addr {
		loser, lacc = d1, a1
	}
	cl.must(2, cl.child(loser, ride.KindArrive, lacc, ""))
	st := cl.waitRide(req.Ride, "holding 4 actions", func(s ride.State) bool { return s.Actions == 4 })
	if st.State != ride.StateAccepted {
		t.Fatalf("after the loser's arrive: %s", st.State)
	}
}

func TestRideForgedActionRefused(t *testing.T) {
	cl := newCluster(t)
	p, d, mallory := cl.user(5000), cl.user(0), cl.user(0)
	req := cl.request(p, 300)
	cl.must(0, req)
	cl.waitRide(req.Ride, "requested", inState(ride.StateRequested))
	acc := cl.child(d, ride.KindAccept, req, "")
	cl.must(0, acc)
	cl.waitRide(req.Ride, "accepted", inState(ride.StateAccepted))
	// Mallory signs a cancel claiming to be the passenger, then a
	// completion claiming to be the driver; and changes the fare of a
	// signed request.
	forged := cl.child(mallory, ride.KindCancel, req, "")
	forged.User = p.addr
	forged2 := cl.child(mallory, ride.KindComplete, acc, "")
	forged2.User = d.addr
	tampered := req
	tampered.Data = `{"from":{"x":100,"y":200},"to":{"x":800,"y":650},"fare":"1"}`
	for _, a := range []ride.Action{forged, forged2, tampered, cl.child(mallory, ride.KindStart, acc, "")} {
		for i := range 3 {
			if code, _, body := cl.post(i, a); code != http.StatusBadRequest {
				t.Errorf("instance %d took a forged %s: %d %s", i, a.Kind, code, body)
			}
		}
	}
	// Written straight into a replica's store, past its server, it is
	// refused by that replica's validator and never reaches the others.
	v, _ := json.Marshal(forged)
	err := cl.c.Node(1).Store().Collection(ride.Collection).Update(context.Background(), req.Ride,
		store.Set(ride.Field(cl.domain.Digest(forged)), json.RawMessage(v)))
	if err == nil {
		t.Fatal("the store took a forged action")
	}
	// A later honest action reaches everyone; the forged ones are nowhere.
	cl.must(1, cl.child(d, ride.KindArrive, acc, ""))
	for i := range 3 {
		st := cl.waitRide(req.Ride, "arriving", inState(ride.StateArriving), i)
		if st.Actions != 3 {
			t.Errorf("instance %d holds %d actions, want 3", i, st.Actions)
		}
		var stats server.Stats
		cl.get(i, "/api/stats", &stats)
		if stats.Refused < 4 {
			t.Errorf("instance %d counted %d refusals", i, stats.Refused)
		}
	}
}

func TestRideDispute(t *testing.T) {
	cl := newCluster(t)
	p, d := cl.user(5000), cl.user(0)
	req := cl.request(p, 800)
	cl.must(1, req)
	cl.waitRide(req.Ride, "requested", inState(ride.StateRequested), 2)
	acc := cl.child(d, ride.KindAccept, req, "")
	cl.must(2, acc)
	cl.waitRide(req.Ride, "accepted", inState(ride.StateAccepted), 1)
	deal := cl.escrow(1, p, d.addr, 800)
	cl.must(1, cl.child(p, ride.KindConfirm, acc, fmt.Sprintf(`{"escrow":"%s"}`, deal.Hex())))
	cl.waitRide(req.Ride, "confirmed", func(s ride.State) bool { return s.Confirmed }, 2)
	cl.must(2, cl.child(d, ride.KindArrive, acc, ""))
	cl.must(2, cl.child(d, ride.KindStart, acc, ""))
	cl.waitRide(req.Ride, "in progress", inState(ride.StateInProgress), 1)
	// The passenger freezes the deal on the chain and records why.
	if _, err := p.pay.Dispute(context.Background(), deal); err != nil {
		t.Fatal(err)
	}
	cl.must(1, cl.child(p, ride.KindDispute, acc, `{"reason":"took a long detour"}`))
	st := cl.waitRide(req.Ride, "disputed", inState(ride.StateDisputed))
	if st.DisputedBy != p.addr || st.Reason != "took a long detour" || st.Escrow != deal {
		t.Fatalf("dispute recorded as %+v", st)
	}
	var esc map[string]any
	if cl.get(0, "/api/escrow/"+deal.Hex(), &esc) != http.StatusOK || esc["status"] != "disputed" {
		t.Fatalf("escrow: %v", esc)
	}
	// The driver can no longer complete it.
	cl.must(2, cl.child(d, ride.KindComplete, acc, ""))
	if st := cl.waitRide(req.Ride, "holding 7 actions", func(s ride.State) bool { return s.Actions == 7 }); st.State != ride.StateDisputed {
		t.Fatalf("complete after dispute: %s", st.State)
	}

	// The passenger's wallet puts the deal before the arbiters, as the page
	// does; the panel (the three instances' members) rules 60% to the
	// driver, and the deal is settled on-chain with exact balances.
	ctx := context.Background()
	q := "deal=" + deal.Hex() + "&party=" + p.addr.Hex()
	cl.submitSigned(0, p, "/api/gov/case?"+q)
	cl.submitSigned(0, p, "/api/gov/evidence?"+q+"&text=took+a+long+detour")
	var panel []common.Address
	cl.c.WaitFor("the case with its panel on every instance", func() bool {
		for _, n := range cl.c.Nodes() {
			c, err := n.Governance().Case(ctx, deal)
			if err != nil || c.OpenedBy != p.addr || len(c.Evidence) != 1 || len(c.Panel) != 3 {
				return false
			}
			panel = c.Panel
		}
		return true
	})
	// The arbiters' instances send the settlement: they need gas.
	for _, a := range panel {
		if err := cl.chain.Fund(ctx, a, big.NewInt(0)); err != nil {
			t.Fatal(err)
		}
	}
	passengerBefore, driverBefore, fundBefore := cl.balance(p.addr), cl.balance(d.addr), cl.balance(cl.fund)
	for _, arbiter := range panel[:2] {
		n := cl.node(arbiter)
		if err := n.Governance().Rule(ctx, deal, 6000); err != nil {
			t.Fatal(err)
		}
	}
	cl.c.WaitFor("the settlement on every instance", func() bool {
		for _, n := range cl.c.Nodes() {
			c, err := n.Governance().Case(ctx, deal)
			if err != nil || c.Settlement == nil || c.Deal.Status != "closed" {
				return false
			}
		}
		return true
	})
	share := int64(800 * 6000 / 10000)
	fee := share * 250 / 10000
	if got := new(big.Int).Sub(cl.balance(d.addr), driverBefore); got.Int64() != share-fee {
		t.Errorf("driver got %v, want %d", got, share-fee)
	}
	if got := new(big.Int).Sub(cl.balance(p.addr), passengerBefore); got.Int64() != 800-share {
		t.Errorf("passenger got back %v, want %d", got, 800-share)
	}
	if got := new(big.Int).Sub(cl.balance(cl.fund), fundBefore); got.Int64() != fee {
		t.Errorf("fund got %v, want %d", got, fee)
	}
}

// submitSigned has u's wallet sign the typed data instance i's governance
// gives for path and submits it there, as the page does.
func (cl *tcluster) submitSigned(i int, u *user, path string) {
	cl.t.Helper()
	var td json.RawMessage
	if code := cl.get(i, path, &td); code != http.StatusOK {
		cl.t.Fatalf("%s: HTTP %d", path, code)
	}
	digest, err := governance.Digest(cl.c.Node(i).AppID(), governance.Genesis{ChainID: cl.chain.ChainID().Uint64()}, td)
	if err != nil {
		cl.t.Fatal(err)
	}
	sig, err := crypto.Sign(digest[:], u.key)
	if err != nil {
		cl.t.Fatal(err)
	}
	sig[64] += 27
	body, _ := json.Marshal(map[string]any{"typedData": td, "signature": hexutil.Bytes(sig)})
	resp, err := http.Post(cl.srv[i].URL()+"/api/gov/submit", "application/json", bytes.NewReader(body))
	if err != nil {
		cl.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		out, _ := io.ReadAll(resp.Body)
		cl.t.Fatalf("submit %s: %d %s", path, resp.StatusCode, out)
	}
}

// node is the instance whose account is a.
func (cl *tcluster) node(a common.Address) *dapp.Node {
	cl.t.Helper()
	for _, n := range cl.c.Nodes() {
		if n.Account() == a {
			return n
		}
	}
	cl.t.Fatalf("no instance has account %s", a)
	return nil
}

// TestDemo starts what `go run ./examples/rides` starts: a dev chain and
// three instances, each serving the web UI, with funded seeded users.
func TestDemo(t *testing.T) {
	ctx := context.Background()
	d, err := rides.StartDemo(ctx, rides.DemoConfig{Web: Web(), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i, in := range d.Instances {
		resp, err := http.Get(in.Server.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		var page bytes.Buffer
		_, _ = page.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(page.Bytes(), []byte("vendor/ethers.umd.min.js")) {
			t.Fatalf("instance %d serves no web UI: %d", i, resp.StatusCode)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(in.Server.URL() + "/api/mirrors")
			if err != nil {
				t.Fatal(err)
			}
			var ms []server.Mirror
			_ = json.NewDecoder(resp.Body).Decode(&ms)
			resp.Body.Close()
			if len(ms) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %d knows %d mirrors", i, len(ms))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, u := range d.Users {
		b, err := d.Instances[0].Node.Payments().Balance(ctx, crypto.PubkeyToAddress(u.Key.PublicKey))
		if err != nil || b.Int64() != 10_000 {
			t.Fatalf("%s holds %v tokens (%v)", u.Name, b, err)
		}
	}
	// The demo then ships its UI as a release: every instance serves it
	// from the release's directory, through its gateway, and runs a
	// verified build (the release names this executable's hash).
	nodes := make([]*dapp.Node, len(d.Instances))
	for i, in := range d.Instances {
		nodes[i] = in.Node
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	root, err := rides.PublishUI(pctx, nodes, Web(), "1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	index, err := fs.ReadFile(Web(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range d.Instances {
		before := in.Node.GatewayStats().UIServed
		resp, err := http.Get(in.Server.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(page, index) || in.Node.GatewayStats().UIServed != before+1 {
			t.Fatalf("instance %d: / is %d, %d bytes, served by the gateway %d times, want release %s's index.html", i, resp.StatusCode, len(page), in.Node.GatewayStats().UIServed-before, root)
		}
	}
	for i, in := range d.Instances {
		deadline := time.Now().Add(time.Minute)
		for {
			rs, err := in.Node.Replicas().List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			verified := 0
			for _, r := range rs {
				if r.Verified && r.VerifiedRelease == "1" {
					verified++
				}
			}
			if verified == len(d.Instances) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %d lists %d verified instances: %+v", i, verified, rs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
