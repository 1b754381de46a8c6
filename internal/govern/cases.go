package govern

import (
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// CaseVote is an arbiter's latest ruling on a case and the signed time of
// their first ballot on it, which decides whether they voted in time.
type CaseVote struct {
	PayeeBps uint16
	First    time.Time
}

// CasePanel is the panel of a dispute at now, the same on every replica
// that has the same ballots and whose clock has passed the same round
// ends.
//
// list is the deal's ordered arbiter list (the draw), k the panel's size.
// Time runs in rounds of window from opened (the case's recorded open
// time): round r ends at opened + (r+1)*window. At the end of each round,
// each member of that round's panel whose first ballot is not signed
// before the round's end is replaced by the next of the list not yet
// used, as long as one is left (a panel never shrinks below min(k,
// len(list))). A member keeps their seat for good once they have voted in
// time; a replacement has one full round to vote. The rounds stop at the
// first that replaces nobody, so the result is a function of the ballots'
// signed times, opened, window and now, not of when the ballots arrived.
//
// It returns the panel in list order and the members replaced, in the
// order they were replaced.
func CasePanel(list []common.Address, k int, opened time.Time, window time.Duration, votes map[common.Address]CaseVote, now time.Time) (panel, replaced []common.Address) {
	if k <= 0 || window <= 0 {
		return Panel(list, k), nil
	}
	for r := 1; ; r++ {
		panel = Panel(list, k, replaced...)
		end := opened.Add(time.Duration(r) * window)
		if now.Before(end) {
			return panel, replaced
		}
		spare := len(list) - len(replaced) - len(panel)
		var out []common.Address
		for _, m := range panel {
			if spare == 0 {
				break
			}
			if v, ok := votes[m]; ok && v.First.Before(end) {
				continue
			}
			out = append(out, m)
			spare--
		}
		if len(out) == 0 {
			return panel, replaced
		}
		replaced = append(replaced, out...)
	}
}

// Majority finds the ruling a majority of a panel of size k agrees on:
// at least k/2+1 (integer division) of the panel's members whose latest
// ballot names the same payee share, as the escrow contract requires. It
// returns the share and those members in panel order. Ballots of
// non-members of the panel do not count. At most one share can have a
// majority.
func Majority(k int, panel []common.Address, votes map[common.Address]CaseVote) (payeeBps uint16, voters []common.Address, ok bool) {
	if k <= 0 {
		return 0, nil, false
	}
	need := k/2 + 1
	count := map[uint16]int{}
	for _, m := range panel {
		if v, has := votes[m]; has {
			count[v.PayeeBps]++
		}
	}
	for bps, n := range count {
		if n < need {
			continue
		}
		for _, m := range panel {
			if v, has := votes[m]; has && v.PayeeBps == bps {
				voters = append(voters, m)
			}
		}
		return bps, voters, true
	}
	return 0, nil, false
}
