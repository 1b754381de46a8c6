package payment

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/payment/contracts"
)

// DealID identifies a deal on the escrow contract.
type DealID = common.Hash

// MaxBps is 100% in basis points, the unit of fee shares and rulings.
const MaxBps = 10000

// MaxArbiters is the largest arbiter panel the escrow contract accepts.
const MaxArbiters = 32

// EscrowDeal is what a payer asks for when opening a deal (OpenEscrow).
type EscrowDeal struct {
	// Payee is paid on release, on claim after the deadline, or by a ruling.
	Payee common.Address
	// Amount is deposited by the payer at open (smallest unit).
	Amount *big.Int
	// FeeBps is the share of what the payee receives that goes to Fund,
	// in basis points (0 to MaxBps). Non-zero needs a Fund.
	FeeBps uint16
	// Fund is the DApp fund's address, receiving the fee.
	Fund common.Address
	// Deadline: until then either side may dispute; from then on the
	// payee may claim if no dispute is open. Whole seconds of chain time.
	Deadline time.Time
	// Arbiters is the ordered list the panel is drawn from (1 to
	// MaxArbiters distinct addresses, neither party among them): the
	// panel sits on the first PanelSize, and one who does not vote in
	// time is replaced by the next (governance does this off-chain).
	Arbiters []common.Address
	// PanelSize is the panel's size k, 1 to len(Arbiters): a ruling
	// signed by floor(k/2)+1 distinct arbiters of the list settles a
	// dispute. 0 means len(Arbiters), a strict majority of the list.
	PanelSize int
	// Salt makes the deal's ID (EscrowDealID of the payer and the salt),
	// so that the payer knows it before opening. Zero means a random
	// salt. A salt the payer already used is refused (ErrBadDeal).
	Salt [32]byte
}

// EscrowStatus is where a deal stands.
type EscrowStatus uint8

const (
	EscrowUnknown  EscrowStatus = iota // no such deal
	EscrowOpen                         // deposited, awaiting release, refund or claim
	EscrowDisputed                     // frozen until a ruling settles it
	EscrowClosed                       // paid out; nothing more can happen
)

func (s EscrowStatus) String() string {
	switch s {
	case EscrowOpen:
		return "open"
	case EscrowDisputed:
		return "disputed"
	case EscrowClosed:
		return "closed"
	}
	return "unknown"
}

// EscrowInfo is a deal as the escrow contract holds it.
type EscrowInfo struct {
	ID       DealID
	Payer    common.Address
	Payee    common.Address
	Fund     common.Address
	Amount   *big.Int
	FeeBps   uint16
	Deadline time.Time
	Arbiters []common.Address // the ordered list the panel is drawn from
	// PanelSize is the panel's size k: floor(k/2)+1 arbiters settle.
	PanelSize int
	Status    EscrowStatus
}

// EscrowContract is the escrow contract's address (zero if none).
func (p *Payments) EscrowContract() common.Address { return p.cfg.Escrow }

// EscrowDealID is the ID of the deal payer opens with salt on the escrow
// contract at escrow on chain chainID, as the contract computes it.
func EscrowDealID(chainID *big.Int, escrow, payer common.Address, salt [32]byte) DealID {
	var b [4 * 32]byte
	chainID.FillBytes(b[:32])
	copy(b[32+12:64], escrow[:])
	copy(b[64+12:96], payer[:])
	copy(b[96:], salt[:])
	return crypto.Keccak256Hash(b[:])
}

// EscrowDealID is the ID of the deal this instance's account would open
// with salt on this chain's escrow contract.
func (p *Payments) EscrowDealID(salt [32]byte) DealID {
	return EscrowDealID(p.chainID, p.cfg.Escrow, p.account, salt)
}

// OpenEscrow deposits deal.Amount in a new deal and returns its ID once
// mined. It sends two transactions: an ERC-20 approve and the opening.
// Invalid terms fail before sending (ErrBadAmount, ErrBadDeal,
// ErrDeadline); a token that delivers less than the amount is refused by
// the contract (ErrFeeOnTransfer).
func (p *Payments) OpenEscrow(ctx context.Context, deal EscrowDeal) (DealID, error) {
	id, _, err := p.openEscrow(ctx, deal)
	return id, err
}

// openEscrow is OpenEscrow, also returning the opening's transaction.
func (p *Payments) openEscrow(ctx context.Context, deal EscrowDeal) (DealID, common.Hash, error) {
	if p.escrow == nil {
		return DealID{}, common.Hash{}, fmt.Errorf("payment: open escrow: %w", ErrNoEscrow)
	}
	if deal.Amount == nil || deal.Amount.Sign() <= 0 {
		return DealID{}, common.Hash{}, fmt.Errorf("payment: open escrow: amount %v: %w", deal.Amount, ErrBadAmount)
	}
	if deal.FeeBps > MaxBps {
		return DealID{}, common.Hash{}, fmt.Errorf("payment: open escrow: fee %d bps: %w", deal.FeeBps, ErrBadDeal)
	}
	if len(deal.Arbiters) == 0 || len(deal.Arbiters) > MaxArbiters {
		return DealID{}, common.Hash{}, fmt.Errorf("payment: open escrow: %d arbiters (1 to %d): %w", len(deal.Arbiters), MaxArbiters, ErrBadDeal)
	}
	if deal.PanelSize == 0 {
		deal.PanelSize = len(deal.Arbiters)
	}
	if deal.PanelSize < 0 || deal.PanelSize > len(deal.Arbiters) {
		return DealID{}, common.Hash{}, fmt.Errorf("payment: open escrow: panel of %d from %d arbiters: %w", deal.PanelSize, len(deal.Arbiters), ErrBadDeal)
	}
	if deal.Salt == ([32]byte{}) {
		rand.Read(deal.Salt[:])
	}
	if !deal.Deadline.After(p.now()) {
		return DealID{}, common.Hash{}, fmt.Errorf("payment: open escrow: deadline %s not in the future: %w", deal.Deadline.UTC().Format(time.RFC3339), ErrDeadline)
	}
	if _, err := p.send(ctx, p.token, tokenABI.PackApprove(p.cfg.Escrow, deal.Amount)); err != nil {
		return DealID{}, common.Hash{}, fmt.Errorf("payment: open escrow: approve: %w", err)
	}
	r, err := p.send(ctx, p.escrow, escrowABI.PackOpen(deal.Payee, deal.Amount, deal.FeeBps, deal.Fund, unixSeconds(deal.Deadline), deal.Arbiters, uint8(deal.PanelSize), deal.Salt))
	if err != nil {
		return DealID{}, common.Hash{}, fmt.Errorf("payment: open escrow to %s: %w", deal.Payee, err)
	}
	for _, l := range r.Logs {
		if l.Address != p.cfg.Escrow {
			continue
		}
		if ev, err := escrowABI.UnpackOpenedEvent(l); err == nil {
			return ev.Id, r.TxHash, nil
		}
	}
	return DealID{}, common.Hash{}, fmt.Errorf("payment: open escrow: no Opened event in %s: %w", r.TxHash, ErrReverted)
}

// Release pays the deal to its payee (less the fee, to the fund). Only
// the payer may (ErrNotParty); not while disputed (ErrDisputed).
func (p *Payments) Release(ctx context.Context, deal DealID) (common.Hash, error) {
	return p.escrowCall(ctx, "release", deal, escrowABI.PackRelease(deal))
}

// Refund gives the whole deal back to its payer. Only the payee may.
func (p *Payments) Refund(ctx context.Context, deal DealID) (common.Hash, error) {
	return p.escrowCall(ctx, "refund", deal, escrowABI.PackRefund(deal))
}

// Claim pays the deal to its payee after the deadline when no dispute is
// open. Only the payee may; before the deadline it fails with ErrDeadline.
func (p *Payments) Claim(ctx context.Context, deal DealID) (common.Hash, error) {
	return p.escrowCall(ctx, "claim", deal, escrowABI.PackClaim(deal))
}

// Dispute freezes the deal until a ruling settles it. Either party may,
// before the deadline.
func (p *Payments) Dispute(ctx context.Context, deal DealID) (common.Hash, error) {
	return p.escrowCall(ctx, "dispute", deal, escrowABI.PackDispute(deal))
}

// Settle ends a disputed deal with a ruling: payeeBps of the amount to
// the payee (less the fee, to the fund), the rest back to the payer. sigs
// are arbiters' SignRuling signatures, from floor(k/2)+1 distinct
// arbiters of the deal's list, k its PanelSize. Anyone may submit it. The
// list is read from the deal's Opened event. A deal already settled (or
// otherwise closed) fails with ErrDealClosed.
func (p *Payments) Settle(ctx context.Context, deal DealID, payeeBps uint16, sigs [][]byte) (common.Hash, error) {
	if p.escrow == nil {
		return common.Hash{}, fmt.Errorf("payment: settle %s: %w", deal, ErrNoEscrow)
	}
	if payeeBps > MaxBps {
		return common.Hash{}, fmt.Errorf("payment: settle %s: payee share %d bps: %w", deal, payeeBps, ErrBadRuling)
	}
	info, err := p.EscrowState(ctx, deal)
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: settle: %w", err)
	}
	return p.escrowCall(ctx, "settle", deal, escrowABI.PackSettle(deal, payeeBps, info.Arbiters, sigs))
}

func (p *Payments) escrowCall(ctx context.Context, op string, deal DealID, data []byte) (common.Hash, error) {
	if p.escrow == nil {
		return common.Hash{}, fmt.Errorf("payment: %s %s: %w", op, deal, ErrNoEscrow)
	}
	r, err := p.send(ctx, p.escrow, data)
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: %s %s: %w", op, deal, err)
	}
	return r.TxHash, nil
}

// EscrowState reads a deal from the chain: its terms, status and panel.
// An unknown deal is ErrUnknownDeal.
func (p *Payments) EscrowState(ctx context.Context, deal DealID) (EscrowInfo, error) {
	if p.escrow == nil {
		return EscrowInfo{}, fmt.Errorf("payment: escrow state %s: %w", deal, ErrNoEscrow)
	}
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return EscrowInfo{}, fmt.Errorf("payment: escrow state: %w", err)
	}
	defer cancel()
	d, err := bind.Call(p.escrow, &bind.CallOpts{Context: ctx}, escrowABI.PackDeals(deal), escrowABI.UnpackDeals)
	if err != nil {
		return EscrowInfo{}, fmt.Errorf("payment: escrow state %s: %w", deal, p.chainErr(err))
	}
	if EscrowStatus(d.Status) == EscrowUnknown {
		return EscrowInfo{}, fmt.Errorf("payment: escrow state %s: %w", deal, ErrUnknownDeal)
	}
	info := EscrowInfo{
		ID: deal, Payer: d.Payer, Payee: d.Payee, Fund: d.Fund, Amount: d.Amount,
		FeeBps: d.FeeBps, Deadline: unixTime(d.Deadline), Status: EscrowStatus(d.Status),
		PanelSize: int(d.PanelSize),
	}
	logs, err := p.be.FilterLogs(ctx, ethereum.FilterQuery{
		FromBlock: new(big.Int),
		Addresses: []common.Address{p.cfg.Escrow},
		Topics:    [][]common.Hash{{escrowABI.GetABI().Events["Opened"].ID}, {deal}},
	})
	if err != nil {
		return EscrowInfo{}, fmt.Errorf("payment: escrow state %s: opened event: %w", deal, p.chainErr(err))
	}
	for i := range logs {
		ev, err := escrowABI.UnpackOpenedEvent(&logs[i])
		if err != nil {
			continue
		}
		// The event must match the panel the contract committed to.
		if panelHash(ev.Arbiters) == d.Panel {
			info.Arbiters = ev.Arbiters
			return info, nil
		}
	}
	return EscrowInfo{}, fmt.Errorf("payment: escrow state %s: no Opened event with the deal's panel: %w", deal, ErrUnknownDeal)
}

// EscrowSettlement is a settled deal's ruling as the chain recorded it:
// the transaction that settled it and the payee's share. A deal not
// settled by a ruling (still open, disputed, released, refunded or
// claimed) is ErrUnknownDeal.
func (p *Payments) EscrowSettlement(ctx context.Context, deal DealID) (tx common.Hash, payeeBps uint16, err error) {
	if p.escrow == nil {
		return common.Hash{}, 0, fmt.Errorf("payment: escrow settlement %s: %w", deal, ErrNoEscrow)
	}
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return common.Hash{}, 0, fmt.Errorf("payment: escrow settlement: %w", err)
	}
	defer cancel()
	logs, err := p.be.FilterLogs(ctx, ethereum.FilterQuery{
		FromBlock: new(big.Int),
		Addresses: []common.Address{p.cfg.Escrow},
		Topics:    [][]common.Hash{{escrowABI.GetABI().Events["Settled"].ID}, {deal}},
	})
	if err != nil {
		return common.Hash{}, 0, fmt.Errorf("payment: escrow settlement %s: %w", deal, p.chainErr(err))
	}
	for i := range logs {
		if ev, err := escrowABI.UnpackSettledEvent(&logs[i]); err == nil && !logs[i].Removed {
			return logs[i].TxHash, ev.PayeeBps, nil
		}
	}
	return common.Hash{}, 0, fmt.Errorf("payment: escrow settlement %s: not settled: %w", deal, ErrUnknownDeal)
}

// panelHash is the contract's keccak256(abi.encode(arbiters)).
func panelHash(arbiters []common.Address) common.Hash {
	b := make([]byte, 64+32*len(arbiters))
	b[31] = 0x20
	big.NewInt(int64(len(arbiters))).FillBytes(b[32:64])
	for i, a := range arbiters {
		copy(b[64+32*i+12:], a[:])
	}
	return crypto.Keccak256Hash(b)
}

var (
	rulingTypeHash       = crypto.Keccak256Hash([]byte("Ruling(bytes32 deal,uint16 payeeBps)"))
	eip712DomainTypeHash = crypto.Keccak256Hash([]byte("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"))
)

// RulingDigest is the EIP-712 digest an arbiter signs for a ruling on
// deal (the payee's share in basis points), bound to the chain and the
// escrow contract.
func RulingDigest(chainID *big.Int, escrow common.Address, deal DealID, payeeBps uint16) common.Hash {
	var word [32]byte
	dom := make([]byte, 0, 5*32)
	dom = append(dom, eip712DomainTypeHash[:]...)
	dom = append(dom, crypto.Keccak256([]byte("dpaas Escrow"))...)
	dom = append(dom, crypto.Keccak256([]byte("1"))...)
	dom = append(dom, chainID.FillBytes(word[:])...)
	dom = append(dom, common.LeftPadBytes(escrow[:], 32)...)
	sep := crypto.Keccak256(dom)
	st := make([]byte, 0, 3*32)
	st = append(st, rulingTypeHash[:]...)
	st = append(st, deal[:]...)
	st = append(st, common.LeftPadBytes(big.NewInt(int64(payeeBps)).Bytes(), 32)...)
	return crypto.Keccak256Hash([]byte("\x19\x01"), sep, crypto.Keccak256(st))
}

// RulingTypedData is the ruling RulingDigest hashes as the JSON a wallet
// signs with eth_signTypedData_v4 (ethers: signer.signTypedData with its
// domain, types less EIP712Domain, and message), so that an arbiter
// holding their key in a browser can rule: the signature settles the deal
// like SignRuling's.
func RulingTypedData(chainID *big.Int, escrow common.Address, deal DealID, payeeBps uint16) []byte {
	type field struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	td := struct {
		Types       map[string][]field `json:"types"`
		PrimaryType string             `json:"primaryType"`
		Domain      map[string]string  `json:"domain"`
		Message     map[string]string  `json:"message"`
	}{
		Types: map[string][]field{
			"EIP712Domain": {{"name", "string"}, {"version", "string"}, {"chainId", "uint256"}, {"verifyingContract", "address"}},
			"Ruling":       {{"deal", "bytes32"}, {"payeeBps", "uint16"}},
		},
		PrimaryType: "Ruling",
		Domain:      map[string]string{"name": "dpaas Escrow", "version": "1", "chainId": chainID.String(), "verifyingContract": escrow.Hex()},
		Message:     map[string]string{"deal": deal.Hex(), "payeeBps": strconv.Itoa(int(payeeBps))},
	}
	raw, _ := json.Marshal(td) // strings and slices of them always marshal
	return raw
}

// SignRuling is an arbiter's signature (65 bytes, low-s, v 27 or 28) of
// a ruling on deal, for Settle.
func SignRuling(key *ecdsa.PrivateKey, chainID *big.Int, escrow common.Address, deal DealID, payeeBps uint16) ([]byte, error) {
	if payeeBps > MaxBps {
		return nil, fmt.Errorf("payment: sign ruling: payee share %d bps: %w", payeeBps, ErrBadRuling)
	}
	sig, err := crypto.Sign(RulingDigest(chainID, escrow, deal, payeeBps).Bytes(), key)
	if err != nil {
		return nil, fmt.Errorf("payment: sign ruling: %w", err)
	}
	sig[64] += 27
	return sig, nil
}

// SignRuling signs a ruling on deal with this instance's key, for this
// chain and escrow contract.
func (p *Payments) SignRuling(deal DealID, payeeBps uint16) ([]byte, error) {
	if p.escrow == nil {
		return nil, fmt.Errorf("payment: sign ruling: %w", ErrNoEscrow)
	}
	return SignRuling(p.key, p.chainID, p.cfg.Escrow, deal, payeeBps)
}

// escrowError maps an escrow contract's custom error to its sentinel.
func escrowError(v any) error {
	switch e := v.(type) {
	case *contracts.EscrowUnknownDeal:
		return fmt.Errorf("contract: deal %s: %w", common.Hash(e.Id), ErrUnknownDeal)
	case *contracts.EscrowNotParty:
		return fmt.Errorf("contract: %s: %w", e.Caller, ErrNotParty)
	case *contracts.EscrowDealClosed:
		return fmt.Errorf("contract: deal %s: %w", common.Hash(e.Id), ErrDealClosed)
	case *contracts.EscrowDealDisputed:
		return fmt.Errorf("contract: deal %s: %w", common.Hash(e.Id), ErrDisputed)
	case *contracts.EscrowNotDisputed:
		return fmt.Errorf("contract: deal %s: %w", common.Hash(e.Id), ErrNotDisputed)
	case *contracts.EscrowDeadlinePassed:
		return fmt.Errorf("contract: deadline %d passed: %w", e.Deadline, ErrDeadline)
	case *contracts.EscrowDeadlineNotPassed:
		return fmt.Errorf("contract: deadline %d not passed: %w", e.Deadline, ErrDeadline)
	case *contracts.EscrowBadDeal:
		return fmt.Errorf("contract: %s: %w", e.Reason, ErrBadDeal)
	case *contracts.EscrowZeroAmount:
		return fmt.Errorf("contract: zero amount: %w", ErrBadAmount)
	case *contracts.EscrowFeeOnTransfer:
		return fmt.Errorf("contract: deposited %v, escrow received %v: %w", e.Expected, e.Received, ErrFeeOnTransfer)
	case *contracts.EscrowWrongPanel:
		return fmt.Errorf("contract: not the deal's panel: %w", ErrBadRuling)
	case *contracts.EscrowBadRuling:
		return fmt.Errorf("contract: payee share %d bps: %w", e.PayeeBps, ErrBadRuling)
	case *contracts.EscrowBadRulingSignature:
		return fmt.Errorf("contract: signature %v malformed or high-s: %w", e.Index, ErrBadRuling)
	case *contracts.EscrowNotArbiter:
		return fmt.Errorf("contract: signer %s not on the panel: %w", e.Signer, ErrBadRuling)
	case *contracts.EscrowDuplicateSigner:
		return fmt.Errorf("contract: signer %s twice: %w", e.Signer, ErrBadRuling)
	case *contracts.EscrowNoMajority:
		return fmt.Errorf("contract: %v signers for a panel of %v, no majority: %w", e.Signers, e.Panel, ErrBadRuling)
	case *contracts.EscrowReentrant:
		return fmt.Errorf("contract: %w", ErrReentrant)
	}
	return fmt.Errorf("escrow contract refused (%T): %w", v, ErrReverted)
}
