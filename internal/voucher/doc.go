// Package voucher is the deterministic core of dpaas payment channels: the
// EIP-712 voucher a payer signs off-chain, its stable binary and JSON
// encodings, and the checks a payee runs before accepting one. It does no
// I/O and reads no clock: every check is a pure function of its inputs, so
// it can be tested exhaustively and gives the same answer everywhere.
//
// The signed message is the EIP-712 typed data
//
//	Voucher(bytes32 channel,uint256 amount)
//
// under the domain {name: "dpaas Channels", version: "1", chainId,
// verifyingContract}, exactly what payment/contracts/Channels.sol verifies
// on-chain. Amount is cumulative: the total the payer owes on the channel,
// never an increment, so the payee only ever needs the latest voucher.
package voucher
