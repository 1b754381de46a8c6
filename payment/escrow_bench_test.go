package payment

import (
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// BenchmarkEscrowGas reports the gas each escrow operation uses on the
// dev chain (gas/op, deterministic; the ns/op is the dev chain's mining
// and says little). The DevChain runs go-ethereum's dev fork rules
// (params.AllDevChainProtocolChanges, up to Bogota), whose storage
// creation costs more than on today's mainnet. Open uses a 3-arbiter list
// (panel of 3) except in the settle cases: a list of 3 or 5, the panel
// the whole list and a bare majority signing (2 or 3 signatures), and
// "settle-k3-list7": a list of 7 drawn for a panel of 3, settled by the
// last two of the list (two replacements, the longest search).
func BenchmarkEscrowGas(b *testing.B) {
	for _, c := range []struct {
		name  string
		panel int // the list's length
		k     int // the panel's size; 0 means the list's length
		op    string
	}{
		{"open", 3, 0, "open"},
		{"release", 3, 0, "release"},
		{"refund", 3, 0, "refund"},
		{"dispute", 3, 0, "dispute"},
		{"settle-3", 3, 0, "settle"},
		{"settle-5", 5, 0, "settle"},
		{"settle-k3-list7", 7, 3, "settle"},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newEscrowFixture(b, c.panel)
			ctx := testCtx(b)
			if err := f.d.Fund(ctx, f.payer.Account(), tokens(int64(b.N))); err != nil {
				b.Fatal(err)
			}
			k := c.k
			if k == 0 {
				k = c.panel
			}
			signers := make([]int, k/2+1)
			for i := range signers {
				signers[i] = i
				if c.k != 0 { // replacements: the end of the list
					signers[i] = c.panel - 1 - i
				}
			}
			// A warm-up deal creates the storage every later deal finds
			// (the escrow's, payee's and fund's balances), so the figure
			// is the steady state's.
			warm, err := f.payer.OpenEscrow(ctx, EscrowDeal{
				Payee: f.payee.Account(), Amount: tokens(1), FeeBps: 100, Fund: f.fund,
				Deadline: f.d.Now().Add(time.Hour), Arbiters: f.panel(),
			})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.payer.Release(ctx, warm); err != nil {
				b.Fatal(err)
			}
			var gas uint64
			b.ResetTimer()
			for range b.N {
				amount := tokens(1)
				var tx common.Hash
				id, opened, err := f.payer.openEscrow(ctx, EscrowDeal{
					Payee: f.payee.Account(), Amount: amount, FeeBps: 100, Fund: f.fund,
					Deadline: f.d.Now().Add(time.Hour), Arbiters: f.panel(), PanelSize: c.k,
				})
				if err != nil {
					b.Fatal(err)
				}
				switch c.op {
				case "open":
					tx = opened
				case "release":
					tx, err = f.payer.Release(ctx, id)
				case "refund":
					tx, err = f.payee.Refund(ctx, id)
				case "dispute":
					tx, err = f.payee.Dispute(ctx, id)
				case "settle":
					if _, err = f.payee.Dispute(ctx, id); err == nil {
						tx, err = f.stranger.Settle(ctx, id, 3000, f.sigs(b, id, 3000, signers...))
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				r, err := f.payer.be.TransactionReceipt(ctx, tx)
				if err != nil {
					b.Fatal(err)
				}
				gas += r.GasUsed
			}
			b.ReportMetric(float64(gas)/float64(b.N), "gas/op")
		})
	}
}
