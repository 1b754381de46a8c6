package dapp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
)

type goBuild struct {
	module, version, revision string
	modified                  bool
}

// debugBuildInfo reads the Go build info of the running program.
func debugBuildInfo() (goBuild, bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return goBuild{}, false
	}
	b := goBuild{module: bi.Main.Path, version: bi.Main.Version}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b, true
}

// exeHashes caches executable hashes by path for the process: the
// instances of one process run one executable, and hash it once.
var exeHashes struct {
	mu    sync.Mutex
	calls map[string]*hashCall
}

type hashCall struct {
	done chan struct{}
	sum  string
	err  error
}

// executableHash returns the SHA-256 of the file at path ("" = the running
// executable) in hex. Concurrent callers for one path share one read; a
// read cut short by its caller's ctx is retried by the next caller.
func executableHash(ctx context.Context, path string) (string, error) {
	if path == "" {
		p, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find the executable: %w", err)
		}
		path = p
	}
	for {
		exeHashes.mu.Lock()
		if exeHashes.calls == nil {
			exeHashes.calls = make(map[string]*hashCall)
		}
		c := exeHashes.calls[path]
		if c == nil {
			c = &hashCall{done: make(chan struct{})}
			exeHashes.calls[path] = c
			exeHashes.mu.Unlock()
			c.sum, c.err = hashFile(ctx, path)
			if c.err != nil {
				exeHashes.mu.Lock()
				delete(exeHashes.calls, path)
				exeHashes.mu.Unlock()
			}
			close(c.done)
			return c.sum, c.err
		}
		exeHashes.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-c.done:
			if c.err == nil {
				return c.sum, nil
			}
		}
	}
}

func hashFile(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash the executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("hash the executable: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
