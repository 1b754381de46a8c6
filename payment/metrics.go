package payment

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes Stats as Prometheus counters named
// dpaas_payment_<what>_total, for the caller to register:
//
//	prometheus.MustRegister(p.Collector())
func (p *Payments) Collector() prometheus.Collector { return statsCollector{p} }

type statsCollector struct{ p *Payments }

var statsDescs = []struct {
	desc *prometheus.Desc
	get  func(Stats) uint64
}{
	{prometheus.NewDesc("dpaas_payment_vouchers_accepted_total", "Vouchers that raised a channel's best voucher.", nil, nil), func(s Stats) uint64 { return s.VouchersAccepted }},
	{prometheus.NewDesc("dpaas_payment_vouchers_rejected_total", "Vouchers refused by Accept (bad, replayed, expired...).", nil, nil), func(s Stats) uint64 { return s.VouchersRejected }},
	{prometheus.NewDesc("dpaas_payment_redeemed_total", "Successful Redeem transactions.", nil, nil), func(s Stats) uint64 { return s.Redeemed }},
	{prometheus.NewDesc("dpaas_payment_transfers_total", "Successful token transfers sent.", nil, nil), func(s Stats) uint64 { return s.Transfers }},
	{prometheus.NewDesc("dpaas_payment_meter_requests_total", "Payment requests answered as a payer.", nil, nil), func(s Stats) uint64 { return s.MeterRequests }},
	{prometheus.NewDesc("dpaas_payment_meter_refused_total", "Payment requests refused as a payer.", nil, nil), func(s Stats) uint64 { return s.MeterRefused }},
	{prometheus.NewDesc("dpaas_payment_bad_requests_total", "Malformed metering messages received.", nil, nil), func(s Stats) uint64 { return s.BadRequests }},
	{prometheus.NewDesc("dpaas_payment_auto_redeemed_total", "Held vouchers redeemed automatically before their channel's expiry.", nil, nil), func(s Stats) uint64 { return s.AutoRedeemed }},
	{prometheus.NewDesc("dpaas_payment_auto_redeem_failures_total", "Failed automatic redemption attempts (retried until the expiry).", nil, nil), func(s Stats) uint64 { return s.AutoRedeemFailed }},
	{prometheus.NewDesc("dpaas_payment_redeem_missed_total", "Channels that expired holding a voucher above what was redeemed.", nil, nil), func(s Stats) uint64 { return s.RedeemMissed }},
}

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range statsDescs {
		ch <- d.desc
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	for _, d := range statsDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(d.get(s)))
	}
}
