package governance

import (
	"encoding/json"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/internal/govmsg"
)

// BenchmarkValidateBallot measures what every replica does with every
// ballot it receives: the store validator's full check (JSON, EIP-712
// hash, signature recovery). Run with -cpu 1 for the one-core figure.
func BenchmarkValidateBallot(b *testing.B) {
	key, _ := crypto.GenerateKey()
	d := govmsg.NewDomain(big.NewInt(1337), [32]byte{1})
	ballot := &govmsg.Ballot{Proposal: common.Hash{3}, Voter: crypto.PubkeyToAddress(key.PublicKey), Choice: []uint32{1}, Time: 1_800_000_000_000, Reason: "cheaper rides"}
	td, _ := json.Marshal(ballot.TypedData(d))
	sig, _ := govmsg.Sign(key, ballot.Digest(d))
	raw, _ := json.Marshal(record{Typed: td, Sig: sig})
	id := ballot.Digest(d).Hex()
	digest := ballot.Digest(d)
	// The machine's own bound, measured beside it: recovering the signer
	// alone, which no check can skip.
	b.Run("recover-only", func(b *testing.B) {
		for range b.N {
			if _, err := govmsg.Recover(digest, sig); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ballots/s")
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := decodeRecord(d, BallotsCollection, id, raw); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ballots/s")
	})
}
