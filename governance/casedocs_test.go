package governance

import (
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/payment"
)

// signedDocs returns one correctly signed document of each case
// collection, by key, with its ID.
func signedDocs(t testing.TB, d govmsg.Domain) map[string]struct {
	id  string
	doc map[string]any
} {
	key, err := crypto.HexToECDSA("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	if err != nil {
		t.Fatal(err)
	}
	who := crypto.PubkeyToAddress(key.PublicKey)
	deal := common.Hash{0xde, 0xa1}
	sign := func(h common.Hash) hexutil.Bytes {
		s, err := govmsg.Sign(key, h)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	chainID, escrow := big.NewInt(1337), common.HexToAddress("0xe5c")
	ruling, err := payment.SignRuling(key, chainID, escrow, deal, 6000)
	if err != nil {
		t.Fatal(err)
	}
	ev := &govmsg.Evidence{Deal: deal, Party: who, Text: "late", Docs: []string{"rides/1"}, Blobs: []string{}, Time: 5}
	ballot := &govmsg.CaseBallot{Deal: deal, Arbiter: who, PayeeBps: 6000, Ruling: ruling, Time: 6}
	asMap := func(v any) map[string]any {
		raw, _ := json.Marshal(v)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return m
	}
	type entry = struct {
		id  string
		doc map[string]any
	}
	return map[string]entry{
		DealsCollection: {pairID(deal, who), asMap(dealDoc{Deal: deal, Payer: who, Time: 3,
			Sig: sign((&govmsg.DealRecord{Deal: deal, Payer: who, Time: 3}).Digest(d))})},
		CasesCollection: {pairID(deal, who), asMap(caseDoc{Deal: deal, Party: who, Time: 4,
			Sig: sign((&govmsg.Case{Deal: deal, Party: who, Time: 4}).Digest(d))})},
		EvidenceCollection: {ev.Digest(d).Hex()[2:], asMap(evidenceDoc{Deal: deal, Party: who, Text: ev.Text, Docs: ev.Docs, Blobs: ev.Blobs, Time: 5,
			Sig: sign(ev.Digest(d))})},
		RulingsCollection: {ballot.Digest(d).Hex()[2:], asMap(ballotDoc{Deal: deal, Arbiter: who, PayeeBps: 6000, Ruling: ruling,
			ChainID: (*hexutil.Big)(chainID), Escrow: escrow, Time: 6, Sig: sign(ballot.Digest(d))})},
		SettlementsCollection: {pairID(deal, who), asMap(settlementDoc{Deal: deal, By: who, PayeeBps: 6000, Tx: common.Hash{7}, Time: 7,
			Sig: sign((&govmsg.Settlement{Deal: deal, By: who, PayeeBps: 6000, Tx: common.Hash{7}, Time: 7}).Digest(d))})},
	}
}

// TestCaseDocsRefused: a correctly signed document of each case
// collection passes; any change to a signed field, another ID, another
// DApp's domain, an unknown field or a ruling signed for another share is
// refused.
func TestCaseDocsRefused(t *testing.T) {
	d := govmsg.NewDomain(big.NewInt(1337), [32]byte{1})
	other := govmsg.NewDomain(big.NewInt(1337), [32]byte{2})
	for coll, e := range signedDocs(t, d) {
		raw, _ := json.Marshal(e.doc)
		if _, err := decodeCaseDoc(d, coll, e.id, raw); err != nil {
			t.Fatalf("%s: a good document refused: %v", coll, err)
		}
		// Refused for its signature, or for its ID where the ID is the digest.
		if _, err := decodeCaseDoc(other, coll, e.id, raw); !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s in another DApp's domain = %v, want refused", coll, err)
		}
		if _, err := decodeCaseDoc(d, coll, e.id+"0", raw); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s under another ID = %v, want ErrInvalid", coll, err)
		}
		for field := range e.doc {
			if field == "sig" {
				continue
			}
			m := map[string]any{}
			for k, v := range e.doc {
				m[k] = v
			}
			switch v := m[field].(type) {
			case float64:
				m[field] = v + 1
			case string:
				m[field] = strings.Replace(v, "0", "1", 1) + map[bool]string{true: "", false: "x"}[strings.Contains(v, "0")]
				if strings.HasPrefix(v, "0x") && len(v) == 2+2*common.AddressLength {
					m[field] = common.HexToAddress("0x1234").Hex()
				}
			case []any:
				m[field] = append(v, "extra/1")
			}
			raw, _ := json.Marshal(m)
			if _, err := decodeCaseDoc(d, coll, e.id, raw); err == nil {
				t.Errorf("%s with %s changed was accepted", coll, field)
			}
		}
		m := map[string]any{"extra": 1}
		for k, v := range e.doc {
			m[k] = v
		}
		raw, _ = json.Marshal(m)
		if _, err := decodeCaseDoc(d, coll, e.id, raw); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s with an unknown field = %v, want ErrInvalid", coll, err)
		}
	}
	if _, err := decodeCaseDoc(d, "_governance.nothing", "x", []byte("{}")); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown collection = %v", err)
	}
}

// FuzzCaseDoc: no input makes the decoder of case documents panic, and
// whatever it accepts is a signed document under its own ID.
func FuzzCaseDoc(f *testing.F) {
	d := govmsg.NewDomain(big.NewInt(1337), [32]byte{1})
	for coll, e := range signedDocs(f, d) {
		raw, _ := json.Marshal(e.doc)
		f.Add(coll, e.id, raw)
	}
	f.Add(CasesCollection, "x", []byte(`{"deal":1}`))
	f.Add(EvidenceCollection, "", []byte(`{"docs":[null],"blobs":["\u0000"]}`))
	f.Fuzz(func(t *testing.T, coll, id string, raw []byte) {
		doc, err := decodeCaseDoc(d, coll, id, raw)
		if err == nil && doc == nil {
			t.Fatal("accepted without a document")
		}
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("error %v is neither ErrInvalid nor ErrBadSignature", err)
		}
	})
}

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{
		``:         DefaultCaseWindow,
		`"90m"`:    90 * time.Minute,
		`"30s"`:    30 * time.Second,
		`45`:       45 * time.Second,
		`0.5`:      500 * time.Millisecond,
		`0`:        DefaultCaseWindow,
		`-3`:       DefaultCaseWindow,
		`"-1h"`:    DefaultCaseWindow,
		`"soon"`:   DefaultCaseWindow,
		`1e12`:     DefaultCaseWindow,
		`{"a":1}`:  DefaultCaseWindow,
		`[1]`:      DefaultCaseWindow,
		`"1h0m0s"`: time.Hour,
	} {
		var v json.RawMessage
		if in != "" {
			v = json.RawMessage(in)
		}
		if got := parseWindow(v); got != want {
			t.Errorf("parseWindow(%s) = %s, want %s", in, got, want)
		}
	}
}
