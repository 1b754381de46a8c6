package blobs

import (
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a snapshot of a Store's counters.
type Metrics struct {
	StoredBytes  uint64 // file bytes of the blobs held here in full
	Pinned       int    // blobs this replica keeps
	Pending      int    // of those, blobs still being fetched
	AddedBytes   uint64 // bytes imported by Add since Open
	FetchedBytes uint64 // block bytes received from peers since Open, wanted or not
	ServedBytes  uint64 // block bytes sent to peers since Open
	// The parts of FetchedBytes and ServedBytes that went over the blocks
	// protocol between replicas rather than bitswap.
	StreamFetchedBytes uint64
	StreamServedBytes  uint64
	// SharedFetches counts the blocks a reader took from a fetch that
	// another reader (or the background replication) had under way,
	// instead of asking peers for them a second time.
	SharedFetches   uint64
	HTTPServedBytes uint64 // bytes sent by the HTTP handler since Open
	GCRuns          uint64
	GCFreedBytes    uint64
	BadCAR          uint64 // CAR imports rejected
	BadRequests     uint64 // malformed requests from peers or HTTP clients
	BadBlocks       uint64 // blocks from peers that nobody asked for (forged)
	BannedPeers     uint64 // peers banned for sending forged blocks since Open
	// BadDAG counts malformed directory nodes met by OpenPath, ReadDir
	// and the HTTP handler (ErrBadDAG).
	BadDAG uint64
}

type metrics struct {
	s *Store

	mu          sync.Mutex
	storedBytes uint64
	pinned      int
	pending     int

	added      atomic.Uint64
	httpServed atomic.Uint64
	gcRuns     atomic.Uint64
	gcFreed    atomic.Uint64
	badCAR     atomic.Uint64
	badRequest atomic.Uint64
	badDAG     atomic.Uint64
	badBlocks  atomic.Uint64
	banned     atomic.Uint64

	directFetched atomic.Uint64
	directServed  atomic.Uint64
	sharedFetches atomic.Uint64 // blocks a reader waited for another's fetch of

	collectors []prometheus.Collector
}

func newMetrics(s *Store) *metrics {
	m := &metrics{s: s}
	snap := func(f func(Metrics) float64) func() float64 {
		return func() float64 { return f(s.Metrics()) }
	}
	m.collectors = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dpaas_blobs_stored_bytes",
			Help: "File bytes of the blobs held in full on this instance."},
			snap(func(x Metrics) float64 { return float64(x.StoredBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dpaas_blobs_pinned",
			Help: "Blobs this instance keeps."},
			snap(func(x Metrics) float64 { return float64(x.Pinned) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dpaas_blobs_pending_replication",
			Help: "Blobs this instance keeps but has not fetched in full yet."},
			snap(func(x Metrics) float64 { return float64(x.Pending) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dpaas_blobs_added_bytes_total",
			Help: "Bytes imported by Add."},
			snap(func(x Metrics) float64 { return float64(x.AddedBytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dpaas_blobs_fetched_bytes_total",
			Help: "Block bytes received from peers, over bitswap or the blocks protocol."},
			snap(func(x Metrics) float64 { return float64(x.FetchedBytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dpaas_blobs_served_bytes_total",
			Help: "Block bytes sent to peers.", ConstLabels: prometheus.Labels{"via": "bitswap"}},
			snap(func(x Metrics) float64 { return float64(x.ServedBytes - x.StreamServedBytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dpaas_blobs_served_bytes_total",
			Help: "Block bytes sent to peers.", ConstLabels: prometheus.Labels{"via": "stream"}},
			snap(func(x Metrics) float64 { return float64(x.StreamServedBytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dpaas_blobs_http_served_bytes_total",
			Help: "Bytes sent by the HTTP handler."},
			snap(func(x Metrics) float64 { return float64(x.HTTPServedBytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dpaas_blobs_bad_input_total",
			Help: "Rejected input: bad CAR streams, malformed requests, forged blocks and malformed directory nodes."},
			snap(func(x Metrics) float64 { return float64(x.BadCAR + x.BadRequests + x.BadBlocks + x.BadDAG) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dpaas_blobs_banned_peers_total",
			Help: "Peers banned for sending forged blocks."},
			snap(func(x Metrics) float64 { return float64(x.BannedPeers) })),
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for i, c := range m.collectors {
		if err := r.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				r.Unregister(done)
			}
			return err
		}
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	for _, c := range m.collectors {
		r.Unregister(c)
	}
}

// loadPins initialises the pin gauges from the database.
func (m *metrics) loadPins() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.storedBytes, m.pinned, m.pending = 0, 0, 0
	return m.s.eachPin(func(_ cid.Cid, p pin) error {
		m.account(p, 1)
		return nil
	})
}

func (m *metrics) account(p pin, sign int) {
	m.pinned += sign
	if p.state == pinPending {
		m.pending += sign
		return
	}
	if sign > 0 {
		m.storedBytes += p.size
	} else {
		m.storedBytes -= p.size
	}
}

// pinChanged moves the gauges from the old pin (if had) to the new one (if
// has).
func (m *metrics) pinChanged(old pin, had bool, p pin, has bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if had {
		m.account(old, -1)
	}
	if has {
		m.account(p, 1)
	}
}

// Metrics returns a snapshot of the Store's counters.
func (s *Store) Metrics() Metrics {
	m := s.metrics
	m.mu.Lock()
	out := Metrics{StoredBytes: m.storedBytes, Pinned: m.pinned, Pending: m.pending}
	m.mu.Unlock()
	out.AddedBytes = m.added.Load()
	out.HTTPServedBytes = m.httpServed.Load()
	out.GCRuns = m.gcRuns.Load()
	out.GCFreedBytes = m.gcFreed.Load()
	out.BadCAR = m.badCAR.Load()
	out.BadRequests = m.badRequest.Load()
	out.BadDAG = m.badDAG.Load()
	out.BadBlocks = m.badBlocks.Load()
	out.BannedPeers = m.banned.Load()
	out.StreamFetchedBytes = m.directFetched.Load()
	out.StreamServedBytes = m.directServed.Load()
	out.SharedFetches = m.sharedFetches.Load()
	out.FetchedBytes, out.ServedBytes = out.StreamFetchedBytes, out.StreamServedBytes
	if s.bswap != nil {
		if st, err := s.bswap.Stat(); err == nil {
			out.FetchedBytes += st.DataReceived
			out.ServedBytes += st.DataSent
		}
	}
	return out
}
