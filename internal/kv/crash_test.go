package kv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const crashEnv = "DPAAS_KV_CRASH_DIR"

// crashChild writes synced keys into the database at dir until it is
// killed, printing each key once Pebble acknowledged it. Small memtables
// make it rotate through several write-ahead logs.
func crashChild(dir, round string) {
	db, err := Open(dir, &Options{MemTableSize: 1 << 20})
	if err != nil {
		panic(err)
	}
	sp, err := db.Space("t")
	if err != nil {
		panic(err)
	}
	out := bufio.NewWriter(os.Stdout)
	value := make([]byte, 3000)
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s-%06d", round, i)
		copy(value, k)
		if err := sp.Set([]byte(k), value, true); err != nil {
			panic(err)
		}
		fmt.Fprintln(out, k)
		out.Flush()
	}
}

// TestKilledWriterKeepsSyncedKeys kills a process writing synced keys with
// SIGKILL, three times over the same directory, and checks every key it
// acknowledged in every round survives. The write-ahead logs are zeroed
// ahead of the writer (logFS), so this is also the check that
// Pebble replays logs with zeroed tails, current and older, correctly.
func TestKilledWriterKeepsSyncedKeys(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir, os.Getenv(crashEnv+"_ROUND"))
		return
	}
	dir := t.TempDir()
	var acked []string
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterKeepsSyncedKeys$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, fmt.Sprintf("%s_ROUND=r%d", crashEnv, round))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		// 1,500 keys of 3 KB: several 1 MiB zeroed chunks and logs
		for n < 1500 && sc.Scan() {
			if k := strings.TrimSpace(sc.Text()); strings.HasPrefix(k, fmt.Sprintf("r%d-", round)) {
				acked = append(acked, k)
				n++
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for sc.Scan() {
			if k := strings.TrimSpace(sc.Text()); strings.HasPrefix(k, fmt.Sprintf("r%d-", round)) {
				acked = append(acked, k)
			}
		}
		_ = cmd.Wait()
		if n < 1500 {
			t.Fatalf("round %d: child acknowledged only %d keys", round, n)
		}

		db, err := Open(dir, &Options{MemTableSize: 1 << 20})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		sp, err := db.Space("t")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range acked {
			v, err := sp.Get([]byte(k))
			if err != nil {
				db.Close()
				t.Fatalf("round %d: acknowledged key %s lost: %v", round, k, err)
			}
			if !strings.HasPrefix(string(v), k) {
				db.Close()
				t.Fatalf("round %d: key %s holds %q", round, k, v[:len(k)])
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d acknowledged keys survived three SIGKILLs", len(acked))
}

// TestZeroAheadLogs checks that the logs of an on-disk database are zeroed
// ahead of the writer and that a cleanly closed database reopens intact.
func TestZeroAheadLogs(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := db.Space("t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := sp.Set(fmt.Appendf(nil, "k%03d", i), []byte("v"), true); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	zeroed := false
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".log") {
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			zeroed = zeroed || info.Size() >= zeroChunk
		}
	}
	if !zeroed {
		t.Fatal("no write-ahead log was zeroed ahead")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sp, err = db.Space("t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := sp.Get(fmt.Appendf(nil, "k%03d", i)); err != nil {
			t.Fatalf("k%03d after reopen: %v", i, err)
		}
	}
}
