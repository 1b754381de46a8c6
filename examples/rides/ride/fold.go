package ride

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

// Ride states.
const (
	StateRequested  = "requested"
	StateAccepted   = "accepted"
	StateArriving   = "arriving"
	StateInProgress = "in_progress"
	StateCompleted  = "completed"
	StateCancelled  = "cancelled"
	StateDisputed   = "disputed"
)

// State is a ride as its actions make it, the same on every replica that
// holds the same actions.
type State struct {
	ID        string         `json:"id"`
	State     string         `json:"state"`
	Passenger common.Address `json:"passenger"`
	Request   RequestData    `json:"request"`
	RequestID common.Hash    `json:"requestId"`
	// RequestedAt is the request's signed time, in milliseconds.
	RequestedAt uint64 `json:"requestedAt"`
	// Driver is the winning accept's driver (zero while requested).
	Driver   common.Address `json:"driver"`
	AcceptID common.Hash    `json:"acceptId"`
	// Offers are every accept stored, the winner among them, in
	// (timestamp, digest) order.
	Offers []Offer `json:"offers"`
	// Confirmed is set once the passenger confirmed the driver with an
	// escrow deal (Escrow).
	Confirmed bool        `json:"confirmed"`
	Escrow    common.Hash `json:"escrow"`
	// Completed is set once the ride reached completed, even if disputed
	// afterwards.
	Completed bool `json:"completed"`
	// DisputedBy and Reason tell who disputed and why.
	DisputedBy common.Address `json:"disputedBy"`
	Reason     string         `json:"reason,omitempty"`
	// PassengerRating is the passenger's rating of the driver, DriverRating
	// the driver's of the passenger (0: none).
	PassengerRating int `json:"passengerRating"`
	DriverRating    int `json:"driverRating"`
	// Updated is the latest signed time among the actions that counted.
	Updated uint64 `json:"updated"`
	// Actions is how many actions the document holds, counted or not.
	Actions int `json:"actions"`
}

// Offer is one driver's accept.
type Offer struct {
	Driver common.Address `json:"driver"`
	ID     common.Hash    `json:"id"`
	TS     uint64         `json:"ts"`
}

// kindRank orders actions signed in the same millisecond in the order of
// the ride, so that a step is never skipped for sorting before its cause.
var kindRank = map[string]int{KindRequest: 0, KindAccept: 1, KindConfirm: 2, KindArrive: 3, KindStart: 4, KindComplete: 5, KindRate: 6, KindDispute: 7, KindCancel: 8}

type stored struct {
	Action
	digest common.Hash
}

// Fold computes a ride's state from its document, which holds actions
// that passed Validator. It sorts them by (signed timestamp, kind, digest) and
// runs the state machine over them (actions of one millisecond in the
// order of a ride: request, accept, confirm, arrive, start, complete, rate,
// dispute, cancel), skipping any that does not apply:
//
//   - the first request is the ride (a passenger signing several for one
//     slot gets only the first);
//   - the first accept of it moves requested to accepted; the later ones
//     are offers;
//   - the passenger's first confirm, while accepted or arriving, names the
//     driver (switching to that offer, back to accepted, if it is another
//     one) and the escrow deal;
//   - the driver's arrive moves accepted to arriving, start moves arriving
//     to in_progress once confirmed, complete moves in_progress to
//     completed;
//   - cancel moves requested, accepted or arriving to cancelled;
//   - a party's dispute moves a confirmed ride, not yet cancelled, to
//     disputed;
//   - each party's first rating of a completed ride counts.
func Fold(id string, doc json.RawMessage) (State, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		return State{}, fmt.Errorf("ride: fold %s: %w", id, err)
	}
	acts := make([]stored, 0, len(fields))
	for name, raw := range fields {
		if !strings.HasPrefix(name, FieldPrefix) {
			continue
		}
		var a Action
		if err := json.Unmarshal(raw, &a); err != nil {
			return State{}, fmt.Errorf("ride: fold %s: %w", id, err)
		}
		var d common.Hash
		if err := d.UnmarshalText([]byte("0x" + name[len(FieldPrefix):])); err != nil {
			return State{}, fmt.Errorf("ride: fold %s: field %.70q: %w", id, name, err)
		}
		acts = append(acts, stored{a, d})
	}
	slices.SortFunc(acts, func(x, y stored) int {
		if x.TS != y.TS {
			if x.TS < y.TS {
				return -1
			}
			return 1
		}
		if rx, ry := kindRank[x.Kind], kindRank[y.Kind]; rx != ry {
			return rx - ry
		}
		return bytes.Compare(x.digest[:], y.digest[:])
	})
	s := State{ID: id, Actions: len(acts)}
	accepts := map[common.Hash]Action{}
	for _, a := range acts {
		if s.State == "" {
			if a.Kind == KindRequest {
				var rd RequestData
				if json.Unmarshal([]byte(a.Data), &rd) == nil {
					s.State, s.Passenger, s.Request, s.RequestID, s.RequestedAt, s.Updated = StateRequested, a.User, rd, a.digest, a.TS, a.TS
				}
			}
			continue
		}
		applied := s.step(a, accepts)
		if applied {
			s.Updated = a.TS
		}
	}
	if s.Offers == nil {
		s.Offers = []Offer{}
	}
	return s, nil
}

// step applies one action; it reports whether it counted.
func (s *State) step(a stored, accepts map[common.Hash]Action) bool {
	switch a.Kind {
	case KindAccept:
		if a.Parent != s.RequestID {
			return false
		}
		accepts[a.digest] = a.Action
		s.Offers = append(s.Offers, Offer{Driver: a.User, ID: a.digest, TS: a.TS})
		if s.State == StateRequested {
			s.State, s.Driver, s.AcceptID = StateAccepted, a.User, a.digest
			return true
		}
	case KindConfirm:
		acc, ok := accepts[a.Parent]
		if !ok || s.Confirmed || (s.State != StateAccepted && s.State != StateArriving) {
			return false
		}
		var cd ConfirmData
		if json.Unmarshal([]byte(a.Data), &cd) != nil {
			return false
		}
		if a.Parent != s.AcceptID {
			s.State, s.Driver, s.AcceptID = StateAccepted, acc.User, a.Parent
		}
		s.Confirmed, s.Escrow = true, cd.Escrow
		return true
	case KindArrive, KindStart, KindComplete:
		if a.Parent != s.AcceptID || a.User != s.Driver {
			return false
		}
		switch {
		case a.Kind == KindArrive && s.State == StateAccepted:
			s.State = StateArriving
		case a.Kind == KindStart && s.State == StateArriving && s.Confirmed:
			s.State = StateInProgress
		case a.Kind == KindComplete && s.State == StateInProgress:
			s.State, s.Completed = StateCompleted, true
		default:
			return false
		}
		return true
	case KindCancel:
		if a.Parent != s.RequestID || a.User != s.Passenger {
			return false
		}
		if s.State == StateRequested || s.State == StateAccepted || s.State == StateArriving {
			s.State = StateCancelled
			return true
		}
	case KindDispute:
		if a.Parent != s.AcceptID || !s.Confirmed || (a.User != s.Passenger && a.User != s.Driver) {
			return false
		}
		if s.State == StateCancelled || s.State == StateDisputed {
			return false
		}
		var dd DisputeData
		if json.Unmarshal([]byte(a.Data), &dd) != nil {
			return false
		}
		s.State, s.DisputedBy, s.Reason = StateDisputed, a.User, dd.Reason
		return true
	case KindRate:
		if a.Parent != s.AcceptID || !s.Completed {
			return false
		}
		var rd RateData
		if json.Unmarshal([]byte(a.Data), &rd) != nil {
			return false
		}
		switch {
		case a.User == s.Passenger && s.PassengerRating == 0:
			s.PassengerRating = rd.Stars
		case a.User == s.Driver && s.DriverRating == 0:
			s.DriverRating = rd.Stars
		default:
			return false
		}
		return true
	}
	return false
}
