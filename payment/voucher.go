package payment

import (
	"errors"
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/voucher"
)

// Voucher is a payer's EIP-712 signature over "channel owes its payee
// amount in total". It has a stable binary form (MarshalBinary,
// VoucherSize bytes) and JSON form (MarshalJSON), so it can travel over
// any transport.
type Voucher struct {
	ChainID   *big.Int
	Contract  common.Address
	Channel   common.Hash
	Amount    *big.Int
	Signature []byte // r || s || v, v in {27, 28}
}

// ParseVoucher decodes a voucher's binary form.
func ParseVoucher(b []byte) (Voucher, error) {
	var v Voucher
	if err := v.UnmarshalBinary(b); err != nil {
		return Voucher{}, err
	}
	return v, nil
}

// AppendBinary appends the binary encoding of v to b.
func (v Voucher) AppendBinary(b []byte) ([]byte, error) {
	b, err := voucher.Voucher(v).AppendBinary(b)
	return b, voucherErr(err)
}

// MarshalBinary encodes v in its fixed VoucherSize-byte form: version,
// chain ID (32 bytes, big-endian), contract (20), channel (32), amount
// (32, big-endian), signature (65).
func (v Voucher) MarshalBinary() ([]byte, error) {
	b, err := voucher.Voucher(v).MarshalBinary()
	return b, voucherErr(err)
}

// UnmarshalBinary decodes the form MarshalBinary produces. It refuses any
// other length, version, a zero chain ID or amount, with an error wrapping
// ErrMalformedVoucher.
func (v *Voucher) UnmarshalBinary(b []byte) error {
	return voucherErr((*voucher.Voucher)(v).UnmarshalBinary(b))
}

// MarshalJSON encodes v as {"chainId","contract","channel","amount",
// "signature"}, numbers and bytes as 0x-prefixed hex like Ethereum
// JSON-RPC.
func (v Voucher) MarshalJSON() ([]byte, error) {
	b, err := voucher.Voucher(v).MarshalJSON()
	return b, voucherErr(err)
}

// UnmarshalJSON decodes the form MarshalJSON produces; every field is
// required.
func (v *Voucher) UnmarshalJSON(b []byte) error {
	return voucherErr((*voucher.Voucher)(v).UnmarshalJSON(b))
}

// Signer recovers the address that signed v. It refuses malleable (high-s)
// signatures, exactly like the contract, so one voucher has one encoding.
func (v Voucher) Signer() (common.Address, error) {
	a, err := voucher.Voucher(v).Signer()
	return a, voucherErr(err)
}

// voucherSentinels pairs the voucher codec's sentinels with the public
// ones, which carry the same message.
var voucherSentinels = [...][2]error{
	{voucher.ErrMalformed, ErrMalformedVoucher},
	{voucher.ErrUnknownVersion, ErrMalformedVoucher},
	{voucher.ErrWrongDomain, ErrWrongDomain},
	{voucher.ErrWrongChannel, ErrWrongChannel},
	{voucher.ErrBadSignature, ErrBadSignature},
	{voucher.ErrNotPayee, ErrNotPayee},
	{voucher.ErrNotAboveBest, ErrNotAboveBest},
	{voucher.ErrAboveDeposit, ErrAboveDeposit},
	{voucher.ErrExpired, ErrExpired},
}

// voucherErr makes an error of the voucher codec match the public
// sentinel of the same meaning with errors.Is, keeping its message.
func voucherErr(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range voucherSentinels {
		if errors.Is(err, s[0]) {
			return &alsoMatches{err: err, public: s[1]}
		}
	}
	return err
}

// alsoMatches is err, with its message, that errors.Is also matches to
// public.
type alsoMatches struct{ err, public error }

func (e *alsoMatches) Error() string   { return e.err.Error() }
func (e *alsoMatches) Unwrap() []error { return []error{e.err, e.public} }
