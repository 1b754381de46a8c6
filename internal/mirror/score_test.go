package mirror

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func ids(n int) []peer.ID {
	out := make([]peer.ID, n)
	for i := range out {
		out[i] = peer.ID(fmt.Sprintf("peer-%02d", i))
	}
	return out
}

func att(prober, probed peer.ID, epoch uint64, probes, ok uint32) Attestation {
	return Attestation{Prober: prober, Probed: probed, Epoch: epoch, Probes: probes, OK: ok, Unreachable: probes - ok}
}

// honest returns the attestations of every prober about every other, each
// with the given probes and passes for the probed instance.
func honest(p []peer.ID, epoch uint64, pass func(probed int) (probes, ok uint32)) []Attestation {
	var out []Attestation
	for i := range p {
		for j := range p {
			if i != j {
				n, k := pass(j)
				out = append(out, att(p[i], p[j], epoch, n, k))
			}
		}
	}
	return out
}

func TestScores(t *testing.T) {
	p := ids(6)
	allUp := func(int) (uint32, uint32) { return 10, 10 }
	tests := []struct {
		name  string
		atts  []Attestation
		probe peer.ID
		want  Score
	}{
		{"all up", honest(p[:5], 1, allUp), p[0], Score{PPM: 1_000_000, Probers: 4, Probes: 40}},
		{"nobody attested", honest(p[:5], 1, allUp), p[5], Score{}},
		{"half", honest(p[:5], 1, func(int) (uint32, uint32) { return 10, 5 }), p[2], Score{PPM: 500_000, Probers: 4, Probes: 40}},
		{"one liar says down", append(honest(p[:5], 1, allUp), att(p[5], p[0], 1, 10, 0)), p[0],
			Score{PPM: 1_000_000, Probers: 5, Probes: 50}},
		{"two liars of five say down", append(honest(p[:4], 1, allUp), att(p[4], p[0], 1, 10, 0), att(p[5], p[0], 1, 10, 0)), p[0],
			Score{PPM: 1_000_000, Probers: 5, Probes: 50}},
		{"two liars say up for a dead one", []Attestation{
			att(p[1], p[0], 1, 10, 0), att(p[2], p[0], 1, 10, 0), att(p[3], p[0], 1, 10, 0),
			att(p[4], p[0], 1, 10, 10), att(p[5], p[0], 1, 10, 10)}, p[0], Score{PPM: 0, Probers: 5, Probes: 50}},
		{"even count is the mean of the middle two", []Attestation{
			att(p[1], p[0], 1, 4, 1), att(p[2], p[0], 1, 4, 2), att(p[3], p[0], 1, 4, 3), att(p[4], p[0], 1, 4, 4)},
			p[0], Score{PPM: 625_000, Probers: 4, Probes: 16}},
		{"latest cumulative attestation counts once", []Attestation{
			att(p[1], p[0], 1, 5, 5), att(p[1], p[0], 1, 10, 2), att(p[1], p[0], 1, 8, 8)},
			p[0], Score{PPM: 200_000, Probers: 1, Probes: 10}},
		{"other epochs ignored", []Attestation{att(p[1], p[0], 0, 10, 0), att(p[1], p[0], 1, 10, 10), att(p[1], p[0], 2, 10, 0)},
			p[0], Score{PPM: 1_000_000, Probers: 1, Probes: 10}},
		{"self-attestation ignored", []Attestation{att(p[0], p[0], 1, 10, 10)}, p[0], Score{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Scores(tt.atts, 1, 1)[tt.probe]
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestLiarChangesNoScore: with n honest probers and one that reports
// every instance down, every score is what the honest ones give, for many
// random honest shares.
func TestLiarChangesNoScore(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for range 200 {
		n := 5 + r.IntN(10)
		p := ids(n + 1)
		liar := p[n]
		up := make([]uint32, n)
		for i := range up {
			up[i] = uint32(r.IntN(11))
		}
		atts := honest(p[:n], 3, func(j int) (uint32, uint32) { return 10, up[j] })
		// Honest probers agree on each instance, so the median is that share.
		before := Scores(atts, 3, 3)
		for _, probed := range p[:n] {
			atts = append(atts, att(liar, probed, 3, 10, 0))
		}
		after := Scores(atts, 3, 3)
		for j, probed := range p[:n] {
			if after[probed].PPM != before[probed].PPM || after[probed].PPM != up[j]*100_000 {
				t.Fatalf("n=%d instance %d: before %d after %d, want %d", n, j, before[probed].PPM, after[probed].PPM, up[j]*100_000)
			}
		}
	}
}

func TestScoresOverEpochs(t *testing.T) {
	p := ids(3)
	atts := []Attestation{att(p[1], p[0], 1, 10, 10), att(p[1], p[0], 2, 10, 0), att(p[2], p[0], 2, 10, 0)}
	got := Scores(atts, 1, 2)[p[0]]
	// Prober 1: 10 of 20; prober 2: 0 of 10. Median of 500000 and 0.
	if got.PPM != 250_000 || got.Probers != 2 || got.Probes != 30 {
		t.Fatalf("got %+v", got)
	}
	if a := got.Availability(); a != 0.25 {
		t.Fatalf("availability %v", a)
	}
}

func TestVerify(t *testing.T) {
	rels := []Release{
		{Version: "1.0", Executables: map[string]string{"linux/amd64": "AA11", "darwin/arm64": "bb22"}},
		{Version: "1.1", Executables: map[string]string{"linux/amd64": "cc33"}},
	}
	tests := []struct {
		b       Build
		version string
		ok      bool
	}{
		{Build{SHA256: "aa11", GOOS: "linux", GOARCH: "amd64"}, "1.0", true},
		{Build{SHA256: "cc33", GOOS: "linux", GOARCH: "amd64"}, "1.1", true},
		{Build{SHA256: "bb22", GOOS: "linux", GOARCH: "amd64"}, "", false}, // another platform's hash
		{Build{SHA256: "bb22", GOOS: "darwin", GOARCH: "arm64"}, "1.0", true},
		{Build{SHA256: "", GOOS: "linux", GOARCH: "amd64"}, "", false},
		{Build{SHA256: "dd44", GOOS: "linux", GOARCH: "amd64"}, "", false},
	}
	for _, tt := range tests {
		v, ok := Verify(tt.b, rels)
		if v != tt.version || ok != tt.ok {
			t.Errorf("Verify(%+v) = %q, %v; want %q, %v", tt.b, v, ok, tt.version, tt.ok)
		}
	}
	if _, ok := Verify(Build{SHA256: "aa11", GOOS: "linux", GOARCH: "amd64"}, nil); ok {
		t.Fatal("verified with no release")
	}
}

func TestGroups(t *testing.T) {
	p := ids(7)
	ip := netip.MustParseAddr
	members := []Member{
		{ID: p[0], Observed: []netip.Addr{ip("127.0.1.1")}},
		{ID: p[1], Observed: []netip.Addr{ip("127.0.1.200")}},        // p[0]'s /24
		{ID: p[2], Observed: []netip.Addr{ip("127.0.2.1")}},          // alone
		{ID: p[3], Observed: []netip.Addr{ip("2001:db8:1:5::1")}},    // p[4]'s /48
		{ID: p[4], Observed: []netip.Addr{ip("2001:db8:1:ffff::2")}}, //
		{ID: p[5], Observed: []netip.Addr{ip("10.0.0.1"), ip("::1")}, // same region as p[6]
			Location: Location{Provider: "aws", Region: "us-west-2"}},
		{ID: p[6], Observed: []netip.Addr{ip("::ffff:10.9.0.1")}, Location: Location{Provider: "aws", Region: "us-west-2"}},
	}
	want := map[peer.ID]string{p[0]: "", p[1]: "", p[2]: "", p[3]: "", p[4]: "", p[5]: "", p[6]: ""}
	for id, root := range map[peer.ID]peer.ID{p[0]: p[0], p[1]: p[0], p[2]: p[2], p[3]: p[3], p[4]: p[3], p[5]: p[5], p[6]: p[5]} {
		want[id] = root.String()
	}
	for range 20 { // any order gives the same groups
		rand.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		got := Groups(members)
		for id, g := range want {
			if got[id] != g {
				t.Fatalf("%s in group %q, want %q", id, got[id], g)
			}
		}
	}
	// A chain: p0~p1 by address, p1~p2 by location, makes one group.
	chain := Groups([]Member{
		{ID: p[2], Location: Location{Provider: "hetzner", Region: "fsn1"}},
		{ID: p[1], Observed: []netip.Addr{ip("192.0.2.7")}, Location: Location{Provider: "hetzner", Region: "fsn1"}},
		{ID: p[0], Observed: []netip.Addr{ip("192.0.2.9")}},
	})
	if chain[p[0]] != p[0].String() || chain[p[1]] != p[0].String() || chain[p[2]] != p[0].String() {
		t.Fatalf("chain groups %v", chain)
	}
	// Another region of one provider is another group; an empty provider groups nothing.
	apart := Groups([]Member{
		{ID: p[0], Location: Location{Provider: "aws", Region: "eu-west-1"}},
		{ID: p[1], Location: Location{Provider: "aws", Region: "us-east-1"}},
		{ID: p[2], Location: Location{Region: "us-east-1"}},
		{ID: p[3], Location: Location{Region: "us-east-1"}},
	})
	for _, id := range p[:4] {
		if apart[id] != id.String() {
			t.Fatalf("%s grouped: %v", id, apart)
		}
	}
}

func TestPrefixOf(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.1.1": "127.0.1.0/24", "::ffff:127.0.1.1": "127.0.1.0/24", "2001:db8:aa:bb::1": "2001:db8:aa::/48",
		"0.0.0.0": "invalid Prefix", "::": "invalid Prefix",
	} {
		if got := PrefixOf(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("PrefixOf(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestEpochStandings(t *testing.T) {
	var ps []peer.ID
	for i := range 4 {
		_, id := testKey(t, uint64(10+i))
		ps = append(ps, id)
	}
	ip := netip.MustParseAddr
	mk := func(prober, probed int, ok uint32, obs string, sha string) Attestation {
		a := att(ps[prober], ps[probed], 5, 10, ok)
		a.Observed, a.SHA256, a.Platform = ip(obs), sha, "linux/amd64"
		return a
	}
	atts := []Attestation{
		mk(1, 0, 10, "127.0.1.1", "aa"), mk(2, 0, 10, "127.0.1.1", "aa"), mk(3, 0, 10, "127.0.1.1", "bb"),
		mk(0, 1, 5, "127.0.1.9", "aa"), mk(2, 1, 5, "127.0.1.9", "aa"),
		mk(0, 2, 0, "127.0.2.1", "cc"),
		att(ps[0], ps[3], 4, 10, 10), // another epoch
	}
	got := Epoch(atts, 5)
	if len(got) != 3 {
		t.Fatalf("%d standings, want 3: %+v", len(got), got)
	}
	by := map[peer.ID]Standing{}
	for i, s := range got {
		by[s.Peer] = s
		if i > 0 && got[i-1].Peer.String() >= s.Peer.String() {
			t.Fatal("not sorted by peer ID")
		}
	}
	s0, s1, s2 := by[ps[0]], by[ps[1]], by[ps[2]]
	if s0.Score.PPM != 1_000_000 || s0.SHA256 != "aa" || s1.Score.PPM != 500_000 || s2.Score.PPM != 0 {
		t.Fatalf("standings %+v", got)
	}
	if s0.Group != s1.Group || s2.Group == s0.Group {
		t.Fatalf("groups: %q %q %q", s0.Group, s1.Group, s2.Group)
	}
	if acct, _ := AccountOf(ps[0]); s0.Account != acct {
		t.Fatal("account")
	}
	if v, ok := s0.Verified([]Release{{Version: "1", Executables: map[string]string{"linux/amd64": "AA"}}}); !ok || v != "1" {
		t.Fatalf("verified %q %v", v, ok)
	}
	if _, ok := s2.Verified([]Release{{Version: "1", Executables: map[string]string{"linux/amd64": "aa"}}}); ok {
		t.Fatal("cc verified against aa")
	}
}
