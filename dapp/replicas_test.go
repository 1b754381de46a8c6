package dapp_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ipfs/go-cid"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/dapp/dapptest"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/internal/mirror"
	"github.com/dpaas/dpaas/store"
)

// diverseIPs puts node i on 127.0.<i+1>.1, except the last of n, which
// shares the /24 of the one before it (127.0.<n-1>.2). Probers see an
// instance at its address when they dialled it (on one host, loopback
// connections all leave from 127.0.0.1), and in a Full cluster node i
// dials nodes i+1...: so the pair sharing a /24 is dialled by the others.
func diverseIPs(n int) func(i int) string {
	return func(i int) string {
		if i == n-1 {
			return fmt.Sprintf("127.0.%d.2", n-1)
		}
		return fmt.Sprintf("127.0.%d.1", i+1)
	}
}

// fastMirror is a mirror configuration for tests: short intervals and
// epochs, every instance probed by every other each interval, and a probe
// timeout generous enough for a loaded machine.
func fastMirror(epoch time.Duration) dapp.MirrorConfig {
	return dapp.MirrorConfig{Interval: 500 * time.Millisecond, Epoch: epoch, Probes: 10, ProbeTimeout: 3 * time.Second, Expire: 20}
}

func replicaMap(t *testing.T, n *dapp.Node) map[peer.ID]dapp.Replica {
	t.Helper()
	rs, err := n.Replicas().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[peer.ID]dapp.Replica, len(rs))
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

// TestReplicasDirectory: six instances on five /24s find each other in
// their directories, with accounts, addresses, builds and availability
// attested by the others; the two sharing a /24 form one group, the
// others one each.
func TestReplicasDirectory(t *testing.T) {
	const n = 6
	c := dapptest.New(t, n, dapptest.Options{
		ListenIP:  diverseIPs(n),
		Configure: func(i int, cfg *dapp.Config) { cfg.Mirror = fastMirror(time.Hour) },
	})
	c.WaitConnected()
	var why string
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("last unmet:", why)
		}
	})
	c.WaitFor("every instance in every directory, attested available and grouped", func() bool {
		for i, node := range c.Nodes() {
			rs := replicaMap(t, node)
			if len(rs) != n {
				why = fmt.Sprintf("node %d lists %d instances", i, len(rs))
				return false
			}
			for _, r := range rs {
				// Under the race detector on a loaded machine a probe
				// may time out now and then.
				if r.Probers < 3 || r.Availability < 0.5 || r.Build.SHA256 == "" {
					why = fmt.Sprintf("node %d lists %s with %d probers, availability %v, build %q", i, r.ID, r.Probers, r.Availability, r.Build.SHA256)
					return false
				}
			}
			if g1, g2 := rs[c.Node(n-2).ID()].Group, rs[c.Node(n-1).ID()].Group; g1 != g2 {
				why = fmt.Sprintf("node %d puts nodes %d and %d in groups %s and %s", i, n-2, n-1, g1, g2)
				return false
			}
		}
		return true
	})
	rs := replicaMap(t, c.Node(2))
	groups := map[string]int{}
	for i := range n {
		r := rs[c.Node(i).ID()]
		groups[r.Group]++
		if r.Account != c.Node(i).Account() || len(r.Addrs) == 0 || r.Self != (i == 2) {
			t.Fatalf("node %d as node 2 lists it: %+v", i, r)
		}
		if i != 2 && r.RTT <= 0 {
			t.Fatalf("node %d: no round-trip time", i)
		}
		if r.Build.GOOS == "" || r.Verified {
			t.Fatalf("node %d: build %+v verified %v with no release approved", i, r.Build, r.Verified)
		}
	}
	if len(groups) != n-1 {
		t.Fatalf("groups %v: want %d (two instances share one /24)", groups, n-1)
	}
	probes, malformed := dapp.MirrorCounts(c.Node(0))
	if probes == 0 || malformed != 0 {
		t.Fatalf("node 0: %d probes, %d malformed", probes, malformed)
	}
}

// standing returns id's standing in epoch e as node sees it.
func standing(t *testing.T, node *dapp.Node, e uint64, id peer.ID) (dapp.Standing, bool) {
	t.Helper()
	ss, err := node.Replicas().Standings(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.ID == id {
			return s, true
		}
	}
	return dapp.Standing{}, false
}

// waitEpochOver waits for an epoch from e on that is over and of which
// node holds, from at least probers distinct probers, attestations signed
// in its second half, so that its standings are (nearly) final; it returns
// the first such epoch. On a loaded machine an epoch can pass with no probe
// ended in its second half, and the other probers' attestations can reach
// node epochs later: every epoch from e on is looked at again on each try.
func waitEpochOver(t *testing.T, c *dapptest.Cluster, node *dapp.Node, e uint64, probers int) uint64 {
	t.Helper()
	var found uint64
	// What was last seen of each epoch, logged if the wait times out.
	seen := map[uint64][]string{}
	defer func() {
		if t.Failed() {
			for x := e + uint64(max(len(seen)-3, 0)); x < e+uint64(len(seen)); x++ { // the last three
				t.Logf("attestations of epoch %d seen by %s: %s", x, node.ID().ShortString(), strings.Join(seen[x], "; "))
			}
		}
	}()
	c.WaitFor(fmt.Sprintf("an epoch from %d on over, with late attestations from %d probers", e, probers), func() bool {
		for x := e; x < node.Replicas().Epoch(); x++ {
			end := node.Replicas().EpochStart(x + 1)
			half := end.Sub(node.Replicas().EpochStart(x)) / 2
			raws, _ := node.Replicas().Attestations(context.Background(), x)
			late := map[peer.ID]bool{}
			seen[x] = seen[x][:0]
			for _, raw := range raws {
				a, err := mirror.OpenAttestation(node.AppID().String(), raw)
				if err != nil {
					seen[x] = append(seen[x], err.Error())
					continue
				}
				seen[x] = append(seen[x], fmt.Sprintf("%s→%s probes %d ok %d, %v from the end", a.Prober.ShortString(), a.Probed.ShortString(), a.Probes, a.OK, time.Unix(0, a.Time).Sub(end)))
				if end.Sub(time.Unix(0, a.Time)) < half {
					late[a.Prober] = true
				}
			}
			if len(late) >= probers {
				found = x
				return true
			}
		}
		return false
	})
	return found
}

// TestReplicasVerifiedBuild: once governance approves a release whose
// executable hash is the test binary's, instances running it are listed
// as verified, and one that hashes another file is not.
func TestReplicasVerifiedBuild(t *testing.T) {
	const n = 5
	key, err := ethcrypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other-build")
	if err := os.WriteFile(other, []byte("not the approved executable"), 0o600); err != nil {
		t.Fatal(err)
	}
	app := dapp.Manifest{Name: t.Name(), Members: []common.Address{ethcrypto.PubkeyToAddress(key.PublicKey)}}
	c := dapptest.New(t, n, dapptest.Options{
		App:      app,
		ListenIP: diverseIPs(n),
		Configure: func(i int, cfg *dapp.Config) {
			cfg.Mirror = fastMirror(time.Hour)
			cfg.Mirror.Release = "1.0.0"
			cfg.Governance.CloseDelay = 200 * time.Millisecond
			switch i {
			case 0:
				cfg.Key = key
			case n - 1:
				cfg.Mirror.Executable = other // for tests only: announces another build
			}
		},
	})
	c.WaitConnected()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	ctx := context.Background()
	id, err := c.Node(0).Governance().Propose(ctx, governance.Proposal{
		Title: "approve 1.0.0",
		End:   time.Now().Add(5 * time.Second),
		Actions: []governance.Action{governance.ApproveRelease(governance.Release{
			Version: "1.0.0", Executables: map[string]string{runtime.GOOS + "/" + runtime.GOARCH: hex.EncodeToString(sum[:])}})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node(0).Governance().Vote(ctx, id, governance.For()); err != nil {
		t.Fatal(err)
	}
	var why string
	c.WaitFor("the approved builds verified and the other not, on every instance", func() bool {
		for i, node := range c.Nodes() {
			rs := replicaMap(t, node)
			if len(rs) != n {
				why = fmt.Sprintf("node %d lists %d", i, len(rs))
				return false
			}
			for j := range n {
				r := rs[c.Node(j).ID()]
				want := j != n-1
				if r.Verified != want || (want && r.VerifiedRelease != "1.0.0") || r.Release != "1.0.0" {
					why = fmt.Sprintf("node %d lists node %d verified %v (%q), build %q", i, j, r.Verified, r.VerifiedRelease, r.Build.SHA256)
					return false
				}
			}
		}
		return true
	})
	_ = why
	r := replicaMap(t, c.Node(1))[c.Node(n-1).ID()]
	other256 := sha256.Sum256([]byte("not the approved executable"))
	if r.Build.SHA256 != hex.EncodeToString(other256[:]) {
		t.Fatalf("the other build announces %q", r.Build.SHA256)
	}
}

// TestReplicasLyingProberChangesNoScore: an instance that attests every
// other as down moves no score: each honest instance's availability is
// what the honest probers' attestations alone give.
func TestReplicasLyingProberChangesNoScore(t *testing.T) {
	const n = 6
	c := dapptest.New(t, n, dapptest.Options{
		ListenIP:  diverseIPs(n),
		Configure: func(i int, cfg *dapp.Config) { cfg.Mirror = fastMirror(5 * time.Second) },
		Timeout:   2 * time.Minute, // several 5 s epochs on a loaded machine
	})
	liar := c.Node(n - 1)
	dapp.ReportEveryoneDown(liar)
	c.WaitConnected()
	e := waitEpochOver(t, c, c.Node(0), c.Node(0).Replicas().Epoch()+1, n-1)
	raws, err := c.Node(0).Replicas().Attestations(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	var honest []mirror.Attestation
	lies := 0
	for _, raw := range raws {
		a, err := mirror.OpenAttestation(c.Node(0).AppID().String(), raw)
		if err != nil {
			t.Fatal(err)
		}
		if a.Prober == liar.ID() {
			if a.OK != 0 {
				t.Fatalf("the liar attested %+v", a)
			}
			lies++
			continue
		}
		honest = append(honest, a)
	}
	if lies < n-3 {
		t.Fatalf("the liar attested %d instances in epoch %d, want most of them", lies, e)
	}
	without := mirror.Scores(honest, e, e)
	for i := range n - 1 {
		id := c.Node(i).ID()
		s, ok := standing(t, c.Node(0), e, id)
		if !ok {
			t.Fatalf("node %d has no standing in epoch %d", i, e)
		}
		// Honest probers' shares of a healthy instance are all 1 unless a
		// probe timed out under load; either way the liar's 0 is below
		// them all and the median stays among the honest shares.
		if w := without[id]; w.PPM == 1_000_000 && s.AvailabilityPPM != w.PPM {
			t.Fatalf("node %d: availability %d with the liar, %d without", i, s.AvailabilityPPM, w.PPM)
		}
		if s.AvailabilityPPM < 500_000 {
			t.Fatalf("node %d: availability %d with the liar (%d probers)", i, s.AvailabilityPPM, s.Probers)
		}
	}
}

// TestReplicasStorageLiarFailsChallenges: an instance that claims blobs it
// does not hold fails the storage challenges and scores nothing, while
// the instances holding them score fully.
func TestReplicasStorageLiarFailsChallenges(t *testing.T) {
	const n = 6
	c := dapptest.New(t, n, dapptest.Options{
		ListenIP: diverseIPs(n),
		Configure: func(i int, cfg *dapp.Config) {
			cfg.Mirror = fastMirror(5 * time.Second)
			if i == n-1 {
				holdOnlyAssignedBlobs(cfg)
			}
		},
		Timeout: 2 * time.Minute, // several 5 s epochs on a loaded machine
	})
	c.WaitConnected()
	liar := c.Node(n - 1)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	claimBlobsNotHeld(t, c, 0, n-1, rand.New(rand.NewPCG(seed, 1)))
	e := waitEpochOver(t, c, c.Node(1), c.Node(0).Replicas().Epoch()+1, n-2)
	s, ok := standing(t, c.Node(1), e, liar.ID())
	raws, _ := c.Node(1).Replicas().Attestations(ctx, e)
	if !ok || s.Probers < 3 || s.AvailabilityPPM != 0 {
		for _, raw := range raws {
			if a, err := mirror.OpenAttestation(liar.AppID().String(), raw); err == nil && a.Probed == liar.ID() {
				t.Logf("attestation of the liar: %+v", a)
			}
		}
		t.Fatalf("the liar's standing in epoch %d: %+v (found %v)", e, s, ok)
	}
	if failed := challengesFailed(t, c.Node(1), e, liar.ID()); failed == 0 {
		t.Fatal("no challenge of the liar failed")
	}
	for i := range n - 1 {
		if s, _ := standing(t, c.Node(1), e, c.Node(i).ID()); s.AvailabilityPPM < 500_000 {
			t.Fatalf("honest node %d: %+v", i, s)
		}
	}
}

// holdOnlyAssignedBlobs makes an instance hold only the blobs assigned to
// it by rendezvous, over groups that do not change: with the groups
// probers observe, which settle over the first rounds, a blob could move
// to it after a test found it empty-handed.
func holdOnlyAssignedBlobs(cfg *dapp.Config) {
	cfg.Blobs.ReplicationFactor = 1
	cfg.Blobs.Group = func(p peer.ID) string { return p.String() }
}

// claimBlobsNotHeld makes node liar (configured with
// holdOnlyAssignedBlobs) claim, in its heartbeats, blobs it does not hold:
// node from adds random blobs until two are not the liar's to keep and
// have no block in its block store, burning the others, so that every
// blob of the set is one the liar cannot prove. It returns once every
// other running instance holds a heartbeat of the liar with the false
// claims: a probe made on an older one has nothing to challenge.
func claimBlobsNotHeld(t *testing.T, c *dapptest.Cluster, from, liar int, r *rand.Rand) []cid.Cid {
	t.Helper()
	ctx := context.Background()
	others := func() []*dapp.Node {
		var out []*dapp.Node
		for i := range c.Len() {
			if i != liar && c.Node(i) != nil {
				out = append(out, c.Node(i))
			}
		}
		return out
	}
	l := c.Node(liar)
	var notHeld []cid.Cid
	for i := 0; len(notHeld) < 2 && i < 20; i++ {
		data := make([]byte, 100<<10)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		blob, err := c.Node(from).Blobs().Add(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		c.WaitFor("the blob on every instance but the liar", func() bool {
			for _, node := range others() {
				if ok, _ := node.Blobs().Has(ctx, blob); !ok {
					return false
				}
			}
			return true
		})
		// Not held: not the liar's to keep (decided once its record is
		// there), and no block of it in the liar's block store at all.
		c.WaitFor("the blob's record on the liar", func() bool {
			st, err := l.Blobs().Stat(ctx, blob)
			return err == nil && st.Size > 0
		})
		st, err := l.Blobs().Stat(ctx, blob)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Blobs().ProveRange(ctx, blob, 0, 1, nil); err == nil || st.Pinned {
			if err := c.Node(from).Blobs().Burn(ctx, blob); err != nil {
				t.Fatal(err)
			}
			continue
		}
		notHeld = append(notHeld, blob)
	}
	if len(notHeld) < 2 {
		t.Fatal("the liar was assigned nearly every blob")
	}
	dapp.ClaimEveryBlob(l)
	c.WaitFor("the liar's claims heard by every other instance", func() bool {
		for _, node := range others() {
			if !dapp.HeardClaim(node, l.ID(), notHeld[0]) {
				return false
			}
		}
		return true
	})
	return notHeld
}

// challengesFailed is how many storage challenges of id failed in epoch
// e, in the attestations node holds.
func challengesFailed(t *testing.T, node *dapp.Node, e uint64, id peer.ID) int {
	t.Helper()
	raws, err := node.Replicas().Attestations(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, raw := range raws {
		if a, err := mirror.OpenAttestation(node.AppID().String(), raw); err == nil && a.Probed == id {
			failed += int(a.Failed)
		}
	}
	return failed
}

// TestReplicasKilledInstanceScoreFalls: an instance that stops is scored 0
// in the epochs after the one it stopped in.
func TestReplicasKilledInstanceScoreFalls(t *testing.T) {
	const n = 5
	c := dapptest.New(t, n, dapptest.Options{
		ListenIP: diverseIPs(n),
		Configure: func(i int, cfg *dapp.Config) {
			cfg.Mirror = fastMirror(5 * time.Second)
			// Listed, and probed, for the whole test: a loaded machine
			// may make it wait several epochs.
			cfg.Mirror.Expire = 1000
		},
		// Several epochs, on a machine busy with other tests.
		Timeout: 2 * time.Minute,
	})
	c.WaitConnected()
	victim := c.Node(n - 1).ID()
	e0 := waitEpochOver(t, c, c.Node(0), c.Node(0).Replicas().Epoch()+1, n-1)
	if s, ok := standing(t, c.Node(0), e0, victim); !ok || s.AvailabilityPPM < 500_000 {
		t.Fatalf("before: %+v", s)
	}
	c.Stop(n - 1)
	k := c.Node(0).Replicas().Epoch()
	after := waitEpochOver(t, c, c.Node(0), k+1, n-2)
	s, ok := standing(t, c.Node(0), after, victim)
	if !ok || s.Probers < 3 || s.AvailabilityPPM != 0 {
		t.Fatalf("epoch %d after stopping in %d: %+v (found %v)", after, k, s, ok)
	}
	// Its directory entry is still there (Expire), scored over this epoch and the last.
	if r := replicaMap(t, c.Node(1))[victim]; r.Availability >= 0.5 {
		t.Fatalf("listed with availability %v", r.Availability)
	}
}

// TestAttestationsRefuseForgery: an instance cannot write an attestation
// in another prober's name, sign one with another key, change one in
// place, or file one under another epoch; and an application cannot
// replace the collection's validator.
func TestAttestationsRefuseForgery(t *testing.T) {
	keys := make([]*ecdsa.PrivateKey, 2)
	for i := range keys {
		k, err := ethcrypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	c := dapptest.New(t, 2, dapptest.Options{
		Configure: func(i int, cfg *dapp.Config) {
			cfg.Mirror = fastMirror(time.Hour)
			cfg.Key = keys[i]
		},
	})
	c.WaitConnected()
	ctx := context.Background()
	a, b := c.Node(0), c.Node(1)
	app := a.AppID().String()
	c.WaitFor("an attestation by node 0", func() bool {
		raws, _ := a.Replicas().Attestations(ctx, a.Replicas().Epoch())
		return len(raws) > 0
	})
	raws, _ := a.Replicas().Attestations(ctx, a.Replicas().Epoch())
	att, err := mirror.OpenAttestation(app, raws[0])
	if err != nil {
		t.Fatal(err)
	}
	priv1, err := p2pcrypto.UnmarshalSecp256k1PrivateKey(ethcrypto.FromECDSA(keys[1]))
	if err != nil {
		t.Fatal(err)
	}
	// Node 1 signs an attestation in node 0's name, for a later epoch.
	forged := mirror.Attestation{Prober: a.ID(), Probed: b.ID(), Epoch: att.Epoch + 5, Probes: 1, Unreachable: 1, Time: 1}
	raw, err := mirror.SealAttestation(priv1, app, forged)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%d/%s/%s", forged.Epoch, a.ID(), b.ID())
	doc := map[string]any{"epoch": forged.Epoch, "a": raw}
	if err := b.Store().Collection(dapp.AttestationsCollection).Put(ctx, id, doc); err == nil {
		t.Fatal("an instance wrote an attestation in another prober's name")
	}
	if err := a.Store().Collection(dapp.AttestationsCollection).Put(ctx, id, doc); err == nil {
		t.Fatal("an attestation signed by another key was accepted")
	}
	own := fmt.Sprintf("%d/%s/%s", att.Epoch, att.Prober, att.Probed)
	if err := a.Store().Collection(dapp.AttestationsCollection).Update(ctx, own, store.Set("epoch", att.Epoch+1)); err == nil {
		t.Fatal("an attestation was updated in place")
	}
	wrong := fmt.Sprintf("%d/%s/%s", att.Epoch+1, att.Prober, att.Probed)
	if err := a.Store().Collection(dapp.AttestationsCollection).Put(ctx, wrong, map[string]any{"epoch": att.Epoch + 1, "a": raws[0]}); err == nil {
		t.Fatal("an attestation was filed under another epoch")
	}
	if _, err := dapp.Open(ctx, dapp.Config{App: dapp.Manifest{Name: "x"}, Store: store.Config{
		Validators: map[string]store.Validator{dapp.AttestationsCollection: func(store.Write) error { return nil }}}}); err == nil {
		t.Fatal("the attestations collection's validator was replaced")
	}
}

// TestAttestationsWrittenSparingly: an instance probing steady peers
// writes its attestations when they are new, not every round: every
// replica checks the signature of every attestation written.
func TestAttestationsWrittenSparingly(t *testing.T) {
	const n = 3
	c := dapptest.New(t, n, dapptest.Options{
		ListenIP:  diverseIPs(n),
		Configure: func(i int, cfg *dapp.Config) { cfg.Mirror = fastMirror(time.Hour) },
	})
	c.WaitConnected()
	ctx := context.Background()
	node := c.Node(0)
	app := node.AppID().String()
	e := node.Replicas().Epoch()
	written := func() map[peer.ID]mirror.Attestation {
		raws, err := node.Replicas().Attestations(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		out := map[peer.ID]mirror.Attestation{}
		for _, raw := range raws {
			a, err := mirror.OpenAttestation(app, raw)
			if err != nil {
				t.Fatal(err)
			}
			if a.Prober == node.ID() {
				out[a.Probed] = a
			}
		}
		return out
	}
	c.WaitFor("node 0's attestations of both others", func() bool { return len(written()) == n-1 })
	created := node.Store().Stats().DeltasCreated
	probes, _ := dapp.MirrorCounts(node)
	const rounds = 12
	c.WaitFor(fmt.Sprintf("%d more rounds of probes", rounds), func() bool {
		p, _ := dapp.MirrorCounts(node)
		return p >= probes+rounds*(n-1)
	})
	// A round whose outcome differs from the one before is written at once,
	// so a probe timing out under load may add a write or two; a write per
	// round would add twelve.
	if d := node.Store().Stats().DeltasCreated - created; d > rounds/3 {
		t.Fatalf("%d deltas written in %d rounds of steady probes", d, rounds)
	}
}
