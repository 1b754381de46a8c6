package dapp

import (
	"fmt"
	"time"
)

// MirrorConfig tunes the instance's self-replication duties: its
// heartbeats, its probes of the other instances and the attestations it
// records (see Replicas). The zero value of every field means its default.
type MirrorConfig struct {
	// Interval is the time between two heartbeats, and between two rounds
	// of probes; default 10 s. In a DApp of more than 32 instances the
	// heartbeats are spaced by whole Intervals so that the DApp carries
	// about 32 per Interval (every instance checks every heartbeat):
	// every 4 Intervals at 100 instances.
	Interval time.Duration
	// Epoch is the length of an availability epoch; default one hour.
	// Epochs are numbered from the Unix epoch (Unix time / Epoch), so
	// instances agree on them as far as their clocks agree. Every
	// instance of the DApp must use the same Epoch.
	Epoch time.Duration
	// Probes is how many other instances the instance probes each
	// heartbeat period (Interval, or more in a large DApp, see Interval),
	// picked at random among those it knows; default 3.
	Probes int
	// ProbeTimeout bounds one probe, storage challenge included; default
	// Interval/2, at most 5 s.
	ProbeTimeout time.Duration
	// Expire is how many heartbeat periods (Intervals, or more in a large
	// DApp, see Interval) an instance may go unheard before it leaves the
	// directory (and is no longer probed); default 6.
	Expire int
	// KeepEpochs is how many epochs of attestations are kept: each prober
	// deletes its own attestations of older epochs, and every instance
	// ignores them; default 24.
	KeepEpochs int
	// MaxBehind is how many deltas a probed instance's store may have
	// processed fewer than the prober's before the probe fails as behind;
	// default 1000.
	MaxBehind uint64
	// GatewayURL is the public URL of the instance's HTTP gateway, if it
	// serves one, as users should reach it; announced in its heartbeat.
	GatewayURL string
	// Location is where the instance declares it runs (provider, region).
	// Instances declaring the same provider and region count as one
	// diversity group.
	Location Location
	// Release is the version of the approved release the instance claims
	// to run, announced in its heartbeat. Whether it is verified depends
	// only on its executable's hash.
	Release string
	// Executable is the file whose SHA-256 the instance announces as its
	// build; default the running executable (os.Executable). It exists for
	// tests and for programs run by an interpreter or wrapper; a program
	// that sets it to anything but itself announces a build it does not
	// run, which nothing here can detect.
	Executable string
	// Disabled turns heartbeats, probes and attestations off: the
	// instance neither appears in the directory nor earns availability.
	// For benchmarks of other components.
	Disabled bool
}

func (m *MirrorConfig) validate() error {
	if m.Interval < 0 || m.Epoch < 0 || m.ProbeTimeout < 0 || m.Probes < 0 || m.Expire < 0 || m.KeepEpochs < 0 {
		return fmt.Errorf("dapp: Mirror: negative interval, epoch, timeout or count")
	}
	if m.Interval == 0 {
		m.Interval = 10 * time.Second
	}
	if m.Epoch == 0 {
		m.Epoch = time.Hour
	}
	if m.Epoch < m.Interval {
		return fmt.Errorf("dapp: Mirror: Epoch %v shorter than Interval %v", m.Epoch, m.Interval)
	}
	if m.Probes == 0 {
		m.Probes = 3
	}
	if m.ProbeTimeout == 0 {
		m.ProbeTimeout = min(m.Interval/2, 5*time.Second)
	}
	if m.Expire == 0 {
		m.Expire = 6
	}
	if m.KeepEpochs == 0 {
		m.KeepEpochs = 24
	}
	if m.MaxBehind == 0 {
		m.MaxBehind = 1000
	}
	if len(m.GatewayURL) > 256 || len(m.Release) > 64 || len(m.Location.Provider) > 64 || len(m.Location.Region) > 64 {
		return fmt.Errorf("dapp: Mirror: GatewayURL over 256 bytes, or Release, Provider or Region over 64")
	}
	return nil
}
