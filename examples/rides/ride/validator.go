package ride

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/store"
)

// Collection is the store collection that holds the rides.
const Collection = "rides"

// Validator returns the store validator of the rides collection for the
// domain d. Install it on every replica (dapp.Config.Store.Validators).
func Validator(d Domain) store.Validator {
	return func(w store.Write) error {
		_, err := d.Check(w.ID, w.Kind, w.Field, w.Value, w.Before)
		return err
	}
}

// Check is the validator's rule for one write to ride id: an operation of
// kind ("set" is the only one allowed) on field with value, given the
// document before it. It returns the decoded action. Servers call it on an
// action before writing it, to answer the user with the same reason every
// replica would refuse it for.
func (d Domain) Check(id, kind, field string, value, before json.RawMessage) (Action, error) {
	if kind != "set" {
		return Action{}, fmt.Errorf("%w: %s on a ride; actions are only added", ErrNotAllowed, kind)
	}
	var a Action
	if err := decodeStrict(value, &a); err != nil {
		return Action{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if a.Ride != id {
		return Action{}, fmt.Errorf("%w: action for ride %.64q stored in %.64q", ErrInvalid, a.Ride, id)
	}
	digest, err := d.Verify(a)
	if err != nil {
		return Action{}, err
	}
	if field != Field(digest) {
		return Action{}, fmt.Errorf("%w: stored under %.70q, not under its digest", ErrInvalid, field)
	}
	if err := d.checkStep(a, before); err != nil {
		return Action{}, err
	}
	return a, nil
}

// checkStep checks what a's kind requires. It only asks whether things are
// present in before, so that its answer can only go from refused to
// accepted as a replica learns more, never the other way.
func (d Domain) checkStep(a Action, before json.RawMessage) error {
	passenger, window, _, err := ParseRideID(a.Ride)
	if err != nil {
		return err
	}
	if len(a.Data) > MaxData || !utf8.ValidString(a.Data) {
		return fmt.Errorf("%w: data over %d bytes or not UTF-8", ErrInvalid, MaxData)
	}
	if a.TS == 0 {
		return fmt.Errorf("%w: no timestamp", ErrInvalid)
	}
	if a.Kind == KindRequest {
		if a.User != passenger {
			return fmt.Errorf("%w: only passenger %s requests ride %s", ErrNotAllowed, passenger, a.Ride)
		}
		if a.TS/Window != window {
			return fmt.Errorf("%w: request signed at %d is outside the window of ride %s", ErrNotAllowed, a.TS, a.Ride)
		}
		if a.Parent != (common.Hash{}) {
			return fmt.Errorf("%w: a request has no parent", ErrInvalid)
		}
		var rd RequestData
		if err := decodeStrict([]byte(a.Data), &rd); err != nil {
			return fmt.Errorf("%w: request data: %v", ErrInvalid, err)
		}
		return rd.check()
	}
	parent, err := parentOf(a, before)
	if err != nil {
		return err
	}
	if a.TS < parent.TS {
		return fmt.Errorf("%w: %s signed before its parent", ErrInvalid, a.Kind)
	}
	switch a.Kind {
	case KindAccept:
		if parent.Kind != KindRequest {
			return fmt.Errorf("%w: an accept names a request", ErrInvalid)
		}
		if a.User == passenger {
			return fmt.Errorf("%w: a passenger does not accept their own ride", ErrNotAllowed)
		}
		if a.TS > parent.TS+AcceptWindow {
			return fmt.Errorf("%w: accept more than %d ms after the request", ErrNotAllowed, AcceptWindow)
		}
		return emptyData(a)
	case KindCancel:
		if parent.Kind != KindRequest {
			return fmt.Errorf("%w: a cancel names the request", ErrInvalid)
		}
		if a.User != passenger {
			return fmt.Errorf("%w: only the passenger cancels", ErrNotAllowed)
		}
		return emptyData(a)
	}
	if parent.Kind != KindAccept {
		return fmt.Errorf("%w: a %s names an accept", ErrInvalid, a.Kind)
	}
	switch a.Kind {
	case KindConfirm:
		if a.User != passenger {
			return fmt.Errorf("%w: only the passenger confirms a driver", ErrNotAllowed)
		}
		var cd ConfirmData
		if err := decodeStrict([]byte(a.Data), &cd); err != nil || cd.Escrow == (common.Hash{}) {
			return fmt.Errorf("%w: confirm data names no escrow deal", ErrInvalid)
		}
		return nil
	case KindArrive, KindStart, KindComplete:
		if a.User != parent.User {
			return fmt.Errorf("%w: only the accepting driver %s advances the ride", ErrNotAllowed, parent.User)
		}
		return emptyData(a)
	case KindDispute, KindRate:
		if a.User != passenger && a.User != parent.User {
			return fmt.Errorf("%w: only the passenger or the driver may %s", ErrNotAllowed, a.Kind)
		}
		if a.Kind == KindDispute {
			var dd DisputeData
			if err := decodeStrict([]byte(a.Data), &dd); err != nil || dd.Reason == "" || len(dd.Reason) > 280 {
				return fmt.Errorf("%w: dispute data needs a reason of 1 to 280 bytes", ErrInvalid)
			}
			return nil
		}
		var rd RateData
		if err := decodeStrict([]byte(a.Data), &rd); err != nil || rd.Stars < 1 || rd.Stars > 5 || len(rd.Comment) > 280 {
			return fmt.Errorf("%w: a rating is 1 to 5 stars and a comment of at most 280 bytes", ErrInvalid)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind %.32q", ErrInvalid, a.Kind)
}

func emptyData(a Action) error {
	if a.Data != "" && a.Data != "{}" {
		return fmt.Errorf("%w: a %s carries no data", ErrInvalid, a.Kind)
	}
	return nil
}

func (rd RequestData) check() error {
	for _, p := range []Point{rd.From, rd.To} {
		if p.X < 0 || p.Y < 0 || p.X > MapSize || p.Y > MapSize {
			return fmt.Errorf("%w: point (%d,%d) off the map", ErrInvalid, p.X, p.Y)
		}
	}
	if rd.From == rd.To {
		return fmt.Errorf("%w: pickup and drop-off are the same place", ErrInvalid)
	}
	fare, ok := new(big.Int).SetString(rd.Fare, 10)
	if !ok || fare.Sign() <= 0 || fare.BitLen() > 128 || strings.HasPrefix(rd.Fare, "0") || strings.HasPrefix(rd.Fare, "+") {
		return fmt.Errorf("%w: fare %.40q is not a positive decimal integer", ErrInvalid, rd.Fare)
	}
	return nil
}

// parentOf finds a's parent in the document before it.
func parentOf(a Action, before json.RawMessage) (Action, error) {
	if a.Parent == (common.Hash{}) {
		return Action{}, fmt.Errorf("%w: a %s names its parent action", ErrInvalid, a.Kind)
	}
	var doc map[string]json.RawMessage
	if len(before) > 0 {
		if err := json.Unmarshal(before, &doc); err != nil {
			return Action{}, fmt.Errorf("%w: ride document: %v", ErrInvalid, err)
		}
	}
	raw, ok := doc[Field(a.Parent)]
	if !ok {
		return Action{}, fmt.Errorf("%w: parent %s not in ride %s here", ErrNotAllowed, a.Parent.Hex()[:10], a.Ride)
	}
	var p Action
	if err := json.Unmarshal(raw, &p); err != nil {
		return Action{}, fmt.Errorf("%w: parent: %v", ErrInvalid, err)
	}
	return p, nil
}
