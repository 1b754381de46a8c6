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
//	ps, err := pubsub.New(ctx, host, pubsub.Config{AppID: "my-app"}) // host keyed with secp256k1
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
package pubsub
