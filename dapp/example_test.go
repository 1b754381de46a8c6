package dapp_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/dpaas/dpaas/dapp"
)

// Two instances of one DApp on this machine: one connects to the other and
// they exchange a message.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app := dapp.Manifest{Name: "example"}
	local := []string{"/ip4/127.0.0.1/tcp/0"}

	a, err := dapp.Open(ctx, dapp.Config{App: app, ListenAddrs: local})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := dapp.Open(ctx, dapp.Config{App: app, ListenAddrs: local,
		Bootstrap: []string{a.Addrs()[0].String()}})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	ta, _ := a.PubSub().Join("greetings")
	sub, _ := ta.Subscribe()
	defer sub.Close()
	tb, _ := b.PubSub().Join("greetings")
	for len(tb.Peers()) == 0 && ctx.Err() == nil { // wait until b knows a listens
		time.Sleep(10 * time.Millisecond)
	}
	if err := tb.Publish(ctx, []byte("hello from b")); err != nil {
		log.Fatal(err)
	}
	m, err := sub.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (sent by b: %v)\n", m.Data, m.From == b.ID())
	// Output: hello from b (sent by b: true)
}

// The AppID is a pure function of the manifest.
func ExampleManifest_AppID() {
	fmt.Println(dapp.Manifest{Name: "rides", Version: "1"}.AppID())
	// Output: 19f4909c4c79885c6ac0e369b0f5e78d
}
