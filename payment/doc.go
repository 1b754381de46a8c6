// Package payment lets DApp instances pay and get paid in an ERC-20 token:
// plain transfers, payment channels for micropayments, and metering that
// charges a peer per unit of service and collects vouchers over libp2p.
//
// # Chains
//
// A Payments works on one chain, named in its Config:
//
//   - Config.RPCURL: any Ethereum JSON-RPC endpoint. Set Config.Token and
//     Config.Channels to the deployed contracts, unless the endpoint is a
//     served DevChain, which tells them.
//   - Config.Dev: an embedded DevChain (go-ethereum's simulated backend)
//     that mines each transaction as it arrives, so calls never wait for a
//     block. Several in-process Payments may share one; DevChain.Serve
//     exposes it over JSON-RPC on loopback for other processes, and
//     DevChain.Fund is its faucet.
//
// With neither, Open returns ErrNoChain.
//
// # Contracts
//
// payment/contracts holds the Solidity sources (Token.sol, a mintable
// ERC-20; Channels.sol, unidirectional payment channels), their abigen v2
// bindings, and gen.sh, which regenerates the bindings with the solc
// version pinned in package.json.
//
// # Channels
//
// The payer deposits once (OpenChannel), then signs cumulative EIP-712
// vouchers off-chain (Channel.Pay): each says "this channel owes its payee
// A in total". The payee checks each one (Accept: signature, channel,
// payee, amount above the best held, within the deposit, before the
// expiry) and keeps only the best, durably. Before the expiry the payee
// redeems it on-chain (Redeem) and is paid the increase over what was
// redeemed; after the expiry the payer takes back the rest (Reclaim).
// Replay is impossible across channels (the channel ID is signed),
// contracts and chains (the EIP-712 domain names both).
//
// # Usage
//
//	dev, _ := payment.NewDevChain(ctx)
//	defer dev.Close()
//	payer, _ := payment.Open(ctx, payment.Config{Dev: dev, Key: payerKey})
//	payee, _ := payment.Open(ctx, payment.Config{Dev: dev, Key: payeeKey})
//	dev.Fund(ctx, payer.Account(), tokens)
//	dev.Fund(ctx, payee.Account(), nil) // gas only
//
//	ch, _ := payer.OpenChannel(ctx, payee.Account(), deposit, time.Hour)
//	v, _ := ch.Pay(price)        // send v (v.MarshalBinary) to the payee
//	err := payee.Accept(ctx, v)  // on the payee's side
//	tx, _ := payee.Redeem(ctx, ch.ID())
//
// # Metering
//
// With Config.Host set, a provider creates a Meter with a price per unit
// and calls Meter.Charge as it serves a peer. Every MeterConfig.Every
// unpaid units the meter asks the peer's node, over the protocol
// /dpaas/<AppID>/payment/meter/1.0.0, to pay what it owes; that node signs
// a voucher on one of its channels to the provider, automatically, up to
// the limit its owner set (Config.AutoPayLimit, SetAutoPayLimit). Charge
// refuses (ErrCreditExceeded) once the peer would owe more than the credit
// limit. A peer's Ethereum account is derived from its libp2p identity
// (PeerAccount), which is the same secp256k1 key.
//
// # Caller duties
//
//  1. Fund the account with gas (and tokens) before sending transactions.
//  2. Redeem held vouchers before their channel expires: Accept refuses
//     vouchers within Config.ExpiryMargin of the expiry, to leave time.
//  3. Open a channel to a provider before its meter asks for payment, and
//     set an automatic payment limit, or the provider stops serving.
//  4. Close the Payments; it does not close a shared DevChain or the
//     caller's kv.Space.
package payment
