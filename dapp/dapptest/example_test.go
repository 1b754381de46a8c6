package dapptest_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/store"
)

// A test starts a cluster of real instances, writes on one and waits
// until another has it, across a partition and its healing. In a test
// function, pass its t; an Example has no t, so this one runs the test
// body with exampleT, the part of testing.TB that dapptest uses.
func Example() {
	t := &exampleT{}
	defer t.finish()
	testRide(t)
	// Output:
	// node 2 has ride r1: {"from":"A","to":"B"}
	// node 2 has ride r2, written on node 0 during a partition
}

func testRide(t testing.TB) {
	ctx := context.Background()
	c := dapptest.New(t, 3, dapptest.Options{})
	c.WaitConnected()
	rides := func(i int) *store.Collection { return c.Node(i).Store().Collection("rides") }
	has := func(i int, id string) bool {
		_, err := rides(i).GetRaw(ctx, id)
		return err == nil
	}
	if err := rides(0).Put(ctx, "r1", map[string]string{"from": "A", "to": "B"}); err != nil {
		t.Fatalf("put: %v", err)
	}
	c.WaitFor("node 2 has r1", func() bool { return has(2, "r1") })
	raw, _ := rides(2).GetRaw(ctx, "r1")
	fmt.Printf("node 2 has ride r1: %s\n", raw)

	c.Partition([]int{0}, []int{1, 2})
	if err := rides(0).Put(ctx, "r2", map[string]string{"from": "B", "to": "C"}); err != nil {
		t.Fatalf("put: %v", err)
	}
	c.Heal()
	c.WaitFor("node 2 has r2", func() bool { return has(2, "r2") })
	fmt.Println("node 2 has ride r2, written on node 0 during a partition")
}

// exampleT stands in for the *testing.T that go test gives a test
// function. The embedded TB is nil: dapptest calls only the methods below.
type exampleT struct {
	testing.TB
	dirs     []string
	cleanups []func()
}

func (t *exampleT) Helper()      {}
func (t *exampleT) Name() string { return "Example" }

func (t *exampleT) TempDir() string {
	dir, err := os.MkdirTemp("", "dapptest-example-")
	if err != nil {
		panic(err)
	}
	t.dirs = append(t.dirs, dir)
	return dir
}

func (t *exampleT) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

func (t *exampleT) Errorf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// finish runs the cleanups, last registered first, as go test does.
func (t *exampleT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	for _, dir := range t.dirs {
		os.RemoveAll(dir)
	}
}
