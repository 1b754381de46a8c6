// Package delta is the signed, content-addressed unit of change of the
// replicated store.
//
// A Delta holds one or more operations on documents, the author's Ethereum
// address, the author's per-author sequence number, a hybrid logical clock
// timestamp and the CIDs of the heads it was made on. It is encoded as an
// IPLD dag-cbor block (deterministic CBOR: sorted map keys, minimal
// integers, definite lengths, parents as tag-42 links) and named by its
// CIDv1 (dag-cbor codec, sha2-256). The author signs the Keccak-256 hash of
// the block encoded without its signature with its secp256k1 key, exactly as
// go-ethereum's crypto.Sign does, so anyone can recover and check the author
// with crypto.Ecrecover.
//
// # Usage
//
//	d := &delta.Delta{Seq: 1, HLC: ts, Parents: heads, Ops: ops}
//	block, id, err := d.Sign(key)   // sets Author and Sig
//	...
//	d, id, err := delta.Decode(block) // checks form, canonical encoding and signature
//
// Decode is the only way network input becomes a Delta: it rejects
// anything malformed, non-canonical, oversized or badly signed with an
// error wrapping ErrMalformed or ErrBadSignature.
//
// # Validity
//
// Validate is the one rule that decides whether a delta's content is
// valid; Prepare (so Sign) runs it before anything is signed and Decode
// runs it on every block received. It is a pure function of the delta, so
// a delta is valid on every replica or on none. DecodeSigned parses and
// authenticates a block without judging its content: a replica uses it to
// recognise a signed delta that Validate refuses, record it as refused and
// go on with the author's later deltas, which name it as a parent.
//
// # Limits
//
// A block is at most MaxBlockSize bytes; operations whose Sizes add up to
// at most MaxOpsSize always fit in one. Collection names, document IDs and
// field names are 1 to MaxNameLen bytes of valid UTF-8 without a zero byte
// (CheckName). A delta holds 1 to MaxOps operations and at most MaxParents
// parents.
package delta

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

var (
	// ErrMalformed is wrapped by every decoding error of a block that is not
	// a well-formed, canonically encoded delta.
	ErrMalformed = errors.New("delta: malformed block")
	// ErrBadSignature is wrapped when the signature does not recover to the
	// block's author.
	ErrBadSignature = errors.New("delta: bad signature")
)

// Limits on what one delta may hold; larger blocks are malformed.
const (
	MaxBlockSize = 8 << 20
	MaxOps       = 100_000
	MaxParents   = 1024
	MaxNameLen   = 1024
	// MaxOpsSize bounds the Sizes of a delta's operations so that the
	// block fits in MaxBlockSize whatever else it holds: the header, the
	// signature and up to MaxParents parents named by this package's CIDs
	// (about 41 bytes each).
	MaxOpsSize = MaxBlockSize - 64<<10
)

// Kind says what an operation does.
type Kind uint8

// Operation kinds.
const (
	// Put replaces a whole document: Fields become its fields, and every
	// earlier field, log entry, observed set element and observed counter
	// increment is cleared.
	Put Kind = iota + 1
	// Delete tombstones a document; a later write revives it.
	Delete
	// Set writes one field (Value).
	Set
	// Unset removes one field.
	Unset
	// Inc adds Amount to a counter field.
	Inc
	// Add adds Value to a set field.
	Add
	// Remove removes the observed instances (Tags) of Value from a set field.
	Remove
	// Append adds Value to a log field.
	Append
	kindEnd
)

var kindNames = [...]string{"", "put", "delete", "set", "unset", "inc", "add", "remove", "append"}

func (k Kind) String() string {
	if k > 0 && k < kindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Tag names one Add: the delta's HLC and author and the op's index in it.
type Tag struct {
	HLC    uint64 `cbor:"t"`
	Author []byte `cbor:"a"`
	Index  uint32 `cbor:"i"`
}

// Base is the part of a counter an author had contributed, as observed by
// the writer of a Put, Delete or Set that resets the counter.
type Base struct {
	Field  string `cbor:"f"`
	Author []byte `cbor:"a"`
	P      uint64 `cbor:"p"`
	N      uint64 `cbor:"n"`
}

// Seen is one observed set element instance, removed by a Put or Delete.
type Seen struct {
	Field string `cbor:"f"`
	Value []byte `cbor:"v"`
	Tag   Tag    `cbor:"g"`
}

// Op is one operation on one document. Values are canonical JSON.
type Op struct {
	Kind       Kind   `cbor:"k"`
	Collection string `cbor:"c"`
	ID         string `cbor:"d"`
	Field      string `cbor:"f,omitempty"`
	Value      []byte `cbor:"v,omitempty"`
	Amount     int64  `cbor:"n,omitempty"`
	Fields     Fields `cbor:"F,omitzero"`
	Tags       []Tag  `cbor:"g,omitempty"`
	Bases      []Base `cbor:"b,omitempty"`
	Seen       []Seen `cbor:"s,omitempty"`
}

// Delta is one signed change. Author and Sig are set by Sign or Decode.
type Delta struct {
	Author  common.Address
	Seq     uint64
	HLC     uint64
	Parents []cid.Cid
	Ops     []Op
	Sig     []byte
}

// wire is the dag-cbor shape of a Delta.
type wire struct {
	Author  []byte     `cbor:"a"`
	HLC     uint64     `cbor:"h"`
	Ops     []Op       `cbor:"o"`
	Parents []cbor.Tag `cbor:"p"`
	Seq     uint64     `cbor:"s"`
	Sig     []byte     `cbor:"z,omitempty"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	eo := cbor.CoreDetEncOptions()
	eo.Sort = cbor.SortLengthFirst // dag-cbor's key order
	encMode, err = eo.EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxArrayElements:  MaxOps + 16,
		MaxMapPairs:       MaxOps + 16,
		MaxNestedLevels:   16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		// Text that is not UTF-8 is refused by Validate, after the block
		// is authenticated, not by the decoder: so a signed delta that
		// holds some is recognised as invalid, the same way everywhere,
		// instead of being unreadable.
		UTF8: cbor.UTF8DecodeInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

const sigDomain = "dpaas/delta/v1\n"

func (d *Delta) toWire(withSig bool) wire {
	w := wire{Author: d.Author.Bytes(), HLC: d.HLC, Ops: d.Ops, Seq: d.Seq}
	w.Parents = make([]cbor.Tag, len(d.Parents))
	for i, p := range d.Parents {
		w.Parents[i] = cbor.Tag{Number: 42, Content: append([]byte{0}, p.Bytes()...)}
	}
	if w.Ops == nil {
		w.Ops = []Op{}
	}
	if withSig {
		w.Sig = d.Sig
	}
	return w
}

// SigningHash is the Keccak-256 hash the author signs.
func (d *Delta) SigningHash() ([]byte, error) {
	return crypto.Keccak256([]byte(sigDomain), encodeDelta(d, false)), nil
}

// Sign sets Author from key, signs the delta and returns its block and CID.
func (d *Delta) Sign(key *ecdsa.PrivateKey) ([]byte, cid.Cid, error) {
	unsigned, err := d.Prepare(key)
	if err != nil {
		return nil, cid.Undef, err
	}
	return d.SignPrepared(key, unsigned)
}

// Prepare sets Author from key, checks the delta and returns what Sign
// signs: the delta's encoding without its signature. A writer can make
// those bytes durable first and sign while the disk syncs; signatures are
// deterministic (RFC 6979), so signing them again after a crash gives the
// same block and CID.
func (d *Delta) Prepare(key *ecdsa.PrivateKey) ([]byte, error) {
	d.Author = crypto.PubkeyToAddress(key.PublicKey)
	if err := d.Validate(); err != nil {
		return nil, err
	}
	unsigned := encodeDelta(d, false)
	if n := len(unsigned) + len(sigEntryPrefix) + crypto.SignatureLength; n > MaxBlockSize {
		return nil, fmt.Errorf("delta: encode: %d bytes over the %d limit: %w", n, MaxBlockSize, ErrMalformed)
	}
	return unsigned, nil
}

// SignPrepared signs unsigned, the bytes Prepare returned for d with the
// same key, and returns the signed block and its CID.
func (d *Delta) SignPrepared(key *ecdsa.PrivateKey, unsigned []byte) ([]byte, cid.Cid, error) {
	sig, err := crypto.Sign(crypto.Keccak256([]byte(sigDomain), unsigned), key)
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("delta: sign: %w", err)
	}
	d.Sig = sig
	// The signature is the map's last entry ("z" sorts last), so the signed
	// block is the unsigned one with one more entry; no second encoding.
	if unsigned[0] != 0xa5 {
		return d.Encode()
	}
	block := make([]byte, 0, len(unsigned)+len(sigEntryPrefix)+len(sig))
	block = append(block, 0xa6)
	block = append(block, unsigned[1:]...)
	block = append(block, sigEntryPrefix...)
	block = append(block, sig...)
	if len(block) > MaxBlockSize {
		return nil, cid.Undef, fmt.Errorf("delta: encode: %d bytes: %w", len(block), ErrMalformed)
	}
	id, err := CID(block)
	return block, id, err
}

// SignUnvalidated signs d as Sign does but without Validate or the size
// limit: it makes the deltas an older or hostile replica may sign, for
// tests of what receivers do with them.
func (d *Delta) SignUnvalidated(key *ecdsa.PrivateKey) ([]byte, cid.Cid, error) {
	d.Author = crypto.PubkeyToAddress(key.PublicKey)
	sig, err := crypto.Sign(crypto.Keccak256([]byte(sigDomain), encodeDelta(d, false)), key)
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("delta: sign: %w", err)
	}
	d.Sig = sig
	block := encodeDelta(d, true)
	id, err := CID(block)
	return block, id, err
}

// sigEntryPrefix is the CBOR of the key "z" and the header of a 65-byte
// byte string.
var sigEntryPrefix = []byte{0x61, 'z', 0x58, crypto.SignatureLength}

// Encode returns the signed block and its CID.
func (d *Delta) Encode() ([]byte, cid.Cid, error) {
	b := encodeDelta(d, true)
	if len(b) > MaxBlockSize {
		return nil, cid.Undef, fmt.Errorf("delta: encode: %d bytes: %w", len(b), ErrMalformed)
	}
	id, err := CID(b)
	return b, id, err
}

// CID names a block: CIDv1, dag-cbor, sha2-256.
func CID(block []byte) (cid.Cid, error) {
	sum, err := mh.Sum(block, mh.SHA2_256, -1)
	if err != nil {
		return cid.Undef, fmt.Errorf("delta: hash: %w", err)
	}
	return cid.NewCidV1(cid.DagCBOR, sum), nil
}

// Decode parses a block received from anywhere, checks that it is a
// well-formed delta in canonical encoding, that Validate accepts it and
// that its signature recovers to its author, and returns it with its CID.
func Decode(block []byte) (*Delta, cid.Cid, error) {
	d, err := decodeUnverified(block)
	if err != nil {
		return nil, cid.Undef, err
	}
	if err := d.Validate(); err != nil {
		return nil, cid.Undef, err
	}
	d, id, _, err := authenticate(d, block)
	return d, id, err
}

// DecodeSigned is Decode without Validate: it checks that the block is a
// canonically encoded delta signed by its author, whatever its operations
// hold. The caller runs Validate and, if it fails, treats the delta as
// refused: its author is known, so its descendants can still be applied.
func DecodeSigned(block []byte) (*Delta, cid.Cid, error) {
	d, id, _, err := DecodeSignedKey(block)
	return d, id, err
}

// DecodeSignedKey is DecodeSigned that also returns the signer's public
// key, 65 bytes uncompressed (as crypto.Ecrecover gives it), whose address
// is d.Author.
func DecodeSignedKey(block []byte) (*Delta, cid.Cid, []byte, error) {
	d, err := decodeUnverified(block)
	if err != nil {
		return nil, cid.Undef, nil, err
	}
	return authenticate(d, block)
}

// authenticate checks the signature of d, decoded from block, and names
// the block.
func authenticate(d *Delta, block []byte) (*Delta, cid.Cid, []byte, error) {
	var (
		pub []byte
		err error
	)
	// The block is canonical (checked above), so the signed bytes are the
	// block without its last entry, the signature.
	n := len(sigEntryPrefix) + crypto.SignatureLength
	if len(d.Sig) == crypto.SignatureLength && block[0] == 0xa6 && len(block) > n {
		unsigned := append([]byte{0xa5}, block[1:len(block)-n]...)
		pub, err = d.verifyHash(crypto.Keccak256([]byte(sigDomain), unsigned))
	} else {
		pub, err = d.verify()
	}
	if err != nil {
		return nil, cid.Undef, nil, err
	}
	id, err := CID(block)
	if err != nil {
		return nil, cid.Undef, nil, err
	}
	return d, id, pub, nil
}

// DecodeTrusted parses a block this replica stored after verifying it; it
// skips the signature check.
func DecodeTrusted(block []byte) (*Delta, error) {
	w, err := decodeCanonical(block)
	if err != nil {
		return nil, fmt.Errorf("delta: decode stored block: %w", err)
	}
	return fromWire(w)
}

func decodeUnverified(block []byte) (*Delta, error) {
	if len(block) > MaxBlockSize {
		return nil, fmt.Errorf("delta: decode: %d bytes over the %d limit: %w", len(block), MaxBlockSize, ErrMalformed)
	}
	// decodeCanonical accepts the canonical encoding only (dec.go).
	w, err := decodeCanonical(block)
	if err != nil {
		return nil, err
	}
	return fromWire(w)
}

func fromWire(w *wire) (*Delta, error) {
	if len(w.Author) != common.AddressLength {
		return nil, fmt.Errorf("delta: decode: author is %d bytes: %w", len(w.Author), ErrMalformed)
	}
	d := &Delta{Author: common.BytesToAddress(w.Author), Seq: w.Seq, HLC: w.HLC, Ops: w.Ops, Sig: w.Sig}
	// Receivers index every delta they process, refused ones too, under
	// its author and sequence number, from 1; so a delta without one is
	// not a delta at all rather than an invalid one.
	if d.Seq == 0 {
		return nil, fmt.Errorf("delta: decode: sequence number 0: %w", ErrMalformed)
	}
	if len(w.Parents) > MaxParents {
		return nil, fmt.Errorf("delta: decode: %d parents: %w", len(w.Parents), ErrMalformed)
	}
	d.Parents = make([]cid.Cid, len(w.Parents))
	for i, t := range w.Parents {
		b, ok := t.Content.([]byte)
		if t.Number != 42 || !ok || len(b) < 2 || b[0] != 0 {
			return nil, fmt.Errorf("delta: decode: parent %d is not a dag-cbor link: %w", i, ErrMalformed)
		}
		c, err := cid.Cast(b[1:])
		if err != nil {
			return nil, fmt.Errorf("delta: decode: parent %d: %v: %w", i, err, ErrMalformed)
		}
		d.Parents[i] = c
	}
	return d, nil
}

// Verify checks that Sig is the author's signature of the delta.
func (d *Delta) Verify() error {
	_, err := d.verify()
	return err
}

// verify checks the signature and returns the signer's key.
func (d *Delta) verify() ([]byte, error) {
	if len(d.Sig) != crypto.SignatureLength {
		return nil, fmt.Errorf("delta: signature is %d bytes: %w", len(d.Sig), ErrBadSignature)
	}
	h, err := d.SigningHash()
	if err != nil {
		return nil, err
	}
	return d.verifyHash(h)
}

// verifyHash checks that the signature over h is the author's and returns
// the author's key.
func (d *Delta) verifyHash(h []byte) ([]byte, error) {
	if len(d.Sig) != crypto.SignatureLength {
		return nil, fmt.Errorf("delta: signature is %d bytes: %w", len(d.Sig), ErrBadSignature)
	}
	pub, err := crypto.Ecrecover(h, d.Sig)
	if err != nil {
		return nil, fmt.Errorf("delta: recover: %v: %w", err, ErrBadSignature)
	}
	var addr common.Address
	copy(addr[:], crypto.Keccak256(pub[1:])[12:])
	if addr != d.Author {
		return nil, fmt.Errorf("delta: signed by %s, claims %s: %w", addr, d.Author, ErrBadSignature)
	}
	return pub, nil
}

// Validate is the rule that decides whether a delta is valid: a sequence
// number, 1 to MaxOps operations, at most MaxParents parents, and every
// operation valid (Op.Validate). It does not check the signature or the
// encoded size (Prepare and Decode do).
func (d *Delta) Validate() error {
	if d.Seq == 0 {
		return fmt.Errorf("delta: sequence number 0: %w", ErrMalformed)
	}
	if len(d.Ops) == 0 || len(d.Ops) > MaxOps {
		return fmt.Errorf("delta: %d operations: %w", len(d.Ops), ErrMalformed)
	}
	if len(d.Parents) > MaxParents {
		return fmt.Errorf("delta: %d parents: %w", len(d.Parents), ErrMalformed)
	}
	for i := range d.Ops {
		if err := d.Ops[i].Validate(); err != nil {
			return fmt.Errorf("delta: op %d: %w", i, err)
		}
	}
	return nil
}

// CheckName reports whether name may name a collection, a document or a
// field: 1 to MaxNameLen bytes of valid UTF-8 without a zero byte (the
// store separates names by zero bytes in its keys). The error does not
// repeat the name.
func CheckName(name string) error {
	switch {
	case name == "" || len(name) > MaxNameLen:
		return fmt.Errorf("%d bytes, not 1 to %d: %w", len(name), MaxNameLen, ErrMalformed)
	case !utf8.ValidString(name):
		return fmt.Errorf("not valid UTF-8: %w", ErrMalformed)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("holds a zero byte: %w", ErrMalformed)
	}
	return nil
}

// Validate checks one operation: its kind, its names (CheckName), that
// it carries exactly the parts its kind uses, and that its values are
// JSON. Errors wrap ErrMalformed.
func (op *Op) Validate() error {
	if op.Kind == 0 || op.Kind >= kindEnd {
		return fmt.Errorf("unknown kind %d: %w", op.Kind, ErrMalformed)
	}
	if err := CheckName(op.Collection); err != nil {
		return fmt.Errorf("collection name: %w", err)
	}
	if err := CheckName(op.ID); err != nil {
		return fmt.Errorf("document id: %w", err)
	}
	fieldOp := op.Kind != Put && op.Kind != Delete
	if !fieldOp && op.Field != "" {
		return fmt.Errorf("%s: takes no field name: %w", op.Kind, ErrMalformed)
	}
	if fieldOp {
		if err := CheckName(op.Field); err != nil {
			return fmt.Errorf("%s: field name: %w", op.Kind, err)
		}
	}
	needsValue := op.Kind == Set || op.Kind == Add || op.Kind == Remove || op.Kind == Append
	if needsValue != (op.Value != nil) {
		return fmt.Errorf("%s: value presence is wrong: %w", op.Kind, ErrMalformed)
	}
	if op.Value != nil && !json.Valid(op.Value) {
		return fmt.Errorf("%s: value is not JSON: %w", op.Kind, ErrMalformed)
	}
	if op.Kind != Inc && op.Amount != 0 {
		return fmt.Errorf("%s: amount not allowed: %w", op.Kind, ErrMalformed)
	}
	if op.Kind != Put && op.Fields != nil {
		return fmt.Errorf("%s: fields not allowed: %w", op.Kind, ErrMalformed)
	}
	for i, f := range op.Fields {
		if err := CheckName(f.Name); err != nil {
			return fmt.Errorf("put: field %d: name: %w", i, err)
		}
		if !json.Valid(f.Value) {
			return fmt.Errorf("put: field %d: value is not JSON: %w", i, ErrMalformed)
		}
		if i > 0 && op.Fields[i-1].Name >= f.Name {
			return fmt.Errorf("put: fields are not sorted by name, or repeat one: %w", ErrMalformed)
		}
	}
	if op.Kind != Remove && op.Tags != nil {
		return fmt.Errorf("%s: tags not allowed: %w", op.Kind, ErrMalformed)
	}
	for _, t := range op.Tags {
		if len(t.Author) != common.AddressLength {
			return fmt.Errorf("remove: tag author is %d bytes: %w", len(t.Author), ErrMalformed)
		}
	}
	if op.Kind != Put && op.Kind != Delete && op.Kind != Set && op.Kind != Unset && op.Bases != nil {
		return fmt.Errorf("%s: counter bases not allowed: %w", op.Kind, ErrMalformed)
	}
	for _, b := range op.Bases {
		if len(b.Author) != common.AddressLength || CheckName(b.Field) != nil || (fieldOp && b.Field != op.Field) {
			return fmt.Errorf("%s: counter base is invalid: %w", op.Kind, ErrMalformed)
		}
	}
	if op.Kind != Put && op.Kind != Delete && op.Seen != nil {
		return fmt.Errorf("%s: seen set elements not allowed: %w", op.Kind, ErrMalformed)
	}
	for _, s := range op.Seen {
		if len(s.Tag.Author) != common.AddressLength || CheckName(s.Field) != nil || !json.Valid(s.Value) {
			return fmt.Errorf("%s: seen set element is invalid: %w", op.Kind, ErrMalformed)
		}
	}
	return nil
}
