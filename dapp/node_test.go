package dapp_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/internal/nodekey"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/multiformats/go-multiaddr"
)

var leakOpts = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
	// go-ethereum, behind payment.DevChain: a process-wide sender cache,
	// and a leveldb drainer that outlives its database by up to a second.
	goleak.IgnoreTopFunction("github.com/ethereum/go-ethereum/core.(*txSenderCacher).cache"),
	goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"),
	goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leakOpts...) }

var loopback = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

func open(t *testing.T, cfg dapp.Config) *dapp.Node {
	t.Helper()
	if cfg.ListenAddrs == nil {
		cfg.ListenAddrs = loopback
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := dapp.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestReopenKeepsIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := dapp.Config{Dir: dir, App: dapp.Manifest{Name: "rides"}}
	n := open(t, cfg)
	id, account := n.ID(), n.Account()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); !errors.Is(err, dapp.ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if err := n.Connect(context.Background(), "/ip4/127.0.0.1/tcp/1/p2p/"+id.String()); !errors.Is(err, dapp.ErrClosed) {
		t.Fatalf("Connect after Close: %v, want ErrClosed", err)
	}
	fi, err := os.Stat(filepath.Join(dir, nodekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %#o", fi.Mode().Perm())
	}
	n2 := open(t, cfg)
	if n2.ID() != id || n2.Account() != account {
		t.Fatalf("reopened as %s/%s, want %s/%s", n2.ID(), n2.Account(), id, account)
	}
	for _, a := range n2.Addrs() {
		if !strings.HasSuffix(a.String(), "/p2p/"+id.String()) {
			t.Fatalf("address %s does not end in /p2p/<id>", a)
		}
	}
}

func TestAppIDSeparatesManifests(t *testing.T) {
	a := dapp.Manifest{Name: "rides", Version: "1"}
	b := dapp.Manifest{Name: "rides", Version: "2"}
	c := dapp.Manifest{Name: "rides", Version: "1", Params: map[string]string{"fee": "1"}}
	if a.AppID() == b.AppID() || a.AppID() == c.AppID() {
		t.Fatal("different manifests share an AppID")
	}
	a2 := dapp.Manifest{Name: "rides", Version: "1", Params: map[string]string{}}
	if a.AppID() != a2.AppID() {
		t.Fatal("empty Params changed the AppID")
	}
	if got := len(a.AppID().String()); got != 32 {
		t.Fatalf("AppID string has %d chars", got)
	}
}

func TestBadConfigFailsCleanly(t *testing.T) {
	insecure := t.TempDir()
	if err := os.WriteFile(filepath.Join(insecure, nodekey.FileName), []byte("00"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbled := t.TempDir()
	if err := os.WriteFile(filepath.Join(garbled, nodekey.FileName), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	app := dapp.Manifest{Name: "x"}
	for _, tc := range []struct {
		name string
		cfg  dapp.Config
		want string
	}{
		{"no app name", dapp.Config{}, "Name is required"},
		{"bad listen", dapp.Config{App: app, ListenAddrs: []string{"/ip4/nope/tcp/1"}}, "listen address"},
		{"bootstrap without id", dapp.Config{App: app, Bootstrap: []string{"/ip4/127.0.0.1/tcp/4001"}}, "/p2p/"},
		{"bad bootstrap", dapp.Config{App: app, Bootstrap: []string{"garbage"}}, "bootstrap address"},
		{"insecure key", dapp.Config{App: app, Dir: insecure}, "0600"},
		{"garbled key", dapp.Config{App: app, Dir: garbled}, "not a hex-encoded key"},
		{"no transport for address", dapp.Config{App: app, ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic"}}, "no supported transport"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.ListenAddrs == nil {
				tc.cfg.ListenAddrs = loopback
			}
			n, err := dapp.Open(context.Background(), tc.cfg)
			if err == nil {
				n.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if tc.cfg.Dir == "" && !errors.Is(err, dapp.ErrInvalidConfig) {
				t.Fatalf("error %q does not wrap ErrInvalidConfig", err)
			}
		})
	}
	// TestMain's leak check fails the package if a failed Open left
	// anything running.
}

// waitTopicPeers waits until every node's topic sees its wanted peers.
func joinAll(t *testing.T, c *dapptest.Cluster, name string) ([]*pubsub.Topic, []*pubsub.Subscription) {
	t.Helper()
	var topics []*pubsub.Topic
	var subs []*pubsub.Subscription
	for _, n := range c.Nodes() {
		topic, err := n.PubSub().Join(name)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := topic.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Close)
		topics = append(topics, topic)
		subs = append(subs, sub)
	}
	return topics, subs
}

// nextData returns the data of the next message, or "" when none arrives
// within d.
func nextData(sub *pubsub.Subscription, d time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := sub.Next(ctx)
	if err != nil {
		return ""
	}
	return string(m.Data)
}

func TestMessageCrossesLineOfFive(t *testing.T) {
	// Pinned: peer exchange would otherwise link every pair.
	c := dapptest.New(t, 5, dapptest.Options{Topology: dapptest.Line, Pin: true})
	c.WaitConnected()
	topics, subs := joinAll(t, c, "news")
	// Each node must have its neighbours in its mesh before the message
	// can be relayed along the line.
	c.WaitFor("mesh along the line", func() bool {
		for i, topic := range topics {
			peers := topic.MeshPeers()
			if i > 0 && !slices.Contains(peers, c.Node(i-1).ID()) {
				return false
			}
			if i < 4 && !slices.Contains(peers, c.Node(i+1).ID()) {
				return false
			}
		}
		return true
	})
	if err := topics[0].Publish(context.Background(), []byte("from the end of the line")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 5; i++ {
		if got := nextData(subs[i], 20*time.Second); got != "from the end of the line" {
			t.Fatalf("node %d got %q", i, got)
		}
	}
	if peers := c.Node(0).Peers(); len(peers) != 1 || peers[0] != c.Node(1).ID() {
		t.Fatalf("node 0 peers %v, want only node 1", peers)
	}
}

func TestTwoAppsOnConnectedHosts(t *testing.T) {
	a := open(t, dapp.Config{App: dapp.Manifest{Name: "rides"}})
	b := open(t, dapp.Config{App: dapp.Manifest{Name: "deliveries"}})
	a2 := open(t, dapp.Config{App: dapp.Manifest{Name: "rides"}})
	ctx := context.Background()
	for _, pair := range [][2]*dapp.Node{{a, b}, {b, a2}, {a, a2}} {
		if err := pair[0].Connect(ctx, pair[1].Addrs()[0].String()); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(a.Peers(), a2.ID()) {
		if time.Now().After(deadline) {
			t.Fatal("rides instances never saw each other as peers")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if slices.Contains(a.Peers(), b.ID()) || len(b.Peers()) != 0 {
		t.Fatalf("an instance of another DApp counted as a peer: a=%v b=%v", a.Peers(), b.Peers())
	}
	ta, _ := a.PubSub().Join("chat")
	tb, _ := b.PubSub().Join("chat")
	ta2, _ := a2.PubSub().Join("chat")
	subB, _ := tb.Subscribe()
	defer subB.Close()
	subA2, _ := ta2.Subscribe()
	defer subA2.Close()
	for !slices.Contains(ta.Peers(), a2.ID()) {
		if time.Now().After(deadline) {
			t.Fatal("topic never formed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ta.Publish(ctx, []byte("ride wanted")); err != nil {
		t.Fatal(err)
	}
	if got := nextData(subA2, 10*time.Second); got != "ride wanted" {
		t.Fatalf("rides peer got %q", got)
	}
	if got := nextData(subB, 300*time.Millisecond); got != "" {
		t.Fatalf("deliveries instance received %q", got)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	c := dapptest.New(t, 4, dapptest.Options{})
	c.WaitConnected()
	topics, subs := joinAll(t, c, "rides")
	c.WaitFor("full topic mesh", func() bool {
		for _, topic := range topics {
			if len(topic.MeshPeers()) != 3 {
				return false
			}
		}
		return true
	})

	c.Partition([]int{0, 1}, []int{2, 3})
	if peers := c.Node(0).Peers(); len(peers) != 1 {
		t.Fatalf("node 0 sees %v across the partition", peers)
	}
	// Neither dials nor streams cross the cut.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Node(0).Connect(ctx, c.Node(2).Addrs()[0].String()); err == nil {
		t.Fatal("dial crossed the partition")
	}
	if _, err := c.Node(3).Host().NewStream(ctx, c.Node(1).ID(), "/dpaas/test/1.0.0"); err == nil {
		t.Fatal("stream crossed the partition")
	}
	if err := topics[0].Publish(context.Background(), []byte("left side")); err != nil {
		t.Fatal(err)
	}
	if got := nextData(subs[1], 10*time.Second); got != "left side" {
		t.Fatalf("node 1 got %q", got)
	}
	for _, i := range []int{2, 3} {
		if got := nextData(subs[i], 300*time.Millisecond); got != "" {
			t.Fatalf("node %d received %q across the partition", i, got)
		}
	}
	// Own copy of the message, to keep subs[0] empty for what follows.
	if got := nextData(subs[0], 10*time.Second); got != "left side" {
		t.Fatalf("node 0 own copy %q", got)
	}

	c.Heal()
	c.WaitConnected()
	c.WaitFor("topic mesh after heal", func() bool {
		for _, topic := range topics {
			if len(topic.MeshPeers()) != 3 {
				return false
			}
		}
		return true
	})
	if err := topics[2].Publish(context.Background(), []byte("healed")); err != nil {
		t.Fatal(err)
	}
	for i, sub := range subs {
		if got := nextData(sub, 20*time.Second); got != "healed" {
			t.Fatalf("node %d got %q after heal", i, got)
		}
	}
}

func TestRestartKeepsIdentityAndReconnects(t *testing.T) {
	c := dapptest.New(t, 3, dapptest.Options{})
	c.WaitConnected()
	id := c.Node(1).ID()
	c.Stop(1)
	c.WaitFor("peers to notice the stop", func() bool {
		return !slices.Contains(c.Node(0).Peers(), id)
	})
	n := c.Restart(1)
	if n.ID() != id {
		t.Fatalf("restarted as %s, want %s", n.ID(), id)
	}
	c.WaitConnected()
}

func TestBootstrapIsRedialled(t *testing.T) {
	c := dapptest.New(t, 1, dapptest.Options{Topology: dapptest.None})
	seed := c.Node(0)
	var boot []string
	for _, a := range seed.Addrs() {
		boot = append(boot, a.String())
	}
	n := open(t, dapp.Config{
		App:               dapp.Manifest{Name: t.Name()},
		Bootstrap:         boot,
		DiscoveryInterval: 200 * time.Millisecond,
	})
	c.WaitFor("bootstrap connection", func() bool { return slices.Contains(n.Peers(), seed.ID()) })
	c.Restart(0)
	c.WaitFor("bootstrap re-dialled after the seed restarted", func() bool {
		return slices.Contains(n.Peers(), seed.ID())
	})
}

func TestDHTRendezvous(t *testing.T) {
	// Node 0 is the only one the others know; nodes 1 and 2 must find each
	// other through the DHT rendezvous on the AppID.
	c := dapptest.New(t, 1, dapptest.Options{
		Topology:  dapptest.None,
		Configure: func(_ int, cfg *dapp.Config) { cfg.DHT = true },
	})
	var boot []string
	for _, a := range c.Node(0).Addrs() {
		boot = append(boot, a.String())
	}
	var nodes []*dapp.Node
	for range 2 {
		nodes = append(nodes, open(t, dapp.Config{
			App:               dapp.Manifest{Name: t.Name()},
			Bootstrap:         boot,
			DHT:               true,
			DiscoveryInterval: 500 * time.Millisecond,
		}))
	}
	c.WaitFor("instances to meet through the DHT", func() bool {
		return slices.Contains(nodes[0].Peers(), nodes[1].ID())
	})
}

func dappManifest(name string) dapp.Manifest { return dapp.Manifest{Name: name} }

// Instances listen on TCP and QUIC; they connect over TCP, which costs
// less per message (dialrank.go).
func TestInstancesConnectOverTCP(t *testing.T) {
	c := dapptest.New(t, 3, dapptest.Options{Topology: dapptest.Star})
	c.WaitConnected()
	for i, node := range c.Nodes() {
		for _, a := range node.Host().Addrs() {
			t.Logf("node %d listens on %v", i, a)
		}
		for _, cn := range node.Host().Network().Conns() {
			if _, err := cn.RemoteMultiaddr().ValueForProtocol(multiaddr.P_TCP); err != nil {
				t.Errorf("node %d: connection to %v over %v, want TCP", i, cn.RemotePeer(), cn.RemoteMultiaddr())
			}
		}
	}
}
