// Package meter is the wire protocol of dpaas metering: a provider that
// serves a peer asks that peer's node, over a libp2p stream, to bring what
// it paid up to a cumulative total, and the peer's node answers with a
// payment-channel voucher or a refusal.
//
// The protocol is request/response over one long-lived stream per pair of
// peers, so a payment costs one round trip on an open connection. Each
// message is a uvarint length followed by the body:
//
//	request:  version(1) total(32, big-endian)
//	response: version(1) status(1) payload
//	          status 0: payload is a binary voucher
//	          status 1: payload is the refusal reason (UTF-8)
//
// The package knows nothing of vouchers beyond their bytes, and nothing of
// policy: the payment package decides what to ask and what to pay.
package meter
