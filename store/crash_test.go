package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/ethereum/go-ethereum/crypto"
)

const crashDirEnv = "DPAAS_STORE_CRASH_DIR"

// runChild is the body of the child process of TestKilledWriterKeepsAcknowledgedWrites:
// it writes from four goroutines forever and prints each acknowledged ID.
func runChild() bool {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return false
	}
	key, err := crypto.HexToECDSA(os.Getenv(crashDirEnv + "_KEY"))
	if err != nil {
		panic(err)
	}
	db, err := kv.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	sp, err := db.Space("store")
	if err != nil {
		panic(err)
	}
	s, err := Open(context.Background(), Config{Space: sp, Key: key})
	if err != nil {
		panic(err)
	}
	c := s.Collection("c")
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	writers, _ := strconv.Atoi(os.Getenv(crashDirEnv + "_WRITERS"))
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%06d", w, i)
				if err := c.Update(context.Background(), id, Set("i", i), Inc("n", 1)); err != nil {
					panic(err)
				}
				mu.Lock()
				fmt.Fprintln(out, id)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return true
}

// TestKilledWriterKeepsAcknowledgedWrites kills a writing process with
// SIGKILL and checks that every write it acknowledged survives, and that
// the reopened replica continues its own chain. With four writers, they
// share commits; with one, the writer waits for each commit's fsync
// itself (ack.go).
func TestKilledWriterKeepsAcknowledgedWrites(t *testing.T) {
	for _, writers := range []int{4, 1} {
		t.Run(fmt.Sprintf("writers=%d", writers), func(t *testing.T) { killedWriter(t, writers) })
	}
}

func killedWriter(t *testing.T, writers int) {
	dir := t.TempDir()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashDirEnv+"_KEY="+fmt.Sprintf("%x", crypto.FromECDSA(key)), crashDirEnv+"_WRITERS="+strconv.Itoa(writers))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(stdout)
	for len(acked) < 400 && sc.Scan() {
		acked = append(acked, strings.TrimSpace(sc.Text()))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // acknowledgements printed before the kill landed count too
		acked = append(acked, strings.TrimSpace(sc.Text()))
	}
	_ = cmd.Wait()
	if len(acked) < 400 {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}

	db, err := kv.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sp, err := db.Space("store")
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	s, err := Open(context.Background(), Config{Space: sp, Key: key, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := strings.Count(logged.String(), "crash left unsigned"); n > 0 {
		t.Logf("the kill came between a commit's two batches: %d delta(s) signed again on open", n)
	}
	c := s.Collection("c")
	for _, id := range acked {
		raw, err := c.GetRaw(context.Background(), id)
		if err != nil {
			t.Fatalf("acknowledged write %s lost: %v", id, err)
		}
		if !strings.Contains(string(raw), `"n":1`) {
			t.Fatalf("acknowledged write %s is %s", id, raw)
		}
	}
	before := s.Versions()[s.Author()]
	if err := c.Put(context.Background(), "after", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if got := s.Versions()[s.Author()]; got != before+1 {
		t.Fatalf("sequence after restart %d, want %d", got, before+1)
	}
	t.Logf("%d acknowledged writes survived SIGKILL; own sequence continued at %d", len(acked), before+1)
}
