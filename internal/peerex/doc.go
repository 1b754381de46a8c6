// Package peerex is peer exchange among the instances of one DApp: how an
// instance that knows one other instance comes to know, and stay
// connected to, a bounded number of them.
//
// # Protocol
//
// One stream per exchange, on an AppID-scoped protocol ID
// (/dpaas/<appid>/px/1.0.0). The asker writes one frame holding a Message
// with its own signed peer record; the answerer reads it, writes one frame
// holding its own record followed by the records of up to MaxRecords-1 of
// the instances it is connected to (a random sample), and closes. A frame
// is an unsigned varint length followed by that many bytes of CBOR. Each
// record is a libp2p record envelope holding a peer.PeerRecord.
//
// An asker with at most one connection to the DApp sets Join: the
// answerer then sends the asker's record on random walks (Message.Walk)
// through the instances it is connected to; where a walk ends, that
// instance dials the newcomer. So a newcomer is linked to instances far
// from the one it joined through, not only to that one's neighbours, and
// a DApp that grows by joins through ever newer instances keeps a small
// diameter.
//
// The first record of a message must be the sender's own: the stream's
// secure connection proved the sender's key, and speaking the AppID's
// protocol shows it runs the DApp, so it enters the address book as
// verified. The other records enter it as candidates (see addrbook).
//
// # Usage
//
//	x, err := peerex.New(peerex.Config{Host: h, Protocol: id, Book: book})
//	...
//	defer x.Close()
//
// New answers the protocol, asks every instance that connects, and runs a
// round of upkeep whenever an instance connects or leaves and otherwise
// every 250 ms doubling up to MaxWait: it dials from the book while fewer
// than Target instances are connected (at most 4 dials in flight, network
// groups least represented first, instances verified before candidates),
// closes connections beyond Max (from the most crowded groups), asks one
// random connected instance for its list, and writes what changed in the
// book (unsynced); once a minute it marks the connected instances good as
// of now. A dial of a candidate that fails, or reaches a peer that does
// not speak the exchange, counts against the candidate and its source.
//
// A walk's end dials at most one newcomer at a time, and its record is a
// candidate charged to the instance that passed it on, so walks that lead
// nowhere get their sender distrusted like any other source of bad
// records.
//
// # Bad input
//
// Decode bounds a message (MaxFrame, MaxRecords, record size) and returns
// an error wrapping ErrMalformed; a record whose signature or signer does
// not hold is skipped. Both are counted in Stats.Malformed and never
// panic. FuzzDecode covers the decoder.
package peerex
