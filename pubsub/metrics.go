package pubsub

import "github.com/prometheus/client_golang/prometheus"

var (
	descPublished = prometheus.NewDesc("dpaas_pubsub_published_total", "Messages this instance published.", nil, nil)
	descDelivered = prometheus.NewDesc("dpaas_pubsub_delivered_total", "Messages handed to local subscribers.", nil, nil)
	descRejected  = prometheus.NewDesc("dpaas_pubsub_rejected_total", "Messages a topic validator rejected.", nil, nil)
	descInvalid   = prometheus.NewDesc("dpaas_pubsub_invalid_total", "Messages refused before validation: malformed envelope, bad signature, full queue.", nil, nil)
	descIgnored   = prometheus.NewDesc("dpaas_pubsub_ignored_total", "Messages a topic validator ignored.", nil, nil)
	descTooLarge  = prometheus.NewDesc("dpaas_pubsub_too_large_total", "Publish calls refused for size.", nil, nil)
	descThrottled = prometheus.NewDesc("dpaas_pubsub_throttled_total", "Messages ignored because their sender was over its budget on the topic.", nil, nil)
	descGraylist  = prometheus.NewDesc("dpaas_pubsub_graylisted_total", "Times a peer was graylisted for flooding or forged messages.", nil, nil)
	descFromGray  = prometheus.NewDesc("dpaas_pubsub_from_graylisted_total", "Messages dropped unvalidated because their peer was graylisted.", nil, nil)
	descGrayNow   = prometheus.NewDesc("dpaas_pubsub_graylisted_peers", "Peers graylisted now.", nil, nil)
	descDropped   = prometheus.NewDesc("dpaas_pubsub_dropped_total", "Messages lost: a full subscriber buffer (direction=in) or peer queue (direction=out).", []string{"direction"}, nil)
)

// Describe implements prometheus.Collector: a PubSub can be registered
// as is.
func (p *PubSub) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descDelivered, descRejected, descInvalid, descIgnored, descTooLarge,
		descThrottled, descGraylist, descFromGray, descGrayNow, descDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector from Stats.
func (p *PubSub) Collect(ch chan<- prometheus.Metric) {
	s := p.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descPublished, s.Published)
	counter(descDelivered, s.Delivered)
	counter(descRejected, s.Rejected)
	counter(descInvalid, s.Invalid)
	counter(descIgnored, s.Ignored)
	counter(descTooLarge, s.TooLarge)
	counter(descThrottled, s.Throttled)
	counter(descGraylist, s.Graylisted)
	counter(descFromGray, s.FromGraylisted)
	ch <- prometheus.MustNewConstMetric(descGrayNow, prometheus.GaugeValue, float64(len(p.Graylisted())))
	counter(descDropped, s.Dropped, "in")
	counter(descDropped, s.DroppedOutbound, "out")
}
