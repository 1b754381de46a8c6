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
// zero-configuration choice for one process (the dapp package starts one,
// shared by the instances of the process, when Config.Payment names no
// chain and an instance first uses payments). Nothing outside the process sees
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
// ERC-20; Channels.sol, unidirectional payment channels; Escrow.sol; Fund.sol,
// a DApp's budget paid per epoch), their abigen v2
// bindings, and gen.sh, which regenerates the bindings with the solc
// version pinned in package.json.
//
// # Channels
//
// The payer deposits once (OpenChannel), then signs cumulative EIP-712
// vouchers off-chain (Channel.Pay): each says "this channel owes its payee
// A in total". The payee checks each one (Accept: signature, channel,
// payee, amount above both the best held and what was already redeemed
// on-chain, within the deposit, before the expiry margin) and keeps only
// the best, durably (Config.Space, or Config.Dir for a Payments used
// alone). A voucher is worth only what it adds above what was redeemed:
// PaidBy credits nothing for a voucher some earlier instance with the same
// key already cashed. Before the expiry the payee redeems the best voucher
// on-chain (Redeem, or on its own, see below) and is paid the increase
// over what was redeemed; after the expiry the payer takes back the rest
// (Reclaim). Replay is impossible across channels (the channel ID is
// signed), contracts and chains (the EIP-712 domain names both).
//
// # Redeeming before the expiry
//
// From the first channel it is paid through, a Payments follows the
// Channels contract's events (Redeemed to its account, ToppedUp on the
// channels it holds vouchers on), polling every Config.PollInterval (at
// least 20ms), so the redeemed amount, deposit and expiry it checks
// vouchers against stay current even when another instance with the same
// key redeems. When a channel enters its last Config.ExpiryMargin
// (DefaultExpiryMargin, ten minutes, unless set), Accept refuses new
// vouchers on it (ErrExpired) and the Payments redeems the best voucher
// it holds, retrying failures with exponential backoff (up to 30s) until
// the expiry. It reports each step: an INFO log and Stats.AutoRedeemed for
// a redemption, a WARN log and Stats.AutoRedeemFailed per failed attempt,
// an ERROR log and Stats.RedeemMissed for a channel that expired with
// value unredeemed (the process was down through the whole margin, for
// instance); Collector exports them. A negative ExpiryMargin turns both
// the refusal and the automatic redemption off.
//
// # Contracts and tokens
//
// Channels moves tokens with the safe-transfer pattern (a low-level call
// that accepts either no return data or a true), so tokens whose transfer
// and transferFrom return nothing (USDT and other early ERC-20s) work as
// well as standard ones. Expiries are uint64 Unix seconds on-chain; the
// largest (2^64-1, "never") reads as a date billions of years away
// (ChannelState.ExpiryUnix keeps the exact value), never as a negative
// time.
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
// # Escrow
//
// The Escrow contract (beside Token and Channels; DevChain.Escrow,
// Config.Escrow, reported by a served DevChain's dpaas_info) holds a
// payer's deposit for a payee until the work is done:
//
//	id, _ := payer.OpenEscrow(ctx, payment.EscrowDeal{Payee: p, Amount: a,
//		FeeBps: 250, Fund: fund, Deadline: deadline, Arbiters: panel})
//	payer.Release(ctx, id)  // payee paid, 2.5% of it to the fund
//	payee.Refund(ctx, id)   // or: all back to the payer
//	payee.Claim(ctx, id)    // or: after the deadline, no dispute open
//	payer.Dispute(ctx, id)  // or: either side, before the deadline
//	sig, _ := payment.SignRuling(arbiterKey, chainID, escrow, id, 3000)
//	anyone.Settle(ctx, id, 3000, sigs) // 30% to the payee side, 70% back
//
// A ruling is the payee's share in basis points, signed as EIP-712 typed
// data Ruling(bytes32 deal,uint16 payeeBps) in the domain "dpaas Escrow"
// version 1 of the chain and the contract, by a majority of the deal's
// panel. A deal carries an ordered list of arbiters (Arbiters) and a
// panel size k (PanelSize, default the whole list): the panel sits on the
// first k, one who does not vote in time is replaced by the next of the
// list (governance decides when, off-chain), so the contract accepts the
// signatures of any floor(k/2)+1 distinct arbiters of the list. A deal's
// ID is EscrowDealID of the chain, the contract, the payer and a salt
// (EscrowDeal.Salt, random by default), so a payer knows it before
// opening and can draw the list from it (governance.ArbiterList). The fee
// is FeeBps of what the payee receives (release, claim, or its share of a
// ruling); a refund pays no fee. Each call returns once mined;
// EscrowState reads a deal (terms, status, list, panel size),
// EscrowSettlement the transaction and ruling that settled it.
//
// # Fund
//
// The Fund contract holds a DApp's budget and pays it out per epoch on
// its committee's word (the DApp's governance members). It is not a
// global contract of the chain: each DApp deploys its own, with its
// committee, and records the address where its instances find it (a
// governance parameter, or its manifest); a DevChain deploys none. An
// escrow's fee can go to the fund's address, as can any plain transfer.
//
//	addr, _ := p.DeployFund(ctx, payment.FundConfig{Committee: members, Budget: perEpoch})
//	fund, _ := p.OpenFund(ctx, addr)  // any instance, on the recorded address
//	fund.Deposit(ctx, amount)         // anyone: approve, then deposit
//	sig, _ := fund.SignPayout(epoch, table) // each member, with its own key
//	fund.SubmitPayout(ctx, epoch, table, nil, sigs) // anyone, once a majority signed
//
// RedeemedTo sums, per payee, what the Channels contract's Redeemed
// events paid over the blocks of a time period (found by their
// timestamps): the traffic an instance served in an epoch, backed by its
// users' vouchers, which payout tables weigh. It fails with
// ErrChainBehind until the chain is past the period, and then gives
// every caller the same answer.
//
// A payout is EIP-712 typed data Payout(uint64 epoch,bytes32 tableHash)
// in the domain "dpaas Fund" version 1 of the chain and the fund, where
// tableHash (PayoutTableHash) is keccak256(abi.encode(address[] accounts,
// uint256[] amounts)) over the table's rows in order. The contract pays
// only with signatures from a strict majority of the current committee
// (each member once, low-s), for an epoch above the last one paid, a
// total within the epoch budget and the balance. Epochs need not be
// consecutive, but each is paid at most once and never after a later
// one. The committee and the budget change the same way, by SetCommittee
// (SetCommittee(address[] committee,uint64 nonce)) and SetBudget
// (SetBudget(uint256 budget,uint64 nonce)) signed by a majority of the
// current committee with the fund's governance nonce (FundState.Nonce).
// The package functions PayoutDigest, SignPayout and their SetCommittee
// and SetBudget twins compute and sign without a Payments, for a member
// that holds its key elsewhere. Fund.State reads balance, budget, last
// epoch, nonce and committee at one block. Each transaction returns once
// mined.
//
// Every member must compute the same table from the same replicated
// inputs (attested availability, diversity groups, traffic backed by
// payment vouchers), or their signatures do not add up to a majority;
// anyone who recomputes a table checks it by comparing PayoutTableHash
// with the hash in the fund's PaidOut event. PayoutDigest and the other
// digests need a non-nil, non-negative chain ID.
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
// # Limits
//
// A redemption by another instance with the same key is seen one poll
// later: within that window a voucher it redeemed is still credited by
// PaidBy. The payee loop reads events in one query per round since the
// last; it rereads the held channels from the contract after a restart.
// A channel whose lifetime is shorter than the payee's ExpiryMargin never
// gets a voucher accepted: open channels well beyond it.
//
// An escrow arbiter list has 1 to MaxArbiters (32) distinct members,
// neither party among them; the contract keeps only its hash, and
// EscrowState, EscrowSettlement and Settle read the members and the
// settlement from the deal's events, from block 0
// (an endpoint that limits eth_getLogs ranges needs an archive-friendly
// provider). Tokens that take a fee on transfer are refused by the escrow
// and the fund (ErrFeeOnTransfer). Gas on the DevChain is in BENCHMARKS.md.
//
// A fund's committee has 1 to MaxCommittee (64) distinct members. A
// payout is one transaction, so its table must fit in the chain's
// per-transaction gas cap: on the DevChain (2^24 gas) a payout to 140
// accounts that hold no tokens yet goes through and one to 150 is
// refused while its gas is estimated; recipients that already hold
// tokens cost about 18,000 gas each.
//
// # Faults
//
// Accept returns only once the voucher is synced to disk, so a crash
// loses no voucher it acknowledged; concurrent Accepts on different
// channels share fsyncs (group commit). A Payments reopened on the same
// Space or Dir restores its best vouchers and credits, rereads their
// channels from the contract and redeems those inside the margin. A failed
// automatic redemption (no gas, chain unreachable) is retried until the
// expiry.
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
//   - Escrow refusals wrap a sentinel: ErrNotParty (the wrong side, or
//     a stranger), ErrDisputed (release or claim while disputed),
//     ErrNotDisputed (settle without a dispute), ErrDealClosed (already
//     released, refunded, claimed or settled: a second settlement),
//     ErrDeadline (claim too early, dispute too late), ErrBadDeal,
//     (including a salt the payer used before, or a panel larger than the
//     list), ErrUnknownDeal, ErrBadRuling (signer outside the list,
//     duplicate signer, fewer than floor(k/2)+1, a ruling for another deal, chain, contract or
//     share, a high-s or malformed signature), ErrReentrant (a token
//     calling back into the escrow during a transfer), ErrNoEscrow.
//   - Fund refusals wrap a sentinel too: ErrStaleEpoch (an epoch not
//     above the last paid: a replay), ErrOverBudget, ErrFundTooLow,
//     ErrNoMajority, ErrNotCommittee (a signer outside the committee, a
//     committee list that is not the current one, or a signature of
//     another table, epoch, fund or chain, which recovers another
//     address), ErrDuplicateSigner, ErrInvalidSignature (high-s or
//     malformed), ErrStaleNonce (a committee or budget change replayed or
//     out of order), ErrBadCommittee, ErrBadTable (a zero account, a
//     negative or nil amount; refused before sending), ErrNotFund
//     (OpenFund on an address holding no Fund of this version, checked by
//     its type hash and domain separator). A refused payout moves nothing,
//     and is normally refused while its gas is estimated, before anything
//     is sent.
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
//  2. Keep the Payments running (and its account funded with gas) during
//     the last Config.ExpiryMargin before each expiry of a channel it holds
//     vouchers on, or Redeem them yourself: a voucher not redeemed by the
//     expiry is lost to the payer's Reclaim.
//  3. Open a channel to a provider before its meter asks for payment, and
//     set an automatic payment limit, or the provider stops serving.
//  4. Close the Payments; it does not close a shared DevChain or the
//     database of Config.Space.
//  5. For payments between processes, point every instance at one shared
//     chain; a private DevChain is for one process.
//  6. Serve a DevChain only on loopback or a trusted network: its faucet
//     mints for anyone who can reach it.
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
package payment
