package govern

import (
	"encoding/binary"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// DrawOrder orders the candidates for a dispute's arbiter panel: a
// deterministic weighted draw without replacement, seeded by the case
// (for an escrow deal, its ID). Every replica that has the same case,
// members and weights draws the same order. The panel is the first k; a
// panel member who does not vote in time is replaced by the next one in
// the order not yet on the panel.
//
// Members in exclude (the parties) are never drawn. weight gives each
// member's weight (a reputation the application supplies); nil, or a
// missing or non-positive weight, counts as 1. Each draw picks a member
// with probability proportional to its weight among those left: the
// draw's number is keccak256(case, draw index) reduced modulo the total
// weight left, which picks a member along the members sorted by address.
func DrawOrder(caseID common.Hash, members []common.Address, weight map[common.Address]*big.Int, exclude ...common.Address) []common.Address {
	type cand struct {
		who common.Address
		w   *big.Int
	}
	var left []cand
	total := new(big.Int)
	for _, m := range Sorted(members) {
		if slices.Contains(exclude, m) {
			continue
		}
		w := big.NewInt(1)
		if x := weight[m]; x != nil && x.Sign() > 0 {
			w = new(big.Int).Set(x)
		}
		left = append(left, cand{m, w})
		total.Add(total, w)
	}
	out := make([]common.Address, 0, len(left))
	var seed [32 + 8]byte
	copy(seed[:], caseID[:])
	r, acc := new(big.Int), new(big.Int)
	for i := 0; len(left) > 0; i++ {
		binary.BigEndian.PutUint64(seed[32:], uint64(i))
		r.SetBytes(crypto.Keccak256(seed[:]))
		r.Mod(r, total)
		acc.SetInt64(0)
		pick := len(left) - 1
		for j, c := range left {
			acc.Add(acc, c.w)
			if r.Cmp(acc) < 0 {
				pick = j
				break
			}
		}
		out = append(out, left[pick].who)
		total.Sub(total, left[pick].w)
		left = slices.Delete(left, pick, pick+1)
	}
	return out
}

// Panel returns the arbiters of a case: the first k of order who are not
// in absent (members replaced for not voting in time), in draw order. k
// should be odd, so a majority exists.
func Panel(order []common.Address, k int, absent ...common.Address) []common.Address {
	var out []common.Address
	for _, m := range order {
		if len(out) == k {
			break
		}
		if !slices.Contains(absent, m) {
			out = append(out, m)
		}
	}
	return out
}
