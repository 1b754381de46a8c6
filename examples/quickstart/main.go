// Command quickstart shows a dpaas DApp running as three instances in one
// process: they find each other, exchange messages, and carry on when one
// of them is stopped.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/pubsub"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart failed:", err)
		os.Exit(1)
	}
}

// instance is one running copy of the DApp with its chat subscription.
type instance struct {
	name  string
	node  *dapp.Node
	topic *pubsub.Topic
	sub   *pubsub.Subscription
}

func run(ctx context.Context) error {
	app := dapp.Manifest{Name: "quickstart", Version: "1"}
	step("Starting three instances of the DApp %q (AppID %s) on this machine.", app.Name, app.AppID())

	var all []*instance
	defer func() {
		for _, in := range all {
			in.node.Close()
		}
	}()
	var seed []string
	for _, name := range []string{"alice", "bob", "carol"} {
		node, err := dapp.Open(ctx, dapp.Config{
			App:         app,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
			// Every instance knows only the first one; they find the rest
			// through the DHT rendezvous on the AppID.
			Bootstrap:         seed,
			DHT:               true,
			DiscoveryInterval: time.Second,
		})
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		in := &instance{name: name, node: node}
		all = append(all, in)
		if seed == nil {
			for _, a := range node.Addrs() {
				seed = append(seed, a.String())
			}
		}
		fmt.Printf("  %-5s is up: peer %s, account %s\n", name, short(node.ID().String()), node.Account())
	}

	step("Waiting for every instance to find the other two (bob and carol only know alice).")
	if err := waitFor(ctx, func() bool {
		for _, in := range all {
			if len(in.node.Peers()) != len(all)-1 {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("instances never met: %w", err)
	}
	for _, in := range all {
		fmt.Printf("  %-5s sees %d other instances\n", in.name, len(in.node.Peers()))
	}

	step("Each instance joins the chat topic; alice says hello.")
	for _, in := range all {
		var err error
		if in.topic, err = in.node.PubSub().Join("chat"); err != nil {
			return err
		}
		if in.sub, err = in.topic.Subscribe(); err != nil {
			return err
		}
	}
	if err := waitMesh(ctx, all); err != nil {
		return err
	}
	if err := say(ctx, all[0], all, "hello from alice"); err != nil {
		return err
	}

	step("Stopping alice, the instance everybody bootstrapped from.")
	if err := all[0].node.Close(); err != nil {
		return fmt.Errorf("stop alice: %w", err)
	}
	rest := all[1:]
	all = all[1:]
	if err := waitFor(ctx, func() bool {
		for _, in := range rest {
			if len(in.node.Peers()) != len(rest)-1 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	fmt.Println("  bob and carol are still connected to each other.")
	if err := waitMesh(ctx, rest); err != nil {
		return err
	}
	if err := say(ctx, rest[0], rest, "alice is gone, the DApp is not"); err != nil {
		return err
	}
	step("Done: the DApp kept running without the instance that started it.")
	return nil
}

// say publishes text from one instance and waits until every instance has
// received it.
func say(ctx context.Context, from *instance, to []*instance, text string) error {
	fmt.Printf("  %s publishes %q\n", from.name, text)
	if err := from.topic.Publish(ctx, []byte(text)); err != nil {
		return err
	}
	for _, in := range to {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := in.sub.Next(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%s received nothing: %w", in.name, err)
		}
		fmt.Printf("  %-5s received %q from %s\n", in.name, m.Data, nameOf(m.From.String(), to, from))
	}
	return nil
}

func nameOf(id string, ins []*instance, from *instance) string {
	for _, in := range append(slices.Clone(ins), from) {
		if in.node.ID().String() == id {
			return in.name
		}
	}
	return short(id)
}

// waitMesh waits until each instance relays the chat topic to all others.
func waitMesh(ctx context.Context, ins []*instance) error {
	return waitFor(ctx, func() bool {
		for _, in := range ins {
			if len(in.topic.MeshPeers()) != len(ins)-1 {
				return false
			}
		}
		return true
	})
}

func waitFor(ctx context.Context, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("timed out")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func short(id string) string {
	if len(id) > 12 {
		return "…" + id[len(id)-8:]
	}
	return id
}
