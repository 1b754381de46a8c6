package store

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/delta"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

var convSeed = flag.Uint64("convseed", 0, "seed for TestReplicasConvergeUnderRandomDelivery (0 = time)")

// newBlocks returns the blocks author wrote after sequence number from.
func newBlocks(t testing.TB, s *Store, author common.Address, from uint64) [][]byte {
	t.Helper()
	it, err := s.space.Iter(authorKey(author, from+1), authorKey(author, 1<<63))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][]byte
	for it.First(); it.Valid(); it.Next() {
		block, err := s.space.Get(logKey(binary.BigEndian.Uint64(it.Value())))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, block)
	}
	return out
}

func deliver(t testing.TB, s *Store, blocks [][]byte) remoteResult {
	t.Helper()
	in := make([]*incoming, 0, len(blocks))
	for _, b := range blocks {
		d, id, err := delta.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, &incoming{d: d, id: id, block: b})
	}
	res, err := s.applyRemoteWait(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestReplicasConvergeUnderRandomDelivery drives several in-memory stores
// with seeded random operations of every kind on shared documents and
// hands each one the others' deltas in random orders, in random
// fragments, with duplicates and delays; once everything is delivered,
// every replica must hold identical documents.
func TestReplicasConvergeUnderRandomDelivery(t *testing.T) {
	seed := *convSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -convseed=%d)", seed, seed)
	for round := range 4 {
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		ctx := context.Background()
		n := 2 + rng.IntN(3)
		reps := make([]*Store, n)
		for i := range reps {
			reps[i] = openLocal(t, Config{})
		}
		var pool [][]byte
		seen := make([]uint64, n)
		for step := range 250 {
			i := rng.IntN(n)
			s := reps[i]
			if rng.IntN(3) > 0 {
				c := s.Collection("c")
				id := fmt.Sprintf("d%d", rng.IntN(5))
				var err error
				switch rng.IntN(8) {
				case 0:
					err = c.Put(ctx, id, map[string]any{"p": step, "who": i})
				case 1:
					err = c.Delete(ctx, id)
				case 2:
					err = c.Update(ctx, id, Set("f", rng.IntN(3)), Unset("g"))
				case 3:
					err = c.Update(ctx, id, Inc("n", int64(rng.IntN(5)-2)))
				case 4:
					err = c.Update(ctx, id, Add("s", rng.IntN(3)))
				case 5:
					err = c.Update(ctx, id, Remove("s", rng.IntN(3)))
				case 6:
					err = c.Update(ctx, id, Append("l", step))
				case 7:
					b := s.Batch()
					b.Update(c, id, Set("g", step))
					b.Put(c, fmt.Sprintf("d%d", rng.IntN(5)), map[string]any{"b": step})
					err = b.Commit(ctx)
				}
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				fresh := newBlocks(t, s, s.Author(), seen[i])
				seen[i] += uint64(len(fresh))
				pool = append(pool, fresh...)
				continue
			}
			if len(pool) == 0 {
				continue
			}
			var frag [][]byte
			for range 1 + rng.IntN(6) {
				frag = append(frag, pool[rng.IntN(len(pool))]) // may repeat, may skip parents
			}
			deliver(t, s, frag)
		}
		for _, s := range reps {
			order := rng.Perm(len(pool))
			for len(order) > 0 {
				k := min(len(order), 1+rng.IntN(20))
				var frag [][]byte
				for _, j := range order[:k] {
					frag = append(frag, pool[j])
				}
				order = order[k:]
				deliver(t, s, frag)
			}
			if st := s.Stats(); st.Pending != 0 || st.DeltasRejected != 0 {
				t.Fatalf("seed %d round %d: stats after full delivery %+v", seed, round, st)
			}
		}
		want := digest(t, reps[0])
		for i, s := range reps[1:] {
			if got := digest(t, s); got != want {
				t.Fatalf("seed %d round %d: replica %d differs from replica 0", seed, round, i+1)
			}
		}
	}
}

// TestParallelCommitMatchesSequential commits the same big batch of mixed
// operations on overlapping documents twice, with the same key and clock:
// once on the parallel path (no validator) and once on the sequential path
// (a validator that accepts everything). Deltas and documents must be
// identical.
func TestParallelCommitMatchesSequential(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ctx := context.Background()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	fixed := func() time.Time { return time.Unix(1_900_000_000, 0) }
	par := openLocal(t, Config{Key: key, Clock: fixed, MaxDeltaOps: 100})
	seq := openLocal(t, Config{Key: key, Clock: fixed, MaxDeltaOps: 100,
		Validators: map[string]Validator{"c": func(Write) error { return nil }}})
	for _, s := range []*Store{par, seq} {
		rng := rand.New(rand.NewPCG(seed, 7))
		c := s.Collection("c")
		for round := range 3 {
			b := s.Batch()
			for i := range 400 {
				id := fmt.Sprintf("d%d", rng.IntN(60))
				switch rng.IntN(7) {
				case 0:
					b.Put(c, id, map[string]any{"r": round, "i": i})
				case 1:
					b.Delete(c, id)
				case 2:
					b.Update(c, id, Set("f", i), Inc("n", 1))
				case 3:
					b.Update(c, id, Add("s", rng.IntN(3)))
				case 4:
					b.Update(c, id, Remove("s", rng.IntN(3)))
				case 5:
					b.Update(c, id, Append("l", i))
				case 6:
					b.Update(c, id, Unset("f"))
				}
			}
			if err := b.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if digest(t, par) != digest(t, seq) {
		t.Fatalf("seed %d: documents differ", seed)
	}
	if fmt.Sprint(par.Heads()) != fmt.Sprint(seq.Heads()) {
		t.Fatalf("seed %d: heads differ: %v vs %v", seed, par.Heads(), seq.Heads())
	}
}
