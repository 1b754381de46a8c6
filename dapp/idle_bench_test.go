package dapp_test

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/dpaas/dpaas/dapp"
)

// BenchmarkIdleInstances opens n instances of one DApp in one process, in
// memory, unconnected, and reports what each costs while idle: heap after
// GC, goroutines, and the wall and CPU time of its Open. With
// payments=used each instance also makes its first Payments call
// (counted in its open time), as an instance that pays would.
//
//	go test -run '^$' -bench BenchmarkIdleInstances -benchtime 1x -count 5 ./dapp
func BenchmarkIdleInstances(b *testing.B) {
	for _, used := range []bool{false, true} {
		for _, n := range []int{3, 24} {
			name := fmt.Sprintf("n=%d/payments=idle", n)
			if used {
				name = fmt.Sprintf("n=%d/payments=used", n)
			}
			b.Run(name, func(b *testing.B) {
				for range b.N {
					idleInstances(b, n, used)
				}
			})
		}
	}
}

func idleInstances(b *testing.B, n int, usePayments bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	heap0, g0 := settledHeap()
	cpu0 := processCPU()
	start := time.Now()
	nodes := make([]*dapp.Node, 0, n)
	defer func() {
		for _, nd := range nodes {
			nd.Close()
		}
	}()
	for range n {
		nd, err := dapp.Open(ctx, dapp.Config{App: dapp.Manifest{Name: "idle-bench"}, ListenAddrs: loopback})
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, nd)
		if usePayments && nd.Payments() == nil {
			b.Fatal("no payments")
		}
	}
	wall, cpu := time.Since(start), processCPU()-cpu0
	heap1, g1 := settledHeap()
	b.ReportMetric(float64(heap1-heap0)/float64(n)/(1<<20), "MiB-heap/instance")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/instance")
	b.ReportMetric(float64(wall.Milliseconds())/float64(n), "ms-open/instance")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(n), "ms-cpu-open/instance")
}

// settledHeap is the live heap and the goroutine count once background
// start-up work has had a moment and the garbage is collected.
func settledHeap() (int64, int) {
	time.Sleep(200 * time.Millisecond) // a benchmark, not a test: let start-up goroutines settle
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), runtime.NumGoroutine()
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
