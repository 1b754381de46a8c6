package payment

import (
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// A transaction left in the pool (as a block the simulated beacon failed
// to build in time on a loaded machine leaves it) is sealed by the next
// AdjustTime before it moves the clock, instead of AdjustTime failing
// ("could not adjust time on non-empty block").
func TestAdjustTimeSealsWhatThePoolHolds(t *testing.T) {
	d := newDev(t)
	ctx := testCtx(t)
	to := addrOf(newKey(t))
	from := crypto.PubkeyToAddress(d.faucet.PublicKey)
	nonce, err := d.client.PendingNonceAt(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	tip, err := d.client.SuggestGasTipCap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head, err := d.client.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := types.SignNewTx(d.faucet, types.LatestSignerForChainID(d.chainID), &types.DynamicFeeTx{
		ChainID: d.chainID, Nonce: nonce, GasTipCap: tip, GasFeeCap: new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2))),
		Gas: 21000, To: &to, Value: big.NewInt(1234),
	})
	if err != nil {
		t.Fatal(err)
	}
	// straight to the node: not sealed
	if err := d.client.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if n := d.pendingTxs(); n != 1 {
		t.Fatalf("%d transactions pending, want 1", n)
	}
	before := d.Now()
	if err := d.AdjustTime(time.Hour); err != nil {
		t.Fatalf("AdjustTime with a transaction in the pool: %v", err)
	}
	if n := d.pendingTxs(); n != 0 {
		t.Fatalf("%d transactions still pending", n)
	}
	if r, err := d.client.TransactionReceipt(ctx, tx.Hash()); err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("receipt %+v, %v", r, err)
	}
	if got, err := d.client.BalanceAt(ctx, to, nil); err != nil || got.Int64() != 1234 {
		t.Fatalf("recipient holds %v (%v), want 1234", got, err)
	}
	if after := d.Now(); after.Sub(before) < time.Hour {
		t.Fatalf("clock moved %v, want an hour at least", after.Sub(before))
	}
}
