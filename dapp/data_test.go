package dapp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/blobs"
	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/store"
)

type ride struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Driver string `json:"driver,omitempty"`
}

// snapshot returns every document of coll on n, as ID -> JSON.
func snapshot(t *testing.T, n *dapp.Node, coll string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for doc, err := range n.Store().Collection(coll).Find(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		out[doc.ID] = string(doc.Data)
	}
	return out
}

func sameDocs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestStoreOnNodesAcrossPartition: writes on both sides of a real
// partition, then a heal; a replica that was down during all of it
// catches up on restart. Every replica ends with the same documents.
func TestStoreOnNodesAcrossPartition(t *testing.T) {
	c := dapptest.New(t, 4, dapptest.Options{})
	c.WaitConnected()
	ctx := context.Background()
	c.Stop(3)
	c.Partition([]int{0}, []int{1, 2})

	rides := func(i int) *store.Collection { return c.Node(i).Store().Collection("rides") }
	for i := range 50 {
		if err := rides(0).Put(ctx, fmt.Sprintf("left-%d", i), ride{From: "a", To: "b"}); err != nil {
			t.Fatal(err)
		}
		if err := rides(1).Put(ctx, fmt.Sprintf("right-%d", i), ride{From: "c", To: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	// The same document written on both sides: one value must win
	// everywhere, field by field.
	if err := rides(0).Update(ctx, "shared", store.Set("driver", "left")); err != nil {
		t.Fatal(err)
	}
	if err := rides(2).Update(ctx, "shared", store.Set("driver", "right"), store.Set("from", "x")); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the right side to converge", func() bool {
		return len(snapshot(t, c.Node(2), "rides")) == 51
	})
	if got := len(snapshot(t, c.Node(0), "rides")); got != 51 {
		t.Fatalf("left side holds %d documents across the partition, want its own 51", got)
	}

	c.Heal()
	c.WaitFor("every replica to hold 101 identical documents", func() bool {
		want := snapshot(t, c.Node(0), "rides")
		return len(want) == 101 && sameDocs(want, snapshot(t, c.Node(1), "rides")) &&
			sameDocs(want, snapshot(t, c.Node(2), "rides"))
	})

	c.Restart(3)
	c.WaitFor("the restarted replica to catch up", func() bool {
		return sameDocs(snapshot(t, c.Node(0), "rides"), snapshot(t, c.Node(3), "rides"))
	})
	var shared ride
	if err := rides(3).Get(ctx, "shared", &shared); err != nil {
		t.Fatal(err)
	}
	if shared.From != "x" || (shared.Driver != "left" && shared.Driver != "right") {
		t.Fatalf("shared ride %+v", shared)
	}
}

// TestBlobOutlivesItsAdder: a file added on one instance is replicated to
// the others through the blob set in the store, and is still readable after
// the adder stops; a burn removes it everywhere.
func TestBlobOutlivesItsAdder(t *testing.T) {
	c := dapptest.New(t, 3, dapptest.Options{})
	c.WaitConnected()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	data := make([]byte, 3<<20+12345)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	id, err := c.Node(0).Blobs().Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitFor("replicas to hold the blob", func() bool {
		for _, i := range []int{1, 2} {
			if ok, err := c.Node(i).Blobs().Has(ctx, id); err != nil || !ok {
				return false
			}
		}
		return true
	})
	c.Stop(0)
	f, err := c.Node(2).Blobs().Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (err %v), want the %d added", len(got), err, len(data))
	}

	if err := c.Node(1).Blobs().Burn(ctx, id); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the burn to reach replica 2", func() bool {
		ok, err := c.Node(2).Blobs().Has(ctx, id)
		return err == nil && !ok
	})
	if _, err := c.Node(2).Blobs().GC(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if f, err := c.Node(2).Blobs().Open(short, id); err == nil {
		f.Close()
		t.Fatal("a burned blob still opens")
	} else if !errors.Is(err, blobs.ErrBurned) {
		t.Fatalf("open after burn: %v, want ErrBurned", err)
	}
}

func TestMetricsAreRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := open(t, dapp.Config{App: dapp.Manifest{Name: t.Name()}, Metrics: reg})
	if err := n.Store().Collection("c").Put(context.Background(), "d", map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := make(map[string]bool)
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"dpaas_store_deltas_created_total", "dpaas_pubsub_published_total"} {
		if !names[want] {
			t.Errorf("metric %s not registered; have %v", want, names)
		}
	}
	hasBlobs := false
	for name := range names {
		hasBlobs = hasBlobs || strings.HasPrefix(name, "dpaas_blobs_")
	}
	if !hasBlobs {
		t.Errorf("no blobs metric registered; have %v", names)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if families, _ := reg.Gather(); len(families) != 0 {
		t.Fatalf("%d metric families still registered after Close", len(families))
	}
}
