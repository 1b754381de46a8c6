package governance

import (
	"bytes"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/internal/ethtest"
	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/payment"
)

var vectorDomain = govmsg.NewDomain(big.NewInt(1337), [32]byte(bytes.Repeat([]byte{0x11}, 32)))

// TestEthersVectors: messages that ethers v6 signed as a wallet does
// (testdata/ethers/vectors.js made the committed file) pass the check
// every replica runs, with ethers' digest.
func TestEthersVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/ethers-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		TypedData json.RawMessage `json:"typedData"`
		Digest    common.Hash     `json:"digest"`
		Signature hexutil.Bytes   `json:"signature"`
		Signer    common.Address  `json:"signer"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 5 {
		t.Fatalf("%d vectors", len(vectors))
	}
	for i, v := range vectors {
		m, err := govmsg.ParseTypedData(v.TypedData, vectorDomain)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if got := m.Digest(vectorDomain); got != v.Digest {
			t.Fatalf("vector %d: digest %s, ethers %s", i, got, v.Digest)
		}
		coll := map[string]string{"*govmsg.Ballot": BallotsCollection, "*govmsg.Proposal": ProposalsCollection,
			"*govmsg.Delegation": DelegationsCollection}[typeName(m)]
		rec, _ := json.Marshal(record{Typed: v.TypedData, Sig: v.Signature})
		if _, err := decodeRecord(vectorDomain, coll, v.Digest.Hex(), rec); err != nil {
			t.Fatalf("vector %d (%s) refused: %v", i, coll, err)
		}
	}
}

func typeName(m govmsg.Message) string {
	switch m.(type) {
	case *govmsg.Ballot:
		return "*govmsg.Ballot"
	case *govmsg.Proposal:
		return "*govmsg.Proposal"
	case *govmsg.Delegation:
		return "*govmsg.Delegation"
	}
	return ""
}

// escrowRuling is a ruling of the escrow contract, a govmsg.Message for
// TestEthersCheck's sake: its typed data is payment.RulingTypedData's.
type escrowRuling struct {
	chainID  *big.Int
	escrow   common.Address
	deal     common.Hash
	payeeBps uint16
}

func (r escrowRuling) Digest(govmsg.Domain) common.Hash {
	return payment.RulingDigest(r.chainID, r.escrow, r.deal, r.payeeBps)
}

func (r escrowRuling) TypedData(govmsg.Domain) govmsg.TypedData { return govmsg.TypedData{} }

func (r escrowRuling) json() []byte {
	return payment.RulingTypedData(r.chainID, r.escrow, r.deal, r.payeeBps)
}

// TestEthersCheck runs ethers v6 under node on messages the SDK wrote and
// signed: ethers computes the same digests, recovers the SDK's signer, and
// its own signatures verify in the SDK. It needs node and npm; without
// them it skips, unless CI=true.
func TestEthersCheck(t *testing.T) {
	dir := filepath.Join("testdata", "ethers")
	node := ethtest.Node(t, dir)
	key, _ := crypto.GenerateKey()
	who := crypto.PubkeyToAddress(key.PublicKey)
	msgs := []govmsg.Message{
		&govmsg.Ballot{Proposal: common.Hash{1}, Voter: who, Choice: []uint32{3, 1}, Time: 1_800_000_000_001, Reason: "ñ 🚕"},
		&govmsg.Proposal{Author: who, Title: "t", Kind: "approval", Choices: []string{"a", "b"}, Start: 1, End: 2,
			Electorate: "members", Quorum: new(big.Int).Lsh(big.NewInt(1), 200), Threshold: 6000,
			Actions: []govmsg.Action{{Kind: "set-param", Name: "x", Value: []byte(`{"a":1}`)}, {Kind: "custom", Value: nil}}, Created: 1},
		&govmsg.Delegation{Delegator: who, Delegate: common.Address{9}, Time: 77},
		&govmsg.Closing{Proposal: common.Hash{2}, Root: common.Hash{3}},
		&govmsg.Case{Deal: common.Hash{4}, Party: who, Time: 1_800_000_000_002},
		&govmsg.Evidence{Deal: common.Hash{5}, Party: who, Text: "the driver took a detour 🚕", Docs: []string{"rides/42", "ratings/x"},
			Blobs: []string{"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}, Time: 1_800_000_000_003},
		&govmsg.Evidence{Deal: common.Hash{6}, Party: who, Text: "", Docs: []string{}, Blobs: []string{}, Time: 1},
		&govmsg.CaseBallot{Deal: common.Hash{7}, Arbiter: who, PayeeBps: 6000, Ruling: bytes.Repeat([]byte{0xab}, 65), Time: 1_800_000_000_004},
		// The escrow contract's ruling, in its own domain, which an
		// arbiter's wallet signs before its case ballot.
		escrowRuling{big.NewInt(31337), common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3"), common.Hash{8}, 6000},
	}
	type item struct {
		TypedData json.RawMessage `json:"typedData"`
		Signature hexutil.Bytes   `json:"signature"`
	}
	var items []item
	for _, m := range msgs {
		sig, err := govmsg.Sign(key, m.Digest(vectorDomain))
		if err != nil {
			t.Fatal(err)
		}
		td, _ := json.Marshal(m.TypedData(vectorDomain)) // the wire structs always marshal
		if r, ok := m.(escrowRuling); ok {
			td = r.json()
		}
		items = append(items, item{td, sig})
	}
	in, _ := json.Marshal(map[string]any{"key": hexutil.Encode(crypto.FromECDSA(key)), "items": items})
	cmd := exec.Command(node, "check.js")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node check.js: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Digest    common.Hash    `json:"digest"`
		Signature hexutil.Bytes  `json:"signature"`
		Recovered common.Address `json:"recovered"`
	}
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(msgs) {
		t.Fatalf("ethers answered %s: %v", out, err)
	}
	for i, r := range results {
		d := msgs[i].Digest(vectorDomain)
		if r.Digest != d {
			t.Errorf("%T: ethers digest %s, SDK %s", msgs[i], r.Digest, d)
		}
		if r.Recovered != who {
			t.Errorf("%T: ethers recovers %s from the SDK's signature, want %s", msgs[i], r.Recovered, who)
		}
		if err := govmsg.Verify(d, r.Signature, who); err != nil {
			t.Errorf("%T: ethers' signature does not verify in the SDK: %v", msgs[i], err)
		}
	}
}
