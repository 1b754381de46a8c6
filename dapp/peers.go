package dapp

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/internal/addrbook"
	"github.com/dpaas/dpaas/internal/peerex"
)

// DiscoveryStats says how the instance is linked to the rest of its DApp.
type DiscoveryStats struct {
	// Peers is the number of instances of the DApp connected now.
	Peers int
	// Known is the number of instances in the address book that a
	// connection verified; Candidates, those that peers passed on and
	// that were not reached yet.
	Known, Candidates int
	// Dials counts dials of instances from the address book; Exchanges,
	// peer exchanges answered or asked; Malformed, exchange messages and
	// records refused; Trimmed, connections closed over the bound.
	Dials, Exchanges, Malformed, Trimmed uint64
	// Walks counts walks of a newcomer's record started here; WalkDials,
	// walks that ended here in a dial of the newcomer.
	Walks, WalkDials uint64
}

// DiscoveryStats reports the peer exchange's view of the DApp.
func (n *Node) DiscoveryStats() DiscoveryStats {
	x, b := n.px.Stats(), n.book.Stats()
	return DiscoveryStats{
		// Counted now: the exchange's own count is its last round's.
		Peers: len(n.Peers()), Known: b.Verified, Candidates: b.Candidates,
		Dials: x.Dials, Exchanges: x.Exchanges, Malformed: x.Malformed, Trimmed: x.Trimmed,
		Walks: x.Walks, WalkDials: x.WalkDials,
	}
}

// startPeerExchange opens the address book and starts the peer exchange
// among the DApp's instances, which dials the book's instances at once,
// alongside Bootstrap.
func (n *Node) startPeerExchange() error {
	space, err := n.db.Space("addrbook")
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	if n.book, err = addrbook.Open(addrbook.Options{Space: space, Self: n.host.ID(), Logger: n.log}); err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	n.px, err = peerex.New(peerex.Config{
		Host:     n.host,
		Protocol: protocol.ID("/dpaas/" + n.cfg.appID.String() + "/px/1.0.0"),
		Book:     n.book,
		Target:   n.cfg.PeerTarget,
		MaxWait:  n.cfg.DiscoveryInterval,
		Logger:   n.log,
	})
	if err != nil {
		return fmt.Errorf("dapp: open: %w", err)
	}
	n.closers = append(n.closers, n.px.Close)
	if reg := n.cfg.Metrics; reg != nil {
		c := discoveryCollector{n}
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("dapp: open: register metrics: %w", err)
		}
		n.closers = append(n.closers, func() error { reg.Unregister(c); return nil })
	}
	return nil
}

var (
	descPeers      = prometheus.NewDesc("dpaas_dapp_peers", "Instances of the DApp this one is connected to.", nil, nil)
	descBook       = prometheus.NewDesc("dpaas_dapp_addrbook_entries", "Instances in the address book: verified by a connection, or candidates passed on by peers.", []string{"kind"}, nil)
	descDials      = prometheus.NewDesc("dpaas_dapp_peerex_dials_total", "Dials of instances from the address book.", nil, nil)
	descExchanges  = prometheus.NewDesc("dpaas_dapp_peerex_exchanges_total", "Peer exchanges answered or asked.", nil, nil)
	descMalformed  = prometheus.NewDesc("dpaas_dapp_peerex_malformed_total", "Peer exchange messages or records refused: undecodable, forged or over a bound.", nil, nil)
	descTrimmed    = prometheus.NewDesc("dpaas_dapp_peerex_trimmed_total", "Connections to instances closed because there were more than the bound.", nil, nil)
	descBookRefuse = prometheus.NewDesc("dpaas_dapp_addrbook_refused_total", "Records refused by the address book: their source's records kept failing.", nil, nil)
)

type discoveryCollector struct{ n *Node }

func (c discoveryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeers, descBook, descDials, descExchanges, descMalformed, descTrimmed, descBookRefuse} {
		ch <- d
	}
}

func (c discoveryCollector) Collect(ch chan<- prometheus.Metric) {
	x, b := c.n.px.Stats(), c.n.book.Stats()
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(c.n.Peers())))
	ch <- prometheus.MustNewConstMetric(descBook, prometheus.GaugeValue, float64(b.Verified), "verified")
	ch <- prometheus.MustNewConstMetric(descBook, prometheus.GaugeValue, float64(b.Candidates), "candidate")
	ch <- prometheus.MustNewConstMetric(descDials, prometheus.CounterValue, float64(x.Dials))
	ch <- prometheus.MustNewConstMetric(descExchanges, prometheus.CounterValue, float64(x.Exchanges))
	ch <- prometheus.MustNewConstMetric(descMalformed, prometheus.CounterValue, float64(x.Malformed))
	ch <- prometheus.MustNewConstMetric(descTrimmed, prometheus.CounterValue, float64(x.Trimmed))
	ch <- prometheus.MustNewConstMetric(descBookRefuse, prometheus.CounterValue, float64(b.Refused))
}
