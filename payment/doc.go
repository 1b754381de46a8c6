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
//     served DevChain, which tells them (dpaas_info): then the URL alone
//     is enough.
//   - Config.Dev: an embedded DevChain that mines each transaction as it
//     arrives, so calls never wait for a block. Several in-process
//     Payments may share one, and DevChain.Fund is its faucet.
//
// With neither, Open returns ErrNoChain.
//
// # Dev chains: one process, or several
//
// NewDevChain starts a private chain in memory with a random chain ID: the
// zero-configuration choice for one process (the dapp package starts one
// when Config.Payment names no chain). Nothing outside the process sees
// it; the first Transfer to an account that no Payments of the process
// uses logs a warning saying so, and a voucher or transaction made for
// another chain is refused as one ("voucher for another chain",
// "invalid chain id for signer").
//
// For instances in several processes, run one dev chain as its own
// process, kept in a directory:
//
//	go run ./examples/devchain -dir ~/.dpaas-devchain -http 127.0.0.1:8545
//
// and give every instance only its URL:
//
//	p, _ := payment.Open(ctx, payment.Config{RPCURL: "http://127.0.0.1:8545", Key: key})
//	dev, _ := payment.DialDevChain(ctx, "http://127.0.0.1:8545")
//	dev.Fund(ctx, p.Account(), tokens) // faucet: gas and tokens
//
// OpenDevChain with DevChainConfig.Dir is the same chain in Go: reopened
// on its directory it continues with the same chain ID, contracts and
// balances, and every block is synced to disk before the transaction in
// it is acknowledged, so a killed chain loses nothing it acknowledged.
// DevChain.Serve serves any DevChain over HTTP; it answers only the eth,
// net and web3 namespaces and its own dpaas_info, dpaas_contracts and
// dpaas_fund, only to POSTs with Content-Type application/json, and
// refuses requests from web pages (an Origin header) unless their origin
// is one Serve was given.
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
// # Faults
//
//   - An RPCURL where nothing answers: Open fails with ErrChainUnreachable
//     ("cannot reach chain at URL"), not with a missing contract.
//   - An endpoint that answers but is not a served DevChain, with no
//     contract addresses configured: ErrNoContracts.
//   - No ether for gas: ErrNoGas, naming the account, what it holds and
//     about what the transaction needs; too few tokens with gas:
//     ErrInsufficientFunds. Nothing is sent in either case.
//   - A served DevChain stopped and restarted from its directory is the
//     same chain; Payments connected to it see connection errors meanwhile.
//
// # Bad input
//
// A served DevChain refuses non-POST requests (405), other content types
// (415), foreign origins (403), bodies over 8 MiB (413), batches over
// 1,000 calls and the node's other modules (-32601), before running
// anything. The faucet refuses a malformed address or amount (-32602).
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
//  5. For payments between processes, point every instance at one shared
//     chain; a private DevChain is for one process.
//  6. Serve a DevChain only on loopback or a trusted network: its faucet
//     mints for anyone who can reach it.
package payment
