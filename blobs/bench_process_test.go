package blobs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// serveDirEnv names the database directory of the serving process that
// BenchmarkFetchFromRunning starts (this test binary, run again).
const serveDirEnv = "DPAAS_BLOBS_SERVE_DIR"

const servedSize = 256 << 20

// runServer is the body of that serving process: a replica on disk that
// adds servedSize seeded random bytes, reads them back once (as a replica
// that has been running has its caches warm), prints "ready <peer>
// <address> <root>" and serves until its standard input closes.
func runServer() bool {
	dir := os.Getenv(serveDirEnv)
	if dir == "" {
		return false
	}
	seed, _ := strconv.ParseUint(os.Getenv(serveDirEnv+"_SEED"), 10, 64)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "serving process:", err)
		os.Exit(1)
	}
	db, err := kv.Open(dir, nil)
	if err != nil {
		fail(err)
	}
	sp, err := db.Space("blobs")
	if err != nil {
		fail(err)
	}
	h, err := newTestHost()
	if err != nil {
		fail(err)
	}
	s, err := Open(context.Background(), Config{Space: sp, Host: h, AppID: testApp, Registry: NewMemRegistry()})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	root, err := s.Add(ctx, &randomReader{r: rand.New(rand.NewPCG(seed, seed)), n: servedSize})
	if err != nil {
		fail(err)
	}
	rd, err := s.Open(ctx, root)
	if err != nil {
		fail(err)
	}
	if _, err := io.Copy(io.Discard, rd); err != nil {
		fail(err)
	}
	rd.Close()
	fmt.Printf("ready %s %s %s\n", h.ID(), h.Addrs()[0], root)
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Close()
	_ = h.Close()
	_ = db.Close()
	return true
}

// BenchmarkFetchFromRunning measures what a replica that joins sees: each
// iteration starts a new replica in this process, which reads 256 MiB
// through Open from a replica running in another process (started once,
// its caches warm), over loopback TCP. Run it with -benchtime 1x for a
// fresh reading process each time. cpu-s/op counts both processes.
//
//	go test ./blobs -run '^$' -bench 'BenchmarkFetchFromRunning$' -benchtime 1x -count 5
func BenchmarkFetchFromRunning(b *testing.B) {
	seed := uint64(time.Now().UnixNano())
	b.Logf("serving process seed %d", seed)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveDirEnv+"="+b.TempDir(), serveDirEnv+"_SEED="+strconv.FormatUint(seed, 10))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 4 || f[0] != "ready" {
		b.Fatalf("serving process said %q: %v", line, err)
	}
	id, err := peer.Decode(f[1])
	if err != nil {
		b.Fatal(err)
	}
	addr, err := multiaddr.NewMultiaddr(f[2])
	if err != nil {
		b.Fatal(err)
	}
	root, err := cid.Decode(f[3])
	if err != nil {
		b.Fatal(err)
	}
	server := peer.AddrInfo{ID: id, Addrs: []multiaddr.Multiaddr{addr}}

	b.SetBytes(servedSize)
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst := startReplicaIn(b, b.TempDir(), NewMemRegistry(), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if err := dst.host.Connect(ctx, server); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu0, child0 := cpuTime(), processCPU(cmd.Process.Pid)
		rd, err := dst.store.Open(ctx, root)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rd)
		rd.Close()
		if err != nil || n != servedSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		b.StopTimer()
		cpu += cpuTime() - cpu0 + processCPU(cmd.Process.Pid) - child0
		if m := dst.store.Metrics(); m.StreamFetchedBytes < servedSize {
			b.Logf("only %d of %d bytes came over the blocks protocol", m.StreamFetchedBytes, m.FetchedBytes)
		}
		cancel()
		dst.stop()
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}
