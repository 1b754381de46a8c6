// Package govmsg holds the signed messages of governance (proposals,
// ballots, delegations, closing signatures) as EIP-712 typed data: their
// hashes, their signatures, and the JSON form a wallet signs with
// eth_signTypedData_v4.
//
// The domain is {name "dpaas governance", version "1", chainId, salt},
// salt being the DApp's AppID, so a message signed for one DApp or one
// chain is worthless on another. Hashes are computed here without
// reflection (a ballot hash is a few Keccak-256 calls); tests check them
// against go-ethereum's generic typed-data encoder and vectors signed by
// ethers.
//
// Times are Unix milliseconds.
package govmsg

import (
	"crypto/ecdsa"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"golang.org/x/crypto/sha3"
)

// Errors.
var (
	ErrMalformed    = errors.New("governance: malformed message")
	ErrBadSignature = errors.New("governance: bad signature")
	ErrWrongDomain  = errors.New("governance: message for another DApp or chain")
)

// SignatureSize is the length of a signature: r || s || v, v in {27, 28}.
const SignatureSize = 65

// The EIP-712 type strings. A type that refers to another lists it after
// itself (EIP-712's encodeType).
const (
	domainType     = "EIP712Domain(string name,string version,uint256 chainId,bytes32 salt)"
	ballotType     = "Ballot(bytes32 proposal,address voter,uint32[] choice,uint64 time,string reason)"
	actionType     = "Action(string kind,string name,bytes value)"
	proposalType   = "Proposal(address author,string title,string body,string kind,string[] choices,uint64 start,uint64 end,string electorate,uint64 snapshot,uint256 quorum,uint16 threshold,Action[] actions,uint64 created)" + actionType
	delegationType = "Delegation(address delegator,address delegate,uint64 time)"
	closingType    = "Closing(bytes32 proposal,bytes32 root)"
)

// DomainName and DomainVersion are the domain's name and version.
const (
	DomainName    = "dpaas governance"
	DomainVersion = "1"
)

var (
	domainTypeHash     = crypto.Keccak256Hash([]byte(domainType))
	ballotTypeHash     = crypto.Keccak256Hash([]byte(ballotType))
	actionTypeHash     = crypto.Keccak256Hash([]byte(actionType))
	proposalTypeHash   = crypto.Keccak256Hash([]byte(proposalType))
	delegationTypeHash = crypto.Keccak256Hash([]byte(delegationType))
	closingTypeHash    = crypto.Keccak256Hash([]byte(closingType))
	maxUint256         = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
)

// Domain is the EIP-712 domain of one DApp on one chain.
type Domain struct {
	ChainID   *big.Int
	App       [32]byte // the AppID, the domain's salt
	separator common.Hash
}

// NewDomain returns the domain of the DApp app on chain chainID.
func NewDomain(chainID *big.Int, app [32]byte) Domain {
	w := newWords(5)
	w.hash(domainTypeHash)
	w.hash(crypto.Keccak256Hash([]byte(DomainName)))
	w.hash(crypto.Keccak256Hash([]byte(DomainVersion)))
	w.big(chainID)
	w.hash(app)
	return Domain{ChainID: new(big.Int).Set(chainID), App: app, separator: w.sum()}
}

// Separator is the domain separator.
func (d Domain) Separator() common.Hash { return d.separator }

// digest is the hash a signer signs: keccak256(0x19 0x01 separator structHash).
func (d Domain) digest(structHash common.Hash) common.Hash {
	var msg [2 + 32 + 32]byte
	msg[0], msg[1] = 0x19, 0x01
	copy(msg[2:], d.separator[:])
	copy(msg[34:], structHash[:])
	return crypto.Keccak256Hash(msg[:])
}

// Ballot is a voter's choice on a proposal.
type Ballot struct {
	Proposal common.Hash
	Voter    common.Address
	Choice   []uint32
	Time     uint64
	Reason   string
}

// Digest is the hash the voter signs.
func (b *Ballot) Digest(d Domain) common.Hash {
	w := newWords(6)
	w.hash(ballotTypeHash)
	w.hash(b.Proposal)
	w.address(b.Voter)
	w.hash(hashUint32s(b.Choice))
	w.uint(b.Time)
	w.hash(hashString(b.Reason))
	return d.digest(w.sum())
}

// Action is one thing a passed proposal does.
type Action struct {
	Kind  string
	Name  string
	Value []byte
}

func (a *Action) hash() common.Hash {
	w := newWords(4)
	w.hash(actionTypeHash)
	w.hash(hashString(a.Kind))
	w.hash(hashString(a.Name))
	w.hash(crypto.Keccak256Hash(a.Value))
	return w.sum()
}

// Proposal is a question put to a vote.
type Proposal struct {
	Author     common.Address
	Title      string
	Body       string
	Kind       string
	Choices    []string
	Start, End uint64
	Electorate string
	Snapshot   uint64
	Quorum     *big.Int // nil means 0
	Threshold  uint16
	Actions    []Action
	Created    uint64
}

// Digest is the hash the author signs; it is also the proposal's ID.
func (p *Proposal) Digest(d Domain) common.Hash {
	w := newWords(14)
	w.hash(proposalTypeHash)
	w.address(p.Author)
	w.hash(hashString(p.Title))
	w.hash(hashString(p.Body))
	w.hash(hashString(p.Kind))
	choices := newWords(len(p.Choices))
	for _, c := range p.Choices {
		choices.hash(hashString(c))
	}
	w.hash(choices.sum())
	w.uint(p.Start)
	w.uint(p.End)
	w.hash(hashString(p.Electorate))
	w.uint(p.Snapshot)
	w.big(p.Quorum)
	w.uint(uint64(p.Threshold))
	actions := newWords(len(p.Actions))
	for i := range p.Actions {
		actions.hash(p.Actions[i].hash())
	}
	w.hash(actions.sum())
	w.uint(p.Created)
	return d.digest(w.sum())
}

// Delegation moves Delegator's voting power to Delegate from Time on; a
// zero Delegate revokes the delegation.
type Delegation struct {
	Delegator common.Address
	Delegate  common.Address
	Time      uint64
}

// Digest is the hash the delegator signs.
func (g *Delegation) Digest(d Domain) common.Hash {
	w := newWords(4)
	w.hash(delegationTypeHash)
	w.address(g.Delegator)
	w.address(g.Delegate)
	w.uint(g.Time)
	return d.digest(w.sum())
}

// Closing is a closer's statement that the counted ballots of Proposal
// have the root Root (tally.Result.Root).
type Closing struct {
	Proposal common.Hash
	Root     common.Hash
}

// Digest is the hash a closer signs.
func (c *Closing) Digest(d Domain) common.Hash {
	w := newWords(3)
	w.hash(closingTypeHash)
	w.hash(c.Proposal)
	w.hash(c.Root)
	return d.digest(w.sum())
}

// Sign signs digest with key: r || s || v with v in {27, 28}, as wallets
// sign typed data.
func Sign(key *ecdsa.PrivateKey, digest common.Hash) ([]byte, error) {
	sig, err := crypto.Sign(digest[:], key)
	if err != nil {
		return nil, fmt.Errorf("governance: sign: %w", err)
	}
	sig[64] += 27
	return sig, nil
}

// Recover returns the address that signed digest. It refuses malleable
// (high-s) signatures, so a message has one valid signature per signer.
func Recover(digest common.Hash, sig []byte) (common.Address, error) {
	if len(sig) != SignatureSize {
		return common.Address{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadSignature, len(sig), SignatureSize)
	}
	v := sig[64]
	if v < 27 {
		v += 27 // some signers give 0 or 1
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:64])
	if v > 28 || !crypto.ValidateSignatureValues(v-27, r, s, true) {
		return common.Address{}, fmt.Errorf("%w: invalid r, s or v", ErrBadSignature)
	}
	var raw [SignatureSize]byte
	copy(raw[:], sig)
	raw[64] = v - 27
	pub, err := crypto.Ecrecover(digest[:], raw[:])
	if err != nil {
		return common.Address{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return common.BytesToAddress(crypto.Keccak256(pub[1:])[12:]), nil
}

// Verify checks that sig over digest was made by want.
func Verify(digest common.Hash, sig []byte, want common.Address) error {
	got, err := Recover(digest, sig)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: signed by %s, not %s", ErrBadSignature, got, want)
	}
	return nil
}

// words accumulates 32-byte words to hash.
type words []byte

func newWords(n int) words { return make(words, 0, 32*n) }

func (w *words) hash(h [32]byte) { *w = append(*w, h[:]...) }

func (w *words) address(a common.Address) {
	*w = append(*w, make([]byte, 12)...)
	*w = append(*w, a[:]...)
}

func (w *words) uint(x uint64) {
	var word [32]byte
	binary.BigEndian.PutUint64(word[24:], x)
	*w = append(*w, word[:]...)
}

// big appends x, which must fit a uint256 (checkUint256); one that does
// not is written as all ones rather than panicking, and the message is
// refused where it is checked.
func (w *words) big(x *big.Int) {
	var word [32]byte
	switch {
	case !checkUint256(x):
		for i := range word {
			word[i] = 0xff
		}
	case x != nil:
		x.FillBytes(word[:])
	}
	*w = append(*w, word[:]...)
}

func (w words) sum() common.Hash {
	h := sha3.NewLegacyKeccak256()
	h.Write(w)
	var out common.Hash
	h.Sum(out[:0])
	return out
}

func hashString(s string) common.Hash { return crypto.Keccak256Hash([]byte(s)) }

func hashUint32s(xs []uint32) common.Hash {
	w := newWords(len(xs))
	for _, x := range xs {
		w.uint(uint64(x))
	}
	return w.sum()
}

// checkUint256 reports whether x fits a uint256.
func checkUint256(x *big.Int) bool { return x == nil || x.Sign() >= 0 && x.Cmp(maxUint256) <= 0 }
