package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/delta"
	"github.com/dpaas/dpaas/internal/hlc"
	"github.com/dpaas/dpaas/internal/storesync"
	"github.com/dpaas/dpaas/internal/systopic"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ipfs/go-cid"
)

// TestBadInputIsCountedAndNeverApplied publishes, from a raw pubsub peer,
// garbage, a forged signature, a delta the collection's validator refuses,
// a valid child of that refused delta, and a delta stamped an hour ahead.
func TestBadInputIsCountedAndNeverApplied(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	ownerOnce := func(w Write) error {
		if w.Before != nil && (w.Kind == "put" || (w.Kind == "set" && w.Field == "owner")) {
			if strings.Contains(string(w.Before), `"owner"`) {
				return errors.New("owner is write-once")
			}
		}
		return nil
	}
	r := startReplica(t, Config{Clock: clock})
	docs := r.s.Collection("c")
	docs.SetValidator(ownerOnce)
	// downstream hears the publisher only through r
	down := startReplica(t, Config{Clock: clock, Validators: map[string]Validator{"c": ownerOnce}})
	connect(t, down, r)

	h, _ := newHost(t)
	defer h.Close()
	ps, err := pubsub.Open(ctx, pubsub.Config{Host: h, AppID: testApp})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	// The store's topic is reserved; a modified instance would join it
	// anyway, as this raw publisher does through the SDK's own path.
	topic, err := systopic.Join[*pubsub.Topic](ps, TopicName)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe() // join the mesh
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	connect(t, &replicaNode{h: h}, r)
	eventually(t, 10*time.Second, "publisher never saw the replica in the topic", func() bool {
		return slices.Contains(topic.Peers(), r.h.ID())
	})
	publish := func(block []byte) {
		t.Helper()
		msg, err := storesync.Encode(&storesync.Message{Delta: block})
		if err != nil {
			t.Fatal(err)
		}
		if err := topic.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	mallory, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ts := uint64(hlc.FromTime(clock()))
	sign := func(seq uint64, at uint64, parents []cid.Cid, op delta.Op) ([]byte, cid.Cid) {
		t.Helper()
		d := &delta.Delta{Seq: seq, HLC: at, Parents: parents, Ops: []delta.Op{op}}
		block, id, err := d.Sign(mallory)
		if err != nil {
			t.Fatal(err)
		}
		return block, id
	}
	rejected := func(n uint64) func() bool {
		return func() bool { return r.s.Stats().DeltasRejected == n }
	}

	// 1. garbage
	if err := topic.Publish(ctx, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "garbage not counted", rejected(1))

	// 2. a forged signature: signed by mallory, claims another author
	block, _ := sign(1, ts, nil, delta.Op{Kind: delta.Put, Collection: "c", ID: "forged", Fields: delta.Fields{{Name: "a", Value: []byte("1")}}})
	d, _, err := delta.Decode(block)
	if err != nil {
		t.Fatal(err)
	}
	d.Author[0] ^= 1
	forged, _, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	publish(forged)
	eventually(t, 10*time.Second, "forged delta not counted", rejected(2))

	// 3. a valid create, 4. a refused overwrite, 5. its valid child
	b1, c1 := sign(1, ts+1, nil, delta.Op{Kind: delta.Put, Collection: "c", ID: "x", Fields: delta.Fields{{Name: "owner", Value: []byte(`"mallory"`)}}})
	b2, c2 := sign(2, ts+2, []cid.Cid{c1}, delta.Op{Kind: delta.Set, Collection: "c", ID: "x", Field: "owner", Value: []byte(`"bob"`)})
	b3, c3 := sign(3, ts+3, []cid.Cid{c2}, delta.Op{Kind: delta.Set, Collection: "c", ID: "x", Field: "note", Value: []byte(`"hi"`)})
	publish(b1)
	publish(b2)
	publish(b3)
	eventually(t, 10*time.Second, "valid child of a refused delta not applied", func() bool {
		raw, err := docs.GetRaw(ctx, "x")
		return err == nil && strings.Contains(string(raw), `"note"`)
	})
	if raw, _ := docs.GetRaw(ctx, "x"); string(raw) != `{"note":"hi","owner":"mallory"}` {
		t.Fatalf("document %s: the refused delta changed it", raw)
	}
	if st := r.s.Stats(); st.DeltasRejected != 3 || st.DeltasApplied != 2 {
		t.Fatalf("stats %+v, want 3 rejected and 2 applied", st)
	}
	if _, err := docs.GetRaw(ctx, "forged"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forged document: %v", err)
	}

	// 6. an hour ahead: held, then applied once the clock gets there
	future := uint64(hlc.FromTime(clock().Add(time.Hour)))
	b4, _ := sign(4, future, []cid.Cid{c3}, delta.Op{Kind: delta.Set, Collection: "c", ID: "x", Field: "late", Value: []byte("1")})
	publish(b4)
	eventually(t, 10*time.Second, "future delta not held", func() bool { return r.s.Stats().Held == 1 })
	if raw, _ := docs.GetRaw(ctx, "x"); strings.Contains(string(raw), "late") {
		t.Fatalf("future delta applied early: %s", raw)
	}
	now.Add(int64(2 * time.Hour))
	eventually(t, 10*time.Second, "held delta not applied when its time came", func() bool {
		raw, err := docs.GetRaw(ctx, "x")
		return err == nil && strings.Contains(string(raw), `"late":1`)
	})
	if st := r.s.Stats(); st.Held != 0 || st.DeltasRejected != 3 {
		t.Fatalf("stats %+v", st)
	}
	// a local write now is stamped after the delta it observed
	if err := docs.Update(ctx, "x", Set("after", true)); err != nil {
		t.Fatal(err)
	}

	// r forwarded no bad message and no refused delta by gossip; the
	// downstream replica still ends up with the same document, having
	// refused the refused delta itself when catch-up handed it over.
	eventually(t, 10*time.Second, "downstream replica did not converge", func() bool {
		return digest(t, down.s) == digest(t, r.s)
	})
	if st := down.s.Stats(); st.DeltasRejected > 1 || st.Pending != 0 {
		t.Fatalf("downstream stats %+v: bad input was forwarded", st)
	}
}
