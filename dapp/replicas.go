package dapp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/dpaas/dpaas/internal/mirror"
)

// ErrUnknownReplica is returned by Replicas.Get for an instance the
// directory does not list.
var ErrUnknownReplica = errors.New("dapp: unknown replica")

// Location is where an instance declares it runs: a hosting provider and a
// region, as free text ("aws", "us-west-2").
type Location struct {
	Provider string
	Region   string
}

// Build describes the executable an instance declares it runs.
type Build struct {
	// SHA256 is the executable's SHA-256 in hex; "" until the instance has
	// hashed it (in the background, once, at start).
	SHA256 string
	GOOS   string
	GOARCH string
	// Module, Version, Revision and Modified come from the Go build info:
	// the main module's path and version, vcs.revision and vcs.modified.
	Module   string
	Version  string
	Revision string
	Modified bool
}

// Replica is one instance of the DApp as this instance knows it: what it
// declares in its signed heartbeats (addresses, gateway, build, release,
// location), and what the network verified of it (Verified, Availability,
// Group), which never rests on what it says of its own availability.
type Replica struct {
	ID      peer.ID
	Account common.Address
	Addrs   []multiaddr.Multiaddr // as it declares them, each ending in /p2p/<id>
	// Gateway is the public URL of its HTTP gateway; "" if none.
	Gateway string
	Build   Build
	// Release is the release version it claims to run.
	Release  string
	Location Location
	// Verified reports whether its executable's hash matches an approved
	// release for its platform (governance.Releases); VerifiedRelease is
	// that release's version. The hash is what its signed heartbeat
	// declares: an instance cannot prove what it runs, but one that
	// declares a hash no release approves is never verified.
	Verified        bool
	VerifiedRelease string
	// Availability is its score over the current and the previous epoch,
	// between 0 and 1: the median over the instances that probed it of
	// each one's share of passed probes (reachable, store not behind,
	// storage challenge answered). Probers is how many attested it; 0
	// means no score yet.
	Availability float64
	Probers      int
	// RTT is the round-trip time from this instance: its last probe's, or
	// libp2p's estimate; 0 when unknown.
	RTT time.Duration
	// Group is its diversity group: instances whose addresses, as their
	// probers reached them, share a /24 (IPv4) or /48 (IPv6), or that
	// declare the same provider and region, share a group, named after
	// its smallest peer ID.
	Group string
	// LastSeen is when its latest heartbeat was received (for this
	// instance itself, when it last sent one).
	LastSeen time.Time
	// Self marks this instance.
	Self bool
}

// Standing is what the attestations of one epoch say of one instance: a
// pure function of the replicated attestations and the approved releases,
// the same on every instance that holds the same ones. Payouts are
// computed from standings.
type Standing struct {
	ID      peer.ID
	Account common.Address
	Group   string
	// Availability is the median over its probers of each one's share of
	// passed probes in the epoch; AvailabilityPPM the same in parts per
	// million, an integer for computations that must agree everywhere.
	Availability    float64
	AvailabilityPPM uint32
	Probers         int
	Probes          uint64
	// SHA256 and Platform are the build most of its probers saw it declare.
	SHA256   string
	Platform string
	Location Location
	// Verified reports whether that build matches an approved release;
	// Release is its version.
	Verified bool
	Release  string
}

// Replicas is the directory of the DApp's instances, with what the
// network verified about each. It is safe for concurrent use.
type Replicas struct{ n *Node }

// Replicas returns the instance's directory of the DApp's instances.
func (n *Node) Replicas() *Replicas { return &Replicas{n} }

// List returns every instance heard from within the last Expire intervals
// (Config.Mirror), this one included, sorted by peer ID. It fails with
// ErrClosed after Close, and returns only this instance when Mirror is
// Disabled.
func (r *Replicas) List(ctx context.Context) ([]Replica, error) {
	m := r.n.mirror
	if r.n.isClosed() {
		return nil, fmt.Errorf("dapp: replicas: %w", ErrClosed)
	}
	releases, err := r.n.releases(ctx)
	if err != nil {
		return nil, fmt.Errorf("dapp: replicas: %w", err)
	}
	return m.list(releases), nil
}

// Get returns the instance id as List would, or ErrUnknownReplica.
func (r *Replicas) Get(ctx context.Context, id peer.ID) (Replica, error) {
	all, err := r.List(ctx)
	if err != nil {
		return Replica{}, err
	}
	for _, x := range all {
		if x.ID == id {
			return x, nil
		}
	}
	return Replica{}, fmt.Errorf("dapp: replica %s: %w", id, ErrUnknownReplica)
}

// Epoch returns the number of the current epoch (Unix time divided by
// Config.Mirror.Epoch).
func (r *Replicas) Epoch() uint64 { return r.n.mirror.epochAt(time.Now()) }

// EpochStart returns when epoch e starts.
func (r *Replicas) EpochStart(e uint64) time.Time {
	return time.Unix(0, int64(e)*int64(r.n.mirror.cfg.Epoch))
}

// Standings returns the standing of every instance attested in epoch e,
// sorted by peer ID, from the attestations this instance holds: the
// epoch's table is final once the epoch is over and its attestations
// have replicated (within an Interval or so). Epochs older than
// KeepEpochs have been pruned and give an empty table.
func (r *Replicas) Standings(ctx context.Context, e uint64) ([]Standing, error) {
	if r.n.isClosed() {
		return nil, fmt.Errorf("dapp: standings: %w", ErrClosed)
	}
	releases, err := r.n.releases(ctx)
	if err != nil {
		return nil, fmt.Errorf("dapp: standings: %w", err)
	}
	var out []Standing
	for _, s := range mirror.Epoch(r.n.mirror.attestations(e, e), e) {
		st := Standing{
			ID: s.Peer, Account: s.Account, Group: s.Group,
			Availability: s.Score.Availability(), AvailabilityPPM: s.Score.PPM,
			Probers: s.Score.Probers, Probes: s.Score.Probes,
			SHA256: s.SHA256, Platform: s.Platform,
			Location: Location(s.Location),
		}
		st.Release, st.Verified = s.Verified(releases)
		out = append(out, st)
	}
	return out, nil
}

// Attestations returns the signed attestations of epoch e this instance
// holds, each as OpenAttestation in internal/mirror decodes it, for anyone
// who wants to recompute standings or a payout table independently.
func (r *Replicas) Attestations(ctx context.Context, e uint64) ([][]byte, error) {
	if r.n.isClosed() {
		return nil, fmt.Errorf("dapp: attestations: %w", ErrClosed)
	}
	return r.n.mirror.rawAttestations(e), nil
}

// releases lists the approved releases in the form internal/mirror takes.
func (n *Node) releases(ctx context.Context) ([]mirror.Release, error) {
	rels, err := n.gov.Releases(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]mirror.Release, len(rels))
	for i, r := range rels {
		out[i] = mirror.Release{Version: r.Version, Executables: r.Executables}
	}
	return out, nil
}

func sortReplicas(rs []Replica) {
	slices.SortFunc(rs, func(a, b Replica) int { return cmp.Compare(a.ID.String(), b.ID.String()) })
}
