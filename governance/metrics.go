package governance

import "github.com/prometheus/client_golang/prometheus"

// metrics are governance's counters, a prometheus.Collector.
type metrics struct {
	refused  *prometheus.CounterVec
	closings prometheus.Counter
	actions  *prometheus.CounterVec
	ignored  prometheus.Gauge
	settles  *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dpaas_governance_refused_total",
			Help: "Governance messages refused: malformed, forged or over a limit (where: local, stored).",
		}, []string{"where"}),
		closings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dpaas_governance_closings_signed_total",
			Help: "Closing signatures this instance made.",
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dpaas_governance_actions_total",
			Help: "Actions of passed proposals run by this instance's handlers (result: ran, failed).",
		}, []string{"result"}),
		settles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dpaas_governance_case_settlements_total",
			Help: "Settlements of decided escrow cases this instance submitted (result: settled, closed (settled already), failed).",
		}, []string{"result"}),
		ignored: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dpaas_governance_ignored_ballots",
			Help: "Ballots held but not counted: outside their window, an invalid choice, no voting power, or no such proposal.",
		}),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.refused.Describe(ch)
	m.closings.Describe(ch)
	m.actions.Describe(ch)
	m.ignored.Describe(ch)
	m.settles.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.refused.Collect(ch)
	m.closings.Collect(ch)
	m.actions.Collect(ch)
	m.ignored.Collect(ch)
	m.settles.Collect(ch)
}
