package payment

import (
	"fmt"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

// BenchmarkFundPayoutGas reports the gas of one epoch's payout on the dev
// chain (gas/op, deterministic; ns/op is the dev chain's mining and says
// little): a committee of 3 or 5 with a bare majority signing, 10 or 100
// recipients. The recipients already hold tokens (a warm-up epoch paid
// them), the steady state of a fund paying the same mirrors every epoch;
// "cold" pays fresh accounts each epoch, so every transfer creates a
// balance slot.
func BenchmarkFundPayoutGas(b *testing.B) {
	for _, c := range []struct {
		committee, recipients int
		cold                  bool
	}{
		{3, 10, false}, {5, 10, false}, {3, 100, false}, {5, 100, false}, {5, 10, true}, {5, 100, true},
	} {
		name := fmt.Sprintf("committee-%d/recipients-%d", c.committee, c.recipients)
		if c.cold {
			name += "/cold"
		}
		b.Run(name, func(b *testing.B) {
			f := newFundFixture(b, c.committee)
			ctx := testCtx(b)
			signers := make([]int, c.committee/2+1)
			for i := range signers {
				signers[i] = i
			}
			accounts := make([]common.Address, c.recipients)
			for i := range accounts {
				accounts[i] = addrOf(newKey(b))
			}
			table := func() []PayoutEntry {
				t := make([]PayoutEntry, c.recipients)
				for i := range t {
					if c.cold {
						accounts[i] = addrOf(newKey(b))
					}
					t[i] = PayoutEntry{Account: accounts[i], Amount: big.NewInt(int64(1000 + i))}
				}
				return t
			}
			epoch := uint64(1)
			warm := table()
			if _, err := f.fund.SubmitPayout(ctx, epoch, warm, nil, f.sigs(b, epoch, warm, signers...)); err != nil {
				b.Fatal(err)
			}
			committee := f.members()
			var gas uint64
			b.ResetTimer()
			for range b.N {
				epoch++
				t := table()
				tx, err := f.fund.SubmitPayout(ctx, epoch, t, committee, f.sigs(b, epoch, t, signers...))
				if err != nil {
					b.Fatal(err)
				}
				r, err := f.stranger.be.TransactionReceipt(ctx, tx)
				if err != nil {
					b.Fatal(err)
				}
				gas += r.GasUsed
			}
			b.ReportMetric(float64(gas)/float64(b.N), "gas/op")
		})
	}
}
