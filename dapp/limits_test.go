package dapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/store"
)

// TestOversizeDocumentLeavesNodeWorking is issue 11's report as a user met
// it: an 8 MiB document is refused with store.ErrTooLarge, and the node goes
// on (documents written together, blobs, a restart, replication). Before,
// the Put stopped every later write of the node, blobs included, and the
// node's directory failed to open forever.
func TestOversizeDocumentLeavesNodeWorking(t *testing.T) {
	ctx := context.Background()
	c := dapptest.New(t, 2, dapptest.Options{})
	c.WaitConnected()
	docs := c.Node(0).Store().Collection("docs")
	big := json.RawMessage(`{"blob":"` + strings.Repeat("x", 8<<20) + `"}`)
	if err := docs.Put(ctx, "big", big); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("8 MiB document: %v, want store.ErrTooLarge", err)
	}
	if err := c.Node(0).Store().Collection("docs\xff").Put(ctx, "x", map[string]any{"a": 1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("collection name that is not UTF-8: %v, want store.ErrInvalid", err)
	}
	mib := json.RawMessage(`{"blob":"` + strings.Repeat("y", 1<<20) + `"}`)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = docs.Put(ctx, fmt.Sprintf("m%d", i), mib)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("8 concurrent Puts of 1 MiB: %v", err)
	}
	if _, err := c.Node(0).Blobs().Add(ctx, bytes.NewReader([]byte("still writable"))); err != nil {
		t.Fatalf("blob Add after a refused document: %v", err)
	}
	count := func(i int) int {
		n, err := c.Node(i).Store().Collection("docs").Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	c.WaitFor("the other node to get the documents", func() bool { return count(1) == 8 })
	c.Restart(0)
	if n := count(0); n != 8 {
		t.Fatalf("%d documents after restarting, want 8", n)
	}
	if _, err := c.Node(0).Store().Collection("docs").GetRaw(ctx, "big"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused document: %v, want store.ErrNotFound", err)
	}
}
