package payment

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/internal/payout"
	"github.com/dpaas/dpaas/payment/contracts"
)

// MaxCommittee is the largest committee the Fund contract accepts.
const MaxCommittee = 64

// Fund errors. Each refusal by the Fund contract wraps one of them.
var (
	// ErrNotFund: no Fund contract at the address given to OpenFund.
	ErrNotFund = errors.New("payment: not a fund contract")
	// ErrStaleEpoch: a payout for an epoch not above the last one paid
	// (a replay, or an epoch already paid).
	ErrStaleEpoch = errors.New("payment: payout epoch already paid")
	// ErrOverBudget: a payout table whose total exceeds the epoch budget.
	ErrOverBudget = errors.New("payment: payout above the epoch budget")
	// ErrFundTooLow: a payout table whose total exceeds the fund's balance.
	ErrFundTooLow = errors.New("payment: fund balance below the payout")
	// ErrNoMajority: fewer signatures than a strict majority of the committee.
	ErrNoMajority = errors.New("payment: no committee majority")
	// ErrNotCommittee: a signer outside the committee, or a committee
	// list that is not the fund's current one.
	ErrNotCommittee = errors.New("payment: not the fund's committee")
	// ErrDuplicateSigner: one committee member's signature given twice.
	ErrDuplicateSigner = errors.New("payment: committee member signed twice")
	// ErrInvalidSignature: a signature that is malformed (not 65 bytes,
	// v not 27 or 28), high-s (EIP-2), or recovers no address.
	ErrInvalidSignature = errors.New("payment: invalid signature")
	// ErrStaleNonce: a committee or budget change that does not carry the
	// fund's current governance nonce (a replay, or one already applied).
	ErrStaleNonce = errors.New("payment: stale fund governance nonce")
	// ErrBadCommittee: a committee that is empty, above MaxCommittee, or
	// has a zero or repeated member.
	ErrBadCommittee = errors.New("payment: bad committee")
	// ErrBadTable: a payout table with a zero account, an amount that is
	// nil, negative or above 2^256-1, or a total above 2^256-1.
	ErrBadTable = errors.New("payment: bad payout table")
)

// FundConfig is what DeployFund deploys.
type FundConfig struct {
	// Token is the ERC-20 the fund holds and pays in; zero means the
	// Payments' token.
	Token common.Address
	// Committee is the first committee, in the order its members pass it
	// to the contract: 1 to MaxCommittee distinct non-zero addresses (the
	// DApp's governance members' accounts).
	Committee []common.Address
	// Budget is the most one epoch's payout may move (smallest unit).
	// Nil means zero: no payout until a SetBudget.
	Budget *big.Int
}

// PayoutEntry is one line of a payout table: amount to account.
type PayoutEntry struct {
	Account common.Address
	Amount  *big.Int
}

// FundState is a fund as its contract holds it.
type FundState struct {
	Address common.Address
	Token   common.Address
	// Balance is the fund's token balance.
	Balance *big.Int
	// Budget is the most one epoch may pay out.
	Budget *big.Int
	// LastEpoch is the last epoch paid out, 0 before the first payout.
	LastEpoch uint64
	// Nonce is the governance nonce the next SetCommittee or SetBudget
	// must carry.
	Nonce uint64
	// Committee is the current committee, in its order.
	Committee []common.Address
	// CommitteeHash is keccak256(abi.encode(Committee)), as the contract keeps it.
	CommitteeHash common.Hash
}

// Fund is a DApp's Fund contract, bound to a Payments that sends its
// transactions (and pays their gas). It is safe for concurrent use.
type Fund struct {
	p     *Payments
	addr  common.Address
	c     *bind.BoundContract
	token *bind.BoundContract // the fund's token, which may not be the Payments' one
}

// DeployFund deploys a Fund contract with cfg's token, committee and
// budget, and returns its address once mined. Each DApp deploys its own
// (its committee is its governance members) and records the address
// where its instances find it (a governance parameter, or its manifest).
// A bad committee (ErrBadCommittee) or a negative budget (ErrBadAmount)
// fails before sending.
func (p *Payments) DeployFund(ctx context.Context, cfg FundConfig) (common.Address, error) {
	if cfg.Token == (common.Address{}) {
		cfg.Token = p.cfg.Token
	}
	if cfg.Budget == nil {
		cfg.Budget = new(big.Int)
	}
	if cfg.Budget.Sign() < 0 || cfg.Budget.Cmp(maxUint256) > 0 {
		return common.Address{}, fmt.Errorf("payment: deploy fund: budget %v: %w", cfg.Budget, ErrBadAmount)
	}
	if err := checkCommittee(cfg.Committee); err != nil {
		return common.Address{}, fmt.Errorf("payment: deploy fund: %w", err)
	}
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return common.Address{}, fmt.Errorf("payment: deploy fund: %w", err)
	}
	defer cancel()
	opts := bind.NewKeyedTransactor(p.key, p.chainID)
	opts.Context = ctx
	p.txMu.Lock()
	addr, tx, err := bind.DeployContract(opts, common.FromHex(contracts.FundMetaData.Bin), p.be,
		fundABI.PackConstructor(cfg.Token, cfg.Committee, cfg.Budget))
	p.txMu.Unlock()
	if err != nil {
		return common.Address{}, fmt.Errorf("payment: deploy fund: %w", p.chainErr(p.sendError(ctx, common.Address{}, nil, err)))
	}
	r, err := waitReceipt(ctx, p.be, tx.Hash(), p.cfg.PollInterval, p.closing)
	if err != nil {
		return common.Address{}, fmt.Errorf("payment: deploy fund: %w", p.chainErr(err))
	}
	if err := p.confirm(ctx, r.BlockNumber.Uint64()); err != nil {
		return common.Address{}, fmt.Errorf("payment: deploy fund: %w", p.chainErr(err))
	}
	return addr, nil
}

// OpenFund binds the Fund contract at addr; transactions through it are
// sent from this Payments' account. An address holding no Fund contract
// of this SDK's version is ErrNotFund.
func (p *Payments) OpenFund(ctx context.Context, addr common.Address) (*Fund, error) {
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return nil, fmt.Errorf("payment: open fund: %w", err)
	}
	defer cancel()
	code, err := p.be.CodeAt(ctx, addr, nil)
	if err != nil {
		return nil, fmt.Errorf("payment: open fund %s: %w", addr, p.chainErr(err))
	}
	if len(code) == 0 {
		return nil, fmt.Errorf("payment: open fund: no contract at %s on chain %v: %w", addr, p.chainID, ErrNotFund)
	}
	// A Fund of this version answers with the payout type hash and the
	// domain separator of this chain and address, which signatures bind to.
	f := &Fund{p: p, addr: addr, c: fundABI.Instance(p.be, addr)}
	opts := &bind.CallOpts{Context: ctx}
	th, err := bind.Call(f.c, opts, fundABI.PackPAYOUTTYPEHASH(), fundABI.UnpackPAYOUTTYPEHASH)
	if err != nil || common.Hash(th) != payoutTypeHash {
		return nil, fmt.Errorf("payment: open fund %s: no payout type hash (%v): %w", addr, err, ErrNotFund)
	}
	sep, err := bind.Call(f.c, opts, fundABI.PackDOMAINSEPARATOR(), fundABI.UnpackDOMAINSEPARATOR)
	if err != nil || common.Hash(sep) != fundDomainSeparator(p.chainID, addr) {
		return nil, fmt.Errorf("payment: open fund %s: domain separator not this chain's and address's (%v): %w", addr, err, ErrNotFund)
	}
	tok, err := bind.Call(f.c, opts, fundABI.PackToken(), fundABI.UnpackToken)
	if err != nil {
		return nil, fmt.Errorf("payment: open fund %s: token: %w", addr, p.chainErr(err))
	}
	f.token = tokenABI.Instance(p.be, tok)
	return f, nil
}

// Address is the fund contract's address.
func (f *Fund) Address() common.Address { return f.addr }

// Token is the address of the ERC-20 the fund holds.
func (f *Fund) Token() common.Address { return f.token.Address() }

// Deposit moves amount tokens from the Payments' account into the fund
// and returns the deposit's transaction once mined. It sends two
// transactions: an ERC-20 approve and the deposit. A token that delivers
// less than the amount is refused (ErrFeeOnTransfer); beyond the balance
// it fails with ErrInsufficientFunds. A plain Transfer to the fund's
// address also funds it.
func (f *Fund) Deposit(ctx context.Context, amount *big.Int) (common.Hash, error) {
	if amount == nil || amount.Sign() <= 0 || amount.Cmp(maxUint256) > 0 {
		return common.Hash{}, fmt.Errorf("payment: fund deposit: amount %v: %w", amount, ErrBadAmount)
	}
	if _, err := f.p.send(ctx, f.token, tokenABI.PackApprove(f.addr, amount)); err != nil {
		return common.Hash{}, fmt.Errorf("payment: fund deposit: approve: %w", err)
	}
	r, err := f.p.send(ctx, f.c, fundABI.PackDeposit(amount))
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: fund deposit of %v: %w", amount, err)
	}
	return r.TxHash, nil
}

// State reads the fund from the chain, every field at one block.
func (f *Fund) State(ctx context.Context) (FundState, error) {
	ctx, cancel, err := f.p.opCtx(ctx)
	if err != nil {
		return FundState{}, fmt.Errorf("payment: fund state: %w", err)
	}
	defer cancel()
	head, err := f.p.be.BlockNumber(ctx)
	if err != nil {
		return FundState{}, fmt.Errorf("payment: fund state: %w", f.p.chainErr(err))
	}
	return f.stateAt(ctx, head)
}

// StateAt reads the fund as it was at the end of block number block,
// every field at that block. The chain must still hold that block's
// state: a dev chain does; a public chain's endpoint must be an archive
// node for blocks older than its state window (128 blocks on geth). A
// block before the fund was deployed is ErrNotFund.
func (f *Fund) StateAt(ctx context.Context, block uint64) (FundState, error) {
	ctx, cancel, err := f.p.opCtx(ctx)
	if err != nil {
		return FundState{}, fmt.Errorf("payment: fund state: %w", err)
	}
	defer cancel()
	return f.stateAt(ctx, block)
}

func (f *Fund) stateAt(ctx context.Context, head uint64) (FundState, error) {
	var err error
	opts := &bind.CallOpts{Context: ctx, BlockNumber: new(big.Int).SetUint64(head)}
	st := FundState{Address: f.addr}
	fail := func(what string, err error) (FundState, error) {
		if errors.Is(err, bind.ErrNoCode) {
			// Asked of a block before the fund was deployed.
			return FundState{}, fmt.Errorf("payment: fund state %s at block %d: %w", f.addr, head, ErrNotFund)
		}
		return FundState{}, fmt.Errorf("payment: fund state %s: %s: %w", f.addr, what, f.p.chainErr(err))
	}
	if st.Token, err = bind.Call(f.c, opts, fundABI.PackToken(), fundABI.UnpackToken); err != nil {
		return fail("token", err)
	}
	if st.Budget, err = bind.Call(f.c, opts, fundABI.PackBudget(), fundABI.UnpackBudget); err != nil {
		return fail("budget", err)
	}
	if st.LastEpoch, err = bind.Call(f.c, opts, fundABI.PackLastEpoch(), fundABI.UnpackLastEpoch); err != nil {
		return fail("last epoch", err)
	}
	if st.Nonce, err = bind.Call(f.c, opts, fundABI.PackNonce(), fundABI.UnpackNonce); err != nil {
		return fail("nonce", err)
	}
	if st.Committee, err = bind.Call(f.c, opts, fundABI.PackCommittee(), fundABI.UnpackCommittee); err != nil {
		return fail("committee", err)
	}
	h, err := bind.Call(f.c, opts, fundABI.PackCommitteeHash(), fundABI.UnpackCommitteeHash)
	if err != nil {
		return fail("committee hash", err)
	}
	st.CommitteeHash = h
	if st.Balance, err = bind.Call(f.token, opts, tokenABI.PackBalanceOf(f.addr), tokenABI.UnpackBalanceOf); err != nil {
		return fail("balance", err)
	}
	return st, nil
}

// SubmitPayout pays epoch's table from the fund and returns the
// transaction once mined. sigs are committee members' SignPayout
// signatures of the same epoch and table, from a strict majority of the
// committee, in any order; committee is the fund's current committee in
// its order, or nil to read it from the contract. Anyone may submit.
//
// Refusals: ErrStaleEpoch (epoch not above the last paid), ErrOverBudget,
// ErrFundTooLow, ErrNoMajority, ErrNotCommittee (a signer outside the
// committee, or a committee that is not the current one),
// ErrDuplicateSigner, ErrInvalidSignature (malformed or high-s), ErrBadTable.
// A signature of another table, epoch, fund or chain recovers another
// address: ErrNotCommittee. Nothing is paid on a refusal, and normally
// nothing is sent: the chain refuses the call while estimating its gas.
// When several instances submit the same epoch at once, the first mined
// pays and the others get ErrStaleEpoch, or ErrReverted when their
// transaction was already sent (it then costs them its gas): callers
// should treat both, for an epoch FundState shows paid, as done.
func (f *Fund) SubmitPayout(ctx context.Context, epoch uint64, table []PayoutEntry, committee []common.Address, sigs [][]byte) (common.Hash, error) {
	accounts, amounts, err := splitTable(table)
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: submit payout %d: %w", epoch, err)
	}
	if committee == nil {
		st, err := f.State(ctx)
		if err != nil {
			return common.Hash{}, fmt.Errorf("payment: submit payout %d: %w", epoch, err)
		}
		committee = st.Committee
	}
	data, err := fundABI.TryPackPayout(epoch, accounts, amounts, committee, sigs)
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: submit payout %d: %v: %w", epoch, err, ErrBadTable)
	}
	r, err := f.p.send(ctx, f.c, data)
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: submit payout %d: %w", epoch, err)
	}
	return r.TxHash, nil
}

// SetCommittee replaces the fund's committee with next, given
// SignSetCommittee signatures of (next, nonce) by a strict majority of
// the current committee (committee, or nil to read it). nonce must be
// the fund's current one (FundState.Nonce), or it is ErrStaleNonce.
func (f *Fund) SetCommittee(ctx context.Context, next []common.Address, nonce uint64, committee []common.Address, sigs [][]byte) (common.Hash, error) {
	if err := checkCommittee(next); err != nil {
		return common.Hash{}, fmt.Errorf("payment: set fund committee: %w", err)
	}
	return f.govern(ctx, "set fund committee", committee, func(committee []common.Address) ([]byte, error) {
		return fundABI.TryPackSetCommittee(next, nonce, committee, sigs)
	})
}

// SetBudget sets the fund's epoch budget, given SignSetBudget signatures
// of (budget, nonce) by a strict majority of the committee (committee, or
// nil to read it). nonce must be the fund's current one, or it is
// ErrStaleNonce.
func (f *Fund) SetBudget(ctx context.Context, budget *big.Int, nonce uint64, committee []common.Address, sigs [][]byte) (common.Hash, error) {
	if budget == nil || budget.Sign() < 0 || budget.Cmp(maxUint256) > 0 {
		return common.Hash{}, fmt.Errorf("payment: set fund budget: budget %v: %w", budget, ErrBadAmount)
	}
	return f.govern(ctx, "set fund budget", committee, func(committee []common.Address) ([]byte, error) {
		return fundABI.TryPackSetBudget(budget, nonce, committee, sigs)
	})
}

func (f *Fund) govern(ctx context.Context, op string, committee []common.Address, pack func([]common.Address) ([]byte, error)) (common.Hash, error) {
	if committee == nil {
		st, err := f.State(ctx)
		if err != nil {
			return common.Hash{}, fmt.Errorf("payment: %s: %w", op, err)
		}
		committee = st.Committee
	}
	data, err := pack(committee)
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: %s: %w", op, err)
	}
	r, err := f.p.send(ctx, f.c, data)
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: %s: %w", op, err)
	}
	return r.TxHash, nil
}

// SignPayout signs epoch's table for this fund with the Payments' key.
func (f *Fund) SignPayout(epoch uint64, table []PayoutEntry) ([]byte, error) {
	return SignPayout(f.p.key, f.p.chainID, f.addr, epoch, table)
}

// SignSetCommittee signs a committee change for this fund with the Payments' key.
func (f *Fund) SignSetCommittee(next []common.Address, nonce uint64) ([]byte, error) {
	return SignSetCommittee(f.p.key, f.p.chainID, f.addr, next, nonce)
}

// SignSetBudget signs a budget change for this fund with the Payments' key.
func (f *Fund) SignSetBudget(budget *big.Int, nonce uint64) ([]byte, error) {
	return SignSetBudget(f.p.key, f.p.chainID, f.addr, budget, nonce)
}

// PayoutTableHash is the hash a payout signature covers and the contract
// recomputes: keccak256(abi.encode(address[] accounts, uint256[] amounts))
// over the table's rows in order. Anyone holding the inputs recomputes
// the table, hashes it and compares with a committee's signatures or the
// PaidOut event. A zero account or a bad amount is ErrBadTable.
func PayoutTableHash(table []PayoutEntry) (common.Hash, error) {
	if _, _, err := splitTable(table); err != nil {
		return common.Hash{}, err
	}
	rows := make([]payout.Row, len(table))
	for i, e := range table {
		rows[i] = payout.Row{Account: e.Account, Amount: e.Amount}
	}
	h, err := payout.Hash(rows)
	if err != nil {
		return common.Hash{}, fmt.Errorf("%v: %w", err, ErrBadTable)
	}
	return h, nil
}

var (
	payoutTypeHash       = crypto.Keccak256Hash([]byte("Payout(uint64 epoch,bytes32 tableHash)"))
	setCommitteeTypeHash = crypto.Keccak256Hash([]byte("SetCommittee(address[] committee,uint64 nonce)"))
	setBudgetTypeHash    = crypto.Keccak256Hash([]byte("SetBudget(uint256 budget,uint64 nonce)"))
	maxUint256           = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
)

// fundDigest is the EIP-712 digest of a message whose struct words follow
// its type hash, in the domain "dpaas Fund" version 1 of chainID and fund.
func fundDigest(chainID *big.Int, fund common.Address, typeHash common.Hash, words ...[]byte) common.Hash {
	st := append([]byte(nil), typeHash[:]...)
	for _, w := range words {
		st = append(st, common.LeftPadBytes(w, 32)...)
	}
	sep := fundDomainSeparator(chainID, fund)
	return crypto.Keccak256Hash([]byte("\x19\x01"), sep[:], crypto.Keccak256(st))
}

// fundDomainSeparator is the EIP-712 domain separator of "dpaas Fund"
// version 1 on chainID at fund.
func fundDomainSeparator(chainID *big.Int, fund common.Address) common.Hash {
	var word [32]byte
	dom := make([]byte, 0, 5*32)
	dom = append(dom, eip712DomainTypeHash[:]...)
	dom = append(dom, crypto.Keccak256([]byte("dpaas Fund"))...)
	dom = append(dom, crypto.Keccak256([]byte("1"))...)
	dom = append(dom, chainID.FillBytes(word[:])...)
	dom = append(dom, common.LeftPadBytes(fund[:], 32)...)
	return crypto.Keccak256Hash(dom)
}

func uint64Word(n uint64) []byte { return new(big.Int).SetUint64(n).Bytes() }

// PayoutDigest is the EIP-712 digest a committee member signs to pay
// tableHash (PayoutTableHash) for epoch: typed data Payout(uint64
// epoch,bytes32 tableHash) in the domain "dpaas Fund" version 1 of the
// chain and the fund contract.
func PayoutDigest(chainID *big.Int, fund common.Address, epoch uint64, tableHash common.Hash) common.Hash {
	return fundDigest(chainID, fund, payoutTypeHash, uint64Word(epoch), tableHash[:])
}

// SetCommitteeDigest is the EIP-712 digest of SetCommittee(address[]
// committee,uint64 nonce), which replaces a fund's committee with next.
func SetCommitteeDigest(chainID *big.Int, fund common.Address, next []common.Address, nonce uint64) common.Hash {
	packed := make([]byte, 0, 32*len(next))
	for _, a := range next {
		packed = append(packed, common.LeftPadBytes(a[:], 32)...)
	}
	return fundDigest(chainID, fund, setCommitteeTypeHash, crypto.Keccak256(packed), uint64Word(nonce))
}

// SetBudgetDigest is the EIP-712 digest of SetBudget(uint256
// budget,uint64 nonce), which sets a fund's epoch budget. budget must be
// a uint256 (0 to 2^256-1).
func SetBudgetDigest(chainID *big.Int, fund common.Address, budget *big.Int, nonce uint64) common.Hash {
	return fundDigest(chainID, fund, setBudgetTypeHash, budget.Bytes(), uint64Word(nonce))
}

// SignPayout is a committee member's signature (65 bytes, low-s, v 27 or
// 28) of epoch's payout table for fund on chainID, for SubmitPayout. A
// table with a zero account or a bad amount is ErrBadTable.
func SignPayout(key *ecdsa.PrivateKey, chainID *big.Int, fund common.Address, epoch uint64, table []PayoutEntry) ([]byte, error) {
	h, err := PayoutTableHash(table)
	if err != nil {
		return nil, fmt.Errorf("payment: sign payout %d: %w", epoch, err)
	}
	return signDigest("sign payout", key, PayoutDigest(chainID, fund, epoch, h))
}

// SignSetCommittee is a committee member's signature of a change of the
// committee to next, for Fund.SetCommittee.
func SignSetCommittee(key *ecdsa.PrivateKey, chainID *big.Int, fund common.Address, next []common.Address, nonce uint64) ([]byte, error) {
	if err := checkCommittee(next); err != nil {
		return nil, fmt.Errorf("payment: sign set committee: %w", err)
	}
	return signDigest("sign set committee", key, SetCommitteeDigest(chainID, fund, next, nonce))
}

// SignSetBudget is a committee member's signature of a change of the
// epoch budget, for Fund.SetBudget.
func SignSetBudget(key *ecdsa.PrivateKey, chainID *big.Int, fund common.Address, budget *big.Int, nonce uint64) ([]byte, error) {
	if budget == nil || budget.Sign() < 0 || budget.Cmp(maxUint256) > 0 {
		return nil, fmt.Errorf("payment: sign set budget: budget %v: %w", budget, ErrBadAmount)
	}
	return signDigest("sign set budget", key, SetBudgetDigest(chainID, fund, budget, nonce))
}

func signDigest(op string, key *ecdsa.PrivateKey, digest common.Hash) ([]byte, error) {
	sig, err := crypto.Sign(digest[:], key)
	if err != nil {
		return nil, fmt.Errorf("payment: %s: %w", op, err)
	}
	sig[64] += 27
	return sig, nil
}

// splitTable checks a table and splits it into the contract's arrays.
func splitTable(table []PayoutEntry) ([]common.Address, []*big.Int, error) {
	accounts := make([]common.Address, len(table))
	amounts := make([]*big.Int, len(table))
	total := new(big.Int)
	for i, e := range table {
		if e.Account == (common.Address{}) {
			return nil, nil, fmt.Errorf("row %d: zero account: %w", i, ErrBadTable)
		}
		if e.Amount == nil || e.Amount.Sign() < 0 || e.Amount.Cmp(maxUint256) > 0 {
			return nil, nil, fmt.Errorf("row %d (%s): amount %v: %w", i, e.Account, e.Amount, ErrBadTable)
		}
		total.Add(total, e.Amount)
		accounts[i], amounts[i] = e.Account, e.Amount
	}
	if total.Cmp(maxUint256) > 0 {
		return nil, nil, fmt.Errorf("total %v above 2^256-1: %w", total, ErrBadTable)
	}
	return accounts, amounts, nil
}

// checkCommittee applies the contract's rules to a committee.
func checkCommittee(c []common.Address) error {
	if len(c) == 0 || len(c) > MaxCommittee {
		return fmt.Errorf("%d members (1 to %d): %w", len(c), MaxCommittee, ErrBadCommittee)
	}
	seen := make(map[common.Address]bool, len(c))
	for _, a := range c {
		if a == (common.Address{}) {
			return fmt.Errorf("zero member: %w", ErrBadCommittee)
		}
		if seen[a] {
			return fmt.Errorf("member %s twice: %w", a, ErrBadCommittee)
		}
		seen[a] = true
	}
	return nil
}

// fundError maps a Fund contract's custom error to its sentinel.
func fundError(v any) error {
	switch e := v.(type) {
	case *contracts.FundStaleEpoch:
		return fmt.Errorf("contract: epoch %d, last paid %d: %w", e.Epoch, e.LastEpoch, ErrStaleEpoch)
	case *contracts.FundOverBudget:
		return fmt.Errorf("contract: total %v, epoch budget %v: %w", e.Total, e.Budget, ErrOverBudget)
	case *contracts.FundFundTooLow:
		return fmt.Errorf("contract: total %v, fund holds %v: %w", e.Total, e.Balance, ErrFundTooLow)
	case *contracts.FundNoQuorum:
		return fmt.Errorf("contract: %v signers of a committee of %v: %w", e.Signers, e.Committee, ErrNoMajority)
	case *contracts.FundNotMember:
		return fmt.Errorf("contract: signer %s: %w", e.Signer, ErrNotCommittee)
	case *contracts.FundWrongCommittee:
		return fmt.Errorf("contract: committee list is not the current one: %w", ErrNotCommittee)
	case *contracts.FundRepeatedSigner:
		return fmt.Errorf("contract: signer %s: %w", e.Signer, ErrDuplicateSigner)
	case *contracts.FundInvalidSignature:
		return fmt.Errorf("contract: signature %v: %w", e.Index, ErrInvalidSignature)
	case *contracts.FundStaleNonce:
		return fmt.Errorf("contract: nonce %d, expected %d: %w", e.Given, e.Expected, ErrStaleNonce)
	case *contracts.FundBadCommittee:
		return fmt.Errorf("contract: %s: %w", e.Reason, ErrBadCommittee)
	case *contracts.FundBadTable:
		return fmt.Errorf("contract: %s: %w", e.Reason, ErrBadTable)
	case *contracts.FundNothingToDeposit:
		return fmt.Errorf("contract: zero deposit: %w", ErrBadAmount)
	case *contracts.FundDepositShort:
		return fmt.Errorf("contract: deposited %v, fund received %v: %w", e.Expected, e.Received, ErrFeeOnTransfer)
	case *contracts.FundReentrantCall:
		return fmt.Errorf("contract: fund: %w", ErrReentrant)
	}
	return fmt.Errorf("fund contract refused (%T): %w", v, ErrReverted)
}
