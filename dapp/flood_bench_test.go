package dapp_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/pubsub"
)

// floodMode says where the flooding instance runs.
type floodMode string

const (
	floodNone      floodMode = "none"      // the control: honest traffic alone
	floodInProcess floodMode = "inprocess" // a fourth node in the test process
	floodProcess   floodMode = "process"   // a child process, as a remote peer would be
)

// floodRun is one run of a flooding instance against three honest ones:
// the flooder publishes floodSize-byte random messages on the "flood" topic
// as fast as it can; the honest nodes publish small messages on "chat" and
// on "flood" at a steady pace and make store Puts. Everything honest is
// timed from the moment it was sent to the moment each other honest node
// has it.
type floodRun struct {
	mode    floodMode
	perNode int           // messages each honest node publishes on each topic
	every   time.Duration // pace of each honest publisher
	putEach int           // one store Put per putEach messages
	seed    uint64
}

type floodResult struct {
	flooded    int64 // messages the flooder managed to publish
	floodFor   time.Duration
	sent, got  map[string]int // per topic ("chat", "flood", "store"): expected receipts, receipts
	lat        map[string][]time.Duration
	graylisted uint64 // summed over the honest nodes
	throttled  uint64
	droppedOut uint64
}

const floodSize = 64 << 10

// honestMark starts every honest pubsub message, which is 17 bytes long;
// flood messages are 64 KiB.
const honestMark = 0xA5

var floodApp = dappManifest("flood")

// floodFrom publishes floodSize-byte random messages on topic as fast as
// it can until ctx ends, and returns how many it published.
func floodFrom(ctx context.Context, topic *pubsub.Topic, seed uint64, count *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	msg := make([]byte, floodSize)
	for i := range msg {
		msg[i] = byte(rng.Uint32())
	}
	for ctx.Err() == nil {
		binary.LittleEndian.PutUint64(msg, rng.Uint64())
		if topic.Publish(ctx, msg) == nil {
			count.Add(1)
		}
	}
}

const floodChildEnv = "DPAAS_FLOOD_CHILD" // "seed|addr,addr,..."

// TestFloodChild is the flooding process of BenchmarkPubSubFlood; on its
// own it does nothing. It floods until its standard input closes, then
// prints how many messages it published.
func TestFloodChild(t *testing.T) {
	spec := os.Getenv(floodChildEnv)
	if spec == "" {
		t.Skip("run by BenchmarkPubSubFlood")
	}
	seedText, addrs, _ := strings.Cut(spec, "|")
	seed, _ := strconv.ParseUint(seedText, 10, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := dapp.Open(ctx, dapp.Config{App: floodApp, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, a := range strings.Split(addrs, ",") {
		if err := n.Connect(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	topic, err := n.PubSub().Join("flood")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe(pubsub.Until(ctx))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	}()
	fmt.Println("id", n.ID())
	// The parent writes a line when the flood is to start, and closes
	// standard input when it is to end.
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return
	}
	floodCtx, stop := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, in)
		stop()
	}()
	var count atomic.Int64
	floodFrom(floodCtx, topic, seed, &count)
	fmt.Println("flooded", count.Load())
}

func runFlood(tb testing.TB, r floodRun) floodResult {
	tb.Helper()
	tb.Logf("flood seed %d, flooder %s", r.seed, r.mode)
	size := 3
	if r.mode == floodInProcess {
		size = 4
	}
	c := dapptest.New(tb, size, dapptest.Options{App: floodApp, NoLeakCheck: true})
	c.WaitConnected()
	honest := c.Nodes()
	if r.mode == floodInProcess {
		honest = honest[1:]
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	var mu sync.Mutex
	sentAt := make(map[string]time.Time) // "topic/key" -> send time
	arrivals := make(map[string][]time.Time)
	record := func(key string) {
		at := time.Now()
		mu.Lock()
		arrivals[key] = append(arrivals[key], at)
		mu.Unlock()
	}
	topics := make([]map[string]*pubsub.Topic, len(honest))
	for i, n := range honest {
		topics[i] = make(map[string]*pubsub.Topic)
		for _, name := range []string{"chat", "flood"} {
			topic, err := n.PubSub().Join(name)
			if err != nil {
				tb.Fatal(err)
			}
			sub, err := topic.Subscribe()
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(sub.Close)
			topics[i][name] = topic
			drain(ctx, &wg, sub, func(m *pubsub.Message) {
				if len(m.Data) == 17 && m.Data[0] == honestMark && m.From != n.ID() {
					record(name + "/" + string(m.Data[1:9]))
				}
			})
		}
		ch := n.Store().Collection("flood").Watch(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ch := range ch {
				if ch.Remote {
					record("store/" + ch.ID)
				}
			}
		}()
	}

	// The flooder.
	var flooded atomic.Int64
	floodCtx, stopFlood := context.WithCancel(ctx)
	floodDone := make(chan struct{})
	var flooder string
	switch r.mode {
	case floodNone:
		close(floodDone)
	case floodInProcess:
		node := c.Node(0)
		flooder = node.ID().String()
		topic, err := node.PubSub().Join("flood")
		if err != nil {
			tb.Fatal(err)
		}
		sub, err := topic.Subscribe()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(sub.Close)
		drain(ctx, &wg, sub, nil)
		waitMeshes(c, topics, 3)
		go func() {
			defer close(floodDone)
			floodFrom(floodCtx, topic, r.seed, &flooded)
		}()
	case floodProcess:
		var addrs []string
		for _, n := range honest {
			addrs = append(addrs, n.Addrs()[0].String())
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestFloodChild$", "-test.v")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d|%s", floodChildEnv, r.seed, strings.Join(addrs, ",")))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			tb.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			tb.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if id, ok := strings.CutPrefix(lines.Text(), "id "); ok {
				flooder = id
				break
			}
		}
		if flooder == "" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			tb.Fatal("the flooding process did not start")
		}
		waitMeshes(c, topics, 3)
		fmt.Fprintln(stdin, "go")
		go func() {
			defer close(floodDone)
			for lines.Scan() {
				if n, ok := strings.CutPrefix(lines.Text(), "flooded "); ok {
					v, _ := strconv.ParseInt(n, 10, 64)
					flooded.Store(v)
				}
			}
			if err := cmd.Wait(); err != nil && flooded.Load() == 0 {
				tb.Logf("the flooding process: %v\n%s", err, stderr.String())
			}
		}()
		go func() {
			<-floodCtx.Done()
			stdin.Close()
		}()
	}
	if r.mode != floodInProcess {
		waitMeshes(c, topics, len(honest)-1)
	}
	floodStart := time.Now()
	// Let the flood build up before honest traffic starts.
	if r.mode != floodNone {
		time.Sleep(time.Second)
	}

	var hw sync.WaitGroup
	for i, n := range honest {
		hw.Add(1)
		go func() {
			defer hw.Done()
			coll := n.Store().Collection("flood")
			tick := time.NewTicker(r.every)
			defer tick.Stop()
			for k := range r.perNode {
				<-tick.C
				for _, name := range []string{"chat", "flood"} {
					msg := make([]byte, 17)
					msg[0] = honestMark
					binary.BigEndian.PutUint64(msg[1:9], uint64(i)<<32|uint64(k))
					mu.Lock()
					sentAt[name+"/"+string(msg[1:9])] = time.Now()
					mu.Unlock()
					if err := topics[i][name].Publish(ctx, msg); err != nil {
						tb.Errorf("node %d publish on %s: %v", i, name, err)
						return
					}
				}
				if k%r.putEach == 0 {
					id := fmt.Sprintf("n%d-%06d", i, k)
					mu.Lock()
					sentAt["store/"+id] = time.Now()
					mu.Unlock()
					if err := coll.Put(ctx, id, map[string]any{"k": k, "by": i}); err != nil {
						tb.Errorf("node %d put: %v", i, err)
						return
					}
				}
			}
		}()
	}
	hw.Wait()
	// Wait while deliveries make progress: late is not lost.
	mu.Lock()
	want := len(sentAt) * (len(honest) - 1)
	mu.Unlock()
	progress, last := time.Now(), -1
	for {
		mu.Lock()
		n := 0
		for _, a := range arrivals {
			n += len(a)
		}
		mu.Unlock()
		if n >= want || time.Since(progress) > 10*time.Second {
			break
		}
		if n != last {
			progress, last = time.Now(), n
		}
		time.Sleep(5 * time.Millisecond)
	}
	floodFor := time.Since(floodStart)
	stopFlood()
	<-floodDone
	res := floodResult{
		flooded: flooded.Load(), floodFor: floodFor,
		sent: make(map[string]int), got: make(map[string]int), lat: make(map[string][]time.Duration),
	}
	// With -v: the worst latency of what was sent in each half second.
	worst := make(map[int]time.Duration)
	mu.Lock()
	for k, at := range sentAt {
		topic, _, _ := strings.Cut(k, "/")
		res.sent[topic] += len(honest) - 1
		got := arrivals[k]
		res.got[topic] += min(len(got), len(honest)-1)
		for _, a := range got {
			res.lat[topic] = append(res.lat[topic], a.Sub(at))
			w := int(at.Sub(floodStart) / (500 * time.Millisecond))
			worst[w] = max(worst[w], a.Sub(at))
		}
	}
	mu.Unlock()
	if testing.Verbose() {
		var line strings.Builder
		for w := range slices.Max(append(slices.Collect(maps.Keys(worst)), 0)) + 1 {
			fmt.Fprintf(&line, " %v", worst[w].Round(time.Millisecond))
		}
		tb.Logf("worst latency of each half second of sending, from the flood's start:%s", line.String())
	}
	for i, n := range honest {
		st := n.PubSub().Stats()
		tb.Logf("honest node %d: %+v, graylisted now %v (flooder %s)", i, st, n.PubSub().Graylisted(), flooder)
		res.graylisted += st.Graylisted
		res.throttled += st.Throttled
		res.droppedOut += st.DroppedOutbound
	}
	return res
}

// waitMeshes waits until every honest topic has at least k mesh peers.
func waitMeshes(c *dapptest.Cluster, topics []map[string]*pubsub.Topic, k int) {
	c.WaitFor("full meshes", func() bool {
		for _, ts := range topics {
			for name, topic := range ts {
				want := k
				if name == "chat" {
					want = len(topics) - 1
				}
				if len(topic.MeshPeers()) < want {
					return false
				}
			}
		}
		return true
	})
}

func pct(l []time.Duration, p int) time.Duration {
	if len(l) == 0 {
		return 0
	}
	l = slices.Clone(l)
	slices.Sort(l)
	return l[min(len(l)-1, len(l)*p/100)]
}

// BenchmarkPubSubFlood: one instance floods a topic that has no validator
// with 64 KiB random messages as fast as it can; three honest instances
// publish 17-byte messages at 50/s each on another topic and on the
// flooded one, and make a store Put every 4th message. The flooder runs as
// a child process (flooder=process, as a remote peer would), in the test
// process (flooder=inprocess, where its own CPU use slows the honest nodes
// too), or not at all (flooder=none, the control). b.N is the number of
// messages each honest node publishes on each topic (-benchtime=500x: 10
// s). Reports, for chat, flood (honest messages only) and store: the
// delivery ratio to the other honest nodes and p50/p99 latency in ms
// (store: from Put to the remote Watch); the flooder's rate; and the
// honest nodes' graylistings, over-budget messages and dropped outbound
// RPCs.
func BenchmarkPubSubFlood(b *testing.B) {
	for _, mode := range []floodMode{floodProcess, floodInProcess, floodNone} {
		b.Run("flooder="+string(mode), func(b *testing.B) {
			seed := uint64(time.Now().UnixNano())
			res := runFlood(b, floodRun{mode: mode, perNode: b.N, every: 20 * time.Millisecond, putEach: 4, seed: seed})
			for _, topic := range []string{"chat", "flood", "store"} {
				b.ReportMetric(float64(res.got[topic])/float64(max(1, res.sent[topic])), topic+"-delivery")
				b.ReportMetric(float64(pct(res.lat[topic], 99).Microseconds())/1000, topic+"-p99-ms")
				b.ReportMetric(float64(pct(res.lat[topic], 50).Microseconds())/1000, topic+"-p50-ms")
			}
			b.ReportMetric(float64(slices.Max(append(res.lat["store"], 0)).Microseconds())/1000, "store-max-ms")
			b.ReportMetric(float64(res.flooded)/res.floodFor.Seconds(), "flood-msgs/s")
			b.ReportMetric(float64(res.graylisted), "graylisted")
			b.ReportMetric(float64(res.throttled), "throttled")
			b.ReportMetric(float64(res.droppedOut), "dropped-out")
		})
	}
}
