package blobs

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
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
func BenchmarkFetch(b *testing.B) { benchFetch(b, fetchBench{}) }

// BenchmarkFetchDagPB is BenchmarkFetch of 256 MiB added as Kubo's `ipfs
// add` does by default: CIDv0, dag-pb leaves.
//
//	go test ./blobs -run '^$' -bench 'BenchmarkFetchDagPB$' -benchtime 1x
func BenchmarkFetchDagPB(b *testing.B) { benchFetch(b, fetchBench{dagPB: true}) }

// BenchmarkFetchBitswap reads 64 MiB (CIDv1, raw leaves) from a plain IPFS
// peer, as from a Kubo node: boxo bitswap with its default settings on the
// standard protocol IDs, no blocks protocol, so every block comes over
// bitswap.
//
//	go test ./blobs -run '^$' -bench 'BenchmarkFetchBitswap$' -benchtime 1x
func BenchmarkFetchBitswap(b *testing.B) { benchFetch(b, fetchBench{bitswap: true}) }

// BenchmarkFetchBitswapDagPB is BenchmarkFetchBitswap of a CIDv0 file with
// dag-pb leaves, what `ipfs add` makes by default.
//
//	go test ./blobs -run '^$' -bench 'BenchmarkFetchBitswapDagPB$' -benchtime 1x
func BenchmarkFetchBitswapDagPB(b *testing.B) {
	benchFetch(b, fetchBench{dagPB: true, bitswap: true})
}

// BenchmarkFetchSteady is BenchmarkFetch once the process and the serving
// replica have served one fetch, untimed: what a long-running replica
// sees, each iteration still reading with a new replica.
//
//	go test ./blobs -run '^$' -bench 'BenchmarkFetchSteady$' -benchtime 3x
func BenchmarkFetchSteady(b *testing.B) { benchFetch(b, fetchBench{warm: true}) }

// fetchBench says what benchFetch reads and from whom.
type fetchBench struct {
	warm    bool // one fetch first, untimed
	dagPB   bool // CIDv0, dag-pb leaves, instead of CIDv1 raw leaves
	bitswap bool // from a plain IPFS peer (64 MiB) instead of a replica (256 MiB)
}

func benchFetch(b *testing.B, fb fetchBench) {
	r := seeded(b)
	size := int64(256 << 20)
	if fb.bitswap {
		size = 64 << 20
	}
	src := startReplicaIn(b, b.TempDir(), NewMemRegistry(), nil)
	var root cid.Cid
	var err error
	if fb.dagPB {
		root = addV0(b, src.store, &randomReader{r: r, n: size})
	} else if root, err = src.store.Add(context.Background(), &randomReader{r: r, n: size}); err != nil {
		b.Fatal(err)
	}
	var tweak func(*Config)
	if fb.bitswap {
		from := startPlainIPFS(b, src.store, root)
		src = &replica{host: from}
		tweak = func(c *Config) { c.IPFSBitswap = true }
	}
	fetch := func() (time.Duration, float64) {
		dst := startReplicaIn(b, b.TempDir(), NewMemRegistry(), tweak)
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
	if fb.warm {
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

// startPlainIPFS starts a libp2p host that serves, over standard bitswap
// with boxo's default settings and nothing else, a copy of the DAG of root
// that from holds: what a Kubo node holding the file offers.
func startPlainIPFS(t testing.TB, from *Store, root cid.Cid) host.Host {
	t.Helper()
	bs := blockCopy(t, from, root)
	h := newHost(t)
	swap := bitswap.New(context.Background(), bsnet.NewFromIpfsHost(h), nil, bs)
	t.Cleanup(func() {
		swap.Close()
		h.Close()
	})
	return h
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

// BenchmarkFetchWhileReplicating is BenchmarkFetch by a new replica that
// also replicates the blob in the background (it shares the DApp's blob
// set), as a replica that joins and is asked for a file at once does. It
// reports the block bytes received for each byte of the DAG (fetched-x):
// 1 when the read and the replication share every transfer.
//
//	go test ./blobs -run '^$' -bench 'BenchmarkFetchWhileReplicating$' -benchtime 1x
func BenchmarkFetchWhileReplicating(b *testing.B) {
	r := seeded(b)
	const size = 256 << 20
	reg := NewMemRegistry()
	src := startReplicaIn(b, b.TempDir(), reg, nil)
	root, err := src.store.Add(context.Background(), &randomReader{r: r, n: size})
	if err != nil {
		b.Fatal(err)
	}
	st, err := src.store.Stat(context.Background(), root)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	b.StopTimer()
	ratio := 0.0
	for i := 0; i < b.N; i++ {
		dst := startReplicaIn(b, b.TempDir(), reg, nil)
		connect(b, src, dst)
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		rd, err := dst.store.Open(ctx, root)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rd)
		rd.Close()
		cancel()
		b.StopTimer()
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		eventually(b, 10*time.Minute, "the replication to complete", func() bool {
			m := dst.store.Metrics()
			return m.Pinned == 1 && m.Pending == 0
		})
		ratio += float64(dst.store.Metrics().FetchedBytes) / float64(st.LocalBytes)
		dst.stop()
	}
	b.ReportMetric(ratio/float64(b.N), "fetched-x")
}
