package governance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ipfs/go-cid"

	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/store"
)

// The store collections of escrow deals and their dispute cases. Like the
// other governance collections, their documents never change once
// written, and each is a message signed by the account it names.
const (
	// DealsCollection holds payers' records of the deals they opened
	// through OpenDeal.
	DealsCollection = "_governance.deals"
	// CasesCollection holds parties' openings of dispute cases.
	CasesCollection = "_governance.cases"
	// EvidenceCollection holds the evidence parties attach to cases.
	EvidenceCollection = "_governance.evidence"
	// RulingsCollection holds arbiters' ballots on cases, each with the
	// escrow ruling signature that settles the deal on-chain.
	RulingsCollection = "_governance.rulings"
	// SettlementsCollection holds the transactions that settled cases.
	SettlementsCollection = "_governance.settlements"
)

// Limits on evidence, the same on every replica.
const (
	// MaxEvidenceText is the most bytes of text one piece of evidence holds.
	MaxEvidenceText = 16 << 10
	// MaxEvidenceRefs is the most document references and blob CIDs, in
	// all, one piece of evidence holds.
	MaxEvidenceRefs = 32
	// MaxEvidenceRef is the longest document reference ("collection/id").
	MaxEvidenceRef = 512
)

var caseCollections = []string{DealsCollection, CasesCollection, EvidenceCollection, RulingsCollection, SettlementsCollection}

type dealDoc struct {
	Deal  common.Hash    `json:"deal"`
	Payer common.Address `json:"payer"`
	Time  uint64         `json:"time"`
	Sig   hexutil.Bytes  `json:"sig"`
}

type caseDoc struct {
	Deal  common.Hash    `json:"deal"`
	Party common.Address `json:"party"`
	Time  uint64         `json:"time"`
	Sig   hexutil.Bytes  `json:"sig"`
}

type evidenceDoc struct {
	Deal  common.Hash    `json:"deal"`
	Party common.Address `json:"party"`
	Text  string         `json:"text"`
	Docs  []string       `json:"docs"`
	Blobs []string       `json:"blobs"`
	Time  uint64         `json:"time"`
	Sig   hexutil.Bytes  `json:"sig"`
}

type ballotDoc struct {
	Deal     common.Hash    `json:"deal"`
	Arbiter  common.Address `json:"arbiter"`
	PayeeBps uint16         `json:"payeeBps"`
	Ruling   hexutil.Bytes  `json:"ruling"`
	ChainID  *hexutil.Big   `json:"chainId"`
	Escrow   common.Address `json:"escrow"`
	Time     uint64         `json:"time"`
	Sig      hexutil.Bytes  `json:"sig"`
}

type settlementDoc struct {
	Deal     common.Hash    `json:"deal"`
	By       common.Address `json:"by"`
	PayeeBps uint16         `json:"payeeBps"`
	Tx       common.Hash    `json:"tx"`
	Time     uint64         `json:"time"`
	Sig      hexutil.Bytes  `json:"sig"`
}

// pairID is the ID of a document one account writes once per deal.
func pairID(deal common.Hash, who common.Address) string {
	return deal.Hex()[2:] + "-" + strings.ToLower(who.Hex()[2:])
}

// caseDocValidators are the store validators of the case collections.
func caseDocValidators(d govmsg.Domain) map[string]store.Validator {
	out := map[string]store.Validator{}
	for _, coll := range caseCollections {
		out[coll] = func(w store.Write) error {
			if w.Kind != "put" {
				return fmt.Errorf("%w: %s on %s: governance messages never change", ErrInvalid, w.Kind, coll)
			}
			raw, err := json.Marshal(w.Fields)
			if err != nil {
				return fmt.Errorf("%w: %s document: %v", ErrInvalid, coll, err)
			}
			_, err = decodeCaseDoc(d, coll, w.ID, raw)
			return err
		}
	}
	return out
}

// decodeCaseDoc reads and checks one document of a case collection: a
// message of the collection's type signed by the account it names, under
// its own ID, within the limits. Whether that account may write it (a
// party of the deal, an arbiter of its panel) depends on the deal on the
// chain, and is decided where the documents are counted.
func decodeCaseDoc(d govmsg.Domain, coll, id string, raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	bad := func(err error) error { return fmt.Errorf("%w: %s document: %v", ErrInvalid, coll, err) }
	var (
		digest common.Hash
		signer common.Address
		sig    []byte
		wantID string
		out    any
	)
	switch coll {
	case DealsCollection:
		var m dealDoc
		if err := dec.Decode(&m); err != nil {
			return nil, bad(err)
		}
		digest = (&govmsg.DealRecord{Deal: m.Deal, Payer: m.Payer, Time: m.Time}).Digest(d)
		signer, sig, wantID, out = m.Payer, m.Sig, pairID(m.Deal, m.Payer), &m
	case CasesCollection:
		var m caseDoc
		if err := dec.Decode(&m); err != nil {
			return nil, bad(err)
		}
		digest = (&govmsg.Case{Deal: m.Deal, Party: m.Party, Time: m.Time}).Digest(d)
		signer, sig, wantID, out = m.Party, m.Sig, pairID(m.Deal, m.Party), &m
	case EvidenceCollection:
		var m evidenceDoc
		if err := dec.Decode(&m); err != nil {
			return nil, bad(err)
		}
		if err := checkEvidence(m.Text, m.Docs, m.Blobs); err != nil {
			return nil, err
		}
		digest = (&govmsg.Evidence{Deal: m.Deal, Party: m.Party, Text: m.Text, Docs: m.Docs, Blobs: m.Blobs, Time: m.Time}).Digest(d)
		signer, sig, wantID, out = m.Party, m.Sig, digest.Hex()[2:], &m
	case RulingsCollection:
		var m ballotDoc
		if err := dec.Decode(&m); err != nil {
			return nil, bad(err)
		}
		if m.PayeeBps > payment.MaxBps || m.ChainID == nil || m.ChainID.ToInt().Sign() <= 0 || m.ChainID.ToInt().BitLen() > 256 {
			return nil, fmt.Errorf("%w: ruling of %d bps on chain %v", ErrInvalid, m.PayeeBps, m.ChainID)
		}
		// The escrow ruling must be the arbiter's too, or it could not
		// settle the deal.
		rd := payment.RulingDigest(m.ChainID.ToInt(), m.Escrow, m.Deal, m.PayeeBps)
		if err := govmsg.Verify(rd, m.Ruling, m.Arbiter); err != nil {
			return nil, fmt.Errorf("%w: escrow ruling: %v", ErrBadSignature, err)
		}
		digest = (&govmsg.CaseBallot{Deal: m.Deal, Arbiter: m.Arbiter, PayeeBps: m.PayeeBps, Ruling: m.Ruling, Time: m.Time}).Digest(d)
		signer, sig, wantID, out = m.Arbiter, m.Sig, digest.Hex()[2:], &m
	case SettlementsCollection:
		var m settlementDoc
		if err := dec.Decode(&m); err != nil {
			return nil, bad(err)
		}
		if m.PayeeBps > payment.MaxBps {
			return nil, fmt.Errorf("%w: settlement of %d bps", ErrInvalid, m.PayeeBps)
		}
		digest = (&govmsg.Settlement{Deal: m.Deal, By: m.By, PayeeBps: m.PayeeBps, Tx: m.Tx, Time: m.Time}).Digest(d)
		signer, sig, wantID, out = m.By, m.Sig, pairID(m.Deal, m.By), &m
	default:
		return nil, fmt.Errorf("%w: %s is not a case collection", ErrInvalid, coll)
	}
	if dec.More() {
		return nil, bad(fmt.Errorf("data after the document"))
	}
	if id != wantID {
		return nil, fmt.Errorf("%w: document %.80q holds message %s", ErrInvalid, id, wantID)
	}
	if err := govmsg.Verify(digest, sig, signer); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return out, nil
}

// checkEvidence checks evidence against the limits: UTF-8 text of at most
// MaxEvidenceText bytes, at most MaxEvidenceRefs references, each document
// reference "collection/id" of at most MaxEvidenceRef bytes, each blob a
// CID.
func checkEvidence(text string, docs, blobs []string) error {
	switch {
	case len(text) > MaxEvidenceText:
		return fmt.Errorf("%w: evidence text of %d bytes, limit %d", ErrInvalid, len(text), MaxEvidenceText)
	case !utf8.ValidString(text):
		return fmt.Errorf("%w: evidence text is not UTF-8", ErrInvalid)
	case len(docs)+len(blobs) > MaxEvidenceRefs:
		return fmt.Errorf("%w: %d references, limit %d", ErrInvalid, len(docs)+len(blobs), MaxEvidenceRefs)
	}
	for _, r := range docs {
		coll, id, ok := strings.Cut(r, "/")
		if !ok || coll == "" || id == "" || len(r) > MaxEvidenceRef || !utf8.ValidString(r) {
			return fmt.Errorf("%w: document reference %.80q: want collection/id of at most %d bytes", ErrInvalid, r, MaxEvidenceRef)
		}
	}
	for _, b := range blobs {
		if len(b) > MaxEvidenceRef {
			return fmt.Errorf("%w: blob reference of %d bytes", ErrInvalid, len(b))
		}
		if _, err := cid.Decode(b); err != nil {
			return fmt.Errorf("%w: blob %.80q is not a CID: %v", ErrInvalid, b, err)
		}
	}
	return nil
}
