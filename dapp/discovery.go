package dapp

import (
	"context"
	"fmt"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// firstRetry is the wait before the first re-dial of a bootstrap peer or
// the second rendezvous round; waits double up to DiscoveryInterval.
const firstRetry = 500 * time.Millisecond

const dialTimeout = 10 * time.Second

func (n *Node) startDiscovery(ctx context.Context) error {
	if err := n.watchPeers(); err != nil {
		return err
	}
	if err := n.startPeerExchange(); err != nil {
		return err
	}
	if len(n.cfg.bootstrap) > 0 {
		for _, ai := range n.cfg.bootstrap {
			n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		}
		n.tasks.Go(n.keepBootstrapped)
	}
	if n.cfg.MDNS {
		svc := mdns.NewMdnsService(n.host, "dpaas-"+n.cfg.appID.String(), mdnsNotifee{n})
		if err := svc.Start(); err != nil {
			return fmt.Errorf("dapp: open: mdns: %w", err)
		}
		n.closers = append(n.closers, svc.Close)
	}
	if n.dht != nil {
		n.tasks.Go(n.rendezvous)
	}
	return nil
}

// startDHT joins the Kademlia DHT when Config.DHT is set. It runs before
// the components that use it as content routing; the rendezvous on the
// AppID starts with the rest of discovery.
func (n *Node) startDHT() error {
	if !n.cfg.DHT {
		return nil
	}
	mode := dht.ModeAutoServer
	if n.cfg.loopback {
		mode = dht.ModeServer
	}
	kd, err := dht.New(n.host,
		dht.Mode(mode),
		dht.ProtocolPrefix(protocol.ID(n.cfg.DHTPrefix)),
		dht.BootstrapPeers(n.cfg.bootstrap...),
	)
	if err != nil {
		return fmt.Errorf("dapp: open: dht: %w", err)
	}
	n.dht = kd
	n.closers = append(n.closers, kd.Close)
	return nil
}

// keepBootstrapped dials every bootstrap peer that is not connected,
// backing off per peer while it stays unreachable, and wakes at once when
// one drops; but not while the instance is connected to PeerTarget
// instances of the DApp: the bootstrap peers are a way in, not peers to
// keep. A bootstrap peer over its bound closes connections; redialling
// them at once would make every instance that joined through it dial it
// again and again.
func (n *Node) keepBootstrapped(ctx context.Context) {
	type state struct {
		next    time.Time
		backoff time.Duration
	}
	states := make(map[peer.ID]*state)
	for _, ai := range n.cfg.bootstrap {
		if ai.ID != n.host.ID() {
			states[ai.ID] = &state{backoff: firstRetry}
		}
	}
	for {
		now := time.Now()
		var due []peer.ID
		wait := n.cfg.DiscoveryInterval
		enough := n.px != nil && n.px.Satisfied()
		for p, s := range states {
			if enough {
				break
			}
			if n.host.Network().Connectedness(p) == network.Connected {
				s.backoff = firstRetry
				continue
			}
			if !now.Before(s.next) {
				due = append(due, p)
			} else if d := s.next.Sub(now); d < wait {
				wait = d
			}
		}
		if len(due) > 0 {
			var mu sync.Mutex
			var wg sync.WaitGroup
			for _, p := range due {
				wg.Add(1)
				go func() {
					defer wg.Done()
					dctx, cancel := context.WithTimeout(ctx, dialTimeout)
					err := n.host.Connect(dctx, peer.AddrInfo{ID: p})
					cancel()
					mu.Lock()
					defer mu.Unlock()
					s := states[p]
					if err != nil {
						n.log.Debug("dapp: bootstrap dial failed", "peer", p, "retry_in", s.backoff, "err", err)
						s.next = time.Now().Add(s.backoff)
						s.backoff = min(2*s.backoff, n.cfg.DiscoveryInterval)
						return
					}
					s.backoff = firstRetry
				}()
			}
			wg.Wait()
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-n.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// rendezvous advertises the instance under the AppID in the DHT and
// connects to the other instances it finds there, in rounds that grow
// from firstRetry to DiscoveryInterval apart.
func (n *Node) rendezvous(ctx context.Context) {
	disc := drouting.NewRoutingDiscovery(n.dht)
	ns := "dpaas/" + n.cfg.appID.String()
	wait := firstRetry
	for {
		if n.dht.RoutingTable().Size() > 0 {
			if _, err := disc.Advertise(ctx, ns); err != nil && ctx.Err() == nil {
				n.log.Debug("dapp: rendezvous advertise", "err", err)
			}
			n.findAppPeers(ctx, disc, ns)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, n.cfg.DiscoveryInterval)
	}
}

func (n *Node) findAppPeers(ctx context.Context, disc *drouting.RoutingDiscovery, ns string) {
	fctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	found, err := disc.FindPeers(fctx, ns)
	if err != nil {
		n.log.Debug("dapp: rendezvous find", "err", err)
		return
	}
	for ai := range found {
		if ai.ID == n.host.ID() || len(ai.Addrs) == 0 ||
			n.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		dctx, dcancel := context.WithTimeout(ctx, dialTimeout)
		if err := n.host.Connect(dctx, ai); err != nil {
			n.log.Debug("dapp: rendezvous dial", "peer", ai.ID, "err", err)
		} else {
			n.log.Info("dapp: found instance through the DHT", "peer", ai.ID)
		}
		dcancel()
	}
}

type mdnsNotifee struct{ n *Node }

// HandlePeerFound dials an instance found on the LAN without blocking the
// mDNS service.
func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if ai.ID == n.host.ID() {
		return
	}
	n.tasks.Go(func(ctx context.Context) {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		if err := n.host.Connect(dctx, ai); err != nil {
			n.log.Debug("dapp: mdns dial", "peer", ai.ID, "err", err)
			return
		}
		n.log.Info("dapp: found instance on the local network", "peer", ai.ID)
	})
}
