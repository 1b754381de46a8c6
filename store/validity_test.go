package store

import (
	"bytes"
	"context"
	"slices"
	"strings"
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

// TestInvalidDeltaDoesNotHoldBackDescendants: an author (an older version,
// or a hostile one) signs a delta whose collection name is not UTF-8, then
// valid deltas on top of it. Every replica refuses the invalid one by the
// same rule, records it as refused and counts it, and applies the valid
// descendants, whether it hears them by gossip, before their parent, or
// through catch-up. (Before: the invalid delta could not be decoded, and
// every later delta of its author waited for it forever.)
func TestInvalidDeltaDoesNotHoldBackDescendants(t *testing.T) {
	ctx := context.Background()
	r := startReplica(t, Config{})
	h, _ := newHost(t)
	defer h.Close()
	ps, err := pubsub.Open(ctx, pubsub.Config{Host: h, AppID: testApp})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	topic, err := systopic.Join[*pubsub.Topic](ps, TopicName)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
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
	author, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ts := uint64(hlc.FromTime(time.Now()))
	sign := func(seq uint64, parents []cid.Cid, op delta.Op) ([]byte, cid.Cid) {
		t.Helper()
		d := &delta.Delta{Seq: seq, HLC: ts + seq, Parents: parents, Ops: []delta.Op{op}}
		block, id, err := d.SignUnvalidated(author)
		if err != nil {
			t.Fatal(err)
		}
		return block, id
	}
	b1, c1 := sign(1, []cid.Cid{}, delta.Op{Kind: delta.Put, Collection: "c\xff", ID: "x", Fields: delta.Fields{{Name: "a", Value: []byte("1")}}})
	b2, c2 := sign(2, []cid.Cid{c1}, delta.Op{Kind: delta.Put, Collection: "c", ID: "x", Fields: delta.Fields{{Name: "a", Value: []byte("2")}}})
	b3, _ := sign(3, []cid.Cid{c2}, delta.Op{Kind: delta.Set, Collection: "c", ID: "x", Field: "note", Value: []byte(`"hi"`)})
	publish(b2) // before its parent: waits for it
	eventually(t, 10*time.Second, "child not held for its parent", func() bool { return r.s.Stats().Pending == 1 })
	publish(b1)
	publish(b3)
	docs := r.s.Collection("c")
	eventually(t, 10*time.Second, "valid descendants of an invalid delta not applied", func() bool {
		raw, err := docs.GetRaw(ctx, "x")
		return err == nil && string(raw) == `{"a":2,"note":"hi"}`
	})
	if st := r.s.Stats(); st.DeltasInvalid != 1 || st.DeltasRejected != 1 || st.DeltasApplied != 2 || st.Pending != 0 {
		t.Fatalf("stats %+v, want 1 invalid (rejected) and 2 applied, none pending", st)
	}
	if n := countRecords(t, r.s, tState); n != 1 {
		t.Fatalf("%d documents, want 1: the invalid delta wrote one", n)
	}
	if v := r.s.Versions()[crypto.PubkeyToAddress(author.PublicKey)]; v != 3 {
		t.Fatalf("author's version %d, want 3", v)
	}

	// a replica that comes later gets all three by catch-up and decides
	// the same
	late := startReplica(t, Config{})
	connect(t, late, r)
	eventually(t, 20*time.Second, "late replica did not converge", func() bool {
		return digest(t, late.s) == digest(t, r.s)
	})
	if st := late.s.Stats(); st.DeltasInvalid != 1 || st.Pending != 0 {
		t.Fatalf("late replica stats %+v, want 1 invalid, none pending", st)
	}
	// and its own writes replicate back
	if err := late.s.Collection("c").Update(ctx, "x", Set("late", true)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "write after catch-up did not replicate", func() bool {
		raw, err := docs.GetRaw(ctx, "x")
		return err == nil && strings.Contains(string(raw), `"late":true`)
	})
}

// A pushed delta names its author as the sender of its gossip message:
// authenticatePush recovers the author's key and hands the decoded delta
// on; an announcement, a tampered delta or garbage is not authenticated.
func TestAuthenticatePush(t *testing.T) {
	author, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	d := &delta.Delta{Seq: 1, HLC: 1, Parents: []cid.Cid{}, Ops: []delta.Op{{Kind: delta.Put, Collection: "c", ID: "x", Fields: delta.Fields{{Name: "a", Value: []byte("1")}}}}}
	block, id, err := d.Sign(author)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(m *storesync.Message) []byte {
		data, err := storesync.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	pub, decoded, err := authenticatePush(msg(&storesync.Message{Delta: block}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub, crypto.FromECDSAPub(&author.PublicKey)) {
		t.Fatal("the key returned is not the author's")
	}
	p, ok := decoded.(*pushedDelta)
	if !ok || p.id != id || !bytes.Equal(p.block, block) || p.d.Author != crypto.PubkeyToAddress(author.PublicKey) {
		t.Fatalf("decoded %+v", decoded)
	}
	tampered := bytes.Clone(block)
	tampered[len(tampered)-70] ^= 1 // inside the operations, before the signature
	announce := &storesync.Message{Announce: &storesync.Announce{Versions: []storesync.Version{{Author: p.d.Author.Bytes(), Seq: 1}}}}
	for name, payload := range map[string][]byte{
		"announcement": msg(announce),
		"tampered":     msg(&storesync.Message{Delta: tampered}),
		"garbage":      []byte("garbage"),
	} {
		if _, _, err := authenticatePush(payload); err == nil {
			t.Errorf("%s authenticated", name)
		}
	}
}

// The store's validator takes the decoded delta out of the message, its
// own and others' alike: GossipSub keeps recent messages, with what they
// carry, for seconds, and a writer filling the store held every delta it
// had just written decoded (catch-up benchmark: 275 MiB of heap at 1M
// documents, against 61 before the decoded form rode along).
func TestValidatorDropsDecodedDelta(t *testing.T) {
	a := startReplica(t, Config{})
	b := startReplica(t, Config{})
	n := a.s.net.Load()
	ctx := context.Background()
	d := &delta.Delta{Seq: 1, HLC: 1, Parents: []cid.Cid{}, Ops: []delta.Op{{Kind: delta.Put, Collection: "c", ID: "x", Fields: delta.Fields{{Name: "a", Value: []byte("1")}}}}}
	for _, from := range []*replicaNode{a, b} {
		block, _, err := d.Sign(from.s.cfg.Key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := storesync.Encode(&storesync.Message{Delta: block})
		if err != nil {
			t.Fatal(err)
		}
		_, decoded, err := authenticatePush(data)
		if err != nil {
			t.Fatal(err)
		}
		m := &pubsub.Message{From: from.h.ID(), ReceivedFrom: from.h.ID(), Data: data, Decoded: decoded}
		if err := n.validate(ctx, m); err != nil {
			t.Fatalf("delta of %s refused: %v", from.h.ID(), err)
		}
		if m.Decoded != nil {
			t.Fatalf("message from %s still carries %T", from.h.ID(), m.Decoded)
		}
	}
	// b's delta was applied from the decoded form before it was dropped
	eventually(t, 10*time.Second, "b's document on a", func() bool {
		raw, err := a.s.Collection("c").GetRaw(ctx, "x")
		return err == nil && len(raw) > 0
	})
}
