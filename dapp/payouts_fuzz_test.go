package dapp

import (
	"encoding/json"
	"math/big"
	"sync/atomic"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/store"
)

// FuzzPayoutSignature: whatever a peer writes to the payout signatures
// collection, the validator answers without panicking, counts each
// refusal, and accepts only documents signed by the account the ID names.
func FuzzPayoutSignature(f *testing.F) {
	key, err := ethcrypto.HexToECDSA("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	if err != nil {
		f.Fatal(err)
	}
	acc := ethcrypto.PubkeyToAddress(key.PublicKey)
	fund := common.HexToAddress("0x00000000000000000000000000000000000f00d5")
	table := []payment.PayoutEntry{{Account: acc, Amount: big.NewInt(7)}}
	hash, err := payment.PayoutTableHash(table)
	if err != nil {
		f.Fatal(err)
	}
	sig, err := payment.SignPayout(key, big.NewInt(1337), fund, 42, table)
	if err != nil {
		f.Fatal(err)
	}
	enc := func(v any) []byte { b, _ := json.Marshal(v); return b }
	f.Add(payoutSigID(42, acc), []byte("42"), enc(fund), []byte(`"1337"`), enc(hash), enc(hexutil.Bytes(sig)))
	f.Add("42/0x", []byte("x"), []byte(`"0x"`), []byte(`"-1"`), []byte(`"0x00"`), []byte(`"0x1b"`))
	f.Fuzz(func(t *testing.T, id string, epoch, fundF, chain, tableHash, sigF []byte) {
		var refused atomic.Uint64
		w := store.Write{Author: acc, Collection: PayoutSignaturesCollection, ID: id, Kind: "put", Fields: map[string]json.RawMessage{
			"epoch": epoch, "fund": fundF, "chain": chain, "tableHash": tableHash, "sig": sigF,
		}}
		err := validatePayoutSignature(&refused)(w)
		if err != nil {
			if refused.Load() != 1 {
				t.Fatalf("refusal counted %d times", refused.Load())
			}
			return
		}
		// Accepted: the signature recovers to the ID's account.
		e, who, perr := parsePayoutSigID(id)
		if perr != nil || who != acc {
			t.Fatalf("accepted ID %q (%v)", id, perr)
		}
		var d payoutSigDoc
		for k, dst := range map[string]any{"epoch": &d.Epoch, "fund": &d.Fund, "chain": &d.Chain, "tableHash": &d.TableHash, "sig": &d.Sig} {
			if err := json.Unmarshal(w.Fields[k], dst); err != nil {
				t.Fatalf("accepted field %s: %v", k, err)
			}
		}
		c, _ := new(big.Int).SetString(d.Chain, 10)
		if signer, err := recoverPayoutSigner(c, d); err != nil || signer != acc || d.Epoch != e {
			t.Fatalf("accepted a document signed by %s (%v), epoch %d", signer, err, d.Epoch)
		}
	})
}
