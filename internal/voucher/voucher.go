package voucher

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
)

// Errors returned by decoding and checking. The "payment:" prefix is
// deliberate: the public payment package makes each match its own
// sentinel of the same message (payment/voucher.go).
var (
	ErrMalformed      = errors.New("payment: malformed voucher")
	ErrWrongDomain    = errors.New("payment: voucher for another chain or contract")
	ErrWrongChannel   = errors.New("payment: voucher for another channel")
	ErrBadSignature   = errors.New("payment: voucher not signed by the channel's payer")
	ErrNotPayee       = errors.New("payment: channel pays someone else")
	ErrNotAboveBest   = errors.New("payment: voucher does not raise the amount (replayed or lower)")
	ErrAboveDeposit   = errors.New("payment: voucher exceeds the channel deposit")
	ErrExpired        = errors.New("payment: channel expired or too close to expiry")
	ErrUnknownVersion = errors.New("payment: unknown voucher encoding version")
)

// Version is the first byte of the binary encoding.
const Version byte = 1

// Size is the length of a binary-encoded voucher: version, chain ID,
// contract, channel, amount, signature (r, s, v).
const Size = 1 + 32 + common.AddressLength + common.HashLength + 32 + SignatureSize

// SignatureSize is the length of a signature: r || s || v, v in {27, 28}.
const SignatureSize = 65

var (
	domainTypeHash  = crypto.Keccak256Hash([]byte("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"))
	voucherTypeHash = crypto.Keccak256Hash([]byte("Voucher(bytes32 channel,uint256 amount)"))
	nameHash        = crypto.Keccak256Hash([]byte("dpaas Channels"))
	versionHash     = crypto.Keccak256Hash([]byte("1"))
	maxUint256      = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
)

// Domain is the EIP-712 domain of one Channels contract on one chain. Its
// separator is computed once by NewDomain.
type Domain struct {
	ChainID   *big.Int
	Contract  common.Address
	separator common.Hash
}

// NewDomain returns the domain of the Channels contract at contract on the
// chain chainID.
func NewDomain(chainID *big.Int, contract common.Address) Domain {
	var buf [5 * 32]byte
	copy(buf[0:], domainTypeHash[:])
	copy(buf[32:], nameHash[:])
	copy(buf[64:], versionHash[:])
	chainID.FillBytes(buf[96:128])
	copy(buf[128+12:], contract[:])
	return Domain{ChainID: new(big.Int).Set(chainID), Contract: contract, separator: crypto.Keccak256Hash(buf[:])}
}

// Separator is the EIP-712 domain separator (Channels.DOMAIN_SEPARATOR).
func (d Domain) Separator() common.Hash { return d.separator }

// Digest is the EIP-712 hash the payer signs for "channel owes amount in
// total" (Channels.voucherDigest).
func (d Domain) Digest(channel common.Hash, amount *big.Int) common.Hash {
	var st [3 * 32]byte
	copy(st[0:], voucherTypeHash[:])
	copy(st[32:], channel[:])
	amount.FillBytes(st[64:96])
	structHash := crypto.Keccak256Hash(st[:])
	var msg [2 + 32 + 32]byte
	msg[0], msg[1] = 0x19, 0x01
	copy(msg[2:], d.separator[:])
	copy(msg[34:], structHash[:])
	return crypto.Keccak256Hash(msg[:])
}

// Voucher is a payer's signed promise that Channel owes its payee Amount
// tokens in total.
type Voucher struct {
	ChainID   *big.Int
	Contract  common.Address
	Channel   common.Hash
	Amount    *big.Int
	Signature []byte // r || s || v, v in {27, 28}
}

// Sign signs the cumulative amount on channel with the payer's key.
func Sign(key *ecdsa.PrivateKey, d Domain, channel common.Hash, amount *big.Int) (Voucher, error) {
	if amount == nil || amount.Sign() <= 0 || amount.Cmp(maxUint256) > 0 {
		return Voucher{}, fmt.Errorf("voucher sign: amount %v: %w", amount, ErrMalformed)
	}
	digest := d.Digest(channel, amount)
	sig, err := crypto.Sign(digest[:], key)
	if err != nil {
		return Voucher{}, fmt.Errorf("voucher sign: %w", err)
	}
	sig[64] += 27
	return Voucher{
		ChainID:   new(big.Int).Set(d.ChainID),
		Contract:  d.Contract,
		Channel:   channel,
		Amount:    new(big.Int).Set(amount),
		Signature: sig,
	}, nil
}

// Signer recovers the address that signed v. It refuses malleable
// (high-s) signatures, exactly like the contract, so one voucher has one
// encoding.
func (v Voucher) Signer() (common.Address, error) {
	if err := v.wellFormed(); err != nil {
		return common.Address{}, err
	}
	d := NewDomain(v.ChainID, v.Contract)
	return v.signer(d)
}

func (v Voucher) signer(d Domain) (common.Address, error) {
	r := new(big.Int).SetBytes(v.Signature[:32])
	s := new(big.Int).SetBytes(v.Signature[32:64])
	recID := v.Signature[64] - 27
	if v.Signature[64] < 27 || !crypto.ValidateSignatureValues(recID, r, s, true) {
		return common.Address{}, fmt.Errorf("voucher signature values: %w", ErrBadSignature)
	}
	digest := d.Digest(v.Channel, v.Amount)
	var sig [SignatureSize]byte
	copy(sig[:], v.Signature)
	sig[64] = recID
	pub, err := crypto.Ecrecover(digest[:], sig[:])
	if err != nil {
		return common.Address{}, fmt.Errorf("voucher recover: %v: %w", err, ErrBadSignature)
	}
	return common.BytesToAddress(crypto.Keccak256(pub[1:])[12:]), nil
}

func (v Voucher) wellFormed() error {
	switch {
	case v.ChainID == nil || v.ChainID.Sign() <= 0 || v.ChainID.BitLen() > 256:
		return fmt.Errorf("chain id %v: %w", v.ChainID, ErrMalformed)
	case v.Amount == nil || v.Amount.Sign() <= 0 || v.Amount.BitLen() > 256:
		return fmt.Errorf("amount %v: %w", v.Amount, ErrMalformed)
	case len(v.Signature) != SignatureSize:
		return fmt.Errorf("signature of %d bytes: %w", len(v.Signature), ErrMalformed)
	}
	return nil
}

// Channel is what a payee knows about a channel from the chain.
type Channel struct {
	ID      common.Hash
	Payer   common.Address
	Payee   common.Address
	Deposit *big.Int
	Expiry  time.Time
}

// Check is the payee's full acceptance test of v for channel ch in domain
// d: the right chain and contract, the right channel, paying self, signed
// by the payer, above best (the best amount already held; nil means none),
// within the deposit, and at least margin before the expiry at time now,
// so the payee still has time to redeem it. It returns nil or an error
// wrapping one of the package's sentinels.
func Check(v Voucher, d Domain, ch Channel, self common.Address, best *big.Int, now time.Time, margin time.Duration) error {
	if err := v.wellFormed(); err != nil {
		return err
	}
	if v.ChainID.Cmp(d.ChainID) != 0 || v.Contract != d.Contract {
		return fmt.Errorf("voucher for chain %v contract %s, want chain %v contract %s: %w",
			v.ChainID, v.Contract, d.ChainID, d.Contract, ErrWrongDomain)
	}
	if v.Channel != ch.ID {
		return fmt.Errorf("voucher for channel %s, want %s: %w", v.Channel, ch.ID, ErrWrongChannel)
	}
	if ch.Payee != self {
		return fmt.Errorf("channel %s pays %s, not %s: %w", ch.ID, ch.Payee, self, ErrNotPayee)
	}
	if best != nil && v.Amount.Cmp(best) <= 0 {
		return fmt.Errorf("voucher amount %v, already hold %v: %w", v.Amount, best, ErrNotAboveBest)
	}
	if v.Amount.Cmp(ch.Deposit) > 0 {
		return fmt.Errorf("voucher amount %v, deposit %v: %w", v.Amount, ch.Deposit, ErrAboveDeposit)
	}
	if !now.Add(margin).Before(ch.Expiry) {
		return fmt.Errorf("channel %s expires %s, now %s, margin %s: %w",
			ch.ID, ch.Expiry.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), margin, ErrExpired)
	}
	signer, err := v.signer(d)
	if err != nil {
		return err
	}
	if signer != ch.Payer {
		return fmt.Errorf("voucher signed by %s, payer is %s: %w", signer, ch.Payer, ErrBadSignature)
	}
	return nil
}

// MarshalBinary encodes v in its fixed Size-byte form: version, chain ID
// (32 bytes, big-endian), contract (20), channel (32), amount (32, big
// endian), signature (65).
func (v Voucher) MarshalBinary() ([]byte, error) {
	if err := v.wellFormed(); err != nil {
		return nil, fmt.Errorf("voucher encode: %w", err)
	}
	return v.AppendBinary(make([]byte, 0, Size))
}

// AppendBinary appends the binary encoding of v to b.
func (v Voucher) AppendBinary(b []byte) ([]byte, error) {
	if err := v.wellFormed(); err != nil {
		return nil, fmt.Errorf("voucher encode: %w", err)
	}
	var buf [Size]byte
	buf[0] = Version
	v.ChainID.FillBytes(buf[1:33])
	copy(buf[33:53], v.Contract[:])
	copy(buf[53:85], v.Channel[:])
	v.Amount.FillBytes(buf[85:117])
	copy(buf[117:], v.Signature)
	return append(b, buf[:]...), nil
}

// UnmarshalBinary decodes the form MarshalBinary produces. It rejects any
// other length, version, a zero chain ID or amount.
func (v *Voucher) UnmarshalBinary(b []byte) error {
	if len(b) != Size {
		return fmt.Errorf("voucher decode: %d bytes, want %d: %w", len(b), Size, ErrMalformed)
	}
	if b[0] != Version {
		return fmt.Errorf("voucher decode: version %d: %w", b[0], ErrUnknownVersion)
	}
	out := Voucher{
		ChainID:   new(big.Int).SetBytes(b[1:33]),
		Contract:  common.BytesToAddress(b[33:53]),
		Channel:   common.BytesToHash(b[53:85]),
		Amount:    new(big.Int).SetBytes(b[85:117]),
		Signature: bytes.Clone(b[117:Size]),
	}
	if err := out.wellFormed(); err != nil {
		return fmt.Errorf("voucher decode: %w", err)
	}
	*v = out
	return nil
}

type jsonVoucher struct {
	ChainID   *hexutil.Big   `json:"chainId"`
	Contract  common.Address `json:"contract"`
	Channel   common.Hash    `json:"channel"`
	Amount    *hexutil.Big   `json:"amount"`
	Signature hexutil.Bytes  `json:"signature"`
}

// MarshalJSON encodes v as {"chainId","contract","channel","amount",
// "signature"}, numbers and bytes as 0x-prefixed hex like Ethereum JSON-RPC.
func (v Voucher) MarshalJSON() ([]byte, error) {
	if err := v.wellFormed(); err != nil {
		return nil, fmt.Errorf("voucher encode json: %w", err)
	}
	return json.Marshal(jsonVoucher{
		ChainID:   (*hexutil.Big)(v.ChainID),
		Contract:  v.Contract,
		Channel:   v.Channel,
		Amount:    (*hexutil.Big)(v.Amount),
		Signature: v.Signature,
	})
}

// UnmarshalJSON decodes the form MarshalJSON produces; every field is
// required.
func (v *Voucher) UnmarshalJSON(b []byte) error {
	var j jsonVoucher
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("voucher decode json: %v: %w", err, ErrMalformed)
	}
	if j.ChainID == nil || j.Amount == nil {
		return fmt.Errorf("voucher decode json: missing chainId or amount: %w", ErrMalformed)
	}
	out := Voucher{
		ChainID:   (*big.Int)(j.ChainID),
		Contract:  j.Contract,
		Channel:   j.Channel,
		Amount:    (*big.Int)(j.Amount),
		Signature: j.Signature,
	}
	if err := out.wellFormed(); err != nil {
		return fmt.Errorf("voucher decode json: %w", err)
	}
	*v = out
	return nil
}
