package governance_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/governance"
)

// A DApp whose one member raises a fee by a vote. With several instances
// the same code runs on each, and every instance ends with the new fee.
func Example() {
	ctx := context.Background()
	key, _ := crypto.GenerateKey()
	node, err := dapp.Open(ctx, dapp.Config{
		Key: key,
		App: dapp.Manifest{
			Name:    "governance-example",
			Members: []common.Address{crypto.PubkeyToAddress(key.PublicKey)},
			Params:  map[string]string{"fee-bps": "250"},
		},
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Governance:  governance.Config{CloseDelay: 10 * time.Millisecond},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	g := node.Governance()
	id, err := g.Propose(ctx, governance.Proposal{
		Title:   "Raise the ride fee to 3%",
		End:     time.Now().Add(300 * time.Millisecond),
		Actions: []governance.Action{governance.SetParam("fee-bps", 300)},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Vote(ctx, id, governance.For()); err != nil {
		log.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := g.WaitFinal(wait, id)
	if err != nil {
		log.Fatal(err)
	}
	var fee int
	if err := g.Param(ctx, "fee-bps", &fee); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("passed: %v, for: %s, against: %s, certified by %d of %d closers\n",
		res.Passed, res.Scores[0], res.Scores[1], len(res.Certificate.Signatures), len(res.Closers))
	fmt.Println("fee-bps:", fee)
	// Output:
	// passed: true, for: 1, against: 0, certified by 1 of 1 closers
	// fee-bps: 300
}
