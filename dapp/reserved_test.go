package dapp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/dpaas/dpaas/store"
)

// TestAppCannotJoinStoreTopic: an application cannot join the store's
// replication topic through the node's PubSub, so it cannot publish
// garbage there; replication, which joins it internally, still works.
func TestAppCannotJoinStoreTopic(t *testing.T) {
	c := dapptest.New(t, 2, dapptest.Options{})
	c.WaitConnected()
	if _, err := c.Node(0).PubSub().Join(store.TopicName); !errors.Is(err, pubsub.ErrReservedTopic) {
		t.Fatalf("Join(%q) = %v, want ErrReservedTopic", store.TopicName, err)
	}
	ctx := context.Background()
	if err := c.Node(0).Store().Collection("c").Put(ctx, "d", map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the document on node 1", func() bool {
		var doc map[string]int
		return c.Node(1).Store().Collection("c").Get(ctx, "d", &doc) == nil && doc["x"] == 1
	})
}
