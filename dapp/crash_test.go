package dapp_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
)

const childEnv = "DPAAS_KILLED_NODE_CHILD" // "dir|bootstrap address"

// TestKilledNodeChild is the child process of TestKilledNodeKeepsAcks; on
// its own it does nothing.
func TestKilledNodeChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("run by TestKilledNodeKeepsAcks")
	}
	dir, boot, _ := strings.Cut(spec, "|")
	ctx := context.Background()
	n, err := dapp.Open(ctx, dapp.Config{
		Dir: dir, App: dapp.Manifest{Name: "crash"}, Bootstrap: []string{boot},
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
	})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	coll := n.Store().Collection("acks")
	// Write until killed; a line is printed only once Put returned, that
	// is, once the write is durable.
	for i := 0; ; i++ {
		id := fmt.Sprintf("ack-%06d", i)
		if err := coll.Put(ctx, id, map[string]int{"i": i}); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("acked", id)
	}
}

// TestKilledNodeKeepsAcks: an instance catching up from a peer, and
// writing meanwhile, is killed with SIGKILL. Reopened on the same
// directory it holds every write it acknowledged before it talks to
// anyone, and then catches up the rest.
func TestKilledNodeKeepsAcks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	c := dapptest.New(t, 1, dapptest.Options{App: dapp.Manifest{Name: "crash"}, Topology: dapptest.None})
	ctx := context.Background()
	seeded := c.Node(0).Store().Collection("seeded")
	const seed = 5000
	for start := 0; start < seed; start += 500 {
		b := c.Node(0).Store().Batch()
		for i := start; i < start+500; i++ {
			b.Put(seeded, fmt.Sprintf("doc-%05d", i), map[string]int{"i": i})
		}
		if err := b.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledNodeChild$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir+"|"+c.Node(0).Addrs()[0].String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	lines := bufio.NewScanner(out)
	for lines.Scan() && len(acked) < 50 {
		if id, ok := strings.CutPrefix(lines.Text(), "acked "); ok {
			acked = append(acked, id)
		} else if strings.HasPrefix(lines.Text(), "error") {
			t.Fatalf("child: %s", lines.Text())
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 50 {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}
	t.Logf("child killed after %d acknowledged writes", len(acked))

	// Reopen alone first: acknowledged writes must be there without help.
	// The instance would dial its peer from its address book at once, so
	// the gater holds every connection until the writes are checked.
	gate := &offGater{}
	n, err := dapp.Open(ctx, dapp.Config{Dir: dir, App: dapp.Manifest{Name: "crash"},
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, ConnectionGater: gate})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, id := range acked {
		var doc map[string]int
		if err := n.Store().Collection("acks").Get(ctx, id, &doc); err != nil {
			t.Fatalf("acknowledged %s lost: %v", id, err)
		}
	}
	// Then it catches up what it missed, and the peer gets its writes.
	gate.on.Store(true)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.Connect(cctx, c.Node(0).Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	count := func(node *dapp.Node, coll string) int {
		k, err := node.Store().Collection(coll).Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	c.WaitFor("the reopened replica to catch up", func() bool { return count(n, "seeded") == seed })
	c.WaitFor("the peer to receive the acknowledged writes", func() bool {
		return count(c.Node(0), "acks") >= len(acked)
	})
}

// offGater refuses every connection until on is set.
type offGater struct{ on atomic.Bool }

func (g *offGater) InterceptPeerDial(peer.ID) bool                      { return g.on.Load() }
func (g *offGater) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool { return g.on.Load() }
func (g *offGater) InterceptAccept(network.ConnMultiaddrs) bool         { return g.on.Load() }
func (g *offGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return g.on.Load()
}
func (g *offGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return g.on.Load(), 0
}
