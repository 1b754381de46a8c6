// Package pubsub is the DApp's messaging layer: a thin, typed and safe
// layer over libp2p GossipSub.
//
// Every topic name is namespaced by the DApp's AppID, so two DApps whose
// instances share hosts or connections never see each other's messages.
// Every message travels in an envelope signed with its sender's instance
// key (secp256k1, the same key as its peer ID), bound to the topic and
// DApp, so Message.From is the peer that wrote it, not merely the one that
// forwarded it. A receiver checks the signature of every copy relayed to
// it; a copy that comes straight from its sender is already authenticated
// by the libp2p connection. Malformed or forged envelopes are refused,
// never delivered nor forwarded, and counted (Stats.Invalid). Messages
// larger than Config.MaxMessageSize are refused by Publish with ErrTooLarge
// instead of silently vanishing in the network.
//
// # Usage
//
// A dapp.Node builds its PubSub for you (node.PubSub()). Standalone, on any
// libp2p host:
//
//	ps, err := pubsub.Open(ctx, pubsub.Config{Host: host, AppID: "my-app"}) // host keyed with secp256k1
//	if err != nil { ... }
//	defer ps.Close()
//	rides, _ := ps.Join("rides")
//	sub, _ := rides.Subscribe()
//	defer sub.Close()
//	_ = rides.Publish(ctx, []byte("hello"))
//	msg, err := sub.Next(ctx) // msg.From, msg.Data
//
// A topic may have one validator, run on every message before it is
// delivered or forwarded, including the instance's own:
//
//	unregister, err := rides.SetValidator(func(ctx context.Context, m *pubsub.Message) error {
//		if len(m.Data) == 0 {
//			return errors.New("empty ride request") // rejected: not delivered, not forwarded
//		}
//		return nil
//	})
//
// A payload that its sender signs itself (a signed vote, a signed
// document change) need not be signed twice: with an Authenticator that
// recovers the signer from the payload, PublishSigned sends it in an
// unsigned envelope, and every receiver checks the one signature:
//
//	_ = votes.SetAuthenticator(func(p []byte) ([]byte, any, error) {
//		pub, err := crypto.Ecrecover(crypto.Keccak256(p[65:]), p[:65]) // go-ethereum
//		return pub, nil, err
//	})
//	_ = votes.PublishSigned(ctx, append(sig, vote...))
//
// The document store pushes its deltas this way.
//
// Topic names beginning with store/, blobs/, dapp/, payment/, governance/,
// pubsub/ or dpaas/ are reserved for the SDK's own components (the store
// replicates on "store/deltas"): Join refuses them with ErrReservedTopic,
// so an application cannot publish on them.
//
// # Flooding peers
//
// One peer must not silence the others. Every sender has a budget on
// every topic: Config.PeerMessageRate messages and Config.PeerByteRate
// bytes a second (defaults 20,000 and 8 MiB), after a burst of one
// second's worth; the SDK's own topics get four times as much. A message
// over its sender's budget is ignored: not delivered, not forwarded, and
// counted (Stats.Throttled). It also adds one to the sender's penalty, as
// does a malformed envelope to the peer that sent it. A peer whose
// penalty reaches Config.GraylistAfter (default 200) is graylisted through
// GossipSub v1.1 peer scoring (the penalty is the peer's application
// score; no other score component is used): GossipSub drops everything it
// sends before validating it, does not send it messages or gossip, and
// prunes it from every mesh. The stream it sends on is reset, so a
// GossipSub peer backs off and stops sending. Stats.Graylisted counts
// graylistings, Stats.FromGraylisted what was dropped, and
// PubSub.Graylisted lists who is graylisted now. The penalty halves every
// Config.GraylistHalfLife (default 10s), so a sender only a little over
// its budget has the excess ignored without being graylisted: it takes
// more than GraylistAfter·ln2/GraylistHalfLife messages over budget a
// second (14 by default). A graylisted peer that keeps flooding stays
// graylisted, one that stops is heard again two half-lives later.
// Budgets are per sender (the signed author), not per neighbour: an
// honest peer that relays a flood before its own budget stops it is not
// blamed. Config.NoPeerLimits turns all of this off.
//
// Every received message passes through one validation queue
// (Config.PeerQueue long) served by one GossipSub worker per CPU. A
// message over budget costs a worker a map lookup, so a flood does not
// hold the queue. The SDK's own topics are then validated in goroutines of
// their own (up to 1,024 messages at once per topic), so the store's
// validator, which applies each delta and may wait on the disk, never
// occupies the shared workers. An application validator runs in the
// workers: a slow one delays every topic's messages (caller duty 2).
//
// # Caller duties
//
//  1. Keep calling Next on every subscription you open, or Close it: a
//     subscription buffers Config.SubscriptionBuffer messages, and GossipSub
//     drops new messages for a subscriber whose buffer is full. Stats.Dropped
//     counts them; size the buffer for your bursts.
//  2. Validators must be deterministic and quick: they run on the network
//     path of every message. Return ErrIgnore to drop a message without
//     penalising the peer that forwarded it.
//  3. Close the PubSub (the Node does) to end every subscription; Next then
//     returns an error wrapping ErrClosed.
//  4. Size Config.PeerMessageRate and Config.PeerByteRate for the fastest
//     honest sender of the DApp: an instance that publishes faster than its
//     budget on one topic has the excess ignored by its peers, and one that
//     keeps at it is graylisted by them.
//
// # Limits
//
//   - Payload: Config.MaxMessageSize (default 1 MiB); Publish refuses more
//     with ErrTooLarge.
//   - Per sender and topic: Config.PeerMessageRate messages and
//     Config.PeerByteRate bytes a second (defaults 20,000 and 8 MiB; four
//     times as much on the SDK's topics); the excess is ignored by every
//     receiver and counted in Stats.Throttled.
//   - Per peer: graylisted at a penalty of Config.GraylistAfter (default
//     200 messages over budget or malformed); counted in Stats.Graylisted.
//   - Topic names: not empty, no NUL or newline (ErrBadTopic); not reserved
//     (ErrReservedTopic).
//
// # Bad input
//
// A malformed or forged envelope is refused (Stats.Invalid) and never
// forwarded; a malformed one counts against the peer that sent it. A
// message over its sender's budget is ignored (Stats.Throttled). Nothing a
// peer sends makes a call panic or blocks another topic.
//
// A known gap: an envelope with a bad signature is checked (one signature
// recovery) before it can be charged to anyone, because an honest peer may
// relay one that reached it straight from its author; such a flood costs
// its receivers that check per message and is not graylisted.
//
// # Lifecycle
//
// Every component of the SDK (store, blobs, pubsub, payment, governance,
// dapp) has one lifecycle. Open(ctx, Config) starts it; a zero Config
// field means its default (Config says which fields are required), and
// Open copies the Config. A Config that Open cannot use fails it with an
// error wrapping the package's ErrInvalidConfig. A nil Config.Logger
// discards logs; Config.Metrics, when set, receives the component's
// Prometheus metrics from Open until Close; a clock, where a component
// takes one, is Config.Now. Close stops the component and waits for
// every goroutine it started; it is safe to call more than once, and every
// call after the first returns an error wrapping the package's ErrClosed.
package pubsub
