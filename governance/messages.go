package governance

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/dpaas/dpaas/internal/govern"
	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/internal/tally"
	"github.com/dpaas/dpaas/store"
)

// The store collections governance keeps its signed messages in. Their
// documents never change once written: validators refuse anything but a
// put of a correctly signed message under its own ID.
const (
	ProposalsCollection = "_governance.proposals"
	BallotsCollection   = "_governance.ballots"
	ClosingsCollection  = "_governance.closings"
	// DelegationsCollection holds delegations of voting power.
	DelegationsCollection = "_governance.delegations"
)

// Limits on what a message may hold, the same on every replica.
const (
	MaxTitle       = 200
	MaxBody        = 16 << 10
	MaxReason      = 1000
	MaxChoiceLabel = 200
	MaxActions     = 64
	MaxActionValue = 16 << 10
	// MaxClosingBallots bounds the ballots one closing lists (about 4.3 MB
	// of document, under the store's MaxWriteSize).
	MaxClosingBallots = 100_000
)

// record is a message as a store document.
type record struct {
	Typed   json.RawMessage `json:"typed"` // the typed data, as a wallet signs it
	Sig     hexutil.Bytes   `json:"sig"`
	Closer  string          `json:"closer,omitempty"`
	Ballots ballotList      `json:"ballots,omitempty"`
}

// ballotList is a closing's list of ballot IDs, written as one base64
// string of the IDs end to end: a third of the size of hex strings, and one
// JSON value to parse.
type ballotList []common.Hash

func (l ballotList) MarshalJSON() ([]byte, error) {
	raw := make([]byte, 0, len(l)*common.HashLength)
	for _, h := range l {
		raw = append(raw, h[:]...)
	}
	return json.Marshal(raw) // []byte marshals as base64
}

func (l *ballotList) UnmarshalJSON(b []byte) error {
	var raw []byte
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw)%common.HashLength != 0 {
		return fmt.Errorf("ballot list of %d bytes is not a list of IDs", len(raw))
	}
	out := make(ballotList, len(raw)/common.HashLength)
	for i := range out {
		copy(out[i][:], raw[i*common.HashLength:])
	}
	*l = out
	return nil
}

func closingDocID(c *govmsg.Closing, closer common.Address) string {
	return c.Proposal.Hex()[2:] + "-" + c.Root.Hex()[2:] + "-" + strings.ToLower(closer.Hex()[2:])
}

// validators returns the store validators of governance's collections in
// domain d.
func validators(d govmsg.Domain) map[string]store.Validator {
	check := func(coll string) store.Validator {
		return func(w store.Write) error {
			if w.Kind != "put" {
				return fmt.Errorf("%w: %s on %s: governance messages never change", ErrInvalid, w.Kind, coll)
			}
			_, err := decodeFields(d, coll, w.ID, w.Fields)
			return err
		}
	}
	out := map[string]store.Validator{
		ProposalsCollection:   check(ProposalsCollection),
		BallotsCollection:     check(BallotsCollection),
		ClosingsCollection:    check(ClosingsCollection),
		DelegationsCollection: check(DelegationsCollection),
	}
	for coll, v := range caseDocValidators(d) {
		out[coll] = v
	}
	return out
}

// decoded is one verified message.
type decoded struct {
	proposal   *govern.Proposal
	ballot     *govern.Ballot
	closing    *govern.Closing
	delegation *govern.Delegation
}

// decodeRecord reads and checks one document of coll: a message of the
// collection's type, in domain d, signed by the account it names, under
// its own ID, within the limits.
func decodeRecord(d govmsg.Domain, coll, id string, raw json.RawMessage) (decoded, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return decoded{}, fmt.Errorf("%w: %s document: %v", ErrInvalid, coll, err)
	}
	return decodeFields(d, coll, id, fields)
}

// decodeFields is decodeRecord on a document already split into fields,
// as a store validator sees it.
func decodeFields(d govmsg.Domain, coll, id string, fields map[string]json.RawMessage) (decoded, error) {
	var rec record
	rec.Typed = fields["typed"]
	if err := json.Unmarshal(fields["sig"], &rec.Sig); err != nil {
		return decoded{}, fmt.Errorf("%w: %s document: signature: %v", ErrInvalid, coll, err)
	}
	for name, v := range fields {
		var err error
		switch name {
		case "typed", "sig":
		case "closer":
			err = json.Unmarshal(v, &rec.Closer)
		case "ballots":
			err = json.Unmarshal(v, &rec.Ballots)
		default:
			err = fmt.Errorf("unknown field %.40q", name)
		}
		if err != nil {
			return decoded{}, fmt.Errorf("%w: %s document: %v", ErrInvalid, coll, err)
		}
	}
	msg, err := govmsg.ParseTypedData(rec.Typed, d)
	if err != nil {
		return decoded{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	digest := msg.Digest(d)
	var out decoded
	var signer common.Address
	var wantID string
	switch m := msg.(type) {
	case *govmsg.Proposal:
		if coll != ProposalsCollection {
			break
		}
		if err := checkProposal(m); err != nil {
			return decoded{}, err
		}
		signer, wantID = m.Author, digest.Hex()
		out.proposal = &govern.Proposal{Proposal: *m, ID: digest}
	case *govmsg.Ballot:
		if coll != BallotsCollection {
			break
		}
		if len(m.Reason) > MaxReason {
			return decoded{}, fmt.Errorf("%w: reason of %d bytes, limit %d", ErrInvalid, len(m.Reason), MaxReason)
		}
		if len(m.Choice) > tally.MaxChoices {
			return decoded{}, fmt.Errorf("%w: %d choices, limit %d", ErrInvalid, len(m.Choice), tally.MaxChoices)
		}
		signer, wantID = m.Voter, digest.Hex()
		out.ballot = &govern.Ballot{Ballot: *m, ID: digest}
	case *govmsg.Delegation:
		if coll != DelegationsCollection {
			break
		}
		signer, wantID = m.Delegator, digest.Hex()
		out.delegation = &govern.Delegation{Delegation: *m, ID: digest}
	case *govmsg.Closing:
		if coll != ClosingsCollection {
			break
		}
		if !common.IsHexAddress(rec.Closer) {
			return decoded{}, fmt.Errorf("%w: closing without a closer", ErrInvalid)
		}
		signer = common.HexToAddress(rec.Closer)
		wantID = closingDocID(m, signer)
		if len(rec.Ballots) > MaxClosingBallots || !slices.IsSortedFunc(rec.Ballots, cmpHash) ||
			len(slices.Compact(slices.Clone(rec.Ballots))) != len(rec.Ballots) || tally.Root(rec.Ballots) != m.Root {
			return decoded{}, fmt.Errorf("%w: the closing's ballots do not make its root", ErrInvalid)
		}
		out.closing = &govern.Closing{Closing: *m, Closer: signer, Ballots: rec.Ballots, Sig: rec.Sig}
	}
	if wantID == "" {
		return decoded{}, fmt.Errorf("%w: a %T in %s", ErrInvalid, msg, coll)
	}
	if id != wantID {
		return decoded{}, fmt.Errorf("%w: document %.80q holds message %s", ErrInvalid, id, wantID)
	}
	if err := govmsg.Verify(digest, rec.Sig, signer); err != nil {
		return decoded{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return out, nil
}

func cmpHash(a, b common.Hash) int { return strings.Compare(string(a[:]), string(b[:])) }

func checkProposal(p *govmsg.Proposal) error {
	switch {
	case len(p.Title) > MaxTitle:
		return fmt.Errorf("%w: title of %d bytes, limit %d", ErrInvalid, len(p.Title), MaxTitle)
	case len(p.Body) > MaxBody:
		return fmt.Errorf("%w: body of %d bytes, limit %d", ErrInvalid, len(p.Body), MaxBody)
	case len(p.Actions) > MaxActions:
		return fmt.Errorf("%w: %d actions, limit %d", ErrInvalid, len(p.Actions), MaxActions)
	}
	for _, c := range p.Choices {
		if len(c) > MaxChoiceLabel {
			return fmt.Errorf("%w: a choice label of %d bytes, limit %d", ErrInvalid, len(c), MaxChoiceLabel)
		}
	}
	for _, a := range p.Actions {
		if len(a.Value) > MaxActionValue || len(a.Kind) > MaxTitle || len(a.Name) > MaxTitle {
			return fmt.Errorf("%w: action %.40q too large", ErrInvalid, a.Kind)
		}
		if a.Kind == ActionSetParam && !json.Valid(a.Value) {
			return fmt.Errorf("%w: parameter %.40q is not JSON", ErrInvalid, a.Name)
		}
		if a.Kind == ActionApproveRelease {
			var r Release
			if err := json.Unmarshal(a.Value, &r); err != nil || r.Version == "" || len(r.Executables) == 0 {
				return fmt.Errorf("%w: release %.40q needs a version and executable hashes", ErrInvalid, a.Name)
			}
		}
	}
	if _, err := govern.Rules(p); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
