package payout_test

import (
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/payout"
)

// Two instances share a /24 and split its one share by traffic; a third,
// elsewhere, gets the other share; an unverified one gets nothing.
func ExampleCompute() {
	rows, err := payout.Compute([]payout.Instance{
		{Account: common.Address{19: 1}, Group: "10.0.1.0/24", Availability: 990_000, Verified: true, Served: big.NewInt(300)},
		{Account: common.Address{19: 2}, Group: "10.0.1.0/24", Availability: 950_000, Verified: true, Served: big.NewInt(100)},
		{Account: common.Address{19: 3}, Group: "10.0.2.0/24", Availability: 990_000, Verified: true, Served: big.NewInt(400)},
		{Account: common.Address{19: 4}, Group: "10.0.3.0/24", Availability: 990_000, Verified: false, Served: big.NewInt(400)},
	}, payout.Params{Budget: big.NewInt(1000), MinAvailability: payout.DefaultMinAvailability})
	if err != nil {
		panic(err)
	}
	for _, r := range rows {
		fmt.Println(r.Account.Hex(), r.Amount)
	}
	// Output:
	// 0x0000000000000000000000000000000000000001 375
	// 0x0000000000000000000000000000000000000002 125
	// 0x0000000000000000000000000000000000000003 500
}
