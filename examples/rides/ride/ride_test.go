package ride

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
)

var testDomain = Domain{ChainID: 31337, AppID: [32]byte{1, 2, 3}}

func key(t testing.TB) *ecdsa.PrivateKey {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, k *ecdsa.PrivateKey, a Action) Action {
	t.Helper()
	if err := testDomain.Sign(&a, k); err != nil {
		t.Fatal(err)
	}
	return a
}

func request(t testing.TB, k *ecdsa.PrivateKey, ts uint64) Action {
	return sign(t, k, Action{Kind: KindRequest, Ride: RideID(crypto.PubkeyToAddress(k.PublicKey), ts, 0), TS: ts,
		Data: `{"from":{"x":10,"y":20},"to":{"x":500,"y":600},"fare":"1000"}`})
}

func child(t testing.TB, k *ecdsa.PrivateKey, kind string, parent Action, ts uint64, data string) Action {
	return sign(t, k, Action{Kind: kind, Ride: parent.Ride, TS: ts, Parent: testDomain.Digest(parent), Data: data})
}

// doc is a replica's copy of one ride document.
type doc map[string]json.RawMessage

func (d doc) raw() json.RawMessage {
	if len(d) == 0 {
		return nil
	}
	b, _ := json.Marshal(map[string]json.RawMessage(d))
	return b
}

func (d doc) add(a Action) error {
	v, _ := json.Marshal(a)
	field := Field(testDomain.Digest(a))
	if _, err := testDomain.Check(a.Ride, "set", field, v, d.raw()); err != nil {
		return err
	}
	d[field] = v
	return nil
}

func TestDigestMatchesGoEthereum(t *testing.T) {
	a := Action{Kind: KindAccept, Ride: "r", User: common.HexToAddress("0x1234"), TS: 1700000000123, Parent: common.Hash{9}, Data: `{"x":1}`}
	b, _ := json.Marshal(testDomain.TypedData(a))
	var td apitypes.TypedData
	if err := json.Unmarshal(b, &td); err != nil {
		t.Fatal(err)
	}
	td.Types["EIP712Domain"] = []apitypes.Type{{Name: "name", Type: "string"}, {Name: "version", Type: "string"}, {Name: "chainId", Type: "uint256"}, {Name: "salt", Type: "bytes32"}}
	want, _, err := apitypes.TypedDataAndHash(td)
	if err != nil {
		t.Fatal(err)
	}
	if got := testDomain.Digest(a); common.BytesToHash(want) != got {
		t.Fatalf("digest %s, go-ethereum says %x", got, want)
	}
}

func TestValidatorRules(t *testing.T) {
	p, d1, d2, other := key(t), key(t), key(t), key(t)
	now := uint64(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC).UnixMilli())
	req := request(t, p, now)
	acc := child(t, d1, KindAccept, req, now+10, "")
	d := doc{}
	if err := d.add(acc); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("accept before its request: %v", err)
	}
	if err := d.add(req); err != nil {
		t.Fatal(err)
	}
	forged := req
	forged.Data = `{"from":{"x":10,"y":20},"to":{"x":500,"y":600},"fare":"1"}`
	if err := d.add(forged); !errors.Is(err, ErrSignature) {
		t.Fatalf("changed request: %v", err)
	}
	cases := []struct {
		name string
		a    Action
		want error
	}{
		{"passenger accepts own ride", child(t, p, KindAccept, req, now+5, ""), ErrNotAllowed},
		{"someone else requests in the passenger's slot", sign(t, other, Action{Kind: KindRequest, Ride: req.Ride, TS: now, Data: req.Data}), ErrNotAllowed},
		{"request outside its window", sign(t, p, Action{Kind: KindRequest, Ride: req.Ride, TS: now + 2*Window, Data: req.Data}), ErrNotAllowed},
		{"slot beyond the rate limit", sign(t, p, Action{Kind: KindRequest, Ride: req.Ride[:len(req.Ride)-1] + "9", TS: now, Data: req.Data}), ErrInvalid},
		{"driver cancels", child(t, d1, KindCancel, req, now+5, ""), ErrNotAllowed},
		{"accept too late", child(t, d1, KindAccept, req, now+AcceptWindow+1, ""), ErrNotAllowed},
		{"accept backdated before the request", child(t, d1, KindAccept, req, now-1, ""), ErrInvalid},
		{"fine accept", acc, nil},
		{"second driver accepts too", child(t, d2, KindAccept, req, now+11, ""), nil},
		{"other driver advances d1's accept", child(t, d2, KindArrive, acc, now+20, ""), ErrNotAllowed},
		{"driver confirms", child(t, d1, KindConfirm, acc, now+20, `{"escrow":"0x01"}`), ErrNotAllowed},
		{"stranger disputes", child(t, other, KindDispute, acc, now+20, `{"reason":"x"}`), ErrNotAllowed},
		{"six stars", child(t, p, KindRate, acc, now+20, `{"stars":6}`), ErrInvalid},
		{"arrive", child(t, d1, KindArrive, acc, now+30, ""), nil},
	}
	for _, c := range cases {
		err := d.add(c.a)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// Only "set" operations of an action under its own digest.
	v, _ := json.Marshal(acc)
	if _, err := testDomain.Check(acc.Ride, "set", "a_00", v, d.raw()); !errors.Is(err, ErrInvalid) {
		t.Errorf("action under another field: %v", err)
	}
	if _, err := testDomain.Check(acc.Ride, "delete", "", nil, d.raw()); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("delete: %v", err)
	}
}

// TestConvergence plays random rides whose actions reach several replicas
// in random orders (parents first, as the store's causal delivery
// guarantees) and checks that every replica accepts the same actions and
// folds them to the same state, whatever the order.
func TestConvergence(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	now := uint64(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC).UnixMilli())
	keys := []*ecdsa.PrivateKey{key(t), key(t), key(t), key(t)}
	for round := range 200 {
		p := keys[0]
		req := request(t, p, now)
		acts := []Action{req}
		var accepts []Action
		for i, d := range keys[1:] {
			if rng.IntN(3) > 0 {
				a := child(t, d, KindAccept, req, now+uint64(rng.IntN(5)), "")
				accepts = append(accepts, a)
				acts = append(acts, a)
				if rng.IntN(2) == 0 {
					ar := child(t, d, KindArrive, a, now+10+uint64(i), "")
					acts = append(acts, ar, child(t, d, KindStart, a, now+30, ""))
					acts = append(acts, child(t, d, KindComplete, a, now+40+uint64(rng.IntN(3)), ""))
				}
			}
		}
		if len(accepts) > 0 && rng.IntN(2) == 0 {
			a := accepts[rng.IntN(len(accepts))]
			acts = append(acts, child(t, p, KindConfirm, a, now+8+uint64(rng.IntN(30)), `{"escrow":"0x0000000000000000000000000000000000000000000000000000000000000001"}`))
			acts = append(acts, child(t, p, KindRate, a, now+50, `{"stars":4}`))
		}
		if rng.IntN(3) == 0 {
			acts = append(acts, child(t, p, KindCancel, req, now+uint64(rng.IntN(45)), ""))
		}
		var first State
		for r := range 4 {
			order := rng.Perm(len(acts))
			d := doc{}
			pending := make([]Action, 0, len(acts))
			for _, i := range order {
				pending = append(pending, acts[i])
			}
			// Deliver in the random order, holding back what lacks its parent.
			for len(pending) > 0 {
				progressed := false
				rest := pending[:0]
				for _, a := range pending {
					if err := d.add(a); err != nil {
						if !errors.Is(err, ErrNotAllowed) || a.Parent == (common.Hash{}) {
							t.Fatalf("round %d replica %d: %s refused: %v", round, r, a.Kind, err)
						}
						rest = append(rest, a)
						continue
					}
					progressed = true
				}
				pending = rest
				if !progressed {
					t.Fatalf("round %d replica %d: %d actions never accepted", round, r, len(pending))
				}
			}
			s, err := Fold(req.Ride, d.raw())
			if err != nil {
				t.Fatal(err)
			}
			if r == 0 {
				first = s
				continue
			}
			a, _ := json.Marshal(first)
			b, _ := json.Marshal(s)
			if string(a) != string(b) {
				t.Fatalf("round %d: replicas differ:\n%s\n%s", round, a, b)
			}
		}
		// The winner is the lowest (ts, digest) accept unless a confirm chose.
		if len(accepts) > 0 && !first.Confirmed && first.State != StateCancelled {
			best := accepts[0]
			for _, a := range accepts[1:] {
				if a.TS < best.TS || a.TS == best.TS && testDomain.Digest(a).Big().Cmp(testDomain.Digest(best).Big()) < 0 {
					best = a
				}
			}
			if first.Driver != best.User {
				t.Fatalf("round %d: winner %s, want %s: %+v", round, first.Driver, best.User, first)
			}
		}
		now += Window
	}
}

func TestFoldHappyPath(t *testing.T) {
	p, d1 := key(t), key(t)
	now := uint64(1_800_000_000_000)
	req := request(t, p, now)
	acc := child(t, d1, KindAccept, req, now+1, "")
	d := doc{}
	steps := []struct {
		a    Action
		want string
	}{
		{req, StateRequested},
		{acc, StateAccepted},
		{child(t, d1, KindStart, acc, now+2, ""), StateAccepted}, // not arrived yet: skipped
		{child(t, p, KindConfirm, acc, now+3, `{"escrow":"0x0000000000000000000000000000000000000000000000000000000000000002"}`), StateAccepted},
		{child(t, d1, KindArrive, acc, now+4, ""), StateArriving},
		{child(t, d1, KindStart, acc, now+5, ""), StateInProgress},
		{child(t, p, KindCancel, req, now+6, ""), StateInProgress}, // too late to cancel
		{child(t, d1, KindComplete, acc, now+7, ""), StateCompleted},
		{child(t, p, KindRate, acc, now+8, `{"stars":5}`), StateCompleted},
		{child(t, d1, KindRate, acc, now+9, `{"stars":4}`), StateCompleted},
	}
	for i, st := range steps {
		if err := d.add(st.a); err != nil {
			t.Fatalf("step %d %s: %v", i, st.a.Kind, err)
		}
		s, err := Fold(req.Ride, d.raw())
		if err != nil {
			t.Fatal(err)
		}
		if s.State != st.want {
			t.Fatalf("step %d %s: state %s, want %s", i, st.a.Kind, s.State, st.want)
		}
	}
	s, _ := Fold(req.Ride, d.raw())
	reps := Reputations([]State{s})
	dr := reps[crypto.PubkeyToAddress(d1.PublicKey)]
	if dr.Driver.Rides != 1 || dr.Driver.Stars != 5 || dr.Driver.Score != (5000+6000)/3 {
		t.Fatalf("driver reputation %+v", dr.Driver)
	}
	if pr := reps[crypto.PubkeyToAddress(p.PublicKey)]; pr.Passenger.Stars != 4 || pr.Passenger.Rides != 1 {
		t.Fatalf("passenger reputation %+v", pr.Passenger)
	}
}
