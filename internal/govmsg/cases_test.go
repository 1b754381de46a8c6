package govmsg

import (
	"bytes"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
)

// TestCaseDigestsMatchGeth checks the hashes of case messages against
// go-ethereum's generic EIP-712 encoder, so a wallet signing the same
// typed data makes the same signature.
func TestCaseDigestsMatchGeth(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	strs := func() []any {
		var out []any
		for range rng.IntN(4) {
			out = append(out, randomString(rng))
		}
		return out
	}
	asStrings := func(xs []any) []string {
		var out []string
		for _, x := range xs {
			out = append(out, x.(string))
		}
		return out
	}
	for range 100 {
		d := testDomain(rng)
		deal := common.BytesToHash(randomBytes(rng, 32))
		who := common.BytesToAddress(randomBytes(rng, 20))
		tm := rng.Uint64()
		bps := uint16(rng.Uint32())
		ruling := randomBytes(rng, rng.IntN(70))
		tx := common.BytesToHash(randomBytes(rng, 32))
		text := randomString(rng)
		docs, blobs := strs(), strs()
		cases := []struct {
			typ    string
			fields []apitypes.Type
			msg    apitypes.TypedDataMessage
			digest common.Hash
		}{
			{"DealRecord", []apitypes.Type{{Name: "deal", Type: "bytes32"}, {Name: "payer", Type: "address"}, {Name: "time", Type: "uint64"}},
				apitypes.TypedDataMessage{"deal": deal.Hex(), "payer": who.Hex(), "time": new(big.Int).SetUint64(tm).String()},
				(&DealRecord{Deal: deal, Payer: who, Time: tm}).Digest(d)},
			{"Case", []apitypes.Type{{Name: "deal", Type: "bytes32"}, {Name: "party", Type: "address"}, {Name: "time", Type: "uint64"}},
				apitypes.TypedDataMessage{"deal": deal.Hex(), "party": who.Hex(), "time": new(big.Int).SetUint64(tm).String()},
				(&Case{Deal: deal, Party: who, Time: tm}).Digest(d)},
			{"Evidence", []apitypes.Type{{Name: "deal", Type: "bytes32"}, {Name: "party", Type: "address"}, {Name: "text", Type: "string"},
				{Name: "docs", Type: "string[]"}, {Name: "blobs", Type: "string[]"}, {Name: "time", Type: "uint64"}},
				apitypes.TypedDataMessage{"deal": deal.Hex(), "party": who.Hex(), "text": text, "docs": docs, "blobs": blobs, "time": new(big.Int).SetUint64(tm).String()},
				(&Evidence{Deal: deal, Party: who, Text: text, Docs: asStrings(docs), Blobs: asStrings(blobs), Time: tm}).Digest(d)},
			{"CaseBallot", []apitypes.Type{{Name: "deal", Type: "bytes32"}, {Name: "arbiter", Type: "address"}, {Name: "payeeBps", Type: "uint16"},
				{Name: "ruling", Type: "bytes"}, {Name: "time", Type: "uint64"}},
				apitypes.TypedDataMessage{"deal": deal.Hex(), "arbiter": who.Hex(), "payeeBps": big.NewInt(int64(bps)).String(), "ruling": hexutil.Encode(ruling), "time": new(big.Int).SetUint64(tm).String()},
				(&CaseBallot{Deal: deal, Arbiter: who, PayeeBps: bps, Ruling: ruling, Time: tm}).Digest(d)},
			{"Settlement", []apitypes.Type{{Name: "deal", Type: "bytes32"}, {Name: "by", Type: "address"}, {Name: "payeeBps", Type: "uint16"},
				{Name: "tx", Type: "bytes32"}, {Name: "time", Type: "uint64"}},
				apitypes.TypedDataMessage{"deal": deal.Hex(), "by": who.Hex(), "payeeBps": big.NewInt(int64(bps)).String(), "tx": tx.Hex(), "time": new(big.Int).SetUint64(tm).String()},
				(&Settlement{Deal: deal, By: who, PayeeBps: bps, Tx: tx, Time: tm}).Digest(d)},
		}
		for _, c := range cases {
			td := apitypes.TypedData{
				Types: apitypes.Types{
					"EIP712Domain": {{Name: "name", Type: "string"}, {Name: "version", Type: "string"}, {Name: "chainId", Type: "uint256"}, {Name: "salt", Type: "bytes32"}},
					c.typ:          c.fields,
				},
				PrimaryType: c.typ,
				Domain: apitypes.TypedDataDomain{Name: DomainName, Version: DomainVersion,
					ChainId: (*math.HexOrDecimal256)(d.ChainID), Salt: common.Hash(d.App).Hex()},
				Message: c.msg,
			}
			want, _, err := apitypes.TypedDataAndHash(td)
			if err != nil {
				t.Fatalf("seed %d: geth refuses a %s: %v", seed, c.typ, err)
			}
			if !bytes.Equal(c.digest[:], want) {
				t.Fatalf("seed %d: %s digest %x, geth %x", seed, c.typ, c.digest, want)
			}
		}
	}
}
