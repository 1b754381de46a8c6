package payment

import (
	"errors"
)

// Errors. Each is wrapped with the operation that failed; test with
// errors.Is. Where the chain refused a transaction for a reason the
// contracts name, the error wraps the matching sentinel too.
var (
	ErrClosed = errors.New("payment: closed")
	// ErrInvalidConfig is wrapped by Open's errors about a Config it
	// cannot use.
	ErrInvalidConfig = errors.New("payment: invalid config")
	ErrNoChain       = errors.New("payment: no chain: set Config.RPCURL or Config.Dev")
	// ErrNoContracts: an RPC URL was given without the contract addresses,
	// and the endpoint is not a dpaas DevChain that could tell them.
	ErrNoContracts = errors.New("payment: contract addresses unknown: set Config.Token and Config.Channels")
	// ErrChainUnreachable: nothing answered at the RPC URL (connection
	// refused, unknown host, timeout...). The message names the URL.
	ErrChainUnreachable = errors.New("payment: chain unreachable")
	// ErrNotDevChain: the endpoint answered, but not as a served DevChain
	// (no dpaas_info), so it has no faucet and tells no contracts.
	ErrNotDevChain = errors.New("payment: not a dpaas dev chain")

	// ErrNoGas: the account holds too little ether to pay for the
	// transaction's gas; the message names the account, what it holds and
	// about what the transaction needs. On a DevChain, Fund gives gas.
	ErrNoGas = errors.New("payment: not enough ether for gas")

	ErrInsufficientFunds = errors.New("payment: insufficient token balance")
	ErrAllowance         = errors.New("payment: insufficient token allowance")
	ErrReverted          = errors.New("payment: transaction reverted")
	ErrUnknownChannel    = errors.New("payment: unknown channel")
	ErrNotPayer          = errors.New("payment: not the channel's payer")
	ErrNotExpired        = errors.New("payment: channel not expired yet")
	ErrNothingToRedeem   = errors.New("payment: no voucher above what was redeemed")
	ErrBadAmount         = errors.New("payment: amount must be positive")
	ErrBadExpiry         = errors.New("payment: expiry must be in the future and not earlier than before")

	// Voucher checks, on the payee's side and by the contract.
	ErrMalformedVoucher = errors.New("payment: malformed voucher")
	ErrWrongDomain      = errors.New("payment: voucher for another chain or contract")
	ErrWrongChannel     = errors.New("payment: voucher for another channel")
	ErrBadSignature     = errors.New("payment: voucher not signed by the channel's payer")
	ErrNotPayee         = errors.New("payment: channel pays someone else")
	ErrNotAboveBest     = errors.New("payment: voucher does not raise the amount (replayed or lower)")
	ErrAboveDeposit     = errors.New("payment: voucher exceeds the channel deposit")
	ErrExpired          = errors.New("payment: channel expired or too close to expiry")

	// Escrow.
	ErrNoEscrow = errors.New("payment: no escrow contract: set Config.Escrow")
	// ErrUnknownDeal: no deal with that ID on the escrow contract.
	ErrUnknownDeal = errors.New("payment: unknown escrow deal")
	// ErrNotParty: the caller is not the deal's party allowed to do that
	// (release: the payer; refund and claim: the payee; dispute: either).
	ErrNotParty = errors.New("payment: not a party allowed to do that on the deal")
	// ErrDisputed: a dispute is open, so only a ruling (Settle) ends the deal.
	ErrDisputed = errors.New("payment: deal disputed")
	// ErrNotDisputed: Settle on a deal with no dispute open.
	ErrNotDisputed = errors.New("payment: deal not disputed")
	// ErrDealClosed: the deal was already released, refunded, claimed or settled.
	ErrDealClosed = errors.New("payment: deal closed")
	// ErrDeadline: dispute after the deadline, claim before it, or a
	// deadline in the past at open.
	ErrDeadline = errors.New("payment: deal deadline")
	// ErrBadDeal: a deal's terms are invalid (payee, fee above 100% or
	// without a fund, panel empty, too large, with a zero, duplicate or
	// party arbiter).
	ErrBadDeal = errors.New("payment: bad deal terms")
	// ErrBadRuling: the ruling or its signatures do not settle the deal:
	// a share above 100%, a malformed or high-s signature, a signer outside
	// the panel, a duplicate signer, no strict majority, or a panel that
	// is not the deal's.
	ErrBadRuling = errors.New("payment: bad ruling")
	// ErrFeeOnTransfer: the token delivered less than the amount to the
	// escrow (a fee-on-transfer token), which the escrow refuses.
	ErrFeeOnTransfer = errors.New("payment: token takes a fee on transfer")
	// ErrReentrant: a call back into the escrow during one of its
	// transfers, refused.
	ErrReentrant = errors.New("payment: reentrant escrow call")

	// Metering.
	ErrCreditExceeded = errors.New("payment: payer owes more than the credit limit")
	ErrAutoPayLimit   = errors.New("payment: automatic payment limit reached")
	// ErrRefused: the payer's node answered a meter's request with a
	// refusal (its limit, no channel, too little deposit...); the reason
	// it gave is in the message.
	ErrRefused      = errors.New("payment: payer refused to pay")
	ErrNoMetering   = errors.New("payment: metering needs Config.Host")
	ErrNotSecp256k1 = errors.New("payment: peer identity is not a secp256k1 key")
)
