// Command scalecost evaluates, for a DApp of N instances, what each
// instance costs in connections, gossip messages and bytes per write, and
// the heartbeat, probe and attestation traffic of self-replication, from
// the formulas of BENCHMARKS.md ("Scale: a DApp of 1,000 and 10,000
// instances, on paper"). It measures nothing: it is arithmetic on the
// parameters the SDK sets (PeerTarget, GossipSub's D, D_lazy, gossip
// factor and heartbeat, the store's announcement suppression) and on
// per-message costs measured on this project's benchmarks.
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
// and the assumptions of issue 17.
type params struct {
	peerTarget  float64 // dapp.Config.PeerTarget: DApp connections kept, up to twice this
	connMean    float64 // DApp connections per instance, measured mean at 100 instances
	d, dLazy    float64 // GossipSub mesh degree and gossip emission degree
	gossipFact  float64 // GossipSub gossip factor
	heartbeat   float64 // GossipSub heartbeat, seconds
	histGossip  float64 // heartbeats of message IDs each IHAVE advertises
	idBytes     float64 // message ID (pubsub: 20 bytes of SHA-256)
	envBytes    float64 // pubsub envelope around a payload (signature, sender, sequence)
	verifyUS    float64 // CPU to check one signature (secp256k1 recovery), µs
	applyUS     float64 // CPU to apply one small delta, µs
	hbBytes     float64 // self-replication heartbeat payload
	hbPeriod    float64 // seconds between an instance's heartbeats
	probes      float64 // peers probed per probe period
	probePeriod float64 // seconds
	attBytes    float64 // one attestation, replicated as a document
	annRedund   float64 // store: announcements heard that make a replica skip its turn
	annPeriod   float64 // store: AnnounceInterval, seconds
	vvEntry     float64 // bytes per author in an announced version vector
}

func defaults() params {
	return params{
		peerTarget: 8, connMean: 10, d: 6, dLazy: 6, gossipFact: 0.25, heartbeat: 1, histGossip: 3,
		idBytes: 20, envBytes: 150, verifyUS: 80, applyUS: 35,
		hbBytes: 600, hbPeriod: 10, probes: 3, probePeriod: 10, attBytes: 300,
		annRedund: 3, annPeriod: 1, vvEntry: 30,
	}
}

// costs is what one instance pays, per second unless named otherwise.
type costs struct {
	conns                 float64 // DApp connections (bounded by 2 × PeerTarget)
	diameter              float64 // hops a write takes to reach the farthest instance
	copiesPerWrite        float64 // copies of one write an instance receives (upper bound)
	sendsPerWrite         float64 // copies it sends on
	ihavePeers            float64 // peers it sends IHAVE to per heartbeat
	hbIn, hbBytesIn       float64 // heartbeats from the DApp: distinct messages, bytes received
	hbCPU                 float64 // ms of CPU per second checking them
	attDeltas, attBytesIn float64 // attestation deltas from the DApp (one per prober per period)
	attCPU                float64 // ms/s checking and applying them
	attDisk               float64 // bytes per day the store keeps (history is never compacted)
	ihaveBytes            float64 // IHAVE bytes sent for heartbeats and attestations
	annSize               float64 // bytes of one store announcement (every instance an author)
	annIn, annBytesIn     float64 // announcements received, with and without suppression
	annInNoSup, annNoSup  float64
}

func model(p params, n float64) costs {
	var c costs
	c.conns = math.Min(p.connMean, n-1)
	// a random graph of mean degree c has a diameter of about ln n / ln c
	c.diameter = math.Ceil(math.Log(n) / math.Log(c.conns))
	mesh := math.Min(p.d, c.conns)
	// eager push: every mesh neighbour may send a copy before it hears ours
	c.copiesPerWrite = mesh
	c.sendsPerWrite = mesh - 1
	c.ihavePeers = math.Min(c.conns-mesh, math.Max(p.dLazy, p.gossipFact*(c.conns-mesh)))
	// every instance's heartbeat reaches every instance
	c.hbIn = n / p.hbPeriod
	c.hbBytesIn = c.hbIn * c.copiesPerWrite * (p.hbBytes + p.envBytes)
	c.hbCPU = c.hbIn * p.verifyUS / 1000
	// each prober writes its probes' attestations as one delta per period
	// (one signature), delivered to every replica; the delta is signed
	// twice (delta and envelope) and checked twice on arrival
	c.attDeltas = n / p.probePeriod
	attDelta := p.probes*p.attBytes + 200 + p.envBytes
	copies := c.copiesPerWrite
	if attDelta >= 1024 {
		copies = 2 // IDONTWANT (GossipSub v1.2) above 1 KiB: about one duplicate
	}
	c.attBytesIn = c.attDeltas * copies * attDelta
	c.attCPU = c.attDeltas * (2*p.verifyUS + p.applyUS) / 1000
	c.attDisk = c.attDeltas * attDelta * 86400
	ids := (c.hbIn + c.attDeltas) * p.histGossip * p.heartbeat
	c.ihaveBytes = c.ihavePeers * ids * p.idBytes / p.heartbeat
	c.annSize = n*p.vvEntry + 40
	annCopies := c.copiesPerWrite
	if c.annSize+p.envBytes >= 1024 {
		annCopies = 2
	}
	c.annIn = math.Min(n, p.annRedund+1) / p.annPeriod
	c.annBytesIn = c.annIn * annCopies * (c.annSize + p.envBytes)
	c.annInNoSup = n / p.annPeriod
	c.annNoSup = c.annInNoSup * annCopies * (c.annSize + p.envBytes)
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
	flag.Float64Var(&p.probes, "k", p.probes, "peers each instance probes per period")
	flag.Float64Var(&p.hbPeriod, "hb", p.hbPeriod, "seconds between an instance's heartbeats")
	flag.Float64Var(&p.verifyUS, "verify", p.verifyUS, "µs of CPU per signature check")
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
	row("heartbeats received /s", func(c costs) string { return fmt.Sprintf("%.0f", c.hbIn) })
	row("  bytes in /s", func(c costs) string { return bytes(c.hbBytesIn) })
	row("  CPU ms/s", func(c costs) string { return fmt.Sprintf("%.1f", c.hbCPU) })
	row("attestation deltas received /s", func(c costs) string { return fmt.Sprintf("%.0f", c.attDeltas) })
	row("  bytes in /s", func(c costs) string { return bytes(c.attBytesIn) })
	row("  CPU ms/s", func(c costs) string { return fmt.Sprintf("%.1f", c.attCPU) })
	row("  disk kept per day", func(c costs) string { return bytes(c.attDisk) })
	row("IHAVE bytes out /s", func(c costs) string { return bytes(c.ihaveBytes) })
	row("store announcement size", func(c costs) string { return bytes(c.annSize) })
	row("  received /s, suppressed", func(c costs) string { return fmt.Sprintf("%.0f", c.annIn) })
	row("  bytes in /s, suppressed", func(c costs) string { return bytes(c.annBytesIn) })
	row("  received /s, one per instance", func(c costs) string { return fmt.Sprintf("%.0f", c.annInNoSup) })
	row("  bytes in /s, one per instance", func(c costs) string { return bytes(c.annNoSup) })
	w.Flush()
}
