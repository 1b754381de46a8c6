package governance_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/payment"
)

// milliTokens is n thousandths of a token (18 decimals).
func milliTokens(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e15)) }

// caseCluster is a governance cluster whose members have tokens on the
// dev chain.
func newCaseCluster(t *testing.T, n int, change func(*dapp.Manifest)) (*govCluster, []common.Address) {
	t.Helper()
	gc := newGovCluster(t, n, change)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var members []common.Address
	for _, k := range gc.keys {
		a := crypto.PubkeyToAddress(k.PublicKey)
		members = append(members, a)
		if err := gc.dev.Fund(ctx, a, milliTokens(1000_000)); err != nil {
			t.Fatal(err)
		}
	}
	return gc, members
}

func (gc *govCluster) index(t *testing.T, a common.Address) int {
	t.Helper()
	for i, k := range gc.keys {
		if crypto.PubkeyToAddress(k.PublicKey) == a {
			return i
		}
	}
	t.Fatalf("%s is no node's account", a)
	return -1
}

// waitCase waits until every running node sees the case on deal and
// cond holds for it, and returns what node 0 (or the first running) sees.
func (gc *govCluster) waitCase(what string, deal payment.DealID, cond func(governance.Case) bool) governance.Case {
	var got governance.Case
	gc.WaitFor(what, func() bool {
		for _, n := range gc.Nodes() {
			c, err := n.Governance().Case(context.Background(), deal)
			if err != nil || !cond(c) {
				return false
			}
			got = c
		}
		return true
	})
	return got
}

func balanceOf(t *testing.T, p *payment.Payments, who common.Address) *big.Int {
	t.Helper()
	b, err := p.Balance(context.Background(), who)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCaseSettledByPanel: a deal between two members of a 5-instance
// DApp, disputed by the payee; every instance draws the same panel of 3
// (the other members, in the deal's order), both parties attach evidence,
// two arbiters of three agree on 70% to the payee, and the deal is settled
// on-chain with exact balances, the settlement recorded everywhere.
func TestCaseSettledByPanel(t *testing.T) {
	gc, members := newCaseCluster(t, 5, nil)
	ctx := context.Background()
	payer, payee := gc.gov(0), gc.gov(1)
	fund := common.HexToAddress("0xf00d")
	amount := milliTokens(100_000)
	id, err := payer.OpenDeal(ctx, payment.EscrowDeal{
		Payee: members[1], Amount: amount, FeeBps: 200, Fund: fund, Deadline: gc.dev.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	list := governance.ArbiterList(id, members, nil, members[0], members[1])
	if len(list) != 3 || slices.Contains(list, members[0]) || slices.Contains(list, members[1]) {
		t.Fatalf("arbiter list %v", list)
	}
	gc.WaitFor("the deal recorded on every node", func() bool {
		for _, n := range gc.Nodes() {
			ds, err := n.Governance().Deals(ctx)
			if err != nil || len(ds) != 1 || ds[0].ID != id || ds[0].Status != "open" || ds[0].Recorded.IsZero() ||
				!reflect.DeepEqual(ds[0].Arbiters, list) || ds[0].PanelSize != 3 {
				return false
			}
		}
		return true
	})
	before := balanceOf(t, gc.Node(0).Payments(), members[0])

	// Only a party opens a case.
	if err := gc.gov(gc.index(t, list[0])).OpenCase(ctx, id); !errors.Is(err, governance.ErrNotParty) {
		t.Fatalf("OpenCase by an arbiter = %v, want ErrNotParty", err)
	}
	// The payee disputes the deal on-chain itself. An arbiter's case
	// written straight into the store, well signed, is stored but counts
	// nowhere: no case until a party opens one.
	if _, err := gc.Node(1).Payments().Dispute(ctx, id); err != nil {
		t.Fatal(err)
	}
	arb := gc.index(t, list[0])
	// Earlier than the payee's: it would be the opening if it counted.
	forged := &govmsg.Case{Deal: id, Party: list[0], Time: uint64(gc.clock.Now().UnixMilli()) - 1000}
	dom := govmsg.NewDomain(big.NewInt(1337), [32]byte(gc.Node(0).AppID()))
	sig, err := govmsg.Sign(gc.keys[arb], forged.Digest(dom))
	if err != nil {
		t.Fatal(err)
	}
	forgedID := id.Hex()[2:] + "-" + strings.ToLower(list[0].Hex()[2:])
	if err := gc.Node(arb).Store().Collection(governance.CasesCollection).Put(ctx, forgedID, map[string]any{
		"deal": id, "party": list[0], "time": forged.Time, "sig": hexutil.Bytes(sig),
	}); err != nil {
		t.Fatalf("a well-signed case document refused by the store: %v", err)
	}
	gc.WaitFor("the arbiter's case document on every node", func() bool {
		for _, n := range gc.Nodes() {
			if _, err := n.Store().Collection(governance.CasesCollection).GetRaw(ctx, forgedID); err != nil {
				return false
			}
		}
		return true
	})
	gc.WaitFor("the deal disputed on every node", func() bool {
		for _, n := range gc.Nodes() {
			ds, err := n.Governance().Deals(ctx)
			if err != nil || len(ds) != 1 || ds[0].Status != "disputed" {
				return false
			}
		}
		return true
	})
	for i, n := range gc.Nodes() {
		if _, err := n.Governance().Case(ctx, id); !errors.Is(err, governance.ErrNoCase) {
			t.Fatalf("node %d: Case after a non-party's opening = %v, want ErrNoCase", i, err)
		}
	}
	// A forged one (the signature of another document) is refused.
	if err := gc.Node(arb).Store().Collection(governance.CasesCollection).Put(ctx, forgedID, map[string]any{
		"deal": id, "party": list[0], "time": forged.Time + 1, "sig": hexutil.Bytes(sig),
	}); err == nil {
		t.Fatal("a case document with a wrong signature was stored")
	}
	if err := payee.OpenCase(ctx, id); err != nil {
		t.Fatal(err)
	}
	c := gc.waitCase("the case with its panel on every node", id, func(c governance.Case) bool {
		return c.Deal.Status == "disputed" && reflect.DeepEqual(c.Panel, list) && c.OpenedBy == members[1]
	})
	if len(c.Replaced) != 0 || c.Decided || c.Window != governance.DefaultCaseWindow {
		t.Fatalf("fresh case: %+v", c)
	}

	// Evidence from both parties; not from an arbiter, not over the limits.
	blob := "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
	if _, err := payer.AddEvidence(ctx, id, governance.Evidence{Text: "the ride never reached the airport", Docs: []string{"rides/42"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := payee.AddEvidence(ctx, id, governance.Evidence{Text: "road closed; GPS trace attached", Blobs: []string{blob}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.gov(gc.index(t, list[1])).AddEvidence(ctx, id, governance.Evidence{Text: "hearsay"}); !errors.Is(err, governance.ErrNotParty) {
		t.Fatalf("evidence by an arbiter = %v, want ErrNotParty", err)
	}
	for name, e := range map[string]governance.Evidence{
		"too long":    {Text: string(make([]byte, governance.MaxEvidenceText+1))},
		"not a CID":   {Blobs: []string{"not-a-cid"}},
		"bad doc ref": {Docs: []string{"no-slash"}},
	} {
		if _, err := payer.AddEvidence(ctx, id, e); !errors.Is(err, governance.ErrInvalid) {
			t.Errorf("evidence %s = %v, want ErrInvalid", name, err)
		}
	}
	gc.waitCase("both parties' evidence on every node", id, func(c governance.Case) bool { return len(c.Evidence) == 2 })

	// Ballots: a party may not rule; two of three agree.
	if err := payer.Rule(ctx, id, 0); !errors.Is(err, governance.ErrNotArbiter) {
		t.Fatalf("Rule by a party = %v, want ErrNotArbiter", err)
	}
	if err := gc.gov(gc.index(t, list[2])).Rule(ctx, id, 2000); err != nil {
		t.Fatal(err)
	}
	if err := gc.gov(gc.index(t, list[0])).Rule(ctx, id, 7000); err != nil {
		t.Fatal(err)
	}
	gc.waitCase("two ballots, undecided, on every node", id, func(c governance.Case) bool { return len(c.Ballots) == 2 && !c.Decided })
	if err := gc.gov(gc.index(t, list[1])).Rule(ctx, id, 7000); err != nil {
		t.Fatal(err)
	}
	c = gc.waitCase("the settlement on every node", id, func(c governance.Case) bool {
		return c.Settlement != nil && c.Settlement.OnChain && c.Deal.Status == "closed"
	})
	if c.OpenedBy != members[1] || !c.Decided || c.PayeeBps != 7000 || !reflect.DeepEqual(c.Majority, []common.Address{list[0], list[1]}) || c.Settlement.PayeeBps != 7000 {
		t.Fatalf("settled case: %+v", c)
	}
	gc.WaitFor("the settlement document on every node", func() bool {
		for _, n := range gc.Nodes() {
			c, err := n.Governance().Case(ctx, id)
			if err != nil || c.Settlement == nil || c.Settlement.By == (common.Address{}) {
				return false
			}
		}
		return true
	})
	// 70% to the payee, less 2% of it to the fund; 30% back to the payer.
	p := gc.Node(2).Payments()
	toPayee := milliTokens(70_000)
	fee := new(big.Int).Div(new(big.Int).Mul(toPayee, big.NewInt(200)), big.NewInt(10_000))
	if got, want := balanceOf(t, p, members[1]), new(big.Int).Add(milliTokens(1000_000), new(big.Int).Sub(toPayee, fee)); got.Cmp(want) != 0 {
		t.Errorf("payee holds %v, want %v", got, want)
	}
	if got := balanceOf(t, p, fund); got.Cmp(fee) != 0 {
		t.Errorf("fund holds %v, want %v", got, fee)
	}
	if got, want := balanceOf(t, p, members[0]), new(big.Int).Add(before, milliTokens(30_000)); got.Cmp(want) != 0 {
		t.Errorf("payer holds %v, want %v", got, want)
	}
	if got := balanceOf(t, p, gc.dev.Escrow()); got.Sign() != 0 {
		t.Errorf("escrow holds %v after settling", got)
	}
	// A second submission is refused by the contract and changes nothing.
	var sigs [][]byte
	for _, b := range c.Ballots {
		if b.PayeeBps == 7000 {
			sigs = append(sigs, b.Ruling)
		}
	}
	if _, err := gc.Node(3).Payments().Settle(ctx, id, 7000, sigs); !errors.Is(err, payment.ErrDealClosed) {
		t.Fatalf("second settlement = %v, want ErrDealClosed", err)
	}

	// Every replica serves the case over HTTP with its transaction.
	srv := httptest.NewServer(gc.gov(4).Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/cases/" + id.Hex())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var served governance.Case
	if err := json.NewDecoder(resp.Body).Decode(&served); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /cases/{id}: %d, %v", resp.StatusCode, err)
	}
	if served.Settlement == nil || served.Settlement.Tx != c.Settlement.Tx || len(served.Evidence) != 2 || len(served.Ballots) != 3 {
		t.Fatalf("served case: %+v", served)
	}
	var list2 []governance.Case
	var deals []governance.Deal
	for path, dst := range map[string]any{"/cases": &list2, "/deals": &deals} {
		r, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(r.Body).Decode(dst)
		r.Body.Close()
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("GET %s: %d, %v", path, r.StatusCode, err)
		}
	}
	if len(list2) != 1 || list2[0].Deal.ID != id || len(deals) != 1 || deals[0].Status != "closed" || deals[0].Amount.ToInt().Cmp(amount) != 0 {
		t.Fatalf("served cases %+v, deals %+v", list2, deals)
	}
	resp2, err := srv.Client().Get(srv.URL + "/cases/0x" + common.Bytes2Hex(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 404 {
		t.Fatalf("GET an unknown case: %d, want 404", resp2.StatusCode)
	}
}

// TestCasePanelMemberReplaced: a panel of one whose arbiter is down; at
// the end of the case window every replica replaces it by the next of the
// deal's list, whose ruling settles the deal.
func TestCasePanelMemberReplaced(t *testing.T) {
	gc, members := newCaseCluster(t, 5, func(m *dapp.Manifest) {
		m.Params = map[string]string{governance.ParamArbiters: "1", governance.ParamCaseWindow: "30s"}
	})
	ctx := context.Background()
	amount := milliTokens(50_000)
	id, err := gc.gov(0).OpenDeal(ctx, payment.EscrowDeal{Payee: members[1], Amount: amount, Deadline: gc.dev.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	list := governance.ArbiterList(id, members, nil, members[0], members[1])
	down, next := gc.index(t, list[0]), gc.index(t, list[1])
	gc.Stop(down)
	before := balanceOf(t, gc.Node(0).Payments(), members[0])
	if err := gc.gov(0).OpenCase(ctx, id); err != nil {
		t.Fatal(err)
	}
	c := gc.waitCase("the case on every running node", id, func(c governance.Case) bool {
		return reflect.DeepEqual(c.Panel, list[:1]) && c.Deal.PanelSize == 1
	})
	if c.Window != 30*time.Second || !c.RoundEnd.Equal(c.Opened.Add(30*time.Second)) {
		t.Fatalf("window %s, round end %s for a case opened at %s", c.Window, c.RoundEnd, c.Opened)
	}
	if err := gc.gov(next).Rule(ctx, id, 10_000); !errors.Is(err, governance.ErrNotArbiter) {
		t.Fatalf("Rule by the next of the list before the window ends = %v, want ErrNotArbiter", err)
	}
	gc.clock.Advance(30 * time.Second)
	gc.waitCase("the silent arbiter replaced on every running node", id, func(c governance.Case) bool {
		return reflect.DeepEqual(c.Panel, list[1:2]) && reflect.DeepEqual(c.Replaced, list[:1])
	})
	if err := gc.gov(next).Rule(ctx, id, 10_000); err != nil {
		t.Fatal(err)
	}
	c = gc.waitCase("the settlement on every running node", id, func(c governance.Case) bool {
		return c.Settlement != nil && c.Settlement.OnChain && c.Deal.Status == "closed"
	})
	if c.PayeeBps != 10_000 || !reflect.DeepEqual(c.Majority, list[1:2]) {
		t.Fatalf("settled case: %+v", c)
	}
	// The arbiter that was down comes back and sees the same case: itself
	// replaced, the settlement with its transaction.
	gc.Restart(down)
	gc.WaitConnected()
	gc.waitCase("the settled case on every node, the restarted one included", id, func(x governance.Case) bool {
		return x.Settlement != nil && x.Settlement.By != (common.Address{}) && x.Deal.Status == "closed"
	})
	back, err := gc.gov(down).Case(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if back.Settlement.Tx != c.Settlement.Tx || !reflect.DeepEqual(back.Replaced, list[:1]) || !reflect.DeepEqual(back.Panel, list[1:2]) {
		t.Fatalf("the restarted arbiter sees %+v, the others %+v", back, c)
	}
	p := gc.Node(0).Payments()
	if got, want := balanceOf(t, p, members[1]), new(big.Int).Add(milliTokens(1000_000), amount); got.Cmp(want) != 0 {
		t.Errorf("payee holds %v, want %v", got, want)
	}
	if got := balanceOf(t, p, members[0]); got.Cmp(before) != 0 {
		t.Errorf("payer holds %v, want %v", got, before)
	}
}

// TestCaseTwoArbitersReplaced: a panel of 3 drawn from a list of 5 in
// which two members have no running instance and sit on the first panel
// (the deal's salt is chosen for that). The running arbiter alone is no
// majority; at the end of the window both absent members are replaced by
// the last two of the list, whose rulings with the first settle the deal:
// three signatures from positions a strict majority of the original
// panel never held.
func TestCaseTwoArbitersReplaced(t *testing.T) {
	var absent []common.Address
	for range 2 {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		absent = append(absent, crypto.PubkeyToAddress(k.PublicKey))
	}
	gc, members := newCaseCluster(t, 5, func(m *dapp.Manifest) {
		m.Members = append(m.Members, absent...)
		m.Params = map[string]string{governance.ParamCaseWindow: "30s"}
	})
	all := append(slices.Clone(members), absent...)
	ctx := context.Background()
	var salt [32]byte
	var list []common.Address
	for i := 1; ; i++ {
		salt[0], salt[1] = byte(i), byte(i>>8)
		id := payment.EscrowDealID(gc.dev.ChainID(), gc.dev.Escrow(), members[0], salt)
		list = governance.ArbiterList(id, all, nil, members[0], members[1])
		if slices.Contains(list[:3], absent[0]) && slices.Contains(list[:3], absent[1]) {
			break
		}
	}
	id, err := gc.gov(0).OpenDeal(ctx, payment.EscrowDeal{Payee: members[1], Amount: milliTokens(9_000), Deadline: gc.dev.Now().Add(time.Hour), Salt: salt})
	if err != nil {
		t.Fatal(err)
	}
	if err := gc.gov(0).OpenCase(ctx, id); err != nil {
		t.Fatal(err)
	}
	gc.waitCase("the first panel on every node", id, func(c governance.Case) bool {
		return reflect.DeepEqual(c.Panel, list[:3]) && c.Deal.PanelSize == 3 && len(c.Deal.Arbiters) == 5
	})
	var first common.Address
	for _, a := range list[:3] {
		if !slices.Contains(absent, a) {
			first = a
		}
	}
	before := balanceOf(t, gc.Node(0).Payments(), members[0])
	if err := gc.gov(gc.index(t, first)).Rule(ctx, id, 4000); err != nil {
		t.Fatal(err)
	}
	gc.waitCase("one ballot, no majority, on every node", id, func(c governance.Case) bool { return len(c.Ballots) == 1 && !c.Decided })
	gc.clock.Advance(30 * time.Second)
	var replaced []common.Address
	for _, a := range list[:3] {
		if a != first {
			replaced = append(replaced, a)
		}
	}
	panel := []common.Address{first, list[3], list[4]}
	gc.waitCase("both absent arbiters replaced on every node", id, func(c governance.Case) bool {
		return reflect.DeepEqual(c.Replaced, replaced) && len(c.Panel) == 3 && slices.Contains(c.Panel, first) &&
			slices.Contains(c.Panel, list[3]) && slices.Contains(c.Panel, list[4])
	})
	for _, a := range panel[1:] {
		if err := gc.gov(gc.index(t, a)).Rule(ctx, id, 4000); err != nil {
			t.Fatal(err)
		}
	}
	c := gc.waitCase("the settlement on every node", id, func(c governance.Case) bool {
		return c.Settlement != nil && c.Settlement.OnChain && c.Deal.Status == "closed"
	})
	if c.PayeeBps != 4000 || len(c.Majority) != 3 {
		t.Fatalf("settled case: %+v", c)
	}
	p := gc.Node(0).Payments()
	if got, want := balanceOf(t, p, members[1]), new(big.Int).Add(milliTokens(1000_000), milliTokens(3_600)); got.Cmp(want) != 0 {
		t.Errorf("payee holds %v, want %v", got, want)
	}
	if got, want := balanceOf(t, p, members[0]), new(big.Int).Add(before, milliTokens(5_400)); got.Cmp(want) != 0 {
		t.Errorf("payer holds %v, want %v", got, want)
	}
}

// TestCaseSubmittedFromWallet: the parties are users with wallets, not
// instances (as in a ride-hailing page). The payee disputes the deal
// on-chain, then opens the case and attaches evidence by signing the typed
// data the Handler gives (eth_signTypedData_v4) and posting it to /submit;
// every instance then holds the case with its panel. A non-party's, a
// badly signed or a not-yet-disputed submission is refused.
func TestCaseSubmittedFromWallet(t *testing.T) {
	gc, members := newCaseCluster(t, 3, nil)
	ctx := context.Background()
	wallet := func() (*ecdsa.PrivateKey, *payment.Payments) {
		k, _ := crypto.GenerateKey()
		if err := gc.dev.Fund(ctx, crypto.PubkeyToAddress(k.PublicKey), milliTokens(1000_000)); err != nil {
			t.Fatal(err)
		}
		p, err := payment.Open(ctx, payment.Config{Dev: gc.dev, Key: k})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return k, p
	}
	payerKey, payer := wallet()
	payeeKey, payee := wallet()
	outsiderKey, _ := wallet()
	payerAddr, payeeAddr := payer.Account(), payee.Account()
	salt := [32]byte{7}
	id := payer.EscrowDealID(salt)
	list := governance.ArbiterList(id, members, nil, payerAddr, payeeAddr)
	if got, err := payer.OpenEscrow(ctx, payment.EscrowDeal{Payee: payeeAddr, Amount: milliTokens(5_000),
		Deadline: gc.dev.Now().Add(time.Hour), Arbiters: list, PanelSize: 3, Salt: salt}); err != nil || got != id {
		t.Fatalf("open: %s, %v (want %s)", got, err, id)
	}
	srv := httptest.NewServer(gc.gov(0).Handler())
	defer srv.Close()
	// sign fetches typed data from path, signs it with key as a wallet
	// does, and posts both to /submit.
	sign := func(key *ecdsa.PrivateKey, path string) (int, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		td, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return res.StatusCode, string(td)
		}
		digest, err := governance.Digest(gc.Node(0).AppID(), governance.Genesis{}, td)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := crypto.Sign(digest[:], key)
		if err != nil {
			t.Fatal(err)
		}
		sig[64] += 27 // as wallets give it
		body, _ := json.Marshal(map[string]any{"typedData": json.RawMessage(td), "signature": hexutil.Bytes(sig)})
		res, err = http.Post(srv.URL+"/submit", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(out)
	}
	casePath := func(party common.Address) string {
		return "/case?deal=" + id.Hex() + "&party=" + party.Hex()
	}
	if code, out := sign(payeeKey, casePath(payeeAddr)); code != http.StatusBadRequest || !strings.Contains(out, "not disputed") {
		t.Fatalf("a case on a deal not disputed on-chain: %d %s", code, out)
	}
	if _, err := payee.Dispute(ctx, id); err != nil {
		t.Fatal(err)
	}
	if code, out := sign(outsiderKey, casePath(crypto.PubkeyToAddress(outsiderKey.PublicKey))); code != http.StatusBadRequest || !strings.Contains(out, "not a party") {
		t.Fatalf("a non-party's case: %d %s", code, out)
	}
	// Signed by the payer in the payee's name.
	if code, out := sign(payerKey, casePath(payeeAddr)); code != http.StatusBadRequest {
		t.Fatalf("a case signed by another key: %d %s", code, out)
	}
	if code, out := sign(payeeKey, casePath(payeeAddr)); code != http.StatusOK {
		t.Fatalf("the payee's case: %d %s", code, out)
	}
	if code, out := sign(payerKey, "/evidence?deal="+id.Hex()+"&party="+payerAddr.Hex()+"&text=the+ride+never+came&doc=rides/42"); code != http.StatusOK {
		t.Fatalf("the payer's evidence: %d %s", code, out)
	}
	c := gc.waitCase("the wallet-opened case with its panel and evidence on every node", id, func(c governance.Case) bool {
		return c.OpenedBy == payeeAddr && reflect.DeepEqual(c.Panel, list) && len(c.Evidence) == 1
	})
	if e := c.Evidence[0]; e.Party != payerAddr || e.Text != "the ride never came" || !reflect.DeepEqual(e.Docs, []string{"rides/42"}) {
		t.Fatalf("evidence %+v", e)
	}
	// Arbiters rule from wallets too: each signs the escrow ruling, then
	// its ballot carrying that signature.
	ruling := func(key *ecdsa.PrivateKey, bps int) string {
		res, err := http.Get(srv.URL + fmt.Sprintf("/ruling?deal=%s&payeeBps=%d", id.Hex(), bps))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var td apitypes.TypedData
		if err := json.Unmarshal(raw, &td); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("/ruling: %d %s (%v)", res.StatusCode, raw, err)
		}
		digest, _, err := apitypes.TypedDataAndHash(td)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := crypto.Sign(digest, key)
		if err != nil {
			t.Fatal(err)
		}
		sig[64] += 27
		return hexutil.Encode(sig)
	}
	ballotPath := func(arbiter common.Address, bps int, ruling string) string {
		return fmt.Sprintf("/case-ballot?deal=%s&arbiter=%s&payeeBps=%d&ruling=%s", id.Hex(), arbiter.Hex(), bps, ruling)
	}
	a0, a1 := gc.keys[gc.index(t, list[0])], gc.keys[gc.index(t, list[1])]
	outsider := crypto.PubkeyToAddress(outsiderKey.PublicKey)
	if code, out := sign(outsiderKey, ballotPath(outsider, 2500, ruling(outsiderKey, 2500))); code != http.StatusBadRequest || !strings.Contains(out, "panel") {
		t.Fatalf("a ballot by someone off the panel: %d %s", code, out)
	}
	// A ballot for 25% carrying a ruling for 90%.
	if code, out := sign(a0, ballotPath(list[0], 2500, ruling(a0, 9000))); code != http.StatusBadRequest || !strings.Contains(out, "escrow ruling") {
		t.Fatalf("a ballot whose ruling is for another share: %d %s", code, out)
	}
	for _, k := range []*ecdsa.PrivateKey{a0, a1} {
		if code, out := sign(k, ballotPath(crypto.PubkeyToAddress(k.PublicKey), 2500, ruling(k, 2500))); code != http.StatusOK {
			t.Fatalf("an arbiter's ballot: %d %s", code, out)
		}
	}
	c = gc.waitCase("the case decided by wallet ballots and settled on-chain", id, func(c governance.Case) bool {
		return c.Settlement != nil && c.Settlement.OnChain && c.Deal.Status == "closed"
	})
	if !c.Decided || c.PayeeBps != 2500 || c.Settlement.PayeeBps != 2500 {
		t.Fatalf("settled case: %+v", c)
	}
}
