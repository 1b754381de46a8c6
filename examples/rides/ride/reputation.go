package ride

import "github.com/ethereum/go-ethereum/common"

// Reputation is a user's record over the rides a replica holds, as a
// driver and as a passenger.
type Reputation struct {
	User      common.Address `json:"user"`
	Driver    Score          `json:"driver"`
	Passenger Score          `json:"passenger"`
}

// Score is one side of a user's record.
type Score struct {
	Rides     int `json:"rides"`     // completed
	Cancelled int `json:"cancelled"` // cancelled by the passenger after a driver accepted (passenger side only)
	Disputes  int `json:"disputes"`  // rides of theirs that ended disputed
	Ratings   int `json:"ratings"`
	Stars     int `json:"stars"` // sum of the ratings received
	// Score is the mean rating received, pulled toward 3 by two phantom
	// ratings of 3 so that one rating does not make a reputation; in
	// thousandths (3000 = 3 stars).
	Score int `json:"score"`
}

// Reputations aggregates the states of rides into every user's reputation.
// It is a pure function of the states, so replicas holding the same rides
// agree on every score.
func Reputations(states []State) map[common.Address]*Reputation {
	out := map[common.Address]*Reputation{}
	get := func(a common.Address) *Reputation {
		r := out[a]
		if r == nil {
			r = &Reputation{User: a}
			out[a] = r
		}
		return r
	}
	for _, s := range states {
		if s.State == "" {
			continue
		}
		p := get(s.Passenger)
		if s.Completed {
			p.Passenger.Rides++
		}
		if s.State == StateCancelled && s.Driver != (common.Address{}) {
			p.Passenger.Cancelled++
		}
		if s.DriverRating > 0 {
			p.Passenger.Ratings++
			p.Passenger.Stars += s.DriverRating
		}
		if s.Driver == (common.Address{}) {
			continue
		}
		d := get(s.Driver)
		if s.Completed {
			d.Driver.Rides++
		}
		if s.PassengerRating > 0 {
			d.Driver.Ratings++
			d.Driver.Stars += s.PassengerRating
		}
		if s.State == StateDisputed {
			p.Passenger.Disputes++
			d.Driver.Disputes++
		}
	}
	for _, r := range out {
		r.Driver.Score = (r.Driver.Stars*1000 + 6000) / (r.Driver.Ratings + 2)
		r.Passenger.Score = (r.Passenger.Stars*1000 + 6000) / (r.Passenger.Ratings + 2)
	}
	return out
}
