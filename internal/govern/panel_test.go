package govern

import (
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

func TestDrawOrderDeterministic(t *testing.T) {
	members := []common.Address{addr(5), addr(1), addr(9), addr(3), addr(7)}
	shuffled := []common.Address{addr(9), addr(3), addr(7), addr(5), addr(1)}
	deal := common.Hash{0xde, 0xa1}
	a := DrawOrder(deal, members, nil, addr(3))
	b := DrawOrder(deal, shuffled, nil, addr(3))
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("the member order changed the draw: %v vs %v", a, b)
	}
	if len(a) != 4 || slices.Contains(a, addr(3)) {
		t.Fatalf("a party was drawn, or a member lost: %v", a)
	}
	if c := DrawOrder(common.Hash{0xde, 0xa2}, members, nil); reflect.DeepEqual(c[:3], DrawOrder(deal, members, nil)[:3]) {
		// Possible by chance (1 in 60); these two cases differ.
		t.Fatalf("two deals drew the same panel %v", c[:3])
	}
	// A replacement is the next in the order.
	panel := Panel(a, 3)
	replaced := Panel(a, 3, panel[1])
	if !reflect.DeepEqual(replaced, []common.Address{panel[0], panel[2], a[3]}) {
		t.Fatalf("panel %v, after replacing %v: %v", panel, panel[1], replaced)
	}
}

// TestDrawOrderWeighted: over many cases, a member of weight 3 sits on a
// one-seat panel about three times as often as one of weight 1.
func TestDrawOrderWeighted(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	members := []common.Address{addr(1), addr(2), addr(3)}
	weight := map[common.Address]*big.Int{addr(1): big.NewInt(3), addr(2): big.NewInt(1), addr(3): big.NewInt(0)} // 0 counts as 1
	counts := map[common.Address]int{}
	const n = 5000
	for range n {
		var deal common.Hash
		for i := range deal {
			deal[i] = byte(rng.Uint32())
		}
		counts[DrawOrder(deal, members, weight)[0]]++
	}
	// Expected shares 3/5, 1/5, 1/5.
	if f := float64(counts[addr(1)]) / n; f < 0.55 || f > 0.65 {
		t.Fatalf("seed %d: weight 3 drawn first %.3f of the time, want about 0.6 (%v)", seed, f, counts)
	}
	if f := float64(counts[addr(2)]) / n; f < 0.16 || f > 0.24 {
		t.Fatalf("seed %d: weight 1 drawn first %.3f of the time, want about 0.2 (%v)", seed, f, counts)
	}
}
