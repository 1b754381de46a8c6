package dapp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
)

// BenchmarkDirectoryConvergence joins one instance at a time, through node
// 0 only, to a cluster of five on distinct /24s, and reports how long
// until every instance lists the newcomer and the newcomer lists every
// instance. Heartbeats keep their default 10 s interval: convergence
// rests on the directory exchange with each new peer, not on the period.
//
//	go test -run '^$' -bench BenchmarkDirectoryConvergence -benchtime 5x ./dapp
func BenchmarkDirectoryConvergence(b *testing.B) {
	ip := func(i int) string { return fmt.Sprintf("127.0.%d.1", i+1) }
	c := dapptest.New(b, 5, dapptest.Options{ListenIP: ip})
	c.WaitConnected()
	ctx := context.Background()
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		j := c.Join(0)
		newcomer := c.Node(j).ID()
		c.WaitFor("every instance in every directory", func() bool {
			for _, n := range c.Nodes() {
				rs, err := n.Replicas().List(ctx)
				if err != nil || len(rs) != len(c.Nodes()) {
					return false
				}
				found := false
				for _, r := range rs {
					found = found || r.ID == newcomer
				}
				if !found {
					return false
				}
			}
			return true
		})
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/converge")
}

// BenchmarkProbingCPU runs 20 instances in one process, joined through
// one seed, first with self-replication disabled and then with heartbeats
// and probes every second (ten times the default rate), and reports the
// CPU that heartbeats, probes and attestations add per instance, as a
// share of one core, at that rate and scaled to the default 10 s interval.
//
//	go test -run '^$' -bench BenchmarkProbingCPU -benchtime 1x ./dapp
func BenchmarkProbingCPU(b *testing.B) {
	const n = 20
	const window = 20 * time.Second
	measure := func(disabled bool) time.Duration {
		c := dapptest.New(b, n, dapptest.Options{
			Topology:    dapptest.Star,
			NoLeakCheck: true,
			Timeout:     2 * time.Minute,
			Configure: func(i int, cfg *dapp.Config) {
				cfg.Mirror = dapp.MirrorConfig{Interval: time.Second, Epoch: time.Hour, Disabled: disabled}
			},
		})
		defer c.Close()
		c.WaitConnected()
		if !disabled {
			c.WaitFor("every instance in every directory", func() bool {
				for _, nd := range c.Nodes() {
					if rs, _ := nd.Replicas().List(context.Background()); len(rs) != n {
						return false
					}
				}
				return true
			})
		}
		// Let start-up work (identify, peer exchange, store catch-up) end.
		settle := time.NewTimer(5 * time.Second)
		<-settle.C
		cpu0 := processCPU()
		wait := time.NewTimer(window)
		<-wait.C
		return processCPU() - cpu0
	}
	for range b.N {
		off := measure(true)
		on := measure(false)
		perInstance := float64(on-off) / float64(window) / n
		b.ReportMetric(100*float64(off)/float64(window)/n, "%core/instance-idle")
		b.ReportMetric(100*perInstance, "%core/instance-probing@1s")
		b.ReportMetric(100*perInstance/10, "%core/instance-probing@10s")
	}
}
