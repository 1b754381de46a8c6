package pubsub_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/internal/systopic"
	"github.com/dpaas/dpaas/pubsub"
)

// TestJoinRefusesReservedTopics: the SDK's own topics (the store's
// "store/deltas" among them) cannot be joined by an application, so it
// cannot publish on them; the SDK's components still join them.
func TestJoinRefusesReservedTopics(t *testing.T) {
	_, ps := newPeer(t, "app", pubsub.Config{})
	for _, name := range []string{"store/deltas", "store/heads", "blobs/x", "dapp/heartbeats", "payment/vouchers", "governance/ballots", "dpaas/anything"} {
		if _, err := ps.Join(name); !errors.Is(err, pubsub.ErrReservedTopic) {
			t.Errorf("Join(%q) = %v, want ErrReservedTopic", name, err)
		}
		if !pubsub.Reserved(name) {
			t.Errorf("Reserved(%q) = false", name)
		}
	}
	for _, name := range []string{"chat", "stores/deltas", "my-store/deltas", "store"} {
		if _, err := ps.Join(name); err != nil {
			t.Errorf("Join(%q): %v", name, err)
		}
	}
	topic, err := systopic.Join[*pubsub.Topic](ps, "store/deltas")
	if err != nil {
		t.Fatalf("the SDK's own join: %v", err)
	}
	if topic.Name() != "store/deltas" {
		t.Fatalf("joined %q", topic.Name())
	}
}

// TestFloodingPeerIsGraylisted: one instance floods a topic that has no
// validator with 64 KiB random messages as fast as it can while three
// honest ones publish on another topic and on the flooded one. Every
// honest message reaches every honest instance while the flood goes on,
// and every honest instance graylists the flooder and counts it. (Without
// the per-sender budgets, Config.NoPeerLimits, nobody is graylisted.)
func TestFloodingPeerIsGraylisted(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	// Budgets of one message of 64 KiB a second, and a graylist level of
	// 50, which the flooder outpaces even under the race detector (the
	// penalty decays: a sender only a little over budget has its excess
	// ignored but is not graylisted).
	cfg := pubsub.Config{MaxMessageSize: 65 << 10, PeerByteRate: 64 << 10, GraylistAfter: 50}
	hf, flooder := newPeer(t, "app", cfg)
	var hosts []host.Host
	var honest []*pubsub.PubSub
	for range 3 {
		h, ps := newPeer(t, "app", cfg)
		connect(t, h, hf)
		for _, o := range hosts {
			connect(t, h, o)
		}
		hosts = append(hosts, h)
		honest = append(honest, ps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	consume := func(sub *pubsub.Subscription, fn func(*pubsub.Message)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					return
				}
				fn(m)
			}
		}()
	}

	ft, fsub := join(t, flooder, "flood")
	consume(fsub, func(*pubsub.Message) {})
	const perNode = 100
	var mu sync.Mutex
	got := make([]map[string]bool, len(honest)) // "topic sender seq"
	var chats, floods []*pubsub.Topic
	for i, ps := range honest {
		got[i] = make(map[string]bool)
		for _, name := range []string{"chat", "flood"} {
			topic, sub := join(t, ps, name)
			if name == "chat" {
				chats = append(chats, topic)
			} else {
				floods = append(floods, topic)
			}
			consume(sub, func(m *pubsub.Message) {
				if len(m.Data) == 8 && m.From != hosts[i].ID() {
					mu.Lock()
					got[i][name+" "+m.From.String()+" "+string(m.Data)] = true
					mu.Unlock()
				}
			})
		}
	}
	waitFor(t, "full meshes", func() bool {
		for _, topic := range slices.Concat(chats, floods) {
			want := 2 // the other honest instances
			if topic.Name() == "flood" {
				want = 3 // and the flooder
			}
			if len(topic.MeshPeers()) < want {
				return false
			}
		}
		return true
	})

	floodDone := make(chan struct{})
	var flooded int
	go func() {
		defer close(floodDone)
		rng := rand.New(rand.NewPCG(seed, 2))
		msg := make([]byte, 64<<10)
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		for ctx.Err() == nil {
			binary.LittleEndian.PutUint64(msg, rng.Uint64())
			if ft.Publish(ctx, msg) == nil {
				flooded++
			}
		}
	}()
	defer func() { cancel(); <-floodDone }()
	waitFor(t, "the flood to start", func() bool { return honest[0].Stats().Delivered > 100 || honest[0].Stats().Throttled > 0 })

	for k := range perNode {
		for i := range honest {
			var msg [8]byte
			binary.BigEndian.PutUint64(msg[:], uint64(k))
			for _, topic := range []*pubsub.Topic{chats[i], floods[i]} {
				if err := topic.Publish(ctx, msg[:]); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Generous: the machine may be loaded; what matters is that nothing
	// honest is lost while the flood goes on.
	deadline := time.Now().Add(60 * time.Second)
	for i := range honest {
		for {
			mu.Lock()
			n := len(got[i])
			mu.Unlock()
			if n == 2*perNode*(len(honest)-1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("honest instance %d received %d of %d honest messages during the flood; stats %+v",
					i, n, 2*perNode*(len(honest)-1), honest[i].Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	deadline = time.Now().Add(60 * time.Second)
	for _, ps := range honest {
		for !slices.Contains(ps.Graylisted(), hf.ID()) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i, ps := range honest {
		st := ps.Stats()
		if st.Graylisted == 0 || st.Throttled == 0 || !slices.Contains(ps.Graylisted(), hf.ID()) {
			t.Errorf("honest instance %d: graylisted now %v, stats %+v; want the flooder %s graylisted and counted", i, ps.Graylisted(), st, hf.ID())
		}
		for _, h := range hosts {
			if slices.Contains(ps.Graylisted(), h.ID()) {
				t.Errorf("honest instance %d graylisted honest %s", i, h.ID())
			}
		}
	}
	// The graylisting is visible to a metrics scraper.
	reg := prometheus.NewRegistry()
	if err := reg.Register(honest[0]); err != nil {
		t.Fatal(err)
	}
	for name, least := range map[string]float64{
		"dpaas_pubsub_graylisted_total": 1, "dpaas_pubsub_graylisted_peers": 1, "dpaas_pubsub_throttled_total": 1,
	} {
		if v, err := metricValue(reg, name); err != nil || v < least {
			t.Errorf("%s = %v (%v), want at least %v", name, v, err, least)
		}
	}
	// The graylist, which GossipSub's event loop consults, leaves Join
	// (which waits on that loop) working.
	if _, err := honest[0].Join("after-the-flood"); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-floodDone
	t.Logf("flooder published %d messages; honest stats %+v", flooded, honest[0].Stats())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func metricValue(g prometheus.Gatherer, name string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum, nil
	}
	return 0, fmt.Errorf("no metric %s", name)
}
