package blobs

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkAdd measures local Add throughput (import, hash, write to
// Pebble, pin) of a 64 MiB random file.
//
//	go test ./blobs -run '^$' -bench BenchmarkAdd -benchtime 5x
func BenchmarkAdd(b *testing.B) {
	r := seeded(b)
	// On disk: Pebble's in-memory filesystem copies whole files as they
	// grow and would measure that instead.
	s := startReplicaIn(b, b.TempDir(), NewMemRegistry(), func(c *Config) { c.Host = nil }).store
	const size = 64 << 20
	data := randomBytes(r, size)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Change one byte per round so that every Add writes new blocks.
		data[i%size] ^= 0xff
		if _, err := s.Add(context.Background(), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetch measures replica-to-replica reads over loopback: one
// replica adds 256 MiB, a fresh replica reads it all through Open. Each
// iteration reads with a new replica; in a fresh process the first one
// also pays for faulting in the Go heap and the serving replica's block
// cache (see BenchmarkFetchSteady).
//
//	go test ./blobs -run '^$' -bench 'BenchmarkFetch$' -benchtime 1x
func BenchmarkFetch(b *testing.B) { benchFetch(b, false) }

// BenchmarkFetchSteady is BenchmarkFetch once the process and the serving
// replica have served one fetch, untimed: what a long-running replica
// sees, each iteration still reading with a new replica.
//
//	go test ./blobs -run '^$' -bench 'BenchmarkFetchSteady$' -benchtime 3x
func BenchmarkFetchSteady(b *testing.B) { benchFetch(b, true) }

func benchFetch(b *testing.B, warm bool) {
	r := seeded(b)
	const size = 256 << 20
	src := startReplicaIn(b, b.TempDir(), NewMemRegistry(), nil)
	root, err := src.store.Add(context.Background(), &randomReader{r: r, n: size})
	if err != nil {
		b.Fatal(err)
	}
	fetch := func() (time.Duration, float64) {
		dst := startReplicaIn(b, b.TempDir(), NewMemRegistry(), nil)
		defer dst.stop()
		connect(b, src, dst)
		b.StartTimer()
		defer b.StopTimer()
		cpu0 := cpuTime()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		rd, err := dst.store.Open(ctx, root)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rd)
		rd.Close()
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		cpu := cpuTime() - cpu0
		m := dst.store.Metrics()
		return cpu, float64(m.StreamFetchedBytes) / float64(max(m.FetchedBytes, 1))
	}
	b.StopTimer()
	if warm {
		fetch()
		b.StopTimer()
	}
	b.ResetTimer()
	b.SetBytes(size)
	var cpu time.Duration
	streamed := 0.0
	for i := 0; i < b.N; i++ {
		c, s := fetch()
		cpu += c
		streamed += s
	}
	// CPU per fetch, both replicas: on two cores, the fetch is CPU-bound
	// when this is near twice the wall time.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	// The share of the bytes fetched over the blocks protocol, not bitswap.
	b.ReportMetric(100*streamed/float64(b.N), "%stream")
}

// BenchmarkFetchQUIC is BenchmarkFetch over QUIC instead of TCP.
//
//	go test ./blobs -run '^$' -bench BenchmarkFetchQUIC -benchtime 1x
func BenchmarkFetchQUIC(b *testing.B) {
	old := testListen
	testListen = "/ip4/127.0.0.1/udp/0/quic-v1"
	defer func() { testListen = old }()
	BenchmarkFetch(b)
}
