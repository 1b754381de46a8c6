package dapp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Manifest identifies a DApp. Every instance of one DApp must use the same
// manifest: its hash is the AppID that every protocol, topic and
// rendezvous key carries, so instances of different DApps (or of different
// genesis settings) never mix.
type Manifest struct {
	Name    string // required
	Version string
	// Params are genesis parameters the DApp starts with (fees, limits...).
	Params map[string]string `json:",omitempty"`
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
	return nil
}

// Canonical returns the manifest's canonical encoding: JSON with fields in
// declaration order and map keys sorted, which encoding/json guarantees.
// Fields added to Manifest later are omitted when empty, so manifests that
// do not use them keep their AppID.
func (m Manifest) Canonical() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		// A struct of strings and a map of strings always marshals.
		panic(fmt.Sprintf("dapp: manifest encoding: %v", err))
	}
	return b
}

// AppID returns the DApp's identifier.
func (m Manifest) AppID() AppID { return sha256.Sum256(m.Canonical()) }
