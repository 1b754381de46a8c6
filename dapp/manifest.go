package dapp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// Manifest identifies a DApp. Every instance of one DApp must use the same
// manifest: its hash is the AppID that every protocol, topic and
// rendezvous key carries, so instances of different DApps (or of different
// genesis settings) never mix.
type Manifest struct {
	Name    string // required
	Version string
	// Params are genesis parameters the DApp starts with (fees, limits...),
	// which governance proposals may change (governance.Param reads them).
	// A value that is valid JSON is that JSON value ("300" is the number
	// 300); any other is a string.
	Params map[string]string `json:",omitempty"`

	// Members are the genesis members of the DApp's governance: the
	// accounts that may propose and vote. Proposals admit and remove
	// members later.
	Members []common.Address `json:",omitempty"`
	// Closers are the accounts whose instances certify the results of
	// votes (a majority must sign each); empty means each proposal's
	// electorate. Name instance accounts here when members are end users'
	// wallets.
	Closers []common.Address `json:",omitempty"`
	// VotingPeriod is a proposal's default length; 0 means 72 hours.
	VotingPeriod time.Duration `json:",omitempty"`
	// Quorum is a proposal's default quorum, the number of members who
	// must vote; 0 means none.
	Quorum uint64 `json:",omitempty"`
	// ProposalThreshold is the least token balance the author of a
	// proposal decided by token holders must hold; nil means any.
	ProposalThreshold *big.Int `json:",omitempty"`
	// ChainID is the chain ID in the EIP-712 domain of governance
	// messages, the same on every instance whatever chain each pays on; 0
	// means 1337.
	ChainID uint64 `json:",omitempty"`
}

// AppID is the hash of a manifest's canonical encoding.
type AppID [32]byte

// String returns the AppID as it appears in protocol IDs and topics: the
// first 16 bytes in hex, which is plenty to keep DApps apart.
func (id AppID) String() string { return hex.EncodeToString(id[:16]) }

// Validate reports what is wrong with the manifest, if anything.
func (m Manifest) Validate() error {
	if m.Name == "" {
		return errors.New("dapp: manifest: Name is required")
	}
	for k := range m.Params {
		if k == "" {
			return errors.New("dapp: manifest: empty parameter name")
		}
	}
	if m.VotingPeriod < 0 {
		return errors.New("dapp: manifest: negative VotingPeriod")
	}
	return nil
}

// Canonical returns the manifest's canonical encoding: JSON with fields in
// declaration order and map keys sorted, which encoding/json guarantees.
// Fields added to Manifest later are omitted when empty, so manifests that
// do not use them keep their AppID.
func (m Manifest) Canonical() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		// Strings, numbers, addresses and a map of strings always marshal.
		panic(fmt.Sprintf("dapp: manifest encoding: %v", err))
	}
	return b
}

// AppID returns the DApp's identifier.
func (m Manifest) AppID() AppID { return sha256.Sum256(m.Canonical()) }
