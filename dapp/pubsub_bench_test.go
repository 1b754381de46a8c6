package dapp_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/pubsub"
)

// benchCluster starts 3 fully connected nodes with a topic whose mesh is
// complete, and returns the topics and subscriptions of each.
func benchCluster(b *testing.B) (*dapptest.Cluster, []*pubsub.Topic, []*pubsub.Subscription) {
	b.Helper()
	c := dapptest.New(b, 3, dapptest.Options{App: benchApp})
	c.WaitConnected()
	var topics []*pubsub.Topic
	var subs []*pubsub.Subscription
	for _, n := range c.Nodes() {
		topic, err := n.PubSub().Join("bench")
		if err != nil {
			b.Fatal(err)
		}
		sub, err := topic.Subscribe()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(sub.Close)
		topics = append(topics, topic)
		subs = append(subs, sub)
	}
	c.WaitFor("full mesh", func() bool {
		for _, topic := range topics {
			if len(topic.MeshPeers()) != 2 {
				return false
			}
		}
		return true
	})
	return c, topics, subs
}

var benchApp = dappManifest("bench")

// drain consumes sub until ctx ends, calling fn for each message.
func drain(ctx context.Context, wg *sync.WaitGroup, sub *pubsub.Subscription, fn func(*pubsub.Message)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if fn != nil {
				fn(m)
			}
		}
	}()
}

// BenchmarkPubSubLatency measures one-hop delivery: node 0 publishes a
// 200-byte message and node 1, a direct mesh peer, receives it; one message
// in flight at a time. Reports p50 and p99 in microseconds.
func BenchmarkPubSubLatency(b *testing.B) {
	_, topics, subs := benchCluster(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	drain(ctx, &wg, subs[0], nil)
	drain(ctx, &wg, subs[2], nil)
	got := make(chan time.Time, 1)
	drain(ctx, &wg, subs[1], func(*pubsub.Message) { got <- time.Now() })

	msg := make([]byte, 200)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint64(msg, uint64(i))
		start := time.Now()
		if err := topics[0].Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-got:
			lat = append(lat, at.Sub(start))
		case <-time.After(10 * time.Second):
			b.Fatalf("message %d never arrived", i)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPubSubThroughput publishes b.N messages of 200 bytes from node 0
// at a fixed rate and counts what nodes 1 and 2 receive. Reports the rate
// achieved, messages delivered per second to each receiver, and the
// delivery ratio (1 = nothing lost). Run with -benchtime=20000x.
func BenchmarkPubSubThroughput(b *testing.B) {
	for _, rate := range []int{10_000, 0} {
		name := fmt.Sprintf("rate=%d", rate)
		if rate == 0 {
			name = "rate=unpaced"
		}
		b.Run(name, func(b *testing.B) { benchThroughput(b, rate) })
	}
}

func benchThroughput(b *testing.B, rate int) {
	c, topics, subs := benchCluster(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var received [3]atomic.Int64
	var last atomic.Int64
	for i := 1; i < 3; i++ {
		drain(ctx, &wg, subs[i], func(*pubsub.Message) {
			received[i].Add(1)
			last.Store(time.Now().UnixNano())
		})
	}
	drain(ctx, &wg, subs[0], nil)

	msg := make([]byte, 200)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if rate > 0 {
			if due := start.Add(time.Duration(i) * time.Second / time.Duration(rate)); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
		}
		binary.BigEndian.PutUint64(msg, uint64(i))
		if err := topics[0].Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	sent := time.Since(start)
	// Wait while deliveries make progress: a backlog on a loaded machine is
	// late, not lost. What GossipSub dropped is in the nodes' Stats.
	want := int64(b.N)
	progress, lastTotal := time.Now(), int64(0)
	for received[1].Load() < want || received[2].Load() < want {
		if total := received[1].Load() + received[2].Load(); total != lastTotal {
			progress, lastTotal = time.Now(), total
		} else if time.Since(progress) > 5*time.Second {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	window := time.Duration(last.Load() - start.UnixNano())
	total := received[1].Load() + received[2].Load()
	var dropped uint64
	for _, n := range c.Nodes() {
		st := n.PubSub().Stats()
		dropped += st.Dropped + st.DroppedOutbound + st.Invalid
	}
	b.ReportMetric(float64(b.N)/sent.Seconds(), "sent/s")
	b.ReportMetric(float64(total)/2/window.Seconds(), "delivered/s")
	b.ReportMetric(float64(total)/float64(2*want), "delivery-ratio")
	b.ReportMetric(float64(dropped), "dropped")
}
