package mirror

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/netip"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Errors wrapped by every decoding and verification failure.
var (
	ErrMalformed = errors.New("mirror: malformed message")
	ErrSignature = errors.New("mirror: bad signature")
)

// Bounds of what an instance may send.
const (
	// MaxEnvelope bounds an encoded envelope, signature included.
	MaxEnvelope = 4096
	// MaxAddrs is the most addresses a heartbeat lists.
	MaxAddrs = 16
	// MaxAddrLen bounds one encoded multiaddr.
	MaxAddrLen = 128
	// MaxBlobs is the most blobs a heartbeat claims to hold: a sample, for
	// storage challenges.
	MaxBlobs = 16
	// MaxCIDLen bounds one encoded CID.
	MaxCIDLen = 128
	// MaxString bounds the gateway URL and every build string.
	MaxString = 256
	// MaxShortString bounds the release, provider and region names.
	MaxShortString = 64
	maxSig         = 128
)

// Kinds of signed message.
const (
	KindHeartbeat   = 1
	KindAttestation = 2
)

// signDomain starts every signed payload, so that an instance key's
// signature over a heartbeat means nothing to any other protocol.
const signDomain = "dpaas mirror v1\x00"

// Location is where an instance declares it runs: a hosting provider and
// region, as free text ("aws", "us-west-2"). Instances declaring the same
// non-empty pair form one diversity group.
type Location struct {
	Provider string `cbor:"p,omitempty"`
	Region   string `cbor:"r,omitempty"`
}

// Build describes the executable an instance runs.
type Build struct {
	// SHA256 is the executable's SHA-256 in lower-case hex; "" while the
	// instance has not finished hashing it.
	SHA256 string `cbor:"h,omitempty"`
	GOOS   string `cbor:"o"`
	GOARCH string `cbor:"a"`
	// Module, Version, Revision and Modified are from the Go build info:
	// the main module's path and version, vcs.revision and vcs.modified.
	Module   string `cbor:"m,omitempty"`
	Version  string `cbor:"v,omitempty"`
	Revision string `cbor:"c,omitempty"`
	Modified bool   `cbor:"d,omitempty"`
}

// Platform is the build's "GOOS/GOARCH", the key of a release's
// executables.
func (b Build) Platform() string { return b.GOOS + "/" + b.GOARCH }

// Heartbeat is what an instance announces about itself every interval.
type Heartbeat struct {
	Peer     peer.ID
	Account  common.Address
	Addrs    []multiaddr.Multiaddr
	Gateway  string // public URL of its HTTP gateway; "" if none
	Build    Build
	Release  string // the release version it claims to run; "" if none
	Location Location
	Blobs    []cid.Cid // a sample of the blobs it holds whole
	Time     int64     // unix nanoseconds, the sender's clock
}

type heartbeatWire struct {
	Peer     []byte   `cbor:"i"`
	Account  []byte   `cbor:"a"`
	Addrs    [][]byte `cbor:"m,omitempty"`
	Gateway  string   `cbor:"g,omitempty"`
	Build    Build    `cbor:"b"`
	Release  string   `cbor:"r,omitempty"`
	Location Location `cbor:"l"`
	Blobs    [][]byte `cbor:"c,omitempty"`
	Time     int64    `cbor:"t"`
}

// Reasons a probe fails, first failing check first.
const (
	FailUnreachable = iota + 1 // no stream, or no answer within the deadline
	FailBehind                 // its store is behind the prober's beyond the bound
	FailChallenge              // wrong or missing answer to the storage challenge
)

// Attestation is what one prober observed of one instance during one
// epoch. The prober re-signs it after every probe, with cumulative
// counts; the latest one it signed for an epoch is the one that counts.
type Attestation struct {
	Prober, Probed peer.ID
	Epoch          uint64
	Probes         uint32 // probes made
	OK             uint32 // probes passed
	// Unreachable, Behind and Failed count the failed probes by reason;
	// with OK they add up to Probes.
	Unreachable, Behind, Failed uint32
	// Challenges counts the probes that included a storage challenge.
	Challenges uint32
	// RTTMicros is the last probe's round-trip time in microseconds.
	RTTMicros uint32
	// Observed is the address the prober reached the probed instance at,
	// invalid when unknown.
	Observed netip.Addr
	Time     int64 // unix nanoseconds of the last probe, the prober's clock
	// SHA256, Platform and Location are what the probed instance declared
	// in its heartbeat when last probed (its executable hash, its
	// "GOOS/GOARCH", its location), copied so that code integrity and
	// diversity per epoch follow from the replicated attestations alone.
	SHA256   string
	Platform string
	Location Location
}

type attestationWire struct {
	Prober      []byte   `cbor:"p"`
	Probed      []byte   `cbor:"q"`
	Epoch       uint64   `cbor:"e"`
	Probes      uint32   `cbor:"n"`
	OK          uint32   `cbor:"k"`
	Unreachable uint32   `cbor:"u,omitempty"`
	Behind      uint32   `cbor:"b,omitempty"`
	Failed      uint32   `cbor:"f,omitempty"`
	Challenges  uint32   `cbor:"c,omitempty"`
	RTT         uint32   `cbor:"r,omitempty"`
	Observed    []byte   `cbor:"o,omitempty"`
	Time        int64    `cbor:"t"`
	SHA256      string   `cbor:"h,omitempty"`
	Platform    string   `cbor:"x,omitempty"`
	Location    Location `cbor:"l"`
}

// Envelope is a signed message: its kind, its CBOR body and the signer's
// signature.
type envelope struct {
	Kind uint8  `cbor:"k"`
	Body []byte `cbor:"b"`
	Sig  []byte `cbor:"s"`
}

var (
	enc cbor.EncMode
	dec cbor.DecMode
)

func init() {
	var err error
	if enc, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	dec, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxArrayElements:  MaxAddrs + MaxBlobs,
		MaxMapPairs:       16,
		MaxNestedLevels:   4,
		UTF8:              cbor.UTF8RejectInvalid,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

func payload(appID string, kind uint8, body []byte) []byte {
	b := make([]byte, 0, len(signDomain)+len(appID)+2+len(body))
	b = append(b, signDomain...)
	b = append(b, appID...)
	b = append(b, 0, kind)
	return append(b, body...)
}

func seal(key crypto.PrivKey, appID string, kind uint8, body []byte) ([]byte, error) {
	sig, err := key.Sign(payload(appID, kind, body))
	if err != nil {
		return nil, fmt.Errorf("mirror: sign: %w", err)
	}
	b, err := enc.Marshal(envelope{Kind: kind, Body: body, Sig: sig})
	if err != nil {
		return nil, fmt.Errorf("mirror: encode: %w", err)
	}
	if len(b) > MaxEnvelope {
		return nil, fmt.Errorf("mirror: message of %d bytes over the %d limit: %w", len(b), MaxEnvelope, ErrMalformed)
	}
	return b, nil
}

// open decodes an envelope of the given kind and returns its body, not
// yet checked against a signer.
func open(b []byte, kind uint8) (envelope, error) {
	if len(b) > MaxEnvelope {
		return envelope{}, fmt.Errorf("mirror: message of %d bytes over the %d limit: %w", len(b), MaxEnvelope, ErrMalformed)
	}
	var e envelope
	if err := dec.Unmarshal(b, &e); err != nil {
		return envelope{}, fmt.Errorf("mirror: decode envelope: %v: %w", err, ErrMalformed)
	}
	if e.Kind != kind {
		return envelope{}, fmt.Errorf("mirror: message of kind %d, want %d: %w", e.Kind, kind, ErrMalformed)
	}
	if len(e.Sig) == 0 || len(e.Sig) > maxSig {
		return envelope{}, fmt.Errorf("mirror: signature of %d bytes: %w", len(e.Sig), ErrMalformed)
	}
	return e, nil
}

// check verifies that signer signed e.
func (e envelope) check(appID string, signer peer.ID) error {
	if !verify(signer, payload(appID, e.Kind, e.Body), e.Sig) {
		return fmt.Errorf("mirror: signature of %s does not verify: %w", signer, ErrSignature)
	}
	return nil
}

// AccountOf returns the Ethereum account of a secp256k1 peer ID: the same
// key, as an instance uses it.
func AccountOf(p peer.ID) (common.Address, error) {
	k, err := publicKey(p)
	if err != nil {
		return common.Address{}, err
	}
	return ethcrypto.PubkeyToAddress(*k), nil
}

// PublicKeyOf returns the secp256k1 key of a peer ID, 65 bytes
// uncompressed.
func PublicKeyOf(p peer.ID) ([]byte, error) {
	k, err := publicKey(p)
	if err != nil {
		return nil, err
	}
	return ethcrypto.FromECDSAPub(k), nil
}

func publicKey(p peer.ID) (*ecdsa.PublicKey, error) {
	// Every heartbeat names its peer: read the key the ID inlines and
	// decompress it in libsecp256k1, rather than libp2p's pure Go.
	raw, ok := secp256k1Key(p)
	if !ok {
		pub, err := p.ExtractPublicKey()
		if err != nil {
			return nil, fmt.Errorf("mirror: peer %s: %v: %w", p, err, ErrMalformed)
		}
		return nil, fmt.Errorf("mirror: peer %s: %s key, not secp256k1: %w", p, pub.Type(), ErrMalformed)
	}
	k, err := ethcrypto.DecompressPubkey(raw)
	if err != nil {
		return nil, fmt.Errorf("mirror: peer %s: %v: %w", p, err, ErrMalformed)
	}
	return k, nil
}

func checkString(what, s string, max int) error {
	if len(s) > max || !utf8.ValidString(s) {
		return fmt.Errorf("mirror: %s of %d bytes, want valid UTF-8 of at most %d: %w", what, len(s), max, ErrMalformed)
	}
	return nil
}

func (h Heartbeat) check() error {
	if len(h.Addrs) > MaxAddrs {
		return fmt.Errorf("mirror: %d addresses, want at most %d: %w", len(h.Addrs), MaxAddrs, ErrMalformed)
	}
	if len(h.Blobs) > MaxBlobs {
		return fmt.Errorf("mirror: %d blobs, want at most %d: %w", len(h.Blobs), MaxBlobs, ErrMalformed)
	}
	for _, s := range []struct {
		what string
		v    string
		max  int
	}{
		{"gateway", h.Gateway, MaxString}, {"release", h.Release, MaxShortString},
		{"provider", h.Location.Provider, MaxShortString}, {"region", h.Location.Region, MaxShortString},
		{"sha256", h.Build.SHA256, 64}, {"GOOS", h.Build.GOOS, MaxShortString}, {"GOARCH", h.Build.GOARCH, MaxShortString},
		{"module", h.Build.Module, MaxString}, {"version", h.Build.Version, MaxString}, {"revision", h.Build.Revision, MaxShortString},
	} {
		if err := checkString(s.what, s.v, s.max); err != nil {
			return err
		}
	}
	if h.Time < 0 {
		return fmt.Errorf("mirror: negative time: %w", ErrMalformed)
	}
	return nil
}

// SealHeartbeat encodes h and signs it with key, which must be the key of
// h.Peer.
func SealHeartbeat(key crypto.PrivKey, appID string, h Heartbeat) ([]byte, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	w := heartbeatWire{
		Peer: []byte(h.Peer), Account: h.Account.Bytes(), Gateway: h.Gateway, Build: h.Build,
		Release: h.Release, Location: h.Location, Time: h.Time,
	}
	for _, a := range h.Addrs {
		w.Addrs = append(w.Addrs, a.Bytes())
	}
	for _, c := range h.Blobs {
		w.Blobs = append(w.Blobs, c.Bytes())
	}
	body, err := enc.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("mirror: encode heartbeat: %w", err)
	}
	return seal(key, appID, KindHeartbeat, body)
}

// OpenHeartbeat decodes a signed heartbeat and checks it: its bounds, that
// its peer signed it, and that its account is its peer's key.
func OpenHeartbeat(appID string, b []byte) (Heartbeat, error) {
	h, e, err := decodeHeartbeat(b)
	if err != nil {
		return Heartbeat{}, err
	}
	if err := e.check(appID, h.Peer); err != nil {
		return Heartbeat{}, err
	}
	acct, err := AccountOf(h.Peer)
	if err != nil {
		return Heartbeat{}, err
	}
	if acct != h.Account {
		return Heartbeat{}, fmt.Errorf("mirror: heartbeat of %s names account %s, its key's is %s: %w", h.Peer, h.Account, acct, ErrMalformed)
	}
	return h, nil
}

// DecodeHeartbeat decodes a heartbeat that OpenHeartbeat accepted before
// (a topic validator ran it on these very bytes): it checks the bounds,
// not the signature, which costs more than everything else.
func DecodeHeartbeat(b []byte) (Heartbeat, error) {
	h, _, err := decodeHeartbeat(b)
	return h, err
}

func decodeHeartbeat(b []byte) (Heartbeat, envelope, error) {
	e, err := open(b, KindHeartbeat)
	if err != nil {
		return Heartbeat{}, envelope{}, err
	}
	var w heartbeatWire
	if err := dec.Unmarshal(e.Body, &w); err != nil {
		return Heartbeat{}, envelope{}, fmt.Errorf("mirror: decode heartbeat: %v: %w", err, ErrMalformed)
	}
	h := Heartbeat{Gateway: w.Gateway, Build: w.Build, Release: w.Release, Location: w.Location, Time: w.Time}
	if h.Peer, err = peer.IDFromBytes(w.Peer); err != nil {
		return Heartbeat{}, envelope{}, fmt.Errorf("mirror: heartbeat peer: %v: %w", err, ErrMalformed)
	}
	if len(w.Account) != common.AddressLength {
		return Heartbeat{}, envelope{}, fmt.Errorf("mirror: heartbeat account of %d bytes: %w", len(w.Account), ErrMalformed)
	}
	h.Account = common.BytesToAddress(w.Account)
	if len(w.Addrs) > MaxAddrs || len(w.Blobs) > MaxBlobs {
		return Heartbeat{}, envelope{}, fmt.Errorf("mirror: heartbeat with %d addresses and %d blobs: %w", len(w.Addrs), len(w.Blobs), ErrMalformed)
	}
	for _, a := range w.Addrs {
		if len(a) > MaxAddrLen {
			return Heartbeat{}, envelope{}, fmt.Errorf("mirror: address of %d bytes: %w", len(a), ErrMalformed)
		}
		m, err := multiaddr.NewMultiaddrBytes(a)
		if err != nil {
			return Heartbeat{}, envelope{}, fmt.Errorf("mirror: heartbeat address: %v: %w", err, ErrMalformed)
		}
		h.Addrs = append(h.Addrs, m)
	}
	for _, c := range w.Blobs {
		if len(c) > MaxCIDLen {
			return Heartbeat{}, envelope{}, fmt.Errorf("mirror: CID of %d bytes: %w", len(c), ErrMalformed)
		}
		id, err := cid.Cast(c)
		if err != nil {
			return Heartbeat{}, envelope{}, fmt.Errorf("mirror: heartbeat blob: %v: %w", err, ErrMalformed)
		}
		h.Blobs = append(h.Blobs, id)
	}
	if err := h.check(); err != nil {
		return Heartbeat{}, envelope{}, err
	}
	return h, e, nil
}

func (a Attestation) check() error {
	if a.Prober == a.Probed {
		return fmt.Errorf("mirror: attestation of %s by itself: %w", a.Prober, ErrMalformed)
	}
	if a.Probes == 0 || uint64(a.OK)+uint64(a.Unreachable)+uint64(a.Behind)+uint64(a.Failed) != uint64(a.Probes) {
		return fmt.Errorf("mirror: attestation counts ok %d + unreachable %d + behind %d + failed %d != probes %d (> 0): %w",
			a.OK, a.Unreachable, a.Behind, a.Failed, a.Probes, ErrMalformed)
	}
	if a.Challenges > a.Probes {
		return fmt.Errorf("mirror: %d challenges in %d probes: %w", a.Challenges, a.Probes, ErrMalformed)
	}
	if a.Time < 0 {
		return fmt.Errorf("mirror: negative time: %w", ErrMalformed)
	}
	for _, s := range []struct {
		what string
		v    string
		max  int
	}{
		{"sha256", a.SHA256, 64}, {"platform", a.Platform, MaxShortString},
		{"provider", a.Location.Provider, MaxShortString}, {"region", a.Location.Region, MaxShortString},
	} {
		if err := checkString(s.what, s.v, s.max); err != nil {
			return err
		}
	}
	return nil
}

// SealAttestation encodes a and signs it with key, which must be the key of
// a.Prober.
func SealAttestation(key crypto.PrivKey, appID string, a Attestation) ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	w := attestationWire{
		Prober: []byte(a.Prober), Probed: []byte(a.Probed), Epoch: a.Epoch, Probes: a.Probes, OK: a.OK,
		Unreachable: a.Unreachable, Behind: a.Behind, Failed: a.Failed, Challenges: a.Challenges,
		RTT: a.RTTMicros, Time: a.Time, SHA256: a.SHA256, Platform: a.Platform, Location: a.Location,
	}
	if a.Observed.IsValid() {
		w.Observed = a.Observed.Unmap().AsSlice()
	}
	body, err := enc.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("mirror: encode attestation: %w", err)
	}
	return seal(key, appID, KindAttestation, body)
}

// OpenAttestation decodes a signed attestation and checks its bounds and
// that its prober signed it.
func OpenAttestation(appID string, b []byte) (Attestation, error) {
	a, e, err := decodeAttestation(b)
	if err != nil {
		return Attestation{}, err
	}
	if err := e.check(appID, a.Prober); err != nil {
		return Attestation{}, err
	}
	return a, nil
}

// DecodeAttestation decodes an attestation that OpenAttestation accepted
// before (a store validator ran it on these very bytes): it checks the
// bounds, not the signature, which costs more than everything else.
func DecodeAttestation(b []byte) (Attestation, error) {
	a, _, err := decodeAttestation(b)
	return a, err
}

func decodeAttestation(b []byte) (Attestation, envelope, error) {
	e, err := open(b, KindAttestation)
	if err != nil {
		return Attestation{}, envelope{}, err
	}
	var w attestationWire
	if err := dec.Unmarshal(e.Body, &w); err != nil {
		return Attestation{}, envelope{}, fmt.Errorf("mirror: decode attestation: %v: %w", err, ErrMalformed)
	}
	a := Attestation{
		Epoch: w.Epoch, Probes: w.Probes, OK: w.OK, Unreachable: w.Unreachable, Behind: w.Behind,
		Failed: w.Failed, Challenges: w.Challenges, RTTMicros: w.RTT, Time: w.Time,
		SHA256: w.SHA256, Platform: w.Platform, Location: w.Location,
	}
	if a.Prober, err = peer.IDFromBytes(w.Prober); err != nil {
		return Attestation{}, envelope{}, fmt.Errorf("mirror: attestation prober: %v: %w", err, ErrMalformed)
	}
	if a.Probed, err = peer.IDFromBytes(w.Probed); err != nil {
		return Attestation{}, envelope{}, fmt.Errorf("mirror: attestation probed: %v: %w", err, ErrMalformed)
	}
	if w.Observed != nil {
		ip, ok := netip.AddrFromSlice(w.Observed)
		if !ok {
			return Attestation{}, envelope{}, fmt.Errorf("mirror: observed address of %d bytes: %w", len(w.Observed), ErrMalformed)
		}
		a.Observed = ip
	}
	if err := a.check(); err != nil {
		return Attestation{}, envelope{}, err
	}
	return a, e, nil
}
