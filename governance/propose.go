package governance

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/internal/tally"
)

// Type is a kind of vote.
type Type string

// The kinds of vote. See the package documentation for how each counts.
const (
	Basic        Type = "basic"         // for, against, abstain
	SingleChoice Type = "single-choice" // one of Choices
	Approval     Type = "approval"      // any number of Choices
	Weighted     Type = "weighted"      // power split over Choices by weight
	Quadratic    Type = "quadratic"     // like Weighted, square roots summed
	RankedChoice Type = "ranked-choice" // Choices in order; instant runoff
)

// Electorates.
const (
	// Members gives each member one vote.
	Members = "members"
	// Tokens gives each account its token balance at the proposal's
	// snapshot block, read from the chain (Config.Balances).
	Tokens = "token"
)

// ErrBelowThreshold is returned by Propose when the author of a Tokens
// proposal holds less than the genesis ProposalThreshold.
var ErrBelowThreshold = errors.New("governance: proposer holds too few tokens")

// Proposal is a question put to the DApp's members.
type Proposal struct {
	Title string
	Body  string
	// Type is the kind of vote; "" means Basic.
	Type Type
	// Choices are the options of every Type but Basic.
	Choices []string
	// Start and End bound the vote. Zero Start means now; zero End means
	// Start plus the genesis VotingPeriod.
	Start, End time.Time
	// Quorum is the least number of members who must vote (abstentions
	// count); nil means the genesis Quorum.
	Quorum *big.Int
	// Threshold is the share, in basis points, the winner must exceed:
	// for Basic, of for+against (0 means 5000, a majority); for other
	// types, of the participating power (0 means the top choice wins).
	Threshold uint16
	// Actions run on every replica, in order, once the proposal is final
	// and passed.
	Actions []Action
	// Electorate is Members ("" too) or Tokens.
	Electorate string
	// Snapshot is, for Tokens, the block whose balances count; 0 means the
	// chain's latest block when the proposal is made.
	Snapshot uint64
}

// Action is one thing a passed proposal does.
type Action struct {
	Kind  string
	Name  string
	Value json.RawMessage
}

// SetParam is the action that sets parameter name to value (any value
// encoding/json can encode).
func SetParam(name string, value any) Action {
	v, err := json.Marshal(value)
	if err != nil {
		// A value that cannot be encoded makes an action Propose refuses.
		v = nil
	}
	return Action{Kind: ActionSetParam, Name: name, Value: v}
}

// AdmitMember is the action that makes who a member.
func AdmitMember(who common.Address) Action {
	return Action{Kind: ActionAdmitMember, Name: who.Hex()}
}

// RemoveMember is the action that ends who's membership.
func RemoveMember(who common.Address) Action {
	return Action{Kind: ActionRemoveMember, Name: who.Hex()}
}

// Release is a build of the DApp's code that its members approve: which
// executables (by SHA-256, per GOOS/GOARCH) and web UI (a UnixFS CID) an
// instance must run to be verified as running approved code.
type Release struct {
	Version string `json:"version"`
	// Executables maps "linux/amd64" and the like to the executable's
	// SHA-256 in hex.
	Executables map[string]string `json:"executables"`
	// Source is the source revision the release is built from.
	Source string `json:"source,omitempty"`
	// UI is the CID of the release's web UI directory, if any.
	UI string `json:"ui,omitempty"`
}

// ApproveRelease is the action that approves r; Releases lists it on
// every replica once the proposal passes.
func ApproveRelease(r Release) Action {
	v, err := json.Marshal(r)
	if err != nil {
		v = nil // refused by Propose
	}
	return Action{Kind: ActionApproveRelease, Name: r.Version, Value: v}
}

// Releases returns the approved releases, oldest first.
func (g *Governance) Releases(ctx context.Context) ([]Release, error) {
	if err := g.checkOpen("releases"); err != nil {
		return nil, err
	}
	var out []Release
	for _, raw := range g.evaluate().Releases {
		var r Release
		if err := json.Unmarshal(raw, &r); err != nil {
			continue // refused when proposed; cannot be here
		}
		out = append(out, r)
	}
	return out, nil
}

// Choice is what a ballot says; make one with For, Against, Abstain,
// Option, Approve, Rank or Weights.
type Choice struct{ values []uint32 }

// For, Against and Abstain are the choices of a Basic vote.
func For() Choice     { return Choice{[]uint32{tally.For}} }
func Against() Choice { return Choice{[]uint32{tally.Against}} }
func Abstain() Choice { return Choice{[]uint32{tally.Abstain}} }

// Option chooses choice i (from 0) of a SingleChoice vote.
func Option(i int) Choice { return Choice{[]uint32{uint32(i)}} }

// Approve approves choices of an Approval vote.
func Approve(choices ...int) Choice { return Choice{u32s(choices)} }

// Rank ranks choices of a RankedChoice vote, most preferred first.
func Rank(choices ...int) Choice { return Choice{u32s(choices)} }

// Weights gives one weight per choice of a Weighted or Quadratic vote.
func Weights(w ...uint32) Choice { return Choice{slices.Clone(w)} }

func u32s(xs []int) []uint32 {
	out := make([]uint32, len(xs))
	for i, x := range xs {
		if x < 0 || x > 1<<32-1 {
			x = 1<<32 - 1 // refused as out of range
		}
		out[i] = uint32(x)
	}
	return out
}

// Signer signs governance messages for an account: the instance's key,
// or an end user's wallet.
type Signer interface {
	Account() common.Address
	// Sign signs the EIP-712 digest of typedData (the JSON a wallet would
	// show and sign with eth_signTypedData_v4): 65 bytes, r || s || v.
	Sign(ctx context.Context, typedData []byte, digest common.Hash) ([]byte, error)
}

// KeySigner is a Signer holding a private key.
func KeySigner(key *ecdsa.PrivateKey) Signer { return keySigner{key} }

type keySigner struct{ key *ecdsa.PrivateKey }

func (k keySigner) Account() common.Address { return crypto.PubkeyToAddress(k.key.PublicKey) }

func (k keySigner) Sign(_ context.Context, _ []byte, digest common.Hash) ([]byte, error) {
	return govmsg.Sign(k.key, digest)
}

// Propose puts a proposal to the vote, signed by the instance, and returns
// its ID.
func (g *Governance) Propose(ctx context.Context, p Proposal) (ID, error) {
	return g.ProposeAs(ctx, KeySigner(g.cfg.Key), p)
}

// ProposeAs puts a proposal signed by s.
func (g *Governance) ProposeAs(ctx context.Context, s Signer, p Proposal) (ID, error) {
	if err := g.checkOpen("propose"); err != nil {
		return ID{}, err
	}
	now := g.cfg.Now()
	if p.Start.IsZero() {
		p.Start = now
	}
	if p.End.IsZero() {
		p.End = p.Start.Add(g.cfg.Genesis.VotingPeriod)
	}
	if p.Type == "" {
		p.Type = Basic
	}
	quorum := p.Quorum
	if quorum == nil && g.cfg.Genesis.Quorum > 0 {
		quorum = new(big.Int).SetUint64(g.cfg.Genesis.Quorum)
	}
	if p.Electorate == "" {
		p.Electorate = Members
	}
	m := &govmsg.Proposal{
		Author: s.Account(), Title: p.Title, Body: p.Body, Kind: string(p.Type), Choices: p.Choices,
		Start: millis(p.Start), End: millis(p.End), Electorate: p.Electorate, Snapshot: p.Snapshot, Quorum: quorum,
		Threshold: p.Threshold, Created: millis(now),
	}
	for _, a := range p.Actions {
		if a.Kind == ActionSetParam && !json.Valid(a.Value) {
			return ID{}, fmt.Errorf("governance: propose: %w: parameter %.40q has no JSON value", ErrInvalid, a.Name)
		}
		m.Actions = append(m.Actions, govmsg.Action{Kind: a.Kind, Name: a.Name, Value: a.Value})
	}
	if err := checkProposal(m); err != nil {
		return ID{}, fmt.Errorf("governance: propose: %w", err)
	}
	if err := g.mayPropose(ctx, m); err != nil {
		return ID{}, fmt.Errorf("governance: propose: %w", err)
	}
	id, err := g.submit(ctx, s, m, ProposalsCollection)
	return ID(id), err
}

// Vote casts the instance's ballot on proposal id. A later ballot replaces
// an earlier one until the vote ends.
func (g *Governance) Vote(ctx context.Context, id ID, c Choice) error {
	return g.VoteAs(ctx, KeySigner(g.cfg.Key), id, c, "")
}

// VoteAs casts a ballot signed by s, with an optional reason (at most
// MaxReason bytes).
func (g *Governance) VoteAs(ctx context.Context, s Signer, id ID, c Choice, reason string) error {
	if err := g.checkOpen("vote"); err != nil {
		return err
	}
	o, ok := g.current().Outcomes[common.Hash(id)]
	if !ok {
		// Perhaps it just arrived.
		if o, ok = g.evaluate().Outcomes[common.Hash(id)]; !ok {
			return fmt.Errorf("governance: vote on %s: %w", id, ErrNotFound)
		}
	}
	if o.Refused != nil {
		return fmt.Errorf("governance: vote on %s: %w: %v", id, ErrNotOpen, o.Refused)
	}
	b := &govmsg.Ballot{Proposal: common.Hash(id), Voter: s.Account(), Choice: c.values, Time: millis(g.cfg.Now()), Reason: reason}
	if len(reason) > MaxReason {
		return fmt.Errorf("governance: vote: %w: reason of %d bytes, limit %d", ErrInvalid, len(reason), MaxReason)
	}
	one := tally.Ballot{Voter: b.Voter, Power: big.NewInt(1), Time: int64(b.Time), Choice: b.Choice}
	if err := tally.Check(o.Rules, &one); err != nil {
		sentinel := ErrInvalidChoice
		if b.Time < o.Proposal.Start || b.Time >= o.Proposal.End {
			sentinel = ErrNotOpen
		}
		return fmt.Errorf("governance: vote on %s: %w: %v", id, sentinel, err)
	}
	if _, ok := slices.BinarySearchFunc(o.Eligible, b.Voter, cmpAddress); !ok && o.Proposal.Electorate != Tokens {
		return fmt.Errorf("governance: vote on %s: %w: %s is neither a member nor a delegate", id, ErrNotMember, b.Voter)
	}
	_, err := g.submit(ctx, s, b, BallotsCollection)
	return err
}

// mayPropose checks that m's author may propose: a member, or for Tokens
// a holder of the threshold at the snapshot (which it fills in when 0).
func (g *Governance) mayPropose(ctx context.Context, m *govmsg.Proposal) error {
	if m.Electorate != Tokens {
		if _, ok := slices.BinarySearchFunc(g.current().Members, m.Author, cmpAddress); !ok {
			return fmt.Errorf("%w: %s", ErrNotMember, m.Author)
		}
		return nil
	}
	if g.cfg.Balances == nil {
		return fmt.Errorf("%w: a Tokens proposal needs Config.Balances", ErrInvalid)
	}
	if m.Snapshot == 0 {
		n, err := g.cfg.Balances.BlockNumber(ctx)
		if err != nil {
			return err
		}
		m.Snapshot = n
	}
	have, err := g.cfg.Balances.BalanceAt(ctx, m.Author, m.Snapshot)
	if err != nil {
		return err
	}
	threshold := g.cfg.Genesis.ProposalThreshold
	if threshold == nil || threshold.Sign() <= 0 {
		threshold = big.NewInt(1)
	}
	if have.Cmp(threshold) < 0 {
		return fmt.Errorf("%w: %s holds %s at block %d, the threshold is %s", ErrBelowThreshold, m.Author, have, m.Snapshot, threshold)
	}
	return nil
}

// submit signs m with s and stores it.
func (g *Governance) submit(ctx context.Context, s Signer, m govmsg.Message, coll string) (common.Hash, error) {
	td, err := json.Marshal(m.TypedData(g.domain))
	if err != nil {
		return common.Hash{}, fmt.Errorf("governance: %w", err)
	}
	digest := m.Digest(g.domain)
	sig, err := s.Sign(ctx, td, digest)
	if err != nil {
		return common.Hash{}, fmt.Errorf("governance: sign: %w", err)
	}
	return g.store(ctx, coll, digest, td, sig)
}

func (g *Governance) store(ctx context.Context, coll string, digest common.Hash, td, sig []byte) (common.Hash, error) {
	rec := record{Typed: td, Sig: sig}
	raw, _ := json.Marshal(rec)
	if _, err := decodeRecord(g.domain, coll, digest.Hex(), raw); err != nil {
		g.metrics.refused.WithLabelValues("local").Inc()
		return common.Hash{}, err
	}
	if err := g.cfg.Store.Collection(coll).Put(ctx, digest.Hex(), rec); err != nil {
		return common.Hash{}, fmt.Errorf("governance: store: %w", err)
	}
	g.absorb(coll, digest.Hex(), raw)
	g.poke()
	return digest, nil
}

// Submit stores a proposal, ballot, delegation, case, evidence or case
// ballot that a wallet signed: typedData is the JSON the wallet was given
// (eth_signTypedData_v4), sig its signature. It returns the message's ID
// (for a proposal, the proposal's ID).
func (g *Governance) Submit(ctx context.Context, typedData, sig []byte) (ID, error) {
	if err := g.checkOpen("submit"); err != nil {
		return ID{}, err
	}
	m, err := govmsg.ParseTypedData(typedData, g.domain)
	if err != nil {
		g.metrics.refused.WithLabelValues("local").Inc()
		return ID{}, fmt.Errorf("governance: submit: %w", err)
	}
	var coll string
	switch m := m.(type) {
	case *govmsg.Proposal:
		coll = ProposalsCollection
	case *govmsg.Ballot:
		coll = BallotsCollection
	case *govmsg.Delegation:
		coll = DelegationsCollection
	case *govmsg.Case:
		id, err := g.submitCase(ctx, m, sig)
		return ID(id), err
	case *govmsg.Evidence:
		id, err := g.submitEvidence(ctx, m, sig)
		return ID(id), err
	case *govmsg.CaseBallot:
		id, err := g.submitCaseBallot(ctx, m, sig)
		return ID(id), err
	default:
		return ID{}, fmt.Errorf("governance: submit: %w: only proposals, ballots, delegations, cases, evidence and case ballots are submitted", ErrInvalid)
	}
	// Store the canonical form, which hashes the same as what was signed.
	td, _ := json.Marshal(m.TypedData(g.domain))
	id, err := g.store(ctx, coll, m.Digest(g.domain), td, sig)
	return ID(id), err
}

// Delegate gives the instance's vote to another account, for proposals
// that start from now on, until revoked (Delegate to the zero address). A
// member who votes on a proposal takes their vote back for it.
func (g *Governance) Delegate(ctx context.Context, to common.Address) error {
	return g.DelegateAs(ctx, KeySigner(g.cfg.Key), to)
}

// DelegateAs gives s's vote to another account.
func (g *Governance) DelegateAs(ctx context.Context, s Signer, to common.Address) error {
	if err := g.checkOpen("delegate"); err != nil {
		return err
	}
	if to == s.Account() {
		return fmt.Errorf("governance: delegate: %w: to oneself", ErrInvalid)
	}
	_, err := g.submit(ctx, s, &govmsg.Delegation{Delegator: s.Account(), Delegate: to, Time: millis(g.cfg.Now())}, DelegationsCollection)
	return err
}

// TypedData returns the JSON a wallet signs for a ballot of voter on
// proposal id: give it to eth_signTypedData_v4, then pass it and the
// signature to Submit.
func (g *Governance) TypedData(id ID, voter common.Address, c Choice, reason string) []byte {
	b := &govmsg.Ballot{Proposal: common.Hash(id), Voter: voter, Choice: c.values, Time: millis(g.cfg.Now()), Reason: reason}
	td, _ := json.Marshal(b.TypedData(g.domain))
	return td
}

// Digest returns the EIP-712 digest of typed data (a governance message
// of the DApp appID, as TypedData writes it): what a signer signs.
func Digest(appID [32]byte, g Genesis, typedData []byte) (common.Hash, error) {
	d := domain(appID, g)
	m, err := govmsg.ParseTypedData(typedData, d)
	if err != nil {
		return common.Hash{}, fmt.Errorf("governance: digest: %w", err)
	}
	return m.Digest(d), nil
}

func millis(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}

func cmpAddress(a, b common.Address) int { return a.Cmp(b) }
