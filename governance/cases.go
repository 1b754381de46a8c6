package governance

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/dpaas/dpaas/internal/govern"
	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/payment"
)

// Errors of escrow cases.
var (
	ErrNoEscrow   = errors.New("governance: no escrow contract (Config.Escrow)")
	ErrNotParty   = errors.New("governance: not a party of the deal")
	ErrNoCase     = errors.New("governance: no such case")
	ErrNotArbiter = errors.New("governance: not on the case's panel")
)

// Parameters of escrow cases, read with Param and changed by SetParam.
const (
	// ParamArbiters is the panel size k of the deals OpenDeal opens: an
	// odd number, 3 when unset.
	ParamArbiters = "arbiters.k"
	// ParamCaseWindow is how long a panel member has to vote before the
	// next of the deal's list replaces them: a number of seconds or a Go
	// duration string ("90m"), one hour when unset.
	ParamCaseWindow = "arbiters.window"
)

// Defaults of the case parameters.
const (
	DefaultArbiters   = 3
	DefaultCaseWindow = time.Hour
)

// Escrow is the escrow contract as cases use it: *payment.Payments through
// PaymentsEscrow, or dapp's, which starts payments on first use. Methods
// are called from governance's goroutines and must be safe for concurrent
// use; each returns once its transaction is mined.
type Escrow interface {
	// EscrowContract is the chain's ID and the escrow contract's address.
	EscrowContract(ctx context.Context) (chainID *big.Int, contract common.Address, err error)
	// OpenEscrow, Dispute, Settle, EscrowState and EscrowSettlement are
	// those of payment.Payments, for the instance's account.
	OpenEscrow(ctx context.Context, deal payment.EscrowDeal) (payment.DealID, error)
	Dispute(ctx context.Context, deal payment.DealID) (common.Hash, error)
	Settle(ctx context.Context, deal payment.DealID, payeeBps uint16, sigs [][]byte) (common.Hash, error)
	EscrowState(ctx context.Context, deal payment.DealID) (payment.EscrowInfo, error)
	EscrowSettlement(ctx context.Context, deal payment.DealID) (tx common.Hash, payeeBps uint16, err error)
}

// PaymentsEscrow is p as governance's Escrow.
func PaymentsEscrow(p *payment.Payments) Escrow { return paymentsEscrow{p} }

type paymentsEscrow struct{ *payment.Payments }

func (p paymentsEscrow) EscrowContract(context.Context) (*big.Int, common.Address, error) {
	if p.Payments.EscrowContract() == (common.Address{}) {
		return nil, common.Address{}, ErrNoEscrow
	}
	return p.ChainID(), p.Payments.EscrowContract(), nil
}

// ArbiterList is the ordered list of arbiters to open a deal with: the
// members drawn in govern order from the deal's ID (a deterministic
// weighted draw without replacement; see payment.EscrowDealID to know the
// ID before opening), neither party eligible, at most
// payment.MaxArbiters. weight gives members' reputations; nil, a missing
// or a non-positive weight counts as 1. The panel of a case is the first k
// of the list, replaced in list order.
func ArbiterList(deal payment.DealID, members []common.Address, weight map[common.Address]*big.Int, payer, payee common.Address) []common.Address {
	order := govern.DrawOrder(deal, members, weight, payer, payee)
	if len(order) > payment.MaxArbiters {
		order = order[:payment.MaxArbiters]
	}
	return order
}

// Deal is an escrow deal known to the DApp: recorded by its payer through
// OpenDeal, or the subject of a case. Its terms and status are the
// chain's.
type Deal struct {
	ID        payment.DealID   `json:"id"`
	Payer     common.Address   `json:"payer"`
	Payee     common.Address   `json:"payee"`
	Fund      common.Address   `json:"fund"`
	Amount    *hexutil.Big     `json:"amount"`
	FeeBps    uint16           `json:"feeBps"`
	Deadline  time.Time        `json:"deadline"`
	Arbiters  []common.Address `json:"arbiters"`
	PanelSize int              `json:"panelSize"`
	Status    string           `json:"status"` // open, disputed or closed
	// Recorded is when the payer recorded the deal; zero if it did not.
	Recorded time.Time `json:"recorded,omitzero"`
}

// Case is a dispute on a deal as every replica sees it.
type Case struct {
	Deal     Deal           `json:"deal"`
	OpenedBy common.Address `json:"openedBy"`
	Opened   time.Time      `json:"opened"`
	// Window is the case window in force (ParamCaseWindow).
	Window time.Duration `json:"window"`
	// Panel is the current panel, in list order; Replaced the members
	// replaced for not voting in time, in the order they were.
	Panel    []common.Address `json:"panel"`
	Replaced []common.Address `json:"replaced"`
	// RoundEnd is when the current round ends: members of the panel who
	// have not voted by then are replaced, if the list has members left.
	RoundEnd time.Time    `json:"roundEnd"`
	Evidence []Evidence   `json:"evidence"`
	Ballots  []CaseBallot `json:"ballots"`
	// Decided: a majority of the panel (PanelSize/2+1) agrees on PayeeBps;
	// Majority are its members.
	Decided    bool             `json:"decided"`
	PayeeBps   uint16           `json:"payeeBps"`
	Majority   []common.Address `json:"majority,omitempty"`
	Settlement *Settlement      `json:"settlement,omitempty"`
}

// Evidence is what a party attaches to a case.
type Evidence struct {
	ID    common.Hash    `json:"id,omitzero"`
	Party common.Address `json:"party,omitzero"`
	Time  time.Time      `json:"time,omitzero"`
	// Text is free text (at most MaxEvidenceText bytes of UTF-8).
	Text string `json:"text"`
	// Docs are references to documents of the DApp's store, as
	// "collection/id".
	Docs []string `json:"docs,omitempty"`
	// Blobs are CIDs of blobs.
	Blobs []string `json:"blobs,omitempty"`
}

// CaseBallot is an arbiter's ruling on a case.
type CaseBallot struct {
	ID       common.Hash    `json:"id"`
	Arbiter  common.Address `json:"arbiter"`
	PayeeBps uint16         `json:"payeeBps"`
	Time     time.Time      `json:"time"`
	// Ruling is the escrow ruling signature (payment.SignRuling).
	Ruling hexutil.Bytes `json:"ruling"`
	// Counted: the arbiter's latest ballot, and the arbiter sits on the
	// panel.
	Counted bool `json:"counted"`
}

// Settlement is the transaction that settled a case.
type Settlement struct {
	Tx       common.Hash    `json:"tx"`
	PayeeBps uint16         `json:"payeeBps"`
	By       common.Address `json:"by"`
	Time     time.Time      `json:"time"`
	// OnChain: the chain's Settled event names this transaction.
	OnChain bool `json:"onChain"`
}

func (g *Governance) escrow(op string) (Escrow, error) {
	if err := g.checkOpen(op); err != nil {
		return nil, err
	}
	if g.cfg.Escrow == nil {
		return nil, fmt.Errorf("governance: %s: %w", op, ErrNoEscrow)
	}
	return g.cfg.Escrow, nil
}

// arbitersParam is the panel size of new deals.
func (g *Governance) arbitersParam() (int, error) {
	v, ok := g.current().Params[ParamArbiters]
	if !ok {
		return DefaultArbiters, nil
	}
	var k int
	if err := json.Unmarshal(v, &k); err != nil || k <= 0 || k%2 == 0 || k > payment.MaxArbiters {
		return 0, fmt.Errorf("%w: parameter %s = %s: want an odd number from 1 to %d", ErrInvalid, ParamArbiters, v, payment.MaxArbiters)
	}
	return k, nil
}

// windowParam is the case window in force; a value that does not parse
// counts as the default, the same on every replica.
func (g *Governance) windowParam() time.Duration {
	return parseWindow(g.current().Params[ParamCaseWindow])
}

func parseWindow(v json.RawMessage) time.Duration {
	if v == nil {
		return DefaultCaseWindow
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			return d
		}
		return DefaultCaseWindow
	}
	if f, err := strconv.ParseFloat(string(v), 64); err == nil && f > 0 && f < 1e9 {
		return time.Duration(f * float64(time.Second))
	}
	return DefaultCaseWindow
}

// OpenDeal opens an escrow deal as payer and records it for every
// replica. It draws the deal's arbiters: a salt (d.Salt, or a random one)
// gives the deal's ID, and ArbiterList of the ID, the current members and
// the reputations (Config.Reputation) gives the list; the panel size is
// ParamArbiters. d.Arbiters and d.PanelSize must be left empty
// (ErrInvalid). Fewer eligible members than the panel size is ErrInvalid.
// Errors of the chain are payment's (ErrBadDeal, ErrInsufficientFunds...).
func (g *Governance) OpenDeal(ctx context.Context, d payment.EscrowDeal) (payment.DealID, error) {
	esc, err := g.escrow("open deal")
	if err != nil {
		return payment.DealID{}, err
	}
	if d.Arbiters != nil || d.PanelSize != 0 {
		return payment.DealID{}, fmt.Errorf("governance: open deal: %w: the arbiters are drawn, not given", ErrInvalid)
	}
	k, err := g.arbitersParam()
	if err != nil {
		return payment.DealID{}, fmt.Errorf("governance: open deal: %w", err)
	}
	chainID, contract, err := esc.EscrowContract(ctx)
	if err != nil {
		return payment.DealID{}, fmt.Errorf("governance: open deal: %w", err)
	}
	if d.Salt == ([32]byte{}) {
		rand.Read(d.Salt[:])
	}
	id := payment.EscrowDealID(chainID, contract, g.self, d.Salt)
	members := g.current().Members
	var weight map[common.Address]*big.Int
	if g.cfg.Reputation != nil {
		weight = map[common.Address]*big.Int{}
		for _, m := range members {
			weight[m] = g.cfg.Reputation(m)
		}
	}
	d.Arbiters = ArbiterList(id, members, weight, g.self, d.Payee)
	if len(d.Arbiters) < k {
		return payment.DealID{}, fmt.Errorf("governance: open deal: %w: %d members may arbitrate, the panel needs %d", ErrInvalid, len(d.Arbiters), k)
	}
	d.PanelSize = k
	got, err := esc.OpenEscrow(ctx, d)
	if err != nil {
		return payment.DealID{}, fmt.Errorf("governance: open deal: %w", err)
	}
	if got != id {
		return got, fmt.Errorf("governance: open deal: the escrow contract opened %s, expected %s: %w", got, id, ErrInvalid)
	}
	m := &govmsg.DealRecord{Deal: id, Payer: g.self, Time: millis(g.cfg.Now())}
	sig, err := govmsg.Sign(g.cfg.Key, m.Digest(g.domain))
	if err != nil {
		return id, err
	}
	doc := dealDoc{Deal: id, Payer: g.self, Time: m.Time, Sig: sig}
	if err := g.cfg.Store.Collection(DealsCollection).Put(ctx, pairID(id, g.self), doc); err != nil {
		return id, fmt.Errorf("governance: open deal %s: record: %w", id, err)
	}
	return id, nil
}

// OpenCase opens a dispute case on a deal, as one of its parties: it
// disputes the deal on-chain if it is still open, then records the case,
// whose panel every replica draws from the deal's list. Opening a case
// twice is harmless; the earliest opening of either party counts. Not a
// party is ErrNotParty; a closed deal is payment.ErrDealClosed.
func (g *Governance) OpenCase(ctx context.Context, deal payment.DealID) error {
	esc, err := g.escrow("open case")
	if err != nil {
		return err
	}
	info, err := g.dealInfo(ctx, deal, true)
	if err != nil {
		return fmt.Errorf("governance: open case: %w", err)
	}
	if g.self != info.Payer && g.self != info.Payee {
		return fmt.Errorf("governance: open case on %s: %w: %s", deal, ErrNotParty, g.self)
	}
	switch info.Status {
	case payment.EscrowClosed:
		return fmt.Errorf("governance: open case on %s: %w", deal, payment.ErrDealClosed)
	case payment.EscrowOpen:
		if _, err := esc.Dispute(ctx, deal); err != nil && !errors.Is(err, payment.ErrDisputed) {
			return fmt.Errorf("governance: open case: %w", err)
		}
		if _, err := g.dealInfo(ctx, deal, true); err != nil {
			return fmt.Errorf("governance: open case: %w", err)
		}
	}
	coll := g.cfg.Store.Collection(CasesCollection)
	if _, err := coll.GetRaw(ctx, pairID(deal, g.self)); err == nil {
		return nil
	}
	m := &govmsg.Case{Deal: deal, Party: g.self, Time: millis(g.cfg.Now())}
	sig, err := govmsg.Sign(g.cfg.Key, m.Digest(g.domain))
	if err != nil {
		return err
	}
	if err := coll.Put(ctx, pairID(deal, g.self), caseDoc{Deal: deal, Party: g.self, Time: m.Time, Sig: sig}); err != nil {
		return fmt.Errorf("governance: open case on %s: %w", deal, err)
	}
	g.pokeCases()
	return nil
}

// AddEvidence attaches evidence to a deal's case, as one of its parties,
// and returns its ID. Evidence over the limits (MaxEvidenceText,
// MaxEvidenceRefs, MaxEvidenceRef, blobs that are not CIDs) is ErrInvalid;
// not a party is ErrNotParty.
func (g *Governance) AddEvidence(ctx context.Context, deal payment.DealID, e Evidence) (common.Hash, error) {
	if _, err := g.escrow("add evidence"); err != nil {
		return common.Hash{}, err
	}
	if err := checkEvidence(e.Text, e.Docs, e.Blobs); err != nil {
		return common.Hash{}, fmt.Errorf("governance: add evidence: %w", err)
	}
	info, err := g.dealInfo(ctx, deal, false)
	if err != nil {
		return common.Hash{}, fmt.Errorf("governance: add evidence: %w", err)
	}
	if g.self != info.Payer && g.self != info.Payee {
		return common.Hash{}, fmt.Errorf("governance: add evidence on %s: %w: %s", deal, ErrNotParty, g.self)
	}
	m := &govmsg.Evidence{Deal: deal, Party: g.self, Text: e.Text, Docs: nonNil(e.Docs), Blobs: nonNil(e.Blobs), Time: millis(g.cfg.Now())}
	digest := m.Digest(g.domain)
	sig, err := govmsg.Sign(g.cfg.Key, digest)
	if err != nil {
		return common.Hash{}, err
	}
	doc := evidenceDoc{Deal: deal, Party: g.self, Text: m.Text, Docs: m.Docs, Blobs: m.Blobs, Time: m.Time, Sig: sig}
	if err := g.cfg.Store.Collection(EvidenceCollection).Put(ctx, digest.Hex()[2:], doc); err != nil {
		return common.Hash{}, fmt.Errorf("governance: add evidence on %s: %w", deal, err)
	}
	g.pokeCases()
	return digest, nil
}

// submitCase records a case a party's wallet signed (Submit): the deal
// must be disputed on-chain already (the party's wallet calls the escrow
// contract's dispute itself) and the signer one of its parties.
func (g *Governance) submitCase(ctx context.Context, m *govmsg.Case, sig []byte) (common.Hash, error) {
	if _, err := g.escrow("submit case"); err != nil {
		return common.Hash{}, err
	}
	digest := m.Digest(g.domain)
	if err := govmsg.Verify(digest, sig, m.Party); err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit case: %w: %v", ErrBadSignature, err)
	}
	info, err := g.dealInfo(ctx, m.Deal, true)
	if err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit case: %w", err)
	}
	if m.Party != info.Payer && m.Party != info.Payee {
		return common.Hash{}, fmt.Errorf("governance: submit case on %s: %w: %s", m.Deal, ErrNotParty, m.Party)
	}
	switch info.Status {
	case payment.EscrowClosed:
		return common.Hash{}, fmt.Errorf("governance: submit case on %s: %w", m.Deal, payment.ErrDealClosed)
	case payment.EscrowOpen:
		return common.Hash{}, fmt.Errorf("governance: submit case on %s: %w: the deal is not disputed on-chain; its party disputes it first", m.Deal, ErrInvalid)
	}
	coll := g.cfg.Store.Collection(CasesCollection)
	if _, err := coll.GetRaw(ctx, pairID(m.Deal, m.Party)); err == nil {
		return digest, nil // the party's first opening counts
	}
	if err := coll.Put(ctx, pairID(m.Deal, m.Party), caseDoc{Deal: m.Deal, Party: m.Party, Time: m.Time, Sig: sig}); err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit case on %s: %w", m.Deal, err)
	}
	g.pokeCases()
	return digest, nil
}

// submitEvidence records evidence a party's wallet signed (Submit).
func (g *Governance) submitEvidence(ctx context.Context, m *govmsg.Evidence, sig []byte) (common.Hash, error) {
	if _, err := g.escrow("submit evidence"); err != nil {
		return common.Hash{}, err
	}
	if err := checkEvidence(m.Text, m.Docs, m.Blobs); err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit evidence: %w", err)
	}
	digest := m.Digest(g.domain)
	if err := govmsg.Verify(digest, sig, m.Party); err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit evidence: %w: %v", ErrBadSignature, err)
	}
	info, err := g.dealInfo(ctx, m.Deal, false)
	if err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit evidence: %w", err)
	}
	if m.Party != info.Payer && m.Party != info.Payee {
		return common.Hash{}, fmt.Errorf("governance: submit evidence on %s: %w: %s", m.Deal, ErrNotParty, m.Party)
	}
	doc := evidenceDoc{Deal: m.Deal, Party: m.Party, Text: m.Text, Docs: nonNil(m.Docs), Blobs: nonNil(m.Blobs), Time: m.Time, Sig: sig}
	if err := g.cfg.Store.Collection(EvidenceCollection).Put(ctx, digest.Hex()[2:], doc); err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit evidence on %s: %w", m.Deal, err)
	}
	g.pokeCases()
	return digest, nil
}

// CaseTypedData is the typed data a party's wallet signs (with
// eth_signTypedData_v4) to open a case on deal, stamped now; Submit takes
// it back with the signature.
func (g *Governance) CaseTypedData(deal payment.DealID, party common.Address) []byte {
	td, _ := json.Marshal((&govmsg.Case{Deal: deal, Party: party, Time: millis(g.cfg.Now())}).TypedData(g.domain))
	return td
}

// EvidenceTypedData is the typed data a party's wallet signs to attach e
// to deal's case, stamped now.
func (g *Governance) EvidenceTypedData(deal payment.DealID, party common.Address, e Evidence) []byte {
	m := &govmsg.Evidence{Deal: deal, Party: party, Text: e.Text, Docs: nonNil(e.Docs), Blobs: nonNil(e.Blobs), Time: millis(g.cfg.Now())}
	td, _ := json.Marshal(m.TypedData(g.domain))
	return td
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Rule votes a ruling on a deal's case as an arbiter of its current panel:
// payeeBps of the amount to the payee (0 to payment.MaxBps). The ballot
// carries the escrow ruling signature, so a majority's ballots settle the
// deal on-chain as they are; an instance of a party or of an arbiter in
// the majority submits them. An arbiter may vote again; their latest
// ballot counts. No case is ErrNoCase; not on the panel is ErrNotArbiter.
func (g *Governance) Rule(ctx context.Context, deal payment.DealID, payeeBps uint16) error {
	esc, err := g.escrow("rule")
	if err != nil {
		return err
	}
	if payeeBps > payment.MaxBps {
		return fmt.Errorf("governance: rule on %s: %w: payee share %d bps", deal, ErrInvalid, payeeBps)
	}
	c, err := g.Case(ctx, deal)
	if err != nil {
		return fmt.Errorf("governance: rule: %w", err)
	}
	if !slices.Contains(c.Panel, g.self) {
		return fmt.Errorf("governance: rule on %s: %w: %s", deal, ErrNotArbiter, g.self)
	}
	chainID, contract, err := esc.EscrowContract(ctx)
	if err != nil {
		return fmt.Errorf("governance: rule: %w", err)
	}
	ruling, err := payment.SignRuling(g.cfg.Key, chainID, contract, deal, payeeBps)
	if err != nil {
		return fmt.Errorf("governance: rule: %w", err)
	}
	m := &govmsg.CaseBallot{Deal: deal, Arbiter: g.self, PayeeBps: payeeBps, Ruling: ruling, Time: millis(g.cfg.Now())}
	sig, err := govmsg.Sign(g.cfg.Key, m.Digest(g.domain))
	if err != nil {
		return err
	}
	if err := g.putRuling(ctx, m, sig, chainID, contract); err != nil {
		return fmt.Errorf("governance: rule on %s: %w", deal, err)
	}
	return nil
}

// putRuling records an arbiter's signed ballot on a case; the collection's
// validator checks both signatures on every replica.
func (g *Governance) putRuling(ctx context.Context, m *govmsg.CaseBallot, sig []byte, chainID *big.Int, contract common.Address) error {
	doc := ballotDoc{Deal: m.Deal, Arbiter: m.Arbiter, PayeeBps: m.PayeeBps, Ruling: m.Ruling, ChainID: (*hexutil.Big)(chainID),
		Escrow: contract, Time: m.Time, Sig: sig}
	if err := g.cfg.Store.Collection(RulingsCollection).Put(ctx, m.Digest(g.domain).Hex()[2:], doc); err != nil {
		return err
	}
	g.pokeCases()
	return nil
}

// RulingTypedData is the first of the two typed data an arbiter's wallet
// signs to rule on deal's case: the escrow contract's ruling, giving the
// payee payeeBps basis points (payment.RulingTypedData). Its signature
// goes into CaseBallotTypedData.
func (g *Governance) RulingTypedData(ctx context.Context, deal payment.DealID, payeeBps uint16) ([]byte, error) {
	esc, err := g.escrow("ruling typed data")
	if err != nil {
		return nil, err
	}
	if payeeBps > payment.MaxBps {
		return nil, fmt.Errorf("governance: ruling on %s: %w: payee share %d bps", deal, ErrInvalid, payeeBps)
	}
	chainID, contract, err := esc.EscrowContract(ctx)
	if err != nil {
		return nil, fmt.Errorf("governance: ruling typed data: %w", err)
	}
	return payment.RulingTypedData(chainID, contract, deal, payeeBps), nil
}

// CaseBallotTypedData is the second: the arbiter's ballot on deal's case,
// carrying ruling, the signature of RulingTypedData's, stamped now. Give
// it and the wallet's signature of it to Submit, which records the ballot
// once the arbiter sits on the case's panel and ruling is theirs.
func (g *Governance) CaseBallotTypedData(deal payment.DealID, arbiter common.Address, payeeBps uint16, ruling []byte) []byte {
	m := &govmsg.CaseBallot{Deal: deal, Arbiter: arbiter, PayeeBps: payeeBps, Ruling: ruling, Time: millis(g.cfg.Now())}
	td, _ := json.Marshal(m.TypedData(g.domain))
	return td
}

// submitCaseBallot records a ballot an arbiter's wallet signed (Submit).
func (g *Governance) submitCaseBallot(ctx context.Context, m *govmsg.CaseBallot, sig []byte) (common.Hash, error) {
	esc, err := g.escrow("submit ruling")
	if err != nil {
		return common.Hash{}, err
	}
	digest := m.Digest(g.domain)
	if err := govmsg.Verify(digest, sig, m.Arbiter); err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit ruling: %w: %v", ErrBadSignature, err)
	}
	if m.PayeeBps > payment.MaxBps {
		return common.Hash{}, fmt.Errorf("governance: submit ruling on %s: %w: payee share %d bps", m.Deal, ErrInvalid, m.PayeeBps)
	}
	c, err := g.Case(ctx, m.Deal)
	if err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit ruling: %w", err)
	}
	if !slices.Contains(c.Panel, m.Arbiter) {
		return common.Hash{}, fmt.Errorf("governance: submit ruling on %s: %w: %s", m.Deal, ErrNotArbiter, m.Arbiter)
	}
	chainID, contract, err := esc.EscrowContract(ctx)
	if err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit ruling: %w", err)
	}
	if err := govmsg.Verify(payment.RulingDigest(chainID, contract, m.Deal, m.PayeeBps), m.Ruling, m.Arbiter); err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit ruling on %s: %w: escrow ruling: %v", m.Deal, ErrBadSignature, err)
	}
	if err := g.putRuling(ctx, m, sig, chainID, contract); err != nil {
		return common.Hash{}, fmt.Errorf("governance: submit ruling on %s: %w", m.Deal, err)
	}
	return digest, nil
}

// Case returns the case on a deal as this replica sees it now. No case
// (none recorded, or none by a party of a disputed deal) is ErrNoCase.
func (g *Governance) Case(ctx context.Context, deal payment.DealID) (Case, error) {
	if _, err := g.escrow("case"); err != nil {
		return Case{}, err
	}
	info, err := g.dealInfo(ctx, deal, false)
	if errors.Is(err, payment.ErrUnknownDeal) {
		return Case{}, fmt.Errorf("governance: case %s: %w", deal, ErrNoCase)
	}
	if err != nil {
		return Case{}, fmt.Errorf("governance: case %s: %w", deal, err)
	}
	c, ok := g.caseOf(info)
	if !ok {
		return Case{}, fmt.Errorf("governance: case %s: %w", deal, ErrNoCase)
	}
	return c, nil
}

// Cases returns every case this replica holds, latest opened first.
func (g *Governance) Cases(ctx context.Context) ([]Case, error) {
	if _, err := g.escrow("cases"); err != nil {
		return nil, err
	}
	var out []Case
	for _, deal := range g.book.caseDeals() {
		c, err := g.Case(ctx, deal)
		if errors.Is(err, ErrNoCase) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Case) int { return b.Opened.Compare(a.Opened) })
	return out, nil
}

// Deals returns the deals known to the DApp: recorded by their payers
// (OpenDeal) or the subject of a case, with their terms and status as the
// chain holds them, latest deadline first.
func (g *Governance) Deals(ctx context.Context) ([]Deal, error) {
	if _, err := g.escrow("deals"); err != nil {
		return nil, err
	}
	var out []Deal
	for _, id := range g.book.allDeals() {
		info, err := g.dealInfo(ctx, id, false)
		if errors.Is(err, payment.ErrUnknownDeal) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("governance: deals: %w", err)
		}
		d := dealOf(info)
		rec, ok := g.book.dealRecord(id, info.Payer)
		if !ok {
			if _, isCase := g.caseOf(info); !isCase {
				continue // neither recorded by its payer nor under a case
			}
		}
		if ok {
			d.Recorded = time.UnixMilli(int64(rec.Time))
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Deal) int { return b.Deadline.Compare(a.Deadline) })
	return out, nil
}

func dealOf(info payment.EscrowInfo) Deal {
	return Deal{
		ID: info.ID, Payer: info.Payer, Payee: info.Payee, Fund: info.Fund, Amount: (*hexutil.Big)(info.Amount),
		FeeBps: info.FeeBps, Deadline: info.Deadline, Arbiters: slices.Clone(info.Arbiters), PanelSize: info.PanelSize,
		Status: info.Status.String(),
	}
}
