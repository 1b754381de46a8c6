package dapp_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	gossip "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// BenchmarkGossipFloor is the machine's own bound for BenchmarkScale's
// Put delivery: n bare libp2p hosts in one process (TCP on loopback,
// Noise, yamux: the transport instances use), each dialling 6 others at
// random (about the 12 connections per instance the SDK keeps), one
// GossipSub topic with the default parameters and nothing else: no
// signatures, no validators, no store. 200 messages of 300 bytes at 50 a
// second (DPAAS_SCALE_RATE) from one host; it reports p50 and p99 of the
// time until every other host has each, the CPU per delivery and the
// copies of a message that reach a host per delivery. Whatever the SDK
// adds to a delivery (a signature check, the store's apply, its own
// heartbeats) comes on top of this. DPAAS_FLOOR_D=d sets GossipSub's D to
// d (D_lo d-1, D_hi 2d, D_out d/3) instead of the default 6;
// DPAAS_FLOOR_SIGN=1 has GossipSub sign every message with the host's
// key (Ed25519) and every receiver check it, as it does by default.
//
//	go test -run '^$' -bench 'BenchmarkGossipFloor/n=100$' -benchtime 1x ./dapp
func BenchmarkGossipFloor(b *testing.B) {
	for _, n := range []int{24, 100} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for range b.N {
				gossipFloor(b, n)
			}
		})
	}
}

func gossipFloor(b *testing.B, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seed := uint64(time.Now().UnixNano())
	b.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	hosts := make([]host.Host, n)
	for i := range hosts {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
			libp2p.Transport(tcp.NewTCPTransport), libp2p.Security(noise.ID, noise.New), libp2p.DisableRelay())
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		hosts[i] = h
	}
	for i, h := range hosts {
		for range 6 {
			j := rng.IntN(n)
			if j == i {
				continue
			}
			if err := h.Connect(ctx, peer.AddrInfo{ID: hosts[j].ID(), Addrs: hosts[j].Addrs()}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var dups sync.Map // host index -> *countDups
	topics := make([]*gossip.Topic, n)
	subs := make([]*gossip.Subscription, n)
	for i, h := range hosts {
		counter := new(countDups)
		dups.Store(i, counter)
		params := gossip.DefaultGossipSubParams()
		if d, err := strconv.Atoi(os.Getenv("DPAAS_FLOOR_D")); err == nil {
			params.D, params.Dlo, params.Dhi, params.Dout = d, d-1, 2*d, d/3
		}
		opts := []gossip.Option{
			gossip.WithGossipSubParams(params),
			gossip.WithRawTracer(counter),
			gossip.WithMessageIdFn(func(m *pb.Message) string {
				s := sha256.Sum256(m.Data)
				return string(s[:])
			}),
		}
		if os.Getenv("DPAAS_FLOOR_SIGN") == "" {
			opts = append(opts, gossip.WithMessageSignaturePolicy(gossip.StrictNoSign), gossip.WithNoAuthor())
		}
		ps, err := gossip.NewGossipSub(ctx, h, opts...)
		if err != nil {
			b.Fatal(err)
		}
		if topics[i], err = ps.Join("floor"); err != nil {
			b.Fatal(err)
		}
		if subs[i], err = topics[i].Subscribe(); err != nil {
			b.Fatal(err)
		}
	}
	// Meshes form over GossipSub's first heartbeats.
	deadline := time.Now().Add(time.Minute)
	for i := 0; i < n; {
		if len(topics[i].ListPeers()) >= min(4, n-1) {
			i++
			continue
		}
		if time.Now().After(deadline) {
			b.Fatalf("host %d has %d topic peers after a minute", i, len(topics[i].ListPeers()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a few heartbeats: meshes grafted

	const msgs = 200
	var mu sync.Mutex
	sent := make([]time.Time, msgs)
	last := make([]time.Time, msgs)
	got := make([]int, msgs)
	var readers sync.WaitGroup
	for i := 1; i < n; i++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				m, err := subs[i].Next(ctx)
				if err != nil {
					return
				}
				k := int(binary.BigEndian.Uint32(m.Data))
				if k >= msgs {
					continue
				}
				mu.Lock()
				got[k]++
				last[k] = time.Now()
				mu.Unlock()
			}
		}()
	}
	rate := 50.0
	if v, err := strconv.ParseFloat(os.Getenv("DPAAS_SCALE_RATE"), 64); err == nil && v > 0 {
		rate = v
	}
	dups0 := totalDups(&dups)
	cpu0, t0 := processCPU(), time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	for k := range msgs {
		<-tick.C
		data := make([]byte, 300)
		binary.BigEndian.PutUint32(data, uint32(k))
		binary.BigEndian.PutUint64(data[4:], seed+uint64(k)) // distinct across runs
		mu.Lock()
		sent[k] = time.Now()
		mu.Unlock()
		if err := topics[0].Publish(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	deadline = time.Now().Add(3 * time.Minute)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		mu.Lock()
		done := true
		for _, k := range got {
			done = done && k >= n-1
		}
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("not every message reached every host in 3 minutes")
		}
		time.Sleep(wait)
	}
	cpu, took := processCPU()-cpu0, time.Since(t0)
	deliveries := float64(msgs * (n - 1))
	cancel()
	readers.Wait()
	reportDelivery(b, sent, last)
	b.ReportMetric(float64(cpu.Microseconds())/1000/deliveries, "cpu-ms/delivery")
	b.ReportMetric(float64(cpu.Microseconds())/1000/took.Seconds()/float64(n), "cpu-ms/s/instance")
	b.ReportMetric(float64(totalDups(&dups)-dups0)/deliveries, "dups/delivery")
}

// countDups counts the duplicate copies of messages a host receives.
type countDups struct {
	mu sync.Mutex
	n  uint64
}

func (c *countDups) DuplicateMessage(*gossip.Message) { c.mu.Lock(); c.n++; c.mu.Unlock() }

func (c *countDups) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (c *countDups) OnClosedOutboundStream(peer.ID)           {}
func (c *countDups) AddPeer(peer.ID, protocol.ID)             {}
func (c *countDups) RemovePeer(peer.ID)                       {}
func (c *countDups) Join(string)                              {}
func (c *countDups) Leave(string)                             {}
func (c *countDups) Graft(peer.ID, string)                    {}
func (c *countDups) Prune(peer.ID, string)                    {}
func (c *countDups) ValidateMessage(*gossip.Message)          {}
func (c *countDups) DeliverMessage(*gossip.Message)           {}
func (c *countDups) RejectMessage(*gossip.Message, string)    {}
func (c *countDups) ThrottlePeer(peer.ID)                     {}
func (c *countDups) RecvRPC(*gossip.RPC)                      {}
func (c *countDups) SendRPC(*gossip.RPC, peer.ID)             {}
func (c *countDups) DropRPC(*gossip.RPC, peer.ID)             {}
func (c *countDups) UndeliverableMessage(*gossip.Message)     {}

func totalDups(m *sync.Map) (t uint64) {
	m.Range(func(_, v any) bool {
		c := v.(*countDups)
		c.mu.Lock()
		t += c.n
		c.mu.Unlock()
		return true
	})
	return t
}
