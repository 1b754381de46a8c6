package dapp

import (
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

func TestPayoutMajority(t *testing.T) {
	a, b, c, d := common.Address{1}, common.Address{2}, common.Address{3}, common.Address{4}
	h1, h2 := common.Hash{1}, common.Hash{2}
	sigs := func(m map[common.Address]common.Hash) map[common.Address]payoutSigDoc {
		out := map[common.Address]payoutSigDoc{}
		for acc, h := range m {
			out[acc] = payoutSigDoc{TableHash: h}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		sigs    map[common.Address]common.Hash
		size    int
		want    common.Hash
		signers []common.Address
	}{
		{"none", nil, 3, common.Hash{}, nil},
		{"two of three", map[common.Address]common.Hash{c: h1, a: h1}, 3, h1, []common.Address{a, c}},
		{"one of three", map[common.Address]common.Hash{a: h1}, 3, common.Hash{}, nil},
		{"half is not a majority", map[common.Address]common.Hash{a: h1, b: h1, c: h2, d: h2}, 4, common.Hash{}, nil},
		{"three of four, a dissenter", map[common.Address]common.Hash{d: h1, b: h1, c: h2, a: h1}, 4, h1, []common.Address{a, b, d}},
		{"one of one", map[common.Address]common.Hash{b: h2}, 1, h2, []common.Address{b}},
	} {
		h, signers := majority(sigs(tc.sigs), tc.size)
		if h != tc.want || len(signers) != len(tc.signers) {
			t.Fatalf("%s: majority %s signed by %v, want %s by %v", tc.name, h, signers, tc.want, tc.signers)
		}
		for i := range signers {
			if signers[i] != tc.signers[i] {
				t.Fatalf("%s: signers %v, want %v (sorted)", tc.name, signers, tc.signers)
			}
		}
	}
}
