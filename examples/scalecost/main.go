// Command scalecost evaluates what one instance of a DApp of N instances
// pays while the DApp is idle: connections, gossip copies per write, and
// the traffic and CPU of self-replication (heartbeats, probes and
// attestations) and of the replicated store's version exchanges, in the
// spirit of BENCHMARKS.md ("Scale: a DApp of 1,000 and 10,000 instances,
// on paper"). It measures nothing: it is arithmetic on the parameters the
// SDK sets and on per-operation costs measured on this project's
// benchmarks and profiles.
//
// The model follows the SDK's design:
//
//   - heartbeats are spaced: an instance sends one every beat period,
//     Interval × max(1, ceil(N/32)), so the DApp carries about 32
//     heartbeats per Interval whatever its size, and every instance checks
//     each of them once;
//   - an instance probes a few random others once per beat period (not
//     once per Interval), most of them over a connection dialled for the
//     probe and closed after it in a large DApp;
//   - a prober writes its attestations to the replicated store in deltas:
//     at once (spaced by a beat period) when it has news, otherwise in one
//     periodic write every Epoch/12 and at the epoch's last round;
//   - replicas compare versions with one random neighbour each
//     AnnounceInterval, over a stream, instead of gossiping announcements
//     to the whole DApp.
//
// The last row sums the CPU of all of it, to show whether the idle cost of
// an instance stays flat as N grows.
//
//	go run ./examples/scalecost                 # 100, 1,000 and 10,000 instances
//	go run ./examples/scalecost -n 5000 -k 5    # other sizes and parameters
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// params are the inputs of the model; the defaults are the SDK's settings
// and costs measured on this project's benchmarks.
type params struct {
	peerTarget  float64 // dapp.Config.PeerTarget (8): DApp connections kept, up to twice this
	connMean    float64 // DApp connections per instance (10), measured mean at 100 instances
	d, dLazy    float64 // GossipSub mesh degree and gossip emission degree (6, 6)
	gossipFact  float64 // GossipSub gossip factor (0.25)
	heartbeat   float64 // GossipSub heartbeat, seconds (1)
	histGossip  float64 // GossipSub heartbeats of message IDs each IHAVE advertises (3)
	idBytes     float64 // message ID (pubsub: 20 bytes of SHA-256)
	envBytes    float64 // pubsub envelope around a payload: signature, sender, sequence (150)
	verifyUS    float64 // CPU to check one signature (secp256k1 recovery), µs (80)
	applyUS     float64 // CPU to apply one attestation record to the store, µs (35)
	interval    float64 // dapp.Config.Mirror.Interval, seconds (10)
	beatsPerInt float64 // heartbeats the DApp carries per Interval, whatever N (32)
	hbBytes     float64 // self-replication heartbeat payload (600)
	probes      float64 // dapp.Config.Mirror.Probes: instances probed per beat period (3)
	handshakeUS float64 // CPU of one new connection, TLS + identify, both ends together, µs (2000)
	epoch       float64 // dapp.Config.Mirror.Epoch, seconds (3600)
	attWrites   float64 // periodic attestation writes per epoch (attestWrites, 12)
	quickShare  float64 // beat periods in which a prober writes at once, steady DApp (0.1)
	attBytes    float64 // one attestation record in a delta (300)
	annPeriod   float64 // store.Config.AnnounceInterval, seconds (1)
	vvEntry     float64 // bytes per author in a version vector (30)
	exchHeader  float64 // bytes of the header a neighbour answers an exchange with (100)
	exchangeUS  float64 // CPU of one version exchange, both ends together, µs (150)
}

func defaults() params {
	return params{
		peerTarget: 8, connMean: 10, d: 6, dLazy: 6, gossipFact: 0.25, heartbeat: 1, histGossip: 3,
		idBytes: 20, envBytes: 150, verifyUS: 80, applyUS: 35,
		interval: 10, beatsPerInt: 32, hbBytes: 600, probes: 3, handshakeUS: 2000,
		epoch: 3600, attWrites: 12, quickShare: 0.1, attBytes: 300,
		annPeriod: 1, vvEntry: 30, exchHeader: 100, exchangeUS: 150,
	}
}

// costs is what one instance pays, per second unless named otherwise.
type costs struct {
	conns          float64 // DApp connections (bounded by 2 × PeerTarget)
	diameter       float64 // hops a write takes to reach the farthest instance
	copiesPerWrite float64 // copies of one write an instance receives (upper bound)
	sendsPerWrite  float64 // copies it sends on
	ihavePeers     float64 // peers it sends IHAVE to per GossipSub heartbeat
	beatPeriod     float64 // seconds between two heartbeats of an instance

	hbIn, hbBytesIn float64 // heartbeats from the DApp: distinct messages, bytes received
	hbCPU           float64 // ms of CPU per second checking them

	probesOut, probesIn float64 // probes made and received
	dialShare           float64 // share of the probes that dial a new connection
	probeConns          float64 // connections opened for probes (and as many accepted)
	probeCPU            float64 // ms/s of handshakes, for those opened and those accepted

	attDeltas, attPerDelta float64 // attestation deltas from the DApp, records in each
	attRecords             float64 // attestation records checked
	attBytesIn             float64
	attCPU                 float64 // ms/s checking and applying them
	attDisk                float64 // bytes per day the store keeps (history is never compacted)

	ihaveBytes float64 // IHAVE bytes sent for heartbeats and attestation deltas

	exchOpened, exchServed float64 // version exchanges opened with a neighbour, and served
	exchBytesOut           float64 // bytes sent (and about as many received)
	exchCPU                float64 // ms/s

	totalCPU float64 // ms/s: heartbeats + attestations + probe handshakes + exchanges
}

func model(p params, n float64) costs {
	var c costs

	// Connections and gossip. A random graph of mean degree c has a
	// diameter of about ln n / ln c. Eager push: every mesh neighbour may
	// send a copy of a write before it hears ours, so an instance receives
	// up to mesh copies and sends mesh-1. It gossips the IDs of the
	// messages it saw to max(D_lazy, gossipFactor × non-mesh peers) of its
	// other peers each GossipSub heartbeat.
	c.conns = math.Min(p.connMean, n-1)
	c.diameter = math.Ceil(math.Log(n) / math.Log(c.conns))
	mesh := math.Min(p.d, c.conns)
	c.copiesPerWrite = mesh
	c.sendsPerWrite = mesh - 1
	c.ihavePeers = math.Min(c.conns-mesh, math.Max(p.dLazy, p.gossipFact*(c.conns-mesh)))

	// Heartbeats. beatPeriod = Interval × max(1, ceil(N/32)): the DApp
	// carries about 32 heartbeats per Interval whatever N, and each
	// instance receives hbIn = N / beatPeriod a second (≈ 3.2/s for
	// N > 32), each as about mesh copies, and checks each once:
	//	bytes in = hbIn × mesh × (heartbeat + envelope)
	//	CPU      = hbIn × verifyUS
	c.beatPeriod = p.interval * math.Max(1, math.Ceil(n/p.beatsPerInt))
	c.hbIn = n / c.beatPeriod
	c.hbBytesIn = c.hbIn * c.copiesPerWrite * (p.hbBytes + p.envBytes)
	c.hbCPU = c.hbIn * p.verifyUS / 1000

	// Probes. Each instance probes `probes` random others once per beat
	// period, and is probed as often on average:
	//	probes out = probes in = probes / beatPeriod
	// A probe dials unless the prober already has a connection to the
	// probed instance: it keeps about conns of the N-1 others, so a share
	// 1 - conns/(N-1) of the probes dial, and the prober closes the
	// connection right after. Each instance opens probeConns a second and
	// accepts as many on average, paying its end of each handshake, so
	// together one full handshake per connection opened:
	//	CPU = probes / beatPeriod × (1 - conns/(N-1)) × handshakeUS
	// (The probe's own work, the challenge, is not counted.)
	c.probesOut = p.probes / c.beatPeriod
	c.probesIn = c.probesOut
	c.dialShare = math.Max(0, 1-c.conns/(n-1))
	c.probeConns = c.probesOut * c.dialShare
	c.probeCPU = c.probeConns * p.handshakeUS / 1000

	// Attestations. A prober accumulates counts per probed instance and
	// writes those not written yet as one delta: at once (first
	// attestation of an instance, or a changed outcome), spaced by at
	// least a beat period; otherwise in one periodic write every
	// Epoch/attestWrites (300 s); and at the epoch's last round. Assumed:
	// in a steady DApp a prober has something to write at once in a share
	// quickShare of the beat periods. A prober writes only when it has
	// probed since its last write, so at most once per beat period. Each
	// prober thus writes
	//	w = min(1/beatPeriod, quickShare/beatPeriod + attWrites/Epoch + 1/Epoch)
	// deltas a second, and every instance receives all of them:
	//	deltas in = N × w
	// A delta carries the records written since the prober's last write:
	// `probes` per beat period since then, one per probed instance:
	//	records per delta = min(N-1, probes / (w × beatPeriod))
	// so records checked = deltas × records per delta ≤ N × probes /
	// beatPeriod (every probe's record written once). Each record is
	// checked (its signature) and applied; each delta is checked twice
	// (delta and envelope signatures):
	//	CPU = records × (verifyUS + applyUS) + deltas × 2 × verifyUS
	// Above 1 KiB, IDONTWANT (GossipSub v1.2) leaves about one duplicate.
	w := math.Min(1/c.beatPeriod, p.quickShare/c.beatPeriod+p.attWrites/p.epoch+1/p.epoch)
	c.attDeltas = n * w
	c.attPerDelta = math.Min(n-1, p.probes/(w*c.beatPeriod))
	c.attRecords = c.attDeltas * c.attPerDelta
	attDelta := c.attPerDelta*p.attBytes + 200 + p.envBytes
	copies := c.copiesPerWrite
	if attDelta >= 1024 {
		copies = 2
	}
	c.attBytesIn = c.attDeltas * copies * attDelta
	c.attCPU = (c.attRecords*(p.verifyUS+p.applyUS) + c.attDeltas*2*p.verifyUS) / 1000
	c.attDisk = c.attDeltas * attDelta * 86400

	// IHAVE: the IDs of the heartbeats and attestation deltas of the last
	// histGossip GossipSub heartbeats, to each IHAVE peer every heartbeat.
	ids := (c.hbIn + c.attDeltas) * p.histGossip * p.heartbeat
	c.ihaveBytes = c.ihavePeers * ids * p.idBytes / p.heartbeat

	// Store version exchange. Each AnnounceInterval on average a replica
	// opens a stream to one random neighbour (over a connection it already
	// has) and sends its version vector, N × vvEntry bytes when every
	// instance is an author; the neighbour answers with a small header,
	// and nothing else when it lacks nothing. Each instance is picked by
	// one neighbour per AnnounceInterval on average, so it opens one
	// exchange and serves about one:
	//	bytes out ≈ bytes in ≈ (N × vvEntry + header) / AnnounceInterval
	//	CPU = exchangeUS / AnnounceInterval (its end of the opened, and of the served)
	// Nothing is gossiped to the whole DApp for versions.
	c.exchOpened = 1 / p.annPeriod
	c.exchServed = c.exchOpened
	c.exchBytesOut = (n*p.vvEntry + p.exchHeader) / p.annPeriod
	c.exchCPU = c.exchOpened * p.exchangeUS / 1000

	c.totalCPU = c.hbCPU + c.attCPU + c.probeCPU + c.exchCPU
	return c
}

func bytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func main() {
	p := defaults()
	sizes := flag.String("n", "100,1000,10000", "comma-separated numbers of instances")
	flag.Float64Var(&p.probes, "k", p.probes, "instances each instance probes per beat period")
	flag.Float64Var(&p.interval, "interval", p.interval, "Mirror.Interval, seconds")
	flag.Float64Var(&p.quickShare, "quick", p.quickShare, "share of beat periods in which a prober writes at once")
	flag.Float64Var(&p.verifyUS, "verify", p.verifyUS, "µs of CPU per signature check")
	flag.Float64Var(&p.handshakeUS, "handshake", p.handshakeUS, "µs of CPU per new connection, both ends")
	flag.Float64Var(&p.exchangeUS, "exchange", p.exchangeUS, "µs of CPU per version exchange, both ends")
	flag.Parse()
	var ns []float64
	for _, f := range strings.Split(*sizes, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 2 {
			fmt.Fprintf(os.Stderr, "scalecost: -n: %q is not a number of instances (2 or more)\n", f)
			os.Exit(2)
		}
		ns = append(ns, v)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(costs) string) {
		fmt.Fprint(w, name, "\t")
		for _, n := range ns {
			fmt.Fprint(w, f(model(p, n)), "\t")
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "per instance\t")
	for _, n := range ns {
		fmt.Fprintf(w, "N=%.0f\t", n)
	}
	fmt.Fprintln(w)
	row("DApp connections (≤ 2×PeerTarget)", func(c costs) string { return fmt.Sprintf("%.0f", c.conns) })
	row("hops to the farthest instance", func(c costs) string { return fmt.Sprintf("%.0f", c.diameter) })
	row("copies of a write received / sent", func(c costs) string {
		return fmt.Sprintf("%.0f / %.0f", c.copiesPerWrite, c.sendsPerWrite)
	})
	row("IHAVE peers per heartbeat", func(c costs) string { return fmt.Sprintf("%.0f", c.ihavePeers) })
	row("beat period, s", func(c costs) string { return fmt.Sprintf("%.0f", c.beatPeriod) })
	row("heartbeats received /s", func(c costs) string { return fmt.Sprintf("%.2f", c.hbIn) })
	row("  bytes in /s", func(c costs) string { return bytes(c.hbBytesIn) })
	row("  CPU ms/s", func(c costs) string { return fmt.Sprintf("%.2f", c.hbCPU) })
	row("probes made / received /s", func(c costs) string {
		return fmt.Sprintf("%.4f / %.4f", c.probesOut, c.probesIn)
	})
	row("  share that dial", func(c costs) string { return fmt.Sprintf("%.0f%%", 100*c.dialShare) })
	row("  probe connections opened /s", func(c costs) string { return fmt.Sprintf("%.4f", c.probeConns) })
	row("  handshake CPU ms/s", func(c costs) string { return fmt.Sprintf("%.2f", c.probeCPU) })
	row("attestation deltas received /s", func(c costs) string { return fmt.Sprintf("%.2f", c.attDeltas) })
	row("  attestations per delta", func(c costs) string { return fmt.Sprintf("%.1f", c.attPerDelta) })
	row("  records checked /s", func(c costs) string { return fmt.Sprintf("%.2f", c.attRecords) })
	row("  bytes in /s", func(c costs) string { return bytes(c.attBytesIn) })
	row("  CPU ms/s", func(c costs) string { return fmt.Sprintf("%.2f", c.attCPU) })
	row("  disk kept per day", func(c costs) string { return bytes(c.attDisk) })
	row("IHAVE bytes out /s", func(c costs) string { return bytes(c.ihaveBytes) })
	row("version exchanges opened / served /s", func(c costs) string {
		return fmt.Sprintf("%.0f / %.0f", c.exchOpened, c.exchServed)
	})
	row("  bytes out /s (≈ in)", func(c costs) string { return bytes(c.exchBytesOut) })
	row("  CPU ms/s", func(c costs) string { return fmt.Sprintf("%.2f", c.exchCPU) })
	row("total CPU ms/s", func(c costs) string { return fmt.Sprintf("%.2f", c.totalCPU) })
	w.Flush()
}
