// Package ethtest runs ethers v6 under node for tests that check the SDK
// against an independent Ethereum client.
package ethtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Node returns the path of node once ethers is installed in dir (a folder
// with a package.json and package-lock.json pinning it): it runs `npm ci`
// there when node_modules lacks ethers. Without node or npm, or when npm ci
// fails, the test is skipped, unless CI=true makes that a failure.
func Node(t testing.TB, dir string) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable("the ethers check needs node (%v); install node and npm to run it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ethers", "package.json")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			unavailable("the ethers check needs npm to install ethers (%v)", err)
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			unavailable("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	return node
}
