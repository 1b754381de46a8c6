package dapp_test

import (
	"context"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/libp2p/go-libp2p/core/network"
)

// BenchmarkScale: n instances of one DApp in one process, on disk, each
// naming only the first in Bootstrap (Star: discovery and peer exchange
// do the rest), default Config. Once every instance has reached its
// connection target, it reports the connections per instance, the idle
// CPU (over a heartbeat period, beatPeriod), heap and goroutines of each
// instance, then the delivery of 200 Puts
// made at 50 a second on one instance to all the others (p50 and p99 of
// the time until the last holds each), and finally the time a new
// instance, naming one of the others in Bootstrap, takes from Open to
// holding 10,000 documents written before it joined. Run with
// -benchtime=1x and a long -timeout.
//
//	go test -run '^$' -bench 'BenchmarkScale/n=(3|24|100)$' -benchtime 1x -timeout 30m ./dapp
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{3, 24, 100} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for range b.N {
				benchScale(b, n)
			}
		})
	}
}

// profilePhase starts a CPU profile of one phase of the run when the
// environment variable env names a file prefix (the file is
// PREFIX-n=N.pprof); it returns the function that stops it.
// DPAAS_IDLE_PROFILE profiles the idle phase, DPAAS_PUTS_PROFILE the
// puts until every instance holds them.
func profilePhase(b *testing.B, env string, n int) func() {
	prefix := os.Getenv(env)
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s-n=%d.pprof", prefix, n))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// tracePhases, when DPAAS_SCALE_PPROF names an address, serves
// net/http/pprof there and returns a function printing each phase of the
// run to standard error as it starts (benchmark logs only show at the end).
func tracePhases(b *testing.B, n int) func(string) {
	addr := os.Getenv("DPAAS_SCALE_PPROF")
	if addr == "" {
		return func(string) {}
	}
	srv := &http.Server{Addr: addr}
	go func() { _ = srv.ListenAndServe() }()
	b.Cleanup(func() { _ = srv.Close() })
	t0 := time.Now()
	return func(phase string) {
		fmt.Fprintf(os.Stderr, "scale n=%d +%.1fs: %s\n", n, time.Since(t0).Seconds(), phase)
	}
}

// monitor prints, every 5 s until stopped, what the cluster did per second
// since the last print: CPU, gossip published, delivered and lost, store
// announcements, deltas written, applied and duplicated, catch-ups and
// deltas served, and the deltas pending now.
func monitor(c *dapptest.Cluster, n int) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	var dialled atomic.Uint64 // connections this side opened
	for _, node := range c.Nodes() {
		node.Host().Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, cn network.Conn) {
			if cn.Stat().Direction == network.DirOutbound {
				dialled.Add(1)
			}
		}})
	}
	sample := func() (t [14]uint64) {
		t[9] = dialled.Load()
		for _, node := range c.Nodes() {
			ds := node.DiscoveryStats()
			t[10] += ds.Trimmed
			t[11] += ds.Dials + ds.WalkDials
			t[12] += ds.Exchanges
			ps, st := node.PubSub().Stats(), node.Store().Stats()
			t[0] += ps.Published
			t[1] += ps.Delivered
			t[2] += ps.Invalid + ps.Throttled + ps.Dropped + ps.DroppedOutbound + ps.FromGraylisted
			t[3] += st.Announcements
			t[4] += st.DeltasCreated
			t[5] += st.DeltasApplied
			t[6] += st.Duplicates
			t[7] += st.CatchUps
			t[8] += st.Served
			t[13] += ps.Duplicates
		}
		return t
	}
	go func() {
		defer close(exited)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		prev, cpu0, t0 := sample(), processCPU(), time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			cur, cpu, now := sample(), processCPU(), time.Now()
			dt := now.Sub(t0).Seconds()
			rate := func(i int) float64 { return float64(cur[i]-prev[i]) / dt }
			pending, quic, conns := 0, 0, 0
			for _, node := range c.Nodes() {
				pending += node.Store().Stats().Pending
				for _, cn := range node.Host().Network().Conns() {
					conns++
					if strings.Contains(cn.RemoteMultiaddr().String(), "quic") {
						quic++
					}
				}
			}
			fmt.Fprintf(os.Stderr, "  n=%d cpu %.1f ms/s/instance; per s: published %.0f delivered %.0f lost %.0f announces %.1f deltas %.1f applied %.0f dups %.0f catch-ups %.1f served %.0f; connections %.1f trims %.1f px-dials %.1f px-exchanges %.1f; pending %d; open connections %d (QUIC %d), duplicates %.0f\n",
				n, float64((cpu-cpu0).Microseconds())/1000/dt/float64(n), rate(0), rate(1), rate(2), rate(3), rate(4), rate(5), rate(6), rate(7), rate(8), rate(9), rate(10), rate(11), rate(12), pending, conns, quic, rate(13))
			prev, cpu0, t0 = cur, cpu, now
		}
	}()
	return func() { close(done); <-exited }
}

// beatPeriod is the time between two heartbeats, and two probe rounds, of
// one instance of a DApp of n with the default MirrorConfig: one Interval
// up to 32 instances, one more per 32 beyond (see MirrorConfig.Interval).
// Idle is measured over one, so that it holds each instance's share of
// the heartbeats, probes and attestations.
func beatPeriod(n int) time.Duration {
	return time.Duration(max(1, (n+31)/32)) * mirrorInterval
}

// mirrorInterval is the default MirrorConfig.Interval: heartbeats and
// probe rounds.
const mirrorInterval = 10 * time.Second

func benchScale(b *testing.B, n int) {
	ctx := context.Background()
	phase := tracePhases(b, n)
	phase("start")
	heap0, g0 := settledHeap()
	start := time.Now()
	c := dapptest.New(b, n, dapptest.Options{Topology: dapptest.Star, Timeout: 3 * time.Minute})
	defer c.Close()
	if os.Getenv("DPAAS_SCALE_PPROF") != "" {
		defer monitor(c, n)()
	}
	b.ReportMetric(time.Since(start).Seconds(), "start-s")
	phase("started; waiting for connection targets")
	want := min(8, n-1) // the default PeerTarget
	below := func() int {
		k := 0
		for _, js := range c.Links() {
			if len(js) < want {
				k++
			}
		}
		return k
	}
	// Wait for every instance to reach its target, or a minute; what was
	// reached is reported either way.
	for deadline := time.Now().Add(time.Minute); below() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Duration(n) * 5 * time.Millisecond) // Links costs n² peerstore lookups
	}
	// A benchmark: let trimming and late dials settle, and the mirror's
	// first rounds pass (a heartbeat kicked on every new connection):
	// idle is measured from two mirror intervals and a heartbeat period
	// after the start, over one whole heartbeat period, so it holds the
	// heartbeats, probes and attestations of a steady state.
	time.Sleep(max(3*time.Second, time.Until(start.Add(2*mirrorInterval))))
	g := symmetric(c.Links())
	total, most := 0, 0
	for _, js := range g {
		total += len(js)
		most = max(most, len(js))
	}
	b.ReportMetric(float64(total)/float64(n), "conns-mean")
	b.ReportMetric(float64(most), "conns-max")
	b.ReportMetric(float64(diameter(g, -1)), "diameter")
	b.ReportMetric(float64(below()), "below-target")

	// The first heartbeat period after that still holds the start's
	// probes: every prober's first attestation of an instance is written
	// at once, one delta per prober per period; then they are written
	// once per Epoch/12. Reported apart.
	phase("early idle")
	cpuE, tE := processCPU(), time.Now()
	time.Sleep(beatPeriod(n))
	early := float64((processCPU() - cpuE).Microseconds()) / 1000 / time.Since(tE).Seconds() / float64(n)
	b.ReportMetric(early, "early-idle-cpu-ms/s/instance")
	phase(fmt.Sprintf("early idle cpu %.1f ms/s/instance", early))

	// Idle: heap, goroutines and CPU over the next heartbeat period, per
	// instance.
	phase("idle")
	heap1, g1 := settledHeap()
	b.ReportMetric(float64(heap1-heap0)/float64(n)/(1<<20), "MiB-heap/instance")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/instance")
	churn := func() (dials, trims uint64) {
		for _, node := range c.Nodes() {
			st := node.DiscoveryStats()
			dials, trims = dials+st.Dials, trims+st.Trimmed
		}
		return dials, trims
	}
	traffic := func() (t [6]uint64) {
		for _, node := range c.Nodes() {
			ps, st := node.PubSub().Stats(), node.Store().Stats()
			t[0] += ps.Published
			t[1] += ps.Delivered
			t[2] += st.Announcements
			t[3] += st.DeltasCreated
			t[4] += ps.Invalid + ps.Throttled + ps.Dropped + ps.DroppedOutbound + ps.FromGraylisted
			t[5] += st.CatchUps
		}
		return t
	}
	dials0, trims0 := churn()
	traffic0 := traffic()
	stopProfile := profilePhase(b, "DPAAS_IDLE_PROFILE", n)
	cpu0, t0 := processCPU(), time.Now()
	time.Sleep(beatPeriod(n))
	cpu, took := processCPU()-cpu0, time.Since(t0)
	stopProfile()
	dials1, trims1 := churn()
	traffic1 := traffic()
	// What the DApp gossips while idle, per instance and second: messages
	// published and delivered (all topics), store announcements and deltas
	// written (heartbeats and attestations are the mirror's), messages lost
	// (refused unchecked, throttled, dropped in or out) and catch-ups.
	for i, name := range []string{"idle-published", "idle-delivered", "idle-announces", "idle-deltas", "idle-lost", "idle-catchups"} {
		v := float64(traffic1[i]-traffic0[i]) / took.Seconds() / float64(n)
		b.ReportMetric(v, name+"/s/instance")
		phase(fmt.Sprintf("%s/s/instance %.2f", name, v))
	}
	if os.Getenv("DPAAS_SCALE_PPROF") != "" {
		var lost pubsub.Stats
		for _, node := range c.Nodes() {
			ps := node.PubSub().Stats()
			lost.Invalid += ps.Invalid
			lost.Throttled += ps.Throttled
			lost.Dropped += ps.Dropped
			lost.DroppedOutbound += ps.DroppedOutbound
			lost.FromGraylisted += ps.FromGraylisted
			lost.Graylisted += ps.Graylisted
		}
		phase(fmt.Sprintf("lost since the start: %+v", lost))
	}
	phase(fmt.Sprintf("idle cpu %.1f ms/s/instance", float64(cpu.Microseconds())/1000/took.Seconds()/float64(n)))
	// Connection churn while idle: peer-exchange dials and trims, per
	// instance and second.
	b.ReportMetric(float64(dials1-dials0)/took.Seconds()/float64(n), "idle-dials/s/instance")
	b.ReportMetric(float64(trims1-trims0)/took.Seconds()/float64(n), "idle-trims/s/instance")
	b.ReportMetric(float64(cpu.Microseconds())/1000/took.Seconds()/float64(n), "idle-cpu-ms/s/instance")

	// Delivery: 200 Puts at 50/s (DPAAS_SCALE_RATE) on instance 0, until
	// all others hold each.
	const puts = 200
	var mu sync.Mutex
	sent := make([]time.Time, puts)
	last := make([]time.Time, puts)
	got := make([]int, puts)
	wctx, stop := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	for i := 1; i < n; i++ {
		ch := c.Node(i).Store().Collection("live").Watch(wctx)
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			for ch := range ch {
				var k int
				if _, err := fmt.Sscanf(ch.ID, "p%d", &k); err != nil || k < 0 || k >= puts || ch.Lagged {
					continue
				}
				mu.Lock()
				got[k]++
				last[k] = time.Now()
				mu.Unlock()
			}
		}()
	}
	phase("puts")
	stopPutsProfile := profilePhase(b, "DPAAS_PUTS_PROFILE", n)
	cpuP, tP := processCPU(), time.Now()
	live := c.Node(0).Store().Collection("live")
	rate := 50.0 // Puts per second; DPAAS_SCALE_RATE sets another
	if v, err := strconv.ParseFloat(os.Getenv("DPAAS_SCALE_RATE"), 64); err == nil && v > 0 {
		rate = v
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	for k := range puts {
		<-tick.C
		mu.Lock()
		sent[k] = time.Now()
		mu.Unlock()
		if err := live.Put(ctx, fmt.Sprintf("p%d", k), ride{From: "a", To: strings.Repeat("b", 100)}); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	c.WaitFor("every Put on every instance", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range got {
			if k < n-1 {
				return false
			}
		}
		return true
	})
	stopPutsProfile()
	// CPU while the puts went out and until every instance held them: near
	// 1000 ms/s × cores / n, the machine was saturated.
	putsCPU := float64((processCPU() - cpuP).Microseconds()) / 1000 / time.Since(tP).Seconds() / float64(n)
	b.ReportMetric(putsCPU, "puts-cpu-ms/s/instance")
	phase(fmt.Sprintf("puts cpu %.1f ms/s/instance over %.1f s", putsCPU, time.Since(tP).Seconds()))
	stop()
	watchers.Wait()
	reportDelivery(b, sent, last)

	// A newcomer catching up on 10,000 documents.
	phase("10,000 documents")
	const docs = 10_000
	rides := c.Node(0).Store().Collection("rides")
	for i := 0; i < docs; i += 1000 {
		batch := c.Node(0).Store().Batch()
		for j := i; j < i+1000; j++ {
			batch.Put(rides, fmt.Sprintf("r%05d", j), ride{From: fmt.Sprintf("city%d", j%100), To: "b"})
		}
		if err := batch.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	count := func(i int) int {
		k, err := c.Node(i).Store().Collection("rides").Count(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	c.WaitFor("the documents everywhere", func() bool {
		for i := range n {
			if count(i) != docs {
				return false
			}
		}
		return true
	})
	phase("newcomer")
	start, cpuJ := time.Now(), processCPU()
	j := c.Join(n / 2)
	opened := time.Since(start)
	if os.Getenv("DPAAS_SCALE_PPROF") != "" {
		// the newcomer's catch-ups, every 250 ms until it holds every document
		go func() {
			for k := count(j); k != docs; k = count(j) {
				var b strings.Builder
				for _, st := range c.Node(j).Store().SyncStatus() {
					fmt.Fprintf(&b, " [%s total %d received %d applied %d done %v err %v]", st.Peer.ShortString(), st.Total, st.Received, st.Applied, st.Done(), st.Err)
				}
				phase(fmt.Sprintf("newcomer +%.2fs: %d documents, %d peers; catch-ups:%s", time.Since(start).Seconds(), k, len(c.Node(j).Peers()), b.String()))
				time.Sleep(250 * time.Millisecond)
			}
		}()
	}
	c.WaitFor("the newcomer caught up", func() bool { return count(j) == docs })
	b.ReportMetric(opened.Seconds(), "join-open-s")
	b.ReportMetric(time.Since(start).Seconds(), "join-caught-up-s")
	// CPU of the whole process meanwhile, per instance: a newcomer that
	// joins during a heartbeat round shares the cores with all the others.
	b.ReportMetric(float64((processCPU()-cpuJ).Microseconds())/1000/time.Since(start).Seconds()/float64(n+1), "join-cpu-ms/s/instance")
}

// reportDelivery reports p50 and p99 of the time from each message's
// sending (sent[k]) to its reaching the last instance (last[k]).
func reportDelivery(b *testing.B, sent, last []time.Time) {
	lat := make([]time.Duration, len(sent))
	for k := range sent {
		lat[k] = last[k].Sub(sent[k])
	}
	b.ReportMetric(quantile(lat, 0.5), "put-p50-ms")
	b.ReportMetric(quantile(lat, 0.99), "put-p99-ms")
}
