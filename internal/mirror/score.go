package mirror

import (
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Score is an instance's availability over a span of epochs, as its
// probers attested it.
type Score struct {
	// PPM is the availability in parts per million: the median, over the
	// distinct probers that attested the instance, of each prober's share
	// of passed probes.
	PPM uint32
	// Probers is how many distinct probers attested it; Probes, how many
	// probes they reported in all.
	Probers int
	Probes  uint64
}

// Availability is PPM as a fraction between 0 and 1.
func (s Score) Availability() float64 { return float64(s.PPM) / 1e6 }

// Latest keeps, of several attestations by one prober of one instance in
// one epoch, the one that counts: the most probes, then the latest time.
// Both replace each other as the prober re-signs its cumulative counts,
// so any replica that holds the same set picks the same one.
func Latest(a, b Attestation) Attestation {
	if b.Probes > a.Probes || (b.Probes == a.Probes && b.Time > a.Time) {
		return b
	}
	return a
}

// Scores computes the availability of every instance attested in the
// epochs from..to (inclusive). Each prober's share is its passed probes
// over its probes across those epochs (one attestation per prober,
// instance and epoch, chosen by Latest); an instance's score is the
// median of its probers' shares (the mean of the two middle ones for an
// even count), computed in integers so that every machine gets the same.
// A minority of probers reporting anything moves the median at most to
// the nearest honest share.
func Scores(atts []Attestation, from, to uint64) map[peer.ID]Score {
	type key struct {
		prober, probed peer.ID
		epoch          uint64
	}
	latest := make(map[key]Attestation)
	for _, a := range atts {
		if a.Epoch < from || a.Epoch > to || a.Probes == 0 || a.Prober == a.Probed {
			continue
		}
		k := key{a.Prober, a.Probed, a.Epoch}
		if old, ok := latest[k]; ok {
			a = Latest(old, a)
		}
		latest[k] = a
	}
	type tally struct{ ok, probes uint64 }
	per := make(map[peer.ID]map[peer.ID]*tally) // probed -> prober -> tally
	for k, a := range latest {
		m := per[k.probed]
		if m == nil {
			m = make(map[peer.ID]*tally)
			per[k.probed] = m
		}
		t := m[k.prober]
		if t == nil {
			t = new(tally)
			m[k.prober] = t
		}
		t.ok += uint64(a.OK)
		t.probes += uint64(a.Probes)
	}
	out := make(map[peer.ID]Score, len(per))
	for probed, m := range per {
		shares := make([]uint64, 0, len(m))
		var probes uint64
		for _, t := range m {
			shares = append(shares, t.ok*1_000_000/t.probes)
			probes += t.probes
		}
		out[probed] = Score{PPM: uint32(median(shares)), Probers: len(shares), Probes: probes}
	}
	return out
}

func median(v []uint64) uint64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// Release is an approved build: its version and, per "GOOS/GOARCH", the
// SHA-256 of its executable in hex.
type Release struct {
	Version     string
	Executables map[string]string
}

// Verify reports whether b's executable hash is one that an approved
// release lists for b's platform, and which release. A build whose hash is
// not known yet is not verified.
func Verify(b Build, releases []Release) (version string, ok bool) {
	if b.SHA256 == "" {
		return "", false
	}
	for i := len(releases) - 1; i >= 0; i-- { // the newest that matches
		if h, found := releases[i].Executables[b.Platform()]; found && strings.EqualFold(h, b.SHA256) {
			return releases[i].Version, true
		}
	}
	return "", false
}
