// Package mirror is the deterministic core of a DApp's self-replication
// duties: the signed messages instances exchange about each other, and the
// pure functions every replica applies to them.
//
//   - Heartbeat: what an instance says of itself every interval (peer ID,
//     account, addresses, gateway URL, build, claimed release, declared
//     location, a sample of the blobs it holds), signed with its key.
//   - Attestation: what a prober observed of another instance during one
//     epoch (probes made, probes passed, why the others failed, the last
//     round-trip time, the address it reached it at), signed by the prober.
//   - Scores: an instance's availability in an epoch, the median over
//     distinct probers of each prober's success ratio, so that a minority
//     of lying probers moves nothing.
//   - Groups: diversity groups of instances whose observed addresses share
//     a /24 (IPv4) or /48 (IPv6), or that declare the same provider and
//     region.
//   - Verify: whether a build matches an approved release for its platform.
//
// Nothing here does I/O or reads a clock: package dapp runs the network
// side (heartbeats on a reserved topic, probes on a stream protocol,
// attestations as documents of the replicated store) and calls these
// functions, and so can anyone who wants to recompute a score or a payout
// from the replicated attestations.
//
// # Signatures
//
// Heartbeats and attestations travel in an Envelope: the CBOR body, a
// kind, and the signer's libp2p signature (secp256k1, the instance key)
// over a domain string, the AppID, the kind and the body. Open checks the
// signature against the public key inside the signer's peer ID, so a
// message cannot be replayed in another DApp or as another kind.
//
// # Bad input
//
// Decoders are strict (deterministic CBOR, unknown fields, duplicate keys
// and indefinite lengths refused) and bounded (MaxEnvelope, MaxAddrs,
// MaxBlobs, string lengths); every failure wraps ErrMalformed or
// ErrSignature and none panics (fuzzed).
package mirror
