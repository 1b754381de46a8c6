package mirror

import (
	"cmp"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Standing is what the attestations of one epoch say of one instance.
type Standing struct {
	Peer    peer.ID
	Account common.Address
	// Group is its diversity group in that epoch (Groups over the
	// addresses its probers observed and the location it declared).
	Group string
	Score Score
	// SHA256 and Platform are the executable hash and "GOOS/GOARCH" it
	// declared, and Location its declared location: for each, the value
	// most of its probers' attestations carry (ties: the smallest).
	SHA256, Platform string
	Location         Location
}

// Verified reports whether the standing's build matches an approved
// release, and which.
func (s Standing) Verified(releases []Release) (string, bool) {
	var b Build
	b.SHA256 = s.SHA256
	if i := indexByte(s.Platform, '/'); i >= 0 {
		b.GOOS, b.GOARCH = s.Platform[:i], s.Platform[i+1:]
	} else {
		return "", false
	}
	return Verify(b, releases)
}

func indexByte(s string, c byte) int {
	for i := range len(s) {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// Epoch is the standing of every instance attested in the epoch, sorted
// by peer ID: a pure function of the attestations, so every replica that
// holds the same ones, and anyone who recomputes it from them, gets the
// same table. Instances whose peer ID is not a secp256k1 key (so have no
// account) are left out.
func Epoch(atts []Attestation, epoch uint64) []Standing {
	scores := Scores(atts, epoch, epoch)
	type key struct {
		prober, probed peer.ID
	}
	latest := make(map[key]Attestation)
	for _, a := range atts {
		if a.Epoch != epoch || a.Probes == 0 || a.Prober == a.Probed {
			continue
		}
		k := key{a.Prober, a.Probed}
		if old, ok := latest[k]; ok {
			a = Latest(old, a)
		}
		latest[k] = a
	}
	per := make(map[peer.ID][]Attestation)
	for k, a := range latest {
		per[k.probed] = append(per[k.probed], a)
	}
	var members []Member
	var out []Standing
	for probed, as := range per {
		acct, err := AccountOf(probed)
		if err != nil {
			continue
		}
		m := Member{ID: probed}
		for _, a := range as {
			if a.Observed.IsValid() {
				m.Observed = append(m.Observed, a.Observed)
			}
		}
		st := Standing{
			Peer: probed, Account: acct, Score: scores[probed],
			SHA256:   mostCommon(as, func(a Attestation) string { return a.SHA256 }),
			Platform: mostCommon(as, func(a Attestation) string { return a.Platform }),
		}
		loc := mostCommon(as, func(a Attestation) string { return a.Location.Provider + "\x00" + a.Location.Region })
		if i := indexByte(loc, 0); i >= 0 {
			st.Location = Location{Provider: loc[:i], Region: loc[i+1:]}
		}
		m.Location = st.Location
		members = append(members, m)
		out = append(out, st)
	}
	groups := Groups(members)
	for i := range out {
		out[i].Group = groups[out[i].Peer]
	}
	slices.SortFunc(out, func(a, b Standing) int { return cmp.Compare(a.Peer.String(), b.Peer.String()) })
	return out
}

// mostCommon is the value of f most attestations give, the smallest on a
// tie.
func mostCommon(as []Attestation, f func(Attestation) string) string {
	count := make(map[string]int)
	for _, a := range as {
		count[f(a)]++
	}
	best, n := "", -1
	for v, c := range count {
		if c > n || (c == n && v < best) {
			best, n = v, c
		}
	}
	return best
}
