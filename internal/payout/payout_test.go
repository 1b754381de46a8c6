package payout

import (
	"errors"
	"math/big"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

func acc(n byte) common.Address { return common.Address{19: n} }

func inst(a byte, group string, availPPM uint32, verified bool, served int64) Instance {
	return Instance{Account: acc(a), Group: group, Availability: availPPM, Verified: verified, Served: big.NewInt(served)}
}

func rowsString(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.Account.Hex()[40:] + "=" + r.Amount.String() + " ")
	}
	return strings.TrimSpace(b.String())
}

func TestComputeTable(t *testing.T) {
	for _, c := range []struct {
		name      string
		instances []Instance
		budget    int64
		min       uint32
		want      string // account's last hex digits = amount, sorted
	}{
		{"nobody", nil, 1000, DefaultMinAvailability, ""},
		{"one instance takes the whole budget",
			[]Instance{inst(1, "a", 950_000, true, 10)}, 1000, DefaultMinAvailability, "01=1000"},
		{"unverified, below minimum, idle and zero availability earn nothing",
			[]Instance{
				inst(1, "a", 1_000_000, false, 10),
				inst(2, "b", 899_999, true, 10),
				inst(3, "c", 1_000_000, true, 0),
				inst(4, "d", 0, true, 10),
				inst(5, "e", 900_000, true, 10),
			}, 1000, DefaultMinAvailability, "05=1000"},
		{"nothing eligible pays nothing",
			[]Instance{inst(1, "a", 500_000, true, 10)}, 1000, DefaultMinAvailability, ""},
		{"zero budget pays nothing",
			[]Instance{inst(1, "a", 1_000_000, true, 10)}, 0, DefaultMinAvailability, ""},
		{"two groups, equal availability: by traffic",
			[]Instance{inst(1, "a", 1_000_000, true, 30), inst(2, "b", 1_000_000, true, 10)}, 1000, 0, "01=750 02=250"},
		{"availability weighs the group: 1.0×10 vs 0.9×10",
			// 1000×10/19 = 526.3 → 526, 1000×9/19 = 473.7 → 473, left 1 to the larger remainder (02: 0.68).
			[]Instance{inst(1, "a", 1_000_000, true, 10), inst(2, "b", 900_000, true, 10)}, 1000, 0, "01=526 02=474"},
		{"two in one group split the group's share by traffic, at the group's best availability",
			// Groups: a = 1.0 × (30+10) = 40, b = 1.0 × 40 = 40: 500 each; a's 500 by traffic 3:1.
			[]Instance{inst(1, "a", 1_000_000, true, 30), inst(2, "a", 950_000, true, 10), inst(3, "b", 1_000_000, true, 40)}, 1000, 0,
			"01=375 02=125 03=500"},
		{"remainders: three equal parts of 100",
			// 33 each, 1 left to the first part in order (account 01, ungrouped).
			[]Instance{inst(3, "", 1_000_000, true, 5), inst(1, "", 1_000_000, true, 5), inst(2, "", 1_000_000, true, 5)}, 100, 0,
			"01=34 02=33 03=33"},
		{"remainders: named groups in name order",
			[]Instance{inst(1, "z", 1_000_000, true, 5), inst(2, "m", 1_000_000, true, 5), inst(3, "b", 1_000_000, true, 5)}, 100, 0,
			"01=33 02=33 03=34"},
		{"one account in two groups gets the sum",
			// Three groups of 10: 333 each, the unit left to group a.
			[]Instance{inst(1, "a", 1_000_000, true, 10), inst(1, "b", 1_000_000, true, 10), inst(2, "c", 1_000_000, true, 10)}, 1000, 0,
			"01=667 02=333"},
		{"one account twice in a group is one member",
			[]Instance{inst(1, "a", 1_000_000, true, 10), inst(1, "a", 900_000, true, 10), inst(2, "b", 1_000_000, true, 20)}, 1000, 0,
			"01=500 02=500"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, err := Compute(c.instances, Params{Budget: big.NewInt(c.budget), MinAvailability: c.min})
			if err != nil {
				t.Fatal(err)
			}
			if got := rowsString(rows); got != c.want {
				t.Fatalf("table %q, want %q", got, c.want)
			}
		})
	}
}

func TestComputeRefusesBadInput(t *testing.T) {
	ok := inst(1, "a", 1_000_000, true, 1)
	huge := new(big.Int).Lsh(big.NewInt(1), 256)
	for _, c := range []struct {
		name string
		in   []Instance
		p    Params
	}{
		{"nil budget", []Instance{ok}, Params{}},
		{"negative budget", []Instance{ok}, Params{Budget: big.NewInt(-1)}},
		{"budget above uint256", []Instance{ok}, Params{Budget: huge}},
		{"minimum above 100%", []Instance{ok}, Params{Budget: big.NewInt(1), MinAvailability: PPM + 1}},
		{"availability above 100%", []Instance{inst(1, "a", PPM+1, true, 1)}, Params{Budget: big.NewInt(1)}},
		{"negative traffic", []Instance{inst(1, "a", PPM, true, -1)}, Params{Budget: big.NewInt(1)}},
		{"zero account", []Instance{{Group: "a", Availability: PPM, Verified: true, Served: big.NewInt(1)}}, Params{Budget: big.NewInt(1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if rows, err := Compute(c.in, c.p); !errors.Is(err, ErrBadInput) {
				t.Fatalf("Compute = %v, %v; want ErrBadInput", rows, err)
			}
		})
	}
}

// randomInstances draws n instances over few accounts and groups, so that
// shared accounts, shared groups and ungrouped instances all occur.
func randomInstances(r *rand.Rand, n int) []Instance {
	out := make([]Instance, n)
	groups := []string{"", "aws/us-west", "aws/eu", "hetzner/fsn", "home", "127.0.3.0/24"}
	for i := range out {
		avail := uint32(r.Intn(PPM + 1))
		if r.Intn(3) > 0 {
			avail = PPM - uint32(r.Intn(150_000))
		}
		served := new(big.Int).Rand(r, new(big.Int).Lsh(big.NewInt(1), uint(r.Intn(100))))
		out[i] = Instance{
			Account:      acc(byte(1 + r.Intn(12))),
			Group:        groups[r.Intn(len(groups))],
			Availability: avail,
			Verified:     r.Intn(5) > 0,
			Served:       served,
		}
	}
	return out
}

func randomBudget(r *rand.Rand) *big.Int {
	b := new(big.Int).Lsh(big.NewInt(1), uint(r.Intn(120)))
	return b.Add(b, big.NewInt(r.Int63n(1000)))
}

// TestComputeProperties checks, on random inputs: the table never pays
// more than the budget (exactly the budget when anyone is eligible), its
// accounts are sorted, unique and paid a positive amount, only eligible
// instances' accounts appear, a permutation of the inputs gives the same
// table, and splitting an instance's traffic over duplicates in its group
// earns the group nothing more.
func TestComputeProperties(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	for round := range 500 {
		in := randomInstances(r, 1+r.Intn(20))
		p := Params{Budget: randomBudget(r), MinAvailability: uint32(r.Intn(PPM + 1))}
		rows, err := Compute(in, p)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		eligible := map[common.Address]bool{}
		for _, x := range in {
			if x.Verified && x.Availability >= p.MinAvailability && x.Availability > 0 && x.Served.Sign() > 0 {
				eligible[x.Account] = true
			}
		}
		total := Total(rows)
		if total.Cmp(p.Budget) > 0 {
			t.Fatalf("round %d: table pays %v, budget %v", round, total, p.Budget)
		}
		if len(eligible) > 0 && total.Cmp(p.Budget) != 0 {
			t.Fatalf("round %d: table pays %v of a budget of %v with %d accounts eligible", round, total, p.Budget, len(eligible))
		}
		for i, row := range rows {
			if row.Amount.Sign() <= 0 || !eligible[row.Account] {
				t.Fatalf("round %d: row %s=%v (eligible %v)", round, row.Account, row.Amount, eligible[row.Account])
			}
			if i > 0 && strings.Compare(string(rows[i-1].Account[:]), string(row.Account[:])) >= 0 {
				t.Fatalf("round %d: rows not sorted and unique: %s", round, rowsString(rows))
			}
		}

		shuffled := append([]Instance(nil), in...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		again, err := Compute(shuffled, p)
		if err != nil || !reflect.DeepEqual(rowsString(again), rowsString(rows)) {
			t.Fatalf("round %d: permuted inputs give %s, want %s (%v)", round, rowsString(again), rowsString(rows), err)
		}
		h1, err1 := Hash(rows)
		h2, err2 := Hash(again)
		if err1 != nil || err2 != nil || h1 != h2 {
			t.Fatalf("round %d: hashes %s %s (%v %v)", round, h1, h2, err1, err2)
		}

		// Duplicate infrastructure: a named group of one eligible
		// instance, against the same group where that instance's traffic
		// is spread over k instances (new accounts, no better
		// availability). The group as a whole earns no more.
		solo := Instance{Account: acc(200), Group: "dup", Availability: PPM - uint32(r.Intn(50_000)), Verified: true,
			Served: big.NewInt(1 + r.Int63n(1<<40))}
		base := append(append([]Instance(nil), in...), solo)
		one, err := Compute(base, p)
		if err != nil {
			t.Fatal(err)
		}
		k := 2 + r.Intn(4)
		dups := append([]Instance(nil), in...)
		left := new(big.Int).Set(solo.Served)
		for d := range k {
			part := new(big.Int).Div(solo.Served, big.NewInt(int64(k)))
			if d == k-1 {
				part = left
			}
			left = new(big.Int).Sub(left, part)
			dups = append(dups, Instance{Account: acc(byte(201 + d)), Group: "dup", Availability: solo.Availability - uint32(r.Intn(10)),
				Verified: true, Served: part})
		}
		many, err := Compute(dups, p)
		if err != nil {
			t.Fatal(err)
		}
		soloEarned, dupEarned := earned(one, 200, 200), earned(many, 201, 201+byte(k)-1)
		if dupEarned.Cmp(soloEarned) > 0 {
			t.Fatalf("round %d: %d duplicates earn %v together, one instance %v", round, k, dupEarned, soloEarned)
		}
	}
}

// earned sums the amounts of accounts lo..hi.
func earned(rows []Row, lo, hi byte) *big.Int {
	s := new(big.Int)
	for _, r := range rows {
		if b := r.Account[19]; r.Account == acc(b) && b >= lo && b <= hi {
			s.Add(s, r.Amount)
		}
	}
	return s
}

// TestHashIsABIEncode checks Hash against go-ethereum's ABI encoder:
// keccak256(abi.encode(address[], uint256[])).
func TestHashIsABIEncode(t *testing.T) {
	addrs, _ := abi.NewType("address[]", "", nil)
	uints, _ := abi.NewType("uint256[]", "", nil)
	args := abi.Arguments{{Type: addrs}, {Type: uints}}
	for _, rows := range [][]Row{
		{},
		{{Account: acc(1), Amount: big.NewInt(0)}},
		{{Account: common.HexToAddress("0xffffffffffffffffffffffffffffffffffffffff"), Amount: new(big.Int).Set(maxAmount)}, {Account: acc(7), Amount: big.NewInt(42)}},
	} {
		as := make([]common.Address, len(rows))
		ns := make([]*big.Int, len(rows))
		for i, r := range rows {
			as[i], ns[i] = r.Account, r.Amount
		}
		enc, err := args.Pack(as, ns)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Hash(rows)
		if err != nil {
			t.Fatal(err)
		}
		if want := crypto.Keccak256Hash(enc); got != want {
			t.Fatalf("Hash(%s) = %s, abi.encode gives %s", rowsString(rows), got, want)
		}
	}
	for _, bad := range []*big.Int{nil, big.NewInt(-1), new(big.Int).Add(maxAmount, big.NewInt(1))} {
		if _, err := Hash([]Row{{Account: acc(1), Amount: bad}}); !errors.Is(err, ErrBadInput) {
			t.Fatalf("Hash with amount %v = %v, want ErrBadInput", bad, err)
		}
	}
}
