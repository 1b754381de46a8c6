// Package addrbook is an instance's memory of the other instances of its
// DApp: who they are, where they were last reached and when, so that a
// restarted instance finds the DApp again without the instance it first
// joined through.
//
// The book holds two kinds of entries:
//
//   - verified entries: instances this one has been connected to, where the
//     connection proved the key (a secure handshake) and the peer spoke the
//     DApp's protocol. They carry the addresses of the peer's latest signed
//     peer record and the time it was last connected (LastGood). They are
//     persisted in the instance's key space and reloaded by Open.
//   - candidates: signed peer records that another instance passed on.
//     The signature proves the record comes from the key it names, not that
//     anything listens at its addresses, so a candidate is only dialled, at
//     a bounded rate, never passed on, and never persisted. It becomes
//     verified once a connection to it proves the key and it speaks the
//     DApp's protocol (the caller says so with MarkGood).
//
// # Usage
//
//	b, err := addrbook.Open(addrbook.Options{Space: space})
//	...
//	b.AddCandidate(rec, from)     // a record a peer passed on
//	for _, e := range b.Due(8) {  // whom to dial now
//		b.Dialing(e.ID)
//		if err := dial(e); err != nil { b.DialFailed(e.ID) }
//	}
//	b.MarkGood(rec)               // connected; the peer proved its key
//
// # Limits
//
// At most MaxVerified verified entries (the least recently good is evicted
// first) and MaxCandidates candidates, of which at most MaxPerSource from
// any one source. A source whose candidates keep failing (MaxSourceFailures
// failed dials with fewer than one success in four) is distrusted for
// SourcePenalty: its records are refused. Verified entries age out
// VerifiedTTL after they were last good; candidates CandidateTTL after they
// arrived, or at their second failed dial. Failed dials of a verified
// entry back off exponentially from one second to ten minutes.
//
// # Faults
//
// A stored entry that does not decode is dropped and counted (Stats), not
// fatal. Writes are not synced: a crash may lose the last changes, which
// costs nothing but a slower reconnection.
//
// A Book is safe for concurrent use. Its clock is injected (Options.Now)
// so ageing is tested without waiting.
package addrbook
