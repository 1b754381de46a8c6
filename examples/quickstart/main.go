// Command quickstart shows a dpaas DApp running as three instances in one
// process: they find each other, exchange messages, share documents and
// files, pay each other in tokens, vote to change a parameter, and carry
// on when one of them is stopped.
//
//	go run ./examples/quickstart
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ipfs/go-cid"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/pubsub"
	"github.com/dpaas/dpaas/store"
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
	step("Starting a development Ethereum chain for the DApp's token.")
	chain, err := payment.NewDevChain(ctx)
	if err != nil {
		return fmt.Errorf("dev chain: %w", err)
	}
	defer chain.Close()
	fmt.Printf("  the DApp's token is the ERC-20 contract at %s on that chain\n", chain.Token())

	step("Starting three instances of the DApp %q (AppID %s) on this machine.", app.Name, app.AppID())

	var all []*instance
	defer func() {
		for _, in := range all {
			in.node.Close()
		}
	}()
	var seed []string
	// Each instance's key is its account; the three accounts are the
	// DApp's members, who vote on its parameters.
	names := []string{"alice", "bob", "carol"}
	keys := make([]*ecdsa.PrivateKey, len(names))
	for i := range keys {
		if keys[i], err = crypto.GenerateKey(); err != nil {
			return err
		}
		app.Members = append(app.Members, crypto.PubkeyToAddress(keys[i].PublicKey))
	}
	app.Params = map[string]string{"fee-bps": "250"}
	for i, name := range names {
		node, err := dapp.Open(ctx, dapp.Config{
			Key:         keys[i],
			App:         app,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
			// Every instance knows only the first one; the instances tell
			// each other about the rest (peer exchange, on by default).
			Bootstrap:         seed,
			DiscoveryInterval: time.Second,
			Payment:           payment.Config{Dev: chain},
			Governance:        governance.Config{CloseDelay: 200 * time.Millisecond},
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
	file, err := shareData(ctx, all)
	if err != nil {
		return err
	}
	if err := pay(ctx, chain, all[1], all[2]); err != nil {
		return err
	}
	if err := vote(ctx, all); err != nil {
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
	if err := afterAlice(ctx, rest, file); err != nil {
		return err
	}
	step("Done: the DApp kept running without the instance that started it.")
	return nil
}

type ride struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Status string `json:"status"`
	Driver string `json:"driver,omitempty"`
}

var photo = bytes.Repeat([]byte("a photo of a yellow car. "), 40_000) // ~1 MB

// shareData has alice write a document and add a file; every instance
// ends up holding both.
func shareData(ctx context.Context, all []*instance) (cid.Cid, error) {
	alice := all[0]
	step("alice requests a ride (a document) and adds a photo of her pick-up spot (a file).")
	rides := alice.node.Store().Collection("rides")
	if err := rides.Put(ctx, "ride-1", ride{From: "station", To: "airport", Status: "open"}); err != nil {
		return cid.Undef, err
	}
	file, err := alice.node.Blobs().Add(ctx, bytes.NewReader(photo))
	if err != nil {
		return cid.Undef, err
	}
	fmt.Printf("  the photo is %d bytes, CID %s\n", len(photo), file)
	err = waitFor(ctx, func() bool {
		for _, in := range all {
			var r ride
			ok, _ := in.node.Blobs().Has(ctx, file)
			if in.node.Store().Collection("rides").Get(ctx, "ride-1", &r) != nil || !ok {
				return false
			}
		}
		return true
	})
	if err != nil {
		return cid.Undef, fmt.Errorf("ride and photo never reached everyone: %w", err)
	}
	fmt.Println("  every instance holds the ride request and a copy of the photo.")

	bob := all[1]
	if err := bob.node.Store().Collection("rides").Update(ctx, "ride-1",
		store.Set("driver", "bob"), store.Set("status", "accepted")); err != nil {
		return cid.Undef, err
	}
	var r ride
	err = waitFor(ctx, func() bool {
		return alice.node.Store().Collection("rides").Get(ctx, "ride-1", &r) == nil && r.Driver == "bob"
	})
	if err != nil {
		return cid.Undef, err
	}
	fmt.Printf("  bob accepts; alice sees the ride as %q with driver %q.\n", r.Status, r.Driver)
	return file, nil
}

// pay has carol pay bob: a transfer, then a payment channel with vouchers
// that bob redeems.
func pay(ctx context.Context, chain *payment.DevChain, bob, carol *instance) error {
	token := func(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }
	step("carol pays bob in tokens: a transfer, then micro-payments through a channel.")
	for _, in := range []*instance{bob, carol} {
		if err := chain.Fund(ctx, in.node.Account(), token(100)); err != nil {
			return err
		}
	}
	cp, bp := carol.node.Payments(), bob.node.Payments()
	start, err := bp.Balance(ctx, bob.node.Account())
	if err != nil {
		return err
	}
	fmt.Printf("  the chain's faucet gave bob and carol %s tokens each (and gas).\n", new(big.Int).Div(start, token(1)))
	if _, err := cp.Transfer(ctx, bob.node.Account(), token(5)); err != nil {
		return err
	}
	fmt.Println("  carol transferred 5 tokens to bob.")
	ch, err := cp.OpenChannel(ctx, bob.node.Account(), token(10), time.Hour)
	if err != nil {
		return err
	}
	var last payment.Voucher
	for range 3 {
		if last, err = ch.Pay(token(1)); err != nil {
			return err
		}
		if err := bp.Accept(ctx, last); err != nil {
			return err
		}
	}
	fmt.Println("  carol opened a 10-token channel and signed 3 vouchers of 1 token; bob accepted them.")
	if _, err := bp.Redeem(ctx, ch.ID()); err != nil {
		return err
	}
	bal, err := bp.Balance(ctx, bob.node.Account())
	if err != nil {
		return err
	}
	fmt.Printf("  bob redeemed the latest voucher (3 tokens) on-chain; the other 7 stay in the channel for carol.\n")
	fmt.Printf("  bob's balance: %s from the faucet + 5 transferred + 3 redeemed = %s tokens.\n",
		new(big.Int).Div(start, token(1)), new(big.Int).Div(bal, token(1)))
	return nil
}

// vote has the members change a parameter: alice proposes, all three
// vote, and once the result is certified every instance has the new value.
func vote(ctx context.Context, all []*instance) error {
	step("The members vote to raise the DApp's fee from 2.5%% to 3%%.")
	alice := all[0].node.Governance()
	id, err := alice.Propose(ctx, governance.Proposal{
		Title:   "Raise the ride fee to 3%",
		End:     time.Now().Add(2 * time.Second),
		Actions: []governance.Action{governance.SetParam("fee-bps", 300)},
	})
	if err != nil {
		return err
	}
	fmt.Println("  alice proposes it; the vote is open for 2 seconds.")
	if err := waitFor(ctx, func() bool {
		for _, in := range all {
			if _, err := in.node.Governance().Result(ctx, id); err != nil {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("the proposal never reached everyone: %w", err)
	}
	choices := []governance.Choice{governance.For(), governance.For(), governance.Against()}
	for i, in := range all {
		if err := in.node.Governance().Vote(ctx, id, choices[i]); err != nil {
			return err
		}
	}
	fmt.Println("  alice and bob vote for, carol against (each ballot is signed by its voter's key).")
	for _, in := range all {
		wait, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := in.node.Governance().WaitFinal(wait, id)
		cancel()
		if err != nil {
			return err
		}
		var fee int
		if err := in.node.Governance().Param(ctx, "fee-bps", &fee); err != nil {
			return err
		}
		fmt.Printf("  %-5s: %s for, %s against, passed: %v, certified by %d of 3 members; fee-bps is now %d\n",
			in.name, res.Scores[0], res.Scores[1], res.Passed, len(res.Certificate.Signatures), fee)
	}
	return nil
}

// afterAlice shows the data alice wrote is still there without her.
func afterAlice(ctx context.Context, rest []*instance, file cid.Cid) error {
	carol := rest[1]
	var r ride
	if err := carol.node.Store().Collection("rides").Get(ctx, "ride-1", &r); err != nil {
		return err
	}
	f, err := carol.node.Blobs().Open(ctx, file)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, photo) {
		return errors.New("carol's copy of the photo differs")
	}
	fmt.Printf("  carol still reads alice's ride (%s to %s, %s) and her photo (%q...).\n",
		r.From, r.To, r.Status, strings.TrimSpace(string(got[:24])))
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
		sender := nameOf(m.From.String(), to, from)
		if in == from {
			fmt.Printf("  %-5s gets its own message back (a subscriber also receives what it publishes), signed by %s\n", in.name, sender)
			continue
		}
		fmt.Printf("  %-5s received %q, signed by %s\n", in.name, m.Data, sender)
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
	err := waitFor(ctx, func() bool {
		for _, in := range ins {
			if len(in.topic.MeshPeers()) != len(ins)-1 {
				return false
			}
		}
		return true
	})
	if err != nil {
		var state []string
		for _, in := range ins {
			state = append(state, fmt.Sprintf("%s: %d DApp peers, %d connections, %d on the topic, %d in its mesh",
				in.name, len(in.node.Peers()), len(in.node.Host().Network().Conns()), len(in.topic.Peers()), len(in.topic.MeshPeers())))
		}
		return fmt.Errorf("chat topic mesh incomplete (%s): %w", strings.Join(state, "; "), err)
	}
	return nil
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
