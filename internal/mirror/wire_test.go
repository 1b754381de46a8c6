package mirror

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

const testApp = "app1"

func testKey(t testing.TB, seed uint64) (crypto.PrivKey, peer.ID) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	var b [32]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	k, _, err := crypto.GenerateSecp256k1Key(&byteReader{b[:]})
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	for i := n; i < len(p); i++ {
		p[i] = 7
	}
	return len(p), nil
}

func testHeartbeat(t testing.TB, id peer.ID) Heartbeat {
	t.Helper()
	acct, err := AccountOf(id)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := mh.Sum([]byte("blob"), mh.SHA2_256, -1)
	return Heartbeat{
		Peer: id, Account: acct,
		Addrs:    []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.1.1/tcp/4001")},
		Gateway:  "https://mirror.example/",
		Build:    Build{SHA256: strings.Repeat("ab", 32), GOOS: "linux", GOARCH: "amd64", Module: "example.com/app", Version: "v1.2.3", Revision: "abc", Modified: true},
		Release:  "1.2.3",
		Location: Location{Provider: "aws", Region: "us-west-2"},
		Blobs:    []cid.Cid{cid.NewCidV1(cid.Raw, h)},
		Time:     1234,
	}
}

func TestHeartbeatRoundTrip(t *testing.T) {
	k, id := testKey(t, 1)
	hb := testHeartbeat(t, id)
	b, err := SealHeartbeat(k, testApp, hb)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenHeartbeat(testApp, b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Peer != hb.Peer || got.Account != hb.Account || got.Gateway != hb.Gateway || got.Build != hb.Build ||
		got.Release != hb.Release || got.Location != hb.Location || got.Time != hb.Time ||
		len(got.Addrs) != 1 || !got.Addrs[0].Equal(hb.Addrs[0]) || len(got.Blobs) != 1 || !got.Blobs[0].Equals(hb.Blobs[0]) {
		t.Fatalf("round trip: got %+v, want %+v", got, hb)
	}
	if _, err := OpenHeartbeat("other-app", b); !errors.Is(err, ErrSignature) {
		t.Fatalf("another DApp's heartbeat: %v, want ErrSignature", err)
	}
	if _, err := OpenAttestation(testApp, b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a heartbeat as an attestation: %v, want ErrMalformed", err)
	}
}

func TestHeartbeatForged(t *testing.T) {
	k1, id1 := testKey(t, 1)
	_, id2 := testKey(t, 2)
	// Signed by 1 in the name of 2.
	hb := testHeartbeat(t, id2)
	b, err := SealHeartbeat(k1, testApp, hb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenHeartbeat(testApp, b); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged heartbeat: %v, want ErrSignature", err)
	}
	// Signed by 1, naming 2's account.
	hb = testHeartbeat(t, id1)
	hb.Account, _ = AccountOf(id2)
	b, _ = SealHeartbeat(k1, testApp, hb)
	if _, err := OpenHeartbeat(testApp, b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("heartbeat naming another account: %v, want ErrMalformed", err)
	}
	// A flipped body bit.
	hb = testHeartbeat(t, id1)
	b, _ = SealHeartbeat(k1, testApp, hb)
	i := strings.Index(string(b), "mirror.example")
	b[i] ^= 1
	if _, err := OpenHeartbeat(testApp, b); !errors.Is(err, ErrSignature) {
		t.Fatalf("altered heartbeat: %v, want ErrSignature", err)
	}
}

func TestHeartbeatBounds(t *testing.T) {
	k, id := testKey(t, 1)
	for name, change := range map[string]func(*Heartbeat){
		"addrs":    func(h *Heartbeat) { h.Addrs = make([]multiaddr.Multiaddr, MaxAddrs+1) },
		"blobs":    func(h *Heartbeat) { h.Blobs = make([]cid.Cid, MaxBlobs+1) },
		"gateway":  func(h *Heartbeat) { h.Gateway = strings.Repeat("x", MaxString+1) },
		"release":  func(h *Heartbeat) { h.Release = strings.Repeat("x", MaxShortString+1) },
		"utf8":     func(h *Heartbeat) { h.Location.Region = "\xff" },
		"negative": func(h *Heartbeat) { h.Time = -1 },
	} {
		hb := testHeartbeat(t, id)
		change(&hb)
		if _, err := SealHeartbeat(k, testApp, hb); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := OpenHeartbeat(testApp, make([]byte, MaxEnvelope+1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized: %v", err)
	}
}

func testAttestation(prober, probed peer.ID) Attestation {
	return Attestation{Prober: prober, Probed: probed, Epoch: 7, Probes: 10, OK: 6, Unreachable: 2, Behind: 1, Failed: 1,
		Challenges: 9, RTTMicros: 1500, Observed: netip.MustParseAddr("127.0.2.1"), Time: 99,
		SHA256: strings.Repeat("cd", 32), Platform: "linux/amd64", Location: Location{Provider: "ovh", Region: "gra"}}
}

func TestAttestationRoundTrip(t *testing.T) {
	k, id := testKey(t, 1)
	_, other := testKey(t, 2)
	a := testAttestation(id, other)
	b, err := SealAttestation(k, testApp, a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenAttestation(testApp, b)
	if err != nil {
		t.Fatal(err)
	}
	if got != a {
		t.Fatalf("round trip: got %+v, want %+v", got, a)
	}
	// Signed by the probed one in the prober's name.
	k2, _ := testKey(t, 2)
	b, _ = SealAttestation(k2, testApp, a)
	if _, err := OpenAttestation(testApp, b); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged attestation: %v, want ErrSignature", err)
	}
	for name, change := range map[string]func(*Attestation){
		"self":       func(a *Attestation) { a.Probed = a.Prober },
		"no probes":  func(a *Attestation) { *a = Attestation{Prober: a.Prober, Probed: a.Probed} },
		"sum":        func(a *Attestation) { a.OK++ },
		"challenges": func(a *Attestation) { a.Challenges = a.Probes + 1 },
		"platform":   func(a *Attestation) { a.Platform = strings.Repeat("x", MaxShortString+1) },
	} {
		a := testAttestation(id, other)
		change(&a)
		if _, err := SealAttestation(k, testApp, a); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzOpenHeartbeat(f *testing.F) {
	k, id := testKey(f, 1)
	b, err := SealHeartbeat(k, testApp, testHeartbeat(f, id))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := OpenHeartbeat(testApp, b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) {
				t.Fatalf("error wraps neither sentinel: %v", err)
			}
			return
		}
		if len(h.Addrs) > MaxAddrs || len(h.Blobs) > MaxBlobs {
			t.Fatalf("bounds not enforced: %+v", h)
		}
	})
}

func FuzzOpenAttestation(f *testing.F) {
	k, id := testKey(f, 1)
	_, other := testKey(f, 2)
	b, err := SealAttestation(k, testApp, testAttestation(id, other))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := OpenAttestation(testApp, b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) {
				t.Fatalf("error wraps neither sentinel: %v", err)
			}
			return
		}
		if a.check() != nil {
			t.Fatalf("accepted an invalid attestation: %+v", a)
		}
	})
}

// TestDecodeSkipsOnlyTheSignature: Decode gives what Open gives, checks
// the same bounds, and is the one that does not check who signed: it is
// for bytes Open accepted before.
func TestDecodeSkipsOnlyTheSignature(t *testing.T) {
	k1, id1 := testKey(t, 1)
	_, id2 := testKey(t, 2)
	hb := testHeartbeat(t, id1)
	b, err := SealHeartbeat(k1, testApp, hb)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := OpenHeartbeat(testApp, b)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := DecodeHeartbeat(b)
	if err != nil || decoded.Peer != opened.Peer || decoded.Time != opened.Time || decoded.Gateway != opened.Gateway || len(decoded.Addrs) != len(opened.Addrs) {
		t.Fatalf("decoded %+v, %v; opened %+v", decoded, err, opened)
	}
	forged, _ := SealHeartbeat(k1, testApp, testHeartbeat(t, id2))
	if _, err := OpenHeartbeat(testApp, forged); !errors.Is(err, ErrSignature) {
		t.Fatalf("open forged: %v", err)
	}
	if _, err := DecodeHeartbeat(forged); err != nil {
		t.Fatalf("decode forged: %v (decoding checks no signature)", err)
	}
	if _, err := DecodeHeartbeat(b[:len(b)/2]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("decode truncated heartbeat: %v, want ErrMalformed", err)
	}

	a := testAttestation(id1, id2)
	ab, err := SealAttestation(k1, testApp, a)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeAttestation(ab); err != nil || got != a {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, a)
	}
	if _, err := DecodeAttestation(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a heartbeat decoded as an attestation: %v, want ErrMalformed", err)
	}
	if _, err := DecodeAttestation(ab[:len(ab)-3]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("decode truncated attestation: %v, want ErrMalformed", err)
	}
}
