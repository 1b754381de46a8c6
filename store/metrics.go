package store

import "github.com/prometheus/client_golang/prometheus"

var (
	descCreated  = prometheus.NewDesc("dpaas_store_deltas_created_total", "Local deltas committed.", nil, nil)
	descApplied  = prometheus.NewDesc("dpaas_store_deltas_applied_total", "Remote deltas applied.", nil, nil)
	descRejected = prometheus.NewDesc("dpaas_store_deltas_rejected_total", "Remote deltas or messages refused: malformed, bad signature, or refused by a validator.", nil, nil)
	descDups     = prometheus.NewDesc("dpaas_store_deltas_duplicate_total", "Remote deltas received again.", nil, nil)
	descPending  = prometheus.NewDesc("dpaas_store_deltas_pending", "Remote deltas waiting for their parents.", nil, nil)
	descHeld     = prometheus.NewDesc("dpaas_store_deltas_held", "Remote deltas stamped in the future, held back.", nil, nil)
	descHeads    = prometheus.NewDesc("dpaas_store_heads", "Current heads of the delta DAG.", nil, nil)
	descCatchUps = prometheus.NewDesc("dpaas_store_catchups_total", "Catch-up streams completed as requester.", nil, nil)
	descServed   = prometheus.NewDesc("dpaas_store_deltas_served_total", "Deltas served to peers catching up.", nil, nil)
	descInvalid  = prometheus.NewDesc("dpaas_store_deltas_invalid_total", "Remote deltas signed by their author that delta validation refuses (counted in rejected too); their descendants apply.", nil, nil)
	descAside    = prometheus.NewDesc("dpaas_store_deltas_set_aside", "Local deltas left pending by an older version that Open could not file, kept aside.", nil, nil)
	descLag      = prometheus.NewDesc("dpaas_store_catchup_remaining", "Deltas announced by running catch-ups and not applied yet.", nil, nil)
)

// Describe implements prometheus.Collector, so a Store can be registered
// with a Prometheus registry.
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCreated, descApplied, descRejected, descDups, descPending, descHeld, descHeads, descCatchUps, descServed, descInvalid, descAside, descLag} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	var lag uint64
	for _, x := range s.SyncStatus() {
		if !x.Done() && x.Total > x.Applied {
			lag += x.Total - x.Applied
		}
	}
	ch <- prometheus.MustNewConstMetric(descCreated, prometheus.CounterValue, float64(st.DeltasCreated))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.CounterValue, float64(st.DeltasApplied))
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(st.DeltasRejected))
	ch <- prometheus.MustNewConstMetric(descDups, prometheus.CounterValue, float64(st.Duplicates))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(st.Held))
	ch <- prometheus.MustNewConstMetric(descHeads, prometheus.GaugeValue, float64(st.Heads))
	ch <- prometheus.MustNewConstMetric(descCatchUps, prometheus.CounterValue, float64(st.CatchUps))
	ch <- prometheus.MustNewConstMetric(descServed, prometheus.CounterValue, float64(st.Served))
	ch <- prometheus.MustNewConstMetric(descInvalid, prometheus.CounterValue, float64(st.DeltasInvalid))
	ch <- prometheus.MustNewConstMetric(descAside, prometheus.GaugeValue, float64(st.SetAside))
	ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(lag))
}

var _ prometheus.Collector = (*Store)(nil)
