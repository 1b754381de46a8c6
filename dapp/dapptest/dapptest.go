// Package dapptest runs clusters of real dapp Nodes in one process, for
// tests of DApps built on dpaas and of dpaas itself.
//
// Every node is a real instance: a libp2p host on 127.0.0.1, its own
// temporary directory with a real Pebble database and key. The cluster can
// stop and restart nodes (same directory, same key, same address) and cut
// the network between groups of nodes: a partition refuses every
// connection across the cut and closes the ones that exist, so no message
// or stream crosses it until Heal.
//
// # Usage
//
//	func TestRide(t *testing.T) {
//		c := dapptest.New(t, 3, dapptest.Options{})
//		c.WaitConnected()
//		// use c.Node(0), c.Node(1), ...
//		c.Partition([]int{0}, []int{1, 2})
//		// ...
//		c.Heal()
//	}
//
// Topologies Full, Line and Ring are made by the cluster connecting nodes;
// Star and Chain by the nodes' own Config.Bootstrap, as users joining
// through a seed would, and Join adds a node that way later. The nodes'
// peer exchange then links further instances; Options.Pin forbids that,
// for a test that needs the topology as drawn. Links returns the graph of
// the running nodes.
//
// When the test ends the cluster closes every node and fails the test if
// any goroutine started since New is still running.
package dapptest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"

	"github.com/dpaas/dpaas/dapp"
)

// Topology says which nodes New connects.
type Topology int

const (
	// Full connects every pair of nodes.
	Full Topology = iota
	// Line connects node i to node i+1 only.
	Line
	// Ring is Line plus a link from the last node to the first.
	Ring
	// None connects nothing; the test connects nodes itself.
	None
	// Star starts node 0 first; every other node names it, and only it,
	// in Config.Bootstrap, as users joining through one seed would.
	Star
	// Chain starts the nodes in turn, each naming the one before it, and
	// only it, in Config.Bootstrap.
	Chain
)

// Options configure New. The zero value gives a fully connected cluster of
// a DApp named after the test.
type Options struct {
	App      dapp.Manifest // default: Name = the test's name
	Topology Topology
	// Configure may change node i's Config before each start. Dir,
	// ListenAddrs and ConnectionGater are set by the cluster, and with Star
	// or Chain it adds the seed to Bootstrap.
	Configure func(i int, cfg *dapp.Config)
	// Timeout bounds each wait of the harness; default 30s.
	Timeout time.Duration
	// NoLeakCheck turns off the goroutine leak check, which is on by
	// default.
	NoLeakCheck bool
	// Pin keeps the topology: the cluster refuses every connection
	// between nodes it does not link, so that the instances' peer
	// exchange adds none (tests of relaying along a line, say).
	Pin bool
	// ListenIP gives the loopback address node i listens on, for tests of
	// network diversity: on Linux every 127.x.y.z is the local host, so
	// 127.0.1.1 and 127.0.2.1 are two /24 networks. Default 127.0.0.1.
	// Connections between loopback addresses leave from 127.0.0.1, so a
	// node is seen at its own address only by the nodes that dialled it.
	ListenIP func(i int) string
}

// Cluster is a set of in-process nodes. Its methods must be called from
// the test's goroutine.
type Cluster struct {
	t    testing.TB
	opts Options

	base    string // holds every node's directory
	nodes   []*dapp.Node
	initial int   // nodes started by New; the rest joined later
	bootOf  []int // the node each node names in Bootstrap, or -1
	dirs    []string
	listen  [][]string // the addresses each node listened on at first start
	ids     []peer.ID

	mu    sync.Mutex
	group map[peer.ID]int // partition group of each node; nil when healed
	index map[peer.ID]int
}

// New starts n nodes and connects them as opts.Topology says.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.App.Name == "" {
		opts.App.Name = t.Name()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	var ignore goleak.Option
	if !opts.NoLeakCheck {
		ignore = goleak.IgnoreCurrent()
	}
	c := &Cluster{
		t:       t,
		opts:    opts,
		base:    t.TempDir(),
		initial: n,
		bootOf:  make([]int, n),
		nodes:   make([]*dapp.Node, n),
		dirs:    make([]string, n),
		listen:  make([][]string, n),
		ids:     make([]peer.ID, n),
		index:   make(map[peer.ID]int),
	}
	// Directories first: cleanups run last-in first-out, so the nodes are
	// closed before their directories are removed.
	for i := range n {
		c.dirs[i] = filepath.Join(c.base, strconv.Itoa(i))
		c.listen[i] = c.anyPort(i)
		c.bootOf[i] = -1
		switch {
		case i > 0 && opts.Topology == Star:
			c.bootOf[i] = 0
		case i > 0 && opts.Topology == Chain:
			c.bootOf[i] = i - 1
		}
	}
	t.Cleanup(func() {
		c.Close()
		if !opts.NoLeakCheck {
			goleak.VerifyNone(t, ignore,
				// A process-wide sweeper that go-libp2p starts on first
				// use and never stops.
				goleak.IgnoreTopFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
				goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
				// go-ethereum, behind the development chains of nodes
				// given no chain: a process-wide sender cache, and a
				// leveldb drainer that outlives its database by a second.
				goleak.IgnoreTopFunction("github.com/ethereum/go-ethereum/core.(*txSenderCacher).cache"),
				goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"),
			)
		}
	})
	for i := range n {
		c.start(i)
	}
	// Star and Chain join through Config.Bootstrap alone.
	switch opts.Topology {
	case Full:
		for i := range n {
			for j := i + 1; j < n; j++ {
				c.Connect(i, j)
			}
		}
	case Line, Ring:
		for i := 0; i+1 < n; i++ {
			c.Connect(i, i+1)
		}
		if opts.Topology == Ring && n > 2 {
			c.Connect(n-1, 0)
		}
	}
	return c
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	cfg := dapp.Config{App: c.opts.App}
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	cfg.Dir = c.dirs[i]
	cfg.ListenAddrs = c.listen[i]
	if j := c.bootOf[i]; j >= 0 {
		cfg.Bootstrap = append(cfg.Bootstrap, c.BootstrapAddrs(j)...)
	}
	cfg.ConnectionGater = &gater{c: c, self: i}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	node, err := dapp.Open(ctx, cfg)
	if err != nil && c.ids[i] != "" {
		// The old ports may be taken by now; any port will do.
		cfg.ListenAddrs = c.anyPort(i)
		node, err = dapp.Open(ctx, cfg)
	}
	if err != nil {
		c.t.Fatalf("dapptest: start node %d: %v", i, err)
	}
	c.nodes[i] = node
	if c.ids[i] == "" {
		// Keep the ports so a restarted node is where its peers expect it.
		var addrs []string
		for _, a := range node.Host().Addrs() {
			addrs = append(addrs, a.String())
		}
		c.listen[i] = addrs
	}
	c.mu.Lock()
	c.ids[i] = node.ID()
	c.index[node.ID()] = i
	c.mu.Unlock()
}

// anyPort are node i's listen addresses on its IP, any port.
func (c *Cluster) anyPort(i int) []string {
	ip := "127.0.0.1"
	if c.opts.ListenIP != nil {
		ip = c.opts.ListenIP(i)
	}
	return []string{"/ip4/" + ip + "/tcp/0", "/ip4/" + ip + "/udp/0/quic-v1"}
}

// BootstrapAddrs are the addresses node i listened on at its first start,
// each ending in /p2p/<id>, for other nodes' Config.Bootstrap. They stay
// valid while the node is stopped (nothing answers there).
func (c *Cluster) BootstrapAddrs(i int) []string {
	var out []string
	for _, a := range c.listen[i] {
		out = append(out, a+"/p2p/"+c.ids[i].String())
	}
	return out
}

// Join starts one more node that names node j, and only it, in
// Config.Bootstrap, and returns its index.
func (c *Cluster) Join(j int) int {
	c.t.Helper()
	i := len(c.nodes)
	c.mu.Lock() // the gaters read ids and bootOf
	c.nodes = append(c.nodes, nil)
	c.dirs = append(c.dirs, filepath.Join(c.base, strconv.Itoa(i)))
	c.listen = append(c.listen, c.anyPort(i))
	c.ids = append(c.ids, "")
	c.bootOf = append(c.bootOf, j)
	c.mu.Unlock()
	c.start(i)
	return i
}

// Links returns, for every running node, the indexes of the running
// nodes it sees as peers of the same DApp (Node.Peers).
func (c *Cluster) Links() map[int][]int {
	out := make(map[int][]int)
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		out[i] = []int{}
		for _, p := range n.Peers() {
			if j, ok := c.indexOf(p); ok && c.nodes[j] != nil {
				out[i] = append(out[i], j)
			}
		}
	}
	return out
}

// Len is the number of nodes, running or stopped.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *dapp.Node { return c.nodes[i] }

// Nodes returns the running nodes.
func (c *Cluster) Nodes() []*dapp.Node {
	var out []*dapp.Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Dir is node i's directory.
func (c *Cluster) Dir(i int) string { return c.dirs[i] }

// Connect connects node i to node j.
func (c *Cluster) Connect(i, j int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	for _, a := range c.nodes[j].Addrs() {
		if err := c.nodes[i].Connect(ctx, a.String()); err == nil {
			return
		} else if ctx.Err() != nil {
			c.t.Fatalf("dapptest: connect %d to %d: %v", i, j, err)
		}
	}
	c.t.Fatalf("dapptest: connect %d to %d: no address of %d answered", i, j, j)
}

// Stop closes node i as a clean shutdown would.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if c.nodes[i] == nil {
		return
	}
	if err := c.nodes[i].Close(); err != nil && !errors.Is(err, dapp.ErrClosed) { // the test may have closed it
		c.t.Errorf("dapptest: stop node %d: %v", i, err)
	}
	c.nodes[i] = nil
}

// Restart starts a stopped node i again with the same directory, key and,
// when free, the same addresses, and reconnects it as the topology says.
func (c *Cluster) Restart(i int) *dapp.Node {
	c.t.Helper()
	c.Stop(i)
	c.start(i)
	for _, j := range c.connected(i) {
		if c.nodes[j] != nil && !c.cut(i, j) {
			c.Connect(i, j)
		}
	}
	return c.nodes[i]
}

// neighbours are the nodes node i is linked to: by the topology, or
// because one names the other in Bootstrap.
func (c *Cluster) neighbours(i int) []int {
	var out []int
	for j := range c.nodes {
		if j != i && (c.bootOf[i] == j || c.bootOf[j] == i) {
			out = append(out, j)
		}
	}
	return append(out, c.connected(i)...)
}

// connected are the nodes the cluster itself connects node i to.
func (c *Cluster) connected(i int) []int {
	var out []int
	for j := range c.initial {
		if c.topoLinked(i, j) {
			out = append(out, j)
		}
	}
	return out
}

// topoLinked reports whether the topology links nodes i and j.
func (c *Cluster) topoLinked(i, j int) bool {
	n := c.initial
	if i == j || i >= n || j >= n {
		return false
	}
	switch c.opts.Topology {
	case Full:
		return true
	case Line, Ring:
		d := j - i
		return d == 1 || d == -1 || (c.opts.Topology == Ring && n > 2 && (d == n-1 || d == 1-n))
	}
	return false
}

// Partition splits the cluster into the given groups of node indexes;
// nodes not named form one more group. Connections across groups are
// refused and closed until Heal.
func (c *Cluster) Partition(groups ...[]int) {
	c.t.Helper()
	g := make(map[peer.ID]int)
	named := make(map[int]bool)
	for gi, members := range groups {
		for _, i := range members {
			g[c.ids[i]] = gi + 1
			named[i] = true
		}
	}
	for i, id := range c.ids {
		if !named[i] {
			g[id] = 0
		}
	}
	c.mu.Lock()
	c.group = g
	c.mu.Unlock()
	// A connection whose handshake finished just before the gater changed
	// may land after the first sweep, so sweep until none is left.
	c.waitFor("partition to cut every connection", func() bool {
		clean := true
		for i, n := range c.nodes {
			if n == nil {
				continue
			}
			for _, p := range n.Host().Network().Peers() {
				if j, ok := c.indexOf(p); ok && c.cut(i, j) {
					clean = false
					_ = n.Host().Network().ClosePeer(p)
				}
			}
		}
		return clean
	})
}

// Heal removes the partition and reconnects the topology.
func (c *Cluster) Heal() {
	c.t.Helper()
	c.mu.Lock()
	c.group = nil
	c.mu.Unlock()
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		for _, j := range c.neighbours(i) {
			if j > i && c.nodes[j] != nil &&
				n.Host().Network().Connectedness(c.ids[j]) != network.Connected {
				c.Connect(i, j)
			}
		}
	}
}

// WaitConnected waits until every running node sees every running node it
// is linked to by the topology as a peer of the same DApp.
func (c *Cluster) WaitConnected() {
	c.t.Helper()
	c.waitFor("nodes to see their neighbours", func() bool {
		for i, n := range c.nodes {
			if n == nil {
				continue
			}
			peers := n.Peers()
			for _, j := range c.neighbours(i) {
				if c.nodes[j] != nil && !c.cut(i, j) && !slices.Contains(peers, c.ids[j]) {
					return false
				}
			}
		}
		return true
	})
}

// WaitFor polls cond until it holds, failing the test after the cluster's
// timeout with what it was waiting for.
func (c *Cluster) WaitFor(what string, cond func() bool) {
	c.t.Helper()
	c.waitFor(what, cond)
}

func (c *Cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.Timeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			c.t.Fatalf("dapptest: timed out after %v waiting for %s", c.opts.Timeout, what)
		}
		time.Sleep(wait)
	}
}

// Close stops every node. The cluster's cleanup calls it.
func (c *Cluster) Close() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

func (c *Cluster) indexOf(p peer.ID) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[p]
	return i, ok
}

// cut reports whether a partition separates nodes i and j.
func (c *Cluster) cut(i, j int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.group != nil && c.group[c.ids[i]] != c.group[c.ids[j]]
}

func (c *Cluster) cutPeer(self int, p peer.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, ok := c.index[p]
	if ok && c.opts.Pin && !c.topoLinked(self, j) && c.bootOf[self] != j && c.bootOf[j] != self {
		return true
	}
	return ok && c.group != nil && c.group[c.ids[self]] != c.group[c.ids[j]]
}

// gater enforces the cluster's partition on one node's host.
type gater struct {
	c    *Cluster
	self int
}

func (g *gater) InterceptPeerDial(p peer.ID) bool { return !g.c.cutPeer(g.self, p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ multiaddr.Multiaddr) bool {
	return !g.c.cutPeer(g.self, p)
}
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.c.cutPeer(g.self, p)
}
func (g *gater) InterceptUpgraded(conn network.Conn) (bool, control.DisconnectReason) {
	return !g.c.cutPeer(g.self, conn.RemotePeer()), 0
}

// String describes the cluster for failure messages.
func (c *Cluster) String() string {
	return fmt.Sprintf("dapptest cluster of %d nodes (%d running)", len(c.nodes), len(c.Nodes()))
}
