package payout

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"sort"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// PPM is an availability of 100%, in parts per million.
const PPM = 1_000_000

// DefaultMinAvailability is the minimum availability suggested for
// Params.MinAvailability: 90%.
const DefaultMinAvailability = 900_000

// ErrBadInput wraps every refusal of Compute and Hash: a budget or amount
// that is nil, negative or above 2^256-1, an availability above PPM,
// negative traffic, a zero account.
var ErrBadInput = errors.New("payout: bad input")

// Instance is what the network verified about one instance in an epoch.
type Instance struct {
	// Account is the instance's Ethereum account, paid by the fund.
	Account common.Address
	// Group is the instance's diversity group; "" is a group of its own.
	Group string
	// Availability is the instance's availability score for the epoch in
	// parts per million (0 to PPM), as attested by its probers.
	Availability uint32
	// Verified is whether the instance's executable matches an approved
	// release for its platform.
	Verified bool
	// Served is the traffic the instance served in the epoch, as backed
	// by payment vouchers it was given (never what it says of itself), in
	// any unit common to all instances. Nil is zero.
	Served *big.Int
}

// Params are the epoch's parameters.
type Params struct {
	// Budget is what the epoch pays out in total (the token's smallest
	// unit), at most the fund contract's epoch budget.
	Budget *big.Int
	// MinAvailability is the least availability (ppm) an instance needs to
	// be paid; DefaultMinAvailability is 90%.
	MinAvailability uint32
}

// Row is one line of a payout table.
type Row struct {
	Account common.Address
	Amount  *big.Int
}

// member is one account's eligible instances in one group.
type member struct {
	account common.Address
	avail   uint32
	served  *big.Int
}

type group struct {
	key       string
	members   []*member
	byAccount map[common.Address]*member
	best      uint32
	served    *big.Int
}

// Compute returns the payout table of the epoch for instances under p (see
// the package documentation for the rule). It returns an error wrapping
// ErrBadInput, and no table, when an input is out of range.
func Compute(instances []Instance, p Params) ([]Row, error) {
	if p.Budget == nil || p.Budget.Sign() < 0 || p.Budget.Cmp(maxAmount) > 0 {
		return nil, fmt.Errorf("%w: budget %v", ErrBadInput, p.Budget)
	}
	if p.MinAvailability > PPM {
		return nil, fmt.Errorf("%w: minimum availability %d ppm above %d", ErrBadInput, p.MinAvailability, PPM)
	}
	groups := map[string]*group{}
	for i, in := range instances {
		if in.Account == (common.Address{}) {
			return nil, fmt.Errorf("%w: instance %d: zero account", ErrBadInput, i)
		}
		if in.Availability > PPM {
			return nil, fmt.Errorf("%w: instance %d (%s): availability %d ppm above %d", ErrBadInput, i, in.Account, in.Availability, PPM)
		}
		if in.Served != nil && in.Served.Sign() < 0 {
			return nil, fmt.Errorf("%w: instance %d (%s): served %v", ErrBadInput, i, in.Account, in.Served)
		}
		if !in.Verified || in.Availability < p.MinAvailability || in.Availability == 0 || in.Served == nil || in.Served.Sign() == 0 {
			continue
		}
		// Group keys: "g:" + name, or "a:" + account for an empty name, so
		// that no named group can collide with an ungrouped account.
		key := "g:" + in.Group
		if in.Group == "" {
			key = "a:" + string(in.Account[:])
		}
		g := groups[key]
		if g == nil {
			g = &group{key: key, served: new(big.Int), byAccount: map[common.Address]*member{}}
			groups[key] = g
		}
		m := g.byAccount[in.Account]
		if m == nil {
			m = &member{account: in.Account, served: new(big.Int)}
			g.members = append(g.members, m)
			g.byAccount[in.Account] = m
		}
		m.served.Add(m.served, in.Served)
		m.avail = max(m.avail, in.Availability)
		g.served.Add(g.served, in.Served)
		g.best = max(g.best, in.Availability)
	}
	if len(groups) == 0 || p.Budget.Sign() == 0 {
		return []Row{}, nil
	}

	gs := make([]*group, 0, len(groups))
	for _, g := range groups {
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].key < gs[j].key })
	weights := make([]*big.Int, len(gs))
	for i, g := range gs {
		weights[i] = new(big.Int).Mul(big.NewInt(int64(g.best)), g.served)
	}
	groupAmounts := split(p.Budget, weights)

	paid := map[common.Address]*big.Int{}
	for i, g := range gs {
		sort.Slice(g.members, func(a, b int) bool {
			return bytes.Compare(g.members[a].account[:], g.members[b].account[:]) < 0
		})
		w := make([]*big.Int, len(g.members))
		for k, m := range g.members {
			w[k] = m.served
		}
		for k, amount := range split(groupAmounts[i], w) {
			if amount.Sign() == 0 {
				continue
			}
			acc := g.members[k].account
			if paid[acc] == nil {
				paid[acc] = new(big.Int)
			}
			paid[acc].Add(paid[acc], amount)
		}
	}
	rows := make([]Row, 0, len(paid))
	for acc, amount := range paid {
		rows = append(rows, Row{Account: acc, Amount: amount})
	}
	sort.Slice(rows, func(i, j int) bool { return bytes.Compare(rows[i].Account[:], rows[j].Account[:]) < 0 })
	return rows, nil
}

// split divides total among parts in proportion to weights (all positive,
// in the caller's tie-break order): floor(total × w_i / W) each, then the
// units left over one each to the largest remainders, ties to the lower
// index. The parts sum to total exactly.
func split(total *big.Int, weights []*big.Int) []*big.Int {
	sum := new(big.Int)
	for _, w := range weights {
		sum.Add(sum, w)
	}
	out := make([]*big.Int, len(weights))
	rem := make([]*big.Int, len(weights))
	left := new(big.Int).Set(total)
	for i, w := range weights {
		q, r := new(big.Int).QuoRem(new(big.Int).Mul(total, w), sum, new(big.Int))
		out[i], rem[i] = q, r
		left.Sub(left, q)
	}
	// left < len(weights): each floor loses less than one unit.
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rem[order[a]].Cmp(rem[order[b]]) > 0 })
	for k := 0; left.Sign() > 0; k++ {
		out[order[k]].Add(out[order[k]], big.NewInt(1))
		left.Sub(left, big.NewInt(1))
	}
	return out
}

// maxAmount is the largest uint256.
var maxAmount = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// Hash is the hash of a table that the Fund contract checks and committee
// members sign: keccak256(abi.encode(address[] accounts, uint256[]
// amounts)) over the rows in their order. An amount that is nil, negative
// or above 2^256-1 is an error wrapping ErrBadInput (Compute's never are).
func Hash(rows []Row) (common.Hash, error) {
	n := len(rows)
	// Two head words (offsets), then each array: its length and n words.
	b := make([]byte, 32*(2+2*(n+1)))
	big.NewInt(64).FillBytes(b[0:32])
	big.NewInt(int64(64 + 32*(n+1))).FillBytes(b[32:64])
	acc := b[64:]
	big.NewInt(int64(n)).FillBytes(acc[0:32])
	amt := b[64+32*(n+1):]
	big.NewInt(int64(n)).FillBytes(amt[0:32])
	for i, r := range rows {
		if r.Amount == nil || r.Amount.Sign() < 0 || r.Amount.Cmp(maxAmount) > 0 {
			return common.Hash{}, fmt.Errorf("%w: row %d (%s): amount %v not a uint256", ErrBadInput, i, r.Account, r.Amount)
		}
		copy(acc[32*(i+1)+12:32*(i+2)], r.Account[:])
		r.Amount.FillBytes(amt[32*(i+1) : 32*(i+2)])
	}
	return crypto.Keccak256Hash(b), nil
}

// Total is the sum of a table's amounts (nil counts as zero).
func Total(rows []Row) *big.Int {
	t := new(big.Int)
	for _, r := range rows {
		if r.Amount != nil {
			t.Add(t, r.Amount)
		}
	}
	return t
}
