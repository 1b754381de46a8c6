package govmsg

import (
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// The EIP-712 types of escrow cases. An arbiter's ruling itself is the
// escrow contract's Ruling (payment.RulingDigest); CaseBallot adds the
// time the arbiter signed it, which decides whether they voted in time.
const (
	dealRecordType = "DealRecord(bytes32 deal,address payer,uint64 time)"
	caseType       = "Case(bytes32 deal,address party,uint64 time)"
	evidenceType   = "Evidence(bytes32 deal,address party,string text,string[] docs,string[] blobs,uint64 time)"
	caseBallotType = "CaseBallot(bytes32 deal,address arbiter,uint16 payeeBps,bytes ruling,uint64 time)"
	settlementType = "Settlement(bytes32 deal,address by,uint16 payeeBps,bytes32 tx,uint64 time)"
)

var (
	dealRecordTypeHash = crypto.Keccak256Hash([]byte(dealRecordType))
	caseTypeHash       = crypto.Keccak256Hash([]byte(caseType))
	evidenceTypeHash   = crypto.Keccak256Hash([]byte(evidenceType))
	caseBallotTypeHash = crypto.Keccak256Hash([]byte(caseBallotType))
	settlementTypeHash = crypto.Keccak256Hash([]byte(settlementType))
)

// DealRecord is a payer's record that it opened an escrow deal.
type DealRecord struct {
	Deal  common.Hash
	Payer common.Address
	Time  uint64
}

// Digest is the hash the payer signs.
func (m *DealRecord) Digest(d Domain) common.Hash {
	w := newWords(4)
	w.hash(dealRecordTypeHash)
	w.hash(m.Deal)
	w.address(m.Payer)
	w.uint(m.Time)
	return d.digest(w.sum())
}

// Case is a party's opening of a dispute case on a deal.
type Case struct {
	Deal  common.Hash
	Party common.Address
	Time  uint64
}

// Digest is the hash the party signs.
func (m *Case) Digest(d Domain) common.Hash {
	w := newWords(4)
	w.hash(caseTypeHash)
	w.hash(m.Deal)
	w.address(m.Party)
	w.uint(m.Time)
	return d.digest(w.sum())
}

// Evidence is what a party attaches to a case: text, references to
// documents of the DApp's store and CIDs of blobs.
type Evidence struct {
	Deal  common.Hash
	Party common.Address
	Text  string
	Docs  []string
	Blobs []string
	Time  uint64
}

// Digest is the hash the party signs.
func (m *Evidence) Digest(d Domain) common.Hash {
	w := newWords(7)
	w.hash(evidenceTypeHash)
	w.hash(m.Deal)
	w.address(m.Party)
	w.hash(hashString(m.Text))
	w.hash(hashStrings(m.Docs))
	w.hash(hashStrings(m.Blobs))
	w.uint(m.Time)
	return d.digest(w.sum())
}

// CaseBallot is an arbiter's ruling on a case with the time they signed
// it. Ruling is their signature of the escrow contract's Ruling, which
// settles the deal on-chain.
type CaseBallot struct {
	Deal     common.Hash
	Arbiter  common.Address
	PayeeBps uint16
	Ruling   []byte
	Time     uint64
}

// Digest is the hash the arbiter signs.
func (m *CaseBallot) Digest(d Domain) common.Hash {
	w := newWords(6)
	w.hash(caseBallotTypeHash)
	w.hash(m.Deal)
	w.address(m.Arbiter)
	w.uint(uint64(m.PayeeBps))
	w.hash(crypto.Keccak256Hash(m.Ruling))
	w.uint(m.Time)
	return d.digest(w.sum())
}

// Settlement is an instance's record of the transaction that settled a
// case on-chain.
type Settlement struct {
	Deal     common.Hash
	By       common.Address
	PayeeBps uint16
	Tx       common.Hash
	Time     uint64
}

// Digest is the hash the recording instance signs.
func (m *Settlement) Digest(d Domain) common.Hash {
	w := newWords(6)
	w.hash(settlementTypeHash)
	w.hash(m.Deal)
	w.address(m.By)
	w.uint(uint64(m.PayeeBps))
	w.hash(m.Tx)
	w.uint(m.Time)
	return d.digest(w.sum())
}

// hashStrings is EIP-712's hash of a string[]: the hash of the strings'
// hashes end to end.
func hashStrings(xs []string) common.Hash {
	w := newWords(len(xs))
	for _, x := range xs {
		w.hash(hashString(x))
	}
	return w.sum()
}
