// Package ride holds the rules of the rides DApp: the signed actions users
// make, the store validator every replica runs on them, and the fold that
// turns a ride's actions into its state, the same on every replica.
//
// # Actions
//
// Every step of a ride is an Action signed by the user's own secp256k1 key
// as EIP-712 typed data (primary type Action; domain name "dpaas rides",
// version "1", the chain ID of the DApp's manifest and its AppID as salt).
// Instances only relay actions: they hold no user key and cannot make or
// change one. An action is stored in its ride's document under the field
// "a_" + the hex of its digest, so a field never changes once written and
// every replica ends up holding the same set of actions.
//
// # Rules
//
// Validator refuses, on every replica, any write that is not one such
// field holding a well-signed action that could be a valid step: a
// request only by the passenger the ride's ID names, in one of the
// passenger's RateLimit slots of the Window its timestamp falls in; an
// accept only by another key, of a request the document holds; confirm
// and cancel only by the passenger; arrive, start and complete only by
// the driver of the accept they name; dispute and rate only by one of the
// two parties. Its checks only ask whether something is present in the
// document, never whether something is absent, so a write that one
// replica accepts is accepted by every replica that holds more.
//
// Which of several concurrent valid steps counts is decided by Fold: it
// runs the state machine (requested, accepted, arriving, in_progress,
// completed, or cancelled, disputed) over the ride's actions sorted by
// (signed timestamp, digest), skipping steps that do not apply. So two
// drivers who accept at once on different instances both have their
// accept stored everywhere, and every replica names the same winner: the
// accept with the lower (timestamp, digest), until the passenger
// confirms one (pays its escrow), which then wins.
package ride

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/crypto"
)

// Kinds of action.
const (
	KindRequest  = "request"
	KindAccept   = "accept"
	KindConfirm  = "confirm"
	KindArrive   = "arrive"
	KindStart    = "start"
	KindComplete = "complete"
	KindCancel   = "cancel"
	KindDispute  = "dispute"
	KindRate     = "rate"
)

// Limits every replica applies.
const (
	// Window is the rate-limit window, in milliseconds of signed time.
	Window = 60_000
	// RateLimit is how many rides a passenger may request per Window: a
	// ride's ID names one of RateLimit slots of one window.
	RateLimit = 5
	// AcceptWindow bounds how long after a request (signed times) an
	// accept may be, in milliseconds.
	AcceptWindow = 15 * 60_000
	// MaxData bounds an action's data, in bytes.
	MaxData = 512
	// MapSize bounds map coordinates: 0 to MapSize.
	MapSize = 1000
	// FieldPrefix starts the name of every action field in a ride document.
	FieldPrefix = "a_"
)

// Errors.
var (
	ErrInvalid    = errors.New("ride: invalid action")
	ErrSignature  = errors.New("ride: bad signature")
	ErrNotAllowed = errors.New("ride: not allowed")
)

// Action is one signed step of a ride.
type Action struct {
	Kind   string         `json:"kind"`
	Ride   string         `json:"ride"`
	User   common.Address `json:"user"`
	TS     uint64         `json:"ts"` // milliseconds since 1970, the signer's clock
	Parent common.Hash    `json:"parent"`
	Data   string         `json:"data"` // compact JSON, per kind (see the Data types)
	Sig    string         `json:"sig"`  // 0x-hex, 65 bytes r,s,v
}

// RequestData is a request's data.
type RequestData struct {
	From Point  `json:"from"`
	To   Point  `json:"to"`
	Fare string `json:"fare"` // token units, decimal
}

// Point is a place on the city map.
type Point struct {
	X int `json:"x"`
	Y int `json:"y"`
}

// ConfirmData is a confirm's data: the escrow deal the passenger opened.
type ConfirmData struct {
	Escrow common.Hash `json:"escrow"`
}

// RateData is a rating's data.
type RateData struct {
	Stars   int    `json:"stars"`
	Comment string `json:"comment,omitempty"`
}

// DisputeData is a dispute's data.
type DisputeData struct {
	Reason string `json:"reason"`
}

// Domain is the EIP-712 domain of the DApp's actions.
type Domain struct {
	ChainID uint64
	AppID   [32]byte
}

var (
	domainType = crypto.Keccak256([]byte("EIP712Domain(string name,string version,uint256 chainId,bytes32 salt)"))
	actionType = crypto.Keccak256([]byte("Action(string kind,string ride,address user,uint64 ts,bytes32 parent,string data)"))
)

// Separator is the domain's EIP-712 separator.
func (d Domain) Separator() common.Hash {
	return crypto.Keccak256Hash(domainType,
		crypto.Keccak256([]byte("dpaas rides")),
		crypto.Keccak256([]byte("1")),
		math.U256Bytes(new(big.Int).SetUint64(d.ChainID)),
		d.AppID[:])
}

// TypedData returns the EIP-712 typed data of a (without its signature) as
// eth_signTypedData_v4 and ethers take it.
func (d Domain) TypedData(a Action) map[string]any {
	return map[string]any{
		"domain": map[string]any{"name": "dpaas rides", "version": "1", "chainId": d.ChainID, "salt": "0x" + hex.EncodeToString(d.AppID[:])},
		"types": map[string]any{"Action": []map[string]string{
			{"name": "kind", "type": "string"}, {"name": "ride", "type": "string"},
			{"name": "user", "type": "address"}, {"name": "ts", "type": "uint64"},
			{"name": "parent", "type": "bytes32"}, {"name": "data", "type": "string"},
		}},
		"primaryType": "Action",
		"message":     map[string]any{"kind": a.Kind, "ride": a.Ride, "user": a.User.Hex(), "ts": a.TS, "parent": a.Parent.Hex(), "data": a.Data},
	}
}

// Digest is the EIP-712 digest a's signer signs, which also names a.
func (d Domain) Digest(a Action) common.Hash {
	ts := new(big.Int).SetUint64(a.TS)
	st := crypto.Keccak256(actionType,
		crypto.Keccak256([]byte(a.Kind)),
		crypto.Keccak256([]byte(a.Ride)),
		common.LeftPadBytes(a.User.Bytes(), 32),
		math.U256Bytes(ts),
		a.Parent[:],
		crypto.Keccak256([]byte(a.Data)))
	sep := d.Separator()
	return crypto.Keccak256Hash([]byte{0x19, 0x01}, sep[:], st)
}

// Sign fills a.User and a.Sig with key's address and its signature, as
// ethers' signTypedData makes it (v is 27 or 28).
func (d Domain) Sign(a *Action, key *ecdsa.PrivateKey) error {
	a.User = crypto.PubkeyToAddress(key.PublicKey)
	sig, err := crypto.Sign(d.Digest(*a).Bytes(), key)
	if err != nil {
		return fmt.Errorf("ride: sign: %w", err)
	}
	sig[64] += 27
	a.Sig = "0x" + hex.EncodeToString(sig)
	return nil
}

// Verify checks a's signature: a low-s secp256k1 signature by a.User of
// its digest. It returns the digest.
func (d Domain) Verify(a Action) (common.Hash, error) {
	sig, err := decodeHex(a.Sig)
	if err != nil || len(sig) != 65 {
		return common.Hash{}, fmt.Errorf("%w: signature is not 65 bytes of hex", ErrSignature)
	}
	v := sig[64]
	if v >= 27 {
		v -= 27
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:64])
	if !crypto.ValidateSignatureValues(v, r, s, true) {
		return common.Hash{}, fmt.Errorf("%w: signature values out of range", ErrSignature)
	}
	digest := d.Digest(a)
	norm := append(append([]byte(nil), sig[:64]...), v)
	pub, err := crypto.SigToPub(digest[:], norm)
	if err != nil {
		return common.Hash{}, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if crypto.PubkeyToAddress(*pub) != a.User {
		return common.Hash{}, fmt.Errorf("%w: signed by %s, not by %s", ErrSignature, crypto.PubkeyToAddress(*pub), a.User)
	}
	return digest, nil
}

// Field is the document field that holds the action with this digest.
func Field(digest common.Hash) string { return FieldPrefix + hex.EncodeToString(digest[:]) }

// RideID names the ride a passenger requests in slot (0 to RateLimit-1)
// of the window their timestamp falls in.
func RideID(passenger common.Address, ts uint64, slot int) string {
	return strings.ToLower(passenger.Hex()) + "-" + strconv.FormatUint(ts/Window, 10) + "-" + strconv.Itoa(slot)
}

// ParseRideID splits a ride ID into passenger, window and slot.
func ParseRideID(id string) (passenger common.Address, window uint64, slot int, err error) {
	parts := strings.Split(id, "-")
	if len(parts) != 3 || !common.IsHexAddress(parts[0]) || parts[0] != strings.ToLower(parts[0]) || len(parts[0]) != 42 {
		return common.Address{}, 0, 0, fmt.Errorf("%w: ride ID %.64q is not passenger-window-slot", ErrInvalid, id)
	}
	window, err = strconv.ParseUint(parts[1], 10, 64)
	if err != nil || strconv.FormatUint(window, 10) != parts[1] {
		return common.Address{}, 0, 0, fmt.Errorf("%w: ride ID %.64q: bad window", ErrInvalid, id)
	}
	slot, err = strconv.Atoi(parts[2])
	if err != nil || slot < 0 || slot >= RateLimit || strconv.Itoa(slot) != parts[2] {
		return common.Address{}, 0, 0, fmt.Errorf("%w: ride ID %.64q: slot not 0 to %d", ErrInvalid, id, RateLimit-1)
	}
	return common.HexToAddress(parts[0]), window, slot, nil
}

func decodeHex(s string) ([]byte, error) {
	if !strings.HasPrefix(s, "0x") {
		return nil, errors.New("no 0x")
	}
	return hex.DecodeString(s[2:])
}

// decodeStrict decodes JSON into v, refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}
