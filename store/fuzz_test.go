package store

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ethereum/go-ethereum/crypto"
)

// diskReplica is a replica on a directory that outlives it, so that it
// can be stopped and started again.
type diskReplica struct {
	dir string
	key *ecdsa.PrivateKey
	db  *kv.DB
	r   *replicaNode
}

func (d *diskReplica) start(t testing.TB) {
	t.Helper()
	db, err := kv.Open(d.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := db.Space("store")
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	d.db = db
	d.r = startReplica(t, Config{Space: sp, Key: d.key})
}

func (d *diskReplica) stop() {
	d.r.close()
	d.db.Close()
}

// FuzzWritesReplicate feeds random collection names, IDs, field names and
// values, invalid UTF-8 and huge sizes included, to one replica of two.
// Every write either fails on the writer and leaves nothing behind, or is
// accepted and reaches the other replica; then both restart and converge.
func FuzzWritesReplicate(f *testing.F) {
	f.Add(byte(0), "c", "x", "f", []byte(`{"a":[1,2]}`), uint32(0))
	f.Add(byte(1), "c\xff", "x", "f", []byte(`1`), uint32(0))
	f.Add(byte(0), "c", "x\xfe", "f", []byte(`"v"`), uint32(0))
	f.Add(byte(1), "c", "x", "f\xff\x00", []byte(`"v"`), uint32(0))
	f.Add(byte(2), "c", strings.Repeat("i", MaxNameLen+1), "f", []byte(`1`), uint32(0))
	f.Add(byte(0), "c", "big", "f", []byte("v"), uint32(MaxWriteSize))
	f.Add(byte(4), "c", "b", "f", []byte("\xff"), uint32(600<<10))
	f.Add(byte(3), "c", "x", "", []byte(nil), uint32(0))
	key := func() *ecdsa.PrivateKey {
		k, err := crypto.GenerateKey()
		if err != nil {
			f.Fatal(err)
		}
		return k
	}
	a := &diskReplica{dir: f.TempDir(), key: key()}
	b := &diskReplica{dir: f.TempDir(), key: key()}
	f.Fuzz(func(t *testing.T, kind byte, coll, id, field string, value []byte, size uint32) {
		ctx := context.Background()
		a.start(t)
		b.start(t)
		connect(t, a.r, b.r)
		converged := func(what string) {
			t.Helper()
			eventually(t, 60*time.Second, what, func() bool {
				return digest(t, a.r.s) == digest(t, b.r.s) && fmt.Sprint(a.r.s.Heads()) == fmt.Sprint(b.r.s.Heads())
			})
		}
		converged("replicas did not converge after starting")

		var v any = string(value)
		if json.Valid(value) {
			v = json.RawMessage(value)
		}
		if n := int(size % (9 << 20)); n > len(value) {
			v = string(value) + strings.Repeat("x", n-len(value))
		}
		s := a.r.s
		c := s.Collection(coll)
		beforeDigest, beforeHeads, beforeCreated := digest(t, s), fmt.Sprint(s.Heads()), s.Stats().DeltasCreated
		var err error
		switch kind % 5 {
		case 0:
			err = c.Put(ctx, id, map[string]any{field: v})
		case 1:
			err = c.Update(ctx, id, Set(field, v))
		case 2:
			err = c.Update(ctx, id, Append(field, v), Inc(field+"n", 1))
		case 3:
			err = c.Delete(ctx, id)
		case 4:
			bt := s.Batch()
			bt.Put(c, id, map[string]any{field: v})
			bt.Update(c, id+"2", Add(field, v))
			bt.Put(c, id+"3", map[string]any{"n": len(id)})
			err = bt.Commit(ctx)
		}
		if err != nil {
			if d, h, n := digest(t, s), fmt.Sprint(s.Heads()), s.Stats().DeltasCreated; d != beforeDigest || h != beforeHeads || n != beforeCreated {
				t.Fatalf("write failed (%v) but left something behind: %d deltas", err, n-beforeCreated)
			}
		} else {
			converged("an accepted write did not replicate")
		}
		wantDigest := digest(t, s)
		a.stop()
		b.stop()

		a.start(t)
		b.start(t)
		connect(t, a.r, b.r)
		if d := digest(t, a.r.s); d != wantDigest {
			t.Fatal("the writer's documents changed across a restart")
		}
		converged("replicas did not converge after restarting")
		for _, r := range []*replicaNode{a.r, b.r} {
			if st := r.s.Stats(); st.DeltasRejected != 0 || st.Pending != 0 || st.SetAside != 0 {
				t.Fatalf("stats %+v", st)
			}
		}
		a.stop()
		b.stop()
	})
}
