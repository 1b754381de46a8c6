package dapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/internal/payout"
	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/store"
)

// Governance parameters of payouts. Each is set by a governance vote
// (governance.SetParam) or in the Manifest's Params.
const (
	// ParamPayoutFund is the address of the DApp's Fund contract
	// (payment.DeployFund), a hex string. Unset: no payouts.
	ParamPayoutFund = "payout.fund"
	// ParamPayoutBudget is what one epoch pays out in all, a decimal
	// string (or number) in the token's smallest unit. It is capped by
	// the fund's on-chain epoch budget and by its balance, both as they
	// stood at the epoch's end; unset means the on-chain budget.
	ParamPayoutBudget = "payout.budget"
	// ParamPayoutMinAvailability is the least availability, in parts per
	// million, an instance needs to be paid; default 900000 (90%).
	ParamPayoutMinAvailability = "payout.min_availability_ppm"
)

// PayoutSignaturesCollection is the store collection that holds the
// committee members' signatures of payout tables, one document per epoch
// and member, with ID "<epoch>/<account, checksummed hex>".
const PayoutSignaturesCollection = "_payouts.signatures"

// payoutLookback is how many ended epochs, counting back from the
// current one, an instance still signs and submits.
const payoutLookback = 3

var (
	// ErrNoFund: the DApp's governance names no fund (ParamPayoutFund).
	ErrNoFund = errors.New("dapp: no payout fund: governance param " + ParamPayoutFund + " unset")
	// ErrBadPayoutParam: a payout governance parameter that cannot be used.
	ErrBadPayoutParam = errors.New("dapp: bad payout parameter")
	// ErrEpochNotOver: a payout table asked for an epoch not yet over.
	ErrEpochNotOver = errors.New("dapp: epoch not over")
)

// PayoutsConfig tunes the instance's part in payouts. The zero value of
// every field means its default.
type PayoutsConfig struct {
	// Grace is how long after an epoch ends the instance waits before it
	// computes and signs the epoch's table, so that late attestations
	// reach it; default 2 × Mirror.Interval. It is also the delay between
	// the submissions of two committee members, in the order of their
	// accounts, when the first has not paid.
	Grace time.Duration
	// Disabled: the instance never signs or submits payouts, even when its
	// account is on the fund's committee. Payouts().Table and Status
	// still answer.
	Disabled bool
}

func (p *PayoutsConfig) validate(m MirrorConfig) error {
	if p.Grace < 0 {
		return fmt.Errorf("dapp: Payouts: negative Grace")
	}
	if p.Grace == 0 {
		p.Grace = 2 * m.Interval
	}
	return nil
}

// PayoutRow is one line of a payout table: what the fund pays Account.
type PayoutRow struct {
	Account common.Address
	Amount  *big.Int
}

// PayoutStatus is where an epoch's payout stands, as this instance sees it.
type PayoutStatus struct {
	Epoch uint64
	// Fund is the fund contract, Committee its current committee.
	Fund      common.Address
	Committee []common.Address
	// Signatures maps each committee member whose signature of the epoch
	// this instance holds to the table hash the member signed.
	Signatures map[common.Address]common.Hash
	// Majority is the table hash signed by a strict majority of the
	// committee; zero while none is.
	Majority common.Hash
	// LastEpoch is the last epoch the fund paid; Paid reports whether it
	// is Epoch or later (an epoch a later one was paid before is never
	// paid: the contract pays epochs in increasing order only).
	LastEpoch uint64
	Paid      bool
}

// Payouts computes, signs and submits the DApp fund's payouts (see the
// package documentation). It is safe for concurrent use.
type Payouts struct{ n *Node }

// Payouts returns the instance's view of the DApp fund's payouts.
func (n *Node) Payouts() *Payouts { return &Payouts{n} }

// Table recomputes epoch e's payout table as every committee member
// computes it, from the epoch's standings (Replicas.Standings), what the
// Channels contract paid each instance in the epoch
// (payment.Payments.RedeemedTo) and the governance parameters, and
// returns it with its hash (payment.PayoutTableHash), the one committee
// members sign. Anyone holding the same attestations gets the same
// table. It fails with ErrNoFund when no fund is set, ErrEpochNotOver,
// or payment.ErrChainBehind while the chain is not past the epoch.
func (p *Payouts) Table(ctx context.Context, e uint64) ([]PayoutRow, common.Hash, error) {
	t, err := p.n.payoutTable(ctx, e)
	if err != nil {
		return nil, common.Hash{}, fmt.Errorf("dapp: payout table %d: %w", e, err)
	}
	rows := make([]PayoutRow, len(t.entries))
	for i, r := range t.entries {
		rows[i] = PayoutRow{Account: r.Account, Amount: new(big.Int).Set(r.Amount)}
	}
	return rows, t.hash, nil
}

// Status reports the signatures of epoch e this instance holds, the
// table hash a majority of the committee signed if any, and whether the
// fund paid the epoch. It fails with ErrNoFund when no fund is set.
func (p *Payouts) Status(ctx context.Context, e uint64) (PayoutStatus, error) {
	n := p.n
	if n.isClosed() {
		return PayoutStatus{}, fmt.Errorf("dapp: payout status %d: %w", e, ErrClosed)
	}
	f, err := n.payoutFund(ctx)
	if err != nil {
		return PayoutStatus{}, fmt.Errorf("dapp: payout status %d: %w", e, err)
	}
	st, err := f.fund.State(ctx)
	if err != nil {
		return PayoutStatus{}, fmt.Errorf("dapp: payout status %d: %w", e, err)
	}
	sigs, err := n.payoutSignatures(ctx, e, f, st.Committee)
	if err != nil {
		return PayoutStatus{}, fmt.Errorf("dapp: payout status %d: %w", e, err)
	}
	out := PayoutStatus{
		Epoch: e, Fund: f.fund.Address(), Committee: st.Committee,
		Signatures: make(map[common.Address]common.Hash, len(sigs)),
		LastEpoch:  st.LastEpoch, Paid: st.LastEpoch >= e,
	}
	for acc, d := range sigs {
		out.Signatures[acc] = d.TableHash
	}
	out.Majority, _ = majority(sigs, len(st.Committee))
	return out, nil
}

// payoutSigDoc is a document of PayoutSignaturesCollection: a committee
// member's signature of PayoutDigest(Chain, Fund, Epoch, TableHash). The
// fund and chain are in the document so that its validator is a function
// of the document alone, the same on every replica whatever governance
// says at the time.
type payoutSigDoc struct {
	Epoch     uint64         `json:"epoch"`
	Fund      common.Address `json:"fund"`
	Chain     string         `json:"chain"` // chain ID, decimal
	TableHash common.Hash    `json:"tableHash"`
	Sig       hexutil.Bytes  `json:"sig"`
}

func payoutSigID(epoch uint64, account common.Address) string {
	return strconv.FormatUint(epoch, 10) + "/" + account.Hex()
}

func parsePayoutSigID(id string) (uint64, common.Address, error) {
	ep, acc, ok := strings.Cut(id, "/")
	if !ok {
		return 0, common.Address{}, fmt.Errorf("payout signature ID %.80q: want epoch/account", id)
	}
	epoch, err := strconv.ParseUint(ep, 10, 64)
	if err != nil {
		return 0, common.Address{}, fmt.Errorf("payout signature ID %.80q: epoch: %v", id, err)
	}
	if !common.IsHexAddress(acc) {
		return 0, common.Address{}, fmt.Errorf("payout signature ID %.80q: account not a hex address", id)
	}
	account := common.HexToAddress(acc)
	if payoutSigID(epoch, account) != id {
		return 0, common.Address{}, fmt.Errorf("payout signature ID %.80q is not canonical", id)
	}
	return epoch, account, nil
}

// validatePayoutSignature is the payout signatures collection's
// validator, the same on every replica: a document is put whole by the
// account its ID names, and holds that account's valid signature of a
// payout of the epoch its ID names; only that account deletes it. Each
// refusal is counted in refused.
func validatePayoutSignature(refused *atomic.Uint64) store.Validator {
	return func(w store.Write) error {
		if err := checkPayoutSignature(w); err != nil {
			refused.Add(1)
			return err
		}
		return nil
	}
}

func checkPayoutSignature(w store.Write) error {
	epoch, account, err := parsePayoutSigID(w.ID)
	if err != nil {
		return err
	}
	if w.Author != account {
		return fmt.Errorf("payout signature %.80q written by %s, not by its signer", w.ID, w.Author)
	}
	switch w.Kind {
	case "delete":
		return nil
	case "put":
	default:
		return fmt.Errorf("payout signature %.80q: %s refused; signatures are put whole", w.ID, w.Kind)
	}
	if len(w.Fields) != 5 {
		return fmt.Errorf("payout signature %.80q: want exactly the fields epoch, fund, chain, tableHash and sig", w.ID)
	}
	for k, v := range w.Fields {
		if len(v) > 256 {
			return fmt.Errorf("payout signature %.80q: field %.20q of %d bytes", w.ID, k, len(v))
		}
	}
	var d payoutSigDoc
	for k, dst := range map[string]any{"epoch": &d.Epoch, "fund": &d.Fund, "chain": &d.Chain, "tableHash": &d.TableHash, "sig": &d.Sig} {
		raw, ok := w.Fields[k]
		if !ok {
			return fmt.Errorf("payout signature %.80q: no field %s", w.ID, k)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("payout signature %.80q: field %s: %v", w.ID, k, err)
		}
	}
	if d.Epoch != epoch {
		return fmt.Errorf("payout signature %.80q: field epoch %d, want %d", w.ID, d.Epoch, epoch)
	}
	chain, ok := new(big.Int).SetString(d.Chain, 10)
	if !ok || chain.Sign() <= 0 || chain.String() != d.Chain || chain.BitLen() > 256 {
		return fmt.Errorf("payout signature %.80q: chain %.80q not a canonical positive decimal", w.ID, d.Chain)
	}
	signer, err := recoverPayoutSigner(chain, d)
	if err != nil {
		return fmt.Errorf("payout signature %.80q: %v", w.ID, err)
	}
	if signer != account {
		return fmt.Errorf("payout signature %.80q: signed by %s, not by %s", w.ID, signer, account)
	}
	return nil
}

// recoverPayoutSigner is the account whose signature d.Sig is of d's
// payout, under the rules the Fund contract applies (65 bytes, v 27 or
// 28, low s).
func recoverPayoutSigner(chain *big.Int, d payoutSigDoc) (common.Address, error) {
	if len(d.Sig) != 65 || (d.Sig[64] != 27 && d.Sig[64] != 28) {
		return common.Address{}, fmt.Errorf("signature of %d bytes, v not 27 or 28", len(d.Sig))
	}
	r, s := new(big.Int).SetBytes(d.Sig[:32]), new(big.Int).SetBytes(d.Sig[32:64])
	if !ethcrypto.ValidateSignatureValues(d.Sig[64]-27, r, s, true) {
		return common.Address{}, errors.New("signature values out of range (or high s)")
	}
	sig := slices.Clone([]byte(d.Sig))
	sig[64] -= 27
	digest := payment.PayoutDigest(chain, d.Fund, d.Epoch, d.TableHash)
	pub, err := ethcrypto.SigToPub(digest[:], sig)
	if err != nil {
		return common.Address{}, fmt.Errorf("signature recovers no key: %v", err)
	}
	return ethcrypto.PubkeyToAddress(*pub), nil
}

// payoutEngine signs and submits payouts for an instance on the fund's
// committee. Its loop runs in the Node's task group.
type payoutEngine struct {
	n       *Node
	cfg     PayoutsConfig
	coll    *store.Collection
	started time.Time

	// refused counts payout signature documents the validator refused;
	// submitted counts payouts this instance had mined.
	refused   atomic.Uint64
	submitted atomic.Uint64
	// lie is a test hook (export_test.go): the instance signs a table
	// that pays it the whole total instead of the one it computed.
	lie atomic.Bool
	// mute is a test hook (export_test.go): the instance signs but never
	// submits, as one that crashed after signing.
	mute atomic.Bool

	mu   sync.Mutex
	fund *openFund // the fund last opened, for its address

	// Owned by the loop.
	tables  map[uint64]*payoutTable // this instance's table of each epoch it signed
	seen    map[uint64]time.Time    // when the loop first saw a majority for an epoch
	tried   map[uint64]time.Time    // when it last submitted an epoch
	pruned  uint64                  // epochs below it have no signature of this instance
	lastLog map[string]time.Time
}

// openFund is a fund bound to the instance's payments, with its chain.
type openFund struct {
	fund  *payment.Fund
	chain *big.Int
	pay   *payment.Payments
}

type payoutTable struct {
	fund    *openFund
	entries []payment.PayoutEntry
	hash    common.Hash
	total   *big.Int
}

func (n *Node) startPayouts() {
	n.payouts.n, n.payouts.cfg = n, n.cfg.Payouts
	n.payouts.coll = n.store.Collection(PayoutSignaturesCollection)
	n.payouts.started = time.Now()
	n.payouts.tables = map[uint64]*payoutTable{}
	n.payouts.seen = map[uint64]time.Time{}
	n.payouts.tried = map[uint64]time.Time{}
	n.payouts.lastLog = map[string]time.Time{}
	if n.cfg.Payouts.Disabled || n.cfg.Mirror.Disabled {
		return
	}
	n.tasks.Go(n.payouts.loop)
}

// payoutParams are the governance parameters of payouts.
type payoutParams struct {
	fund     common.Address
	budget   *big.Int // nil: the fund's on-chain budget
	minAvail uint32
}

// rawParam reads governance parameter name as a string: a JSON string's
// content, or any other JSON value's text (a number). ok is false when
// the parameter is unset.
func (n *Node) rawParam(ctx context.Context, name string) (string, bool, error) {
	var raw json.RawMessage
	if err := n.gov.Param(ctx, name, &raw); err != nil {
		if errors.Is(err, governance.ErrNoParam) {
			return "", false, nil
		}
		return "", false, err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	return string(raw), true, nil
}

func (n *Node) payoutParams(ctx context.Context) (payoutParams, error) {
	p := payoutParams{minAvail: payout.DefaultMinAvailability}
	s, ok, err := n.rawParam(ctx, ParamPayoutFund)
	if err != nil {
		return p, err
	}
	if !ok {
		return p, ErrNoFund
	}
	if !common.IsHexAddress(s) || common.HexToAddress(s) == (common.Address{}) {
		return p, fmt.Errorf("%s %.80q: not a non-zero hex address: %w", ParamPayoutFund, s, ErrBadPayoutParam)
	}
	p.fund = common.HexToAddress(s)
	if s, ok, err = n.rawParam(ctx, ParamPayoutBudget); err != nil {
		return p, err
	} else if ok {
		b, good := new(big.Int).SetString(s, 10)
		if !good || b.Sign() < 0 {
			return p, fmt.Errorf("%s %.80q: not a non-negative decimal: %w", ParamPayoutBudget, s, ErrBadPayoutParam)
		}
		p.budget = b
	}
	if s, ok, err = n.rawParam(ctx, ParamPayoutMinAvailability); err != nil {
		return p, err
	} else if ok {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil || v > payout.PPM {
			return p, fmt.Errorf("%s %.80q: not 0 to %d: %w", ParamPayoutMinAvailability, s, payout.PPM, ErrBadPayoutParam)
		}
		p.minAvail = uint32(v)
	}
	return p, nil
}

// payoutFund opens the fund governance names, reusing the last one
// opened while the address stays the same.
func (n *Node) payoutFund(ctx context.Context) (*openFund, error) {
	params, err := n.payoutParams(ctx)
	if err != nil {
		return nil, err
	}
	return n.openPayoutFund(ctx, params.fund)
}

func (n *Node) openPayoutFund(ctx context.Context, addr common.Address) (*openFund, error) {
	pe := &n.payouts
	pe.mu.Lock()
	f := pe.fund
	pe.mu.Unlock()
	if f != nil && f.fund.Address() == addr {
		return f, nil
	}
	pay, err := n.StartPayments(ctx)
	if err != nil {
		return nil, err
	}
	fund, err := pay.OpenFund(ctx, addr)
	if err != nil {
		return nil, err
	}
	f = &openFund{fund: fund, chain: pay.ChainID(), pay: pay}
	pe.mu.Lock()
	pe.fund = f
	pe.mu.Unlock()
	return f, nil
}

// payoutTable computes epoch e's table (see Payouts.Table).
func (n *Node) payoutTable(ctx context.Context, e uint64) (*payoutTable, error) {
	if n.isClosed() {
		return nil, ErrClosed
	}
	r := n.Replicas()
	if end := r.EpochStart(e + 1); time.Now().Before(end) {
		return nil, fmt.Errorf("ends at %v: %w", end, ErrEpochNotOver)
	}
	params, err := n.payoutParams(ctx)
	if err != nil {
		return nil, err
	}
	f, err := n.openPayoutFund(ctx, params.fund)
	if err != nil {
		return nil, err
	}
	served, err := f.pay.RedeemedTo(ctx, r.EpochStart(e), r.EpochStart(e+1))
	if err != nil {
		return nil, err
	}
	standings, err := r.Standings(ctx, e)
	if err != nil {
		return nil, err
	}
	// The fund's budget and balance as they stood at the epoch's end, so
	// that every member computes the same table whenever it computes it.
	endBlock, err := f.pay.LastBlockBefore(ctx, r.EpochStart(e+1))
	if err != nil {
		return nil, err
	}
	budget := new(big.Int)
	st, err := f.fund.StateAt(ctx, endBlock)
	switch {
	case errors.Is(err, payment.ErrNotFund):
		// Deployed after the epoch: nothing to pay for it.
	case err != nil:
		return nil, err
	default:
		budget.Set(st.Budget)
		if params.budget != nil && params.budget.Cmp(budget) < 0 {
			budget.Set(params.budget)
		}
		if st.Balance.Cmp(budget) < 0 {
			budget.Set(st.Balance)
		}
	}
	instances := make([]payout.Instance, 0, len(standings))
	for _, s := range standings {
		instances = append(instances, payout.Instance{
			Account: s.Account, Group: s.Group, Availability: s.AvailabilityPPM,
			Verified: s.Verified, Served: served[s.Account],
		})
	}
	rows, err := payout.Compute(instances, payout.Params{Budget: budget, MinAvailability: params.minAvail})
	if err != nil {
		return nil, err
	}
	t := &payoutTable{fund: f, entries: make([]payment.PayoutEntry, len(rows)), total: payout.Total(rows)}
	for i, row := range rows {
		t.entries[i] = payment.PayoutEntry{Account: row.Account, Amount: row.Amount}
	}
	if t.hash, err = payment.PayoutTableHash(t.entries); err != nil {
		return nil, err
	}
	return t, nil
}

// payoutSignatures returns the valid signatures of epoch e for f by the
// members of committee this instance holds, by member.
func (n *Node) payoutSignatures(ctx context.Context, e uint64, f *openFund, committee []common.Address) (map[common.Address]payoutSigDoc, error) {
	coll := n.payouts.coll
	out := map[common.Address]payoutSigDoc{}
	chain := f.chain.String()
	for _, m := range committee {
		var d payoutSigDoc
		if err := coll.Get(ctx, payoutSigID(e, m), &d); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return nil, err
		}
		// The validator checked the signature against the document's own
		// fund and chain; a signature for another fund counts for nothing.
		if d.Fund != f.fund.Address() || d.Chain != chain || d.Epoch != e {
			continue
		}
		out[m] = d
	}
	return out, nil
}

// majority returns the table hash a strict majority of a committee of
// size members signed, and those signers sorted by account.
func majority(sigs map[common.Address]payoutSigDoc, size int) (common.Hash, []common.Address) {
	count := map[common.Hash]int{}
	for _, d := range sigs {
		count[d.TableHash]++
	}
	for h, c := range count {
		if 2*c > size {
			var signers []common.Address
			for acc, d := range sigs {
				if d.TableHash == h {
					signers = append(signers, acc)
				}
			}
			slices.SortFunc(signers, func(a, b common.Address) int { return bytes.Compare(a[:], b[:]) })
			return h, signers
		}
	}
	return common.Hash{}, nil
}

func (pe *payoutEngine) loop(ctx context.Context) {
	t := time.NewTicker(max(pe.n.cfg.Mirror.Interval, 500*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pe.round(ctx)
		}
	}
}

// warn logs a failure of the loop at most once a minute per kind.
func (pe *payoutEngine) warn(kind, msg string, args ...any) {
	if last, ok := pe.lastLog[kind]; ok && time.Since(last) < time.Minute {
		pe.n.log.Debug(msg, args...)
		return
	}
	pe.lastLog[kind] = time.Now()
	pe.n.log.Warn(msg, args...)
}

// round signs and submits the ended epochs not yet paid, oldest first.
func (pe *payoutEngine) round(ctx context.Context) {
	n := pe.n
	f, err := n.payoutFund(ctx)
	if errors.Is(err, ErrNoFund) {
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			pe.warn("fund", "dapp: payouts: fund", "err", err)
		}
		return
	}
	st, err := f.fund.State(ctx)
	if err != nil {
		if ctx.Err() == nil {
			pe.warn("state", "dapp: payouts: fund state", "err", err)
		}
		return
	}
	if !slices.Contains(st.Committee, n.Account()) {
		return
	}
	now := time.Now()
	cur := n.mirror.epochAt(now)
	low := st.LastEpoch + 1
	low = max(low, satSub(n.mirror.epochAt(pe.started), uint64(n.cfg.Mirror.KeepEpochs)))
	low = max(low, satSub(cur, payoutLookback))
	for e := range pe.tables {
		if e < low {
			delete(pe.tables, e)
			delete(pe.seen, e)
			delete(pe.tried, e)
		}
	}
	for e := low; e < cur; e++ {
		if now.Before(n.Replicas().EpochStart(e + 1).Add(pe.cfg.Grace)) {
			break
		}
		if ctx.Err() != nil {
			return
		}
		pe.epoch(ctx, e, f, st)
	}
	pe.prune(ctx, satSub(cur, uint64(n.cfg.Mirror.KeepEpochs)))
}

func satSub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// epoch signs epoch e's table if this instance has not, and submits it
// once a majority of the committee signed the same table.
func (pe *payoutEngine) epoch(ctx context.Context, e uint64, f *openFund, st payment.FundState) {
	n := pe.n
	t := pe.tables[e]
	if t == nil || t.fund != f {
		var err error
		if t, err = n.payoutTable(ctx, e); err != nil {
			if !errors.Is(err, payment.ErrChainBehind) && ctx.Err() == nil {
				pe.warn("table", "dapp: payouts: table", "epoch", e, "err", err)
			}
			return
		}
		if pe.lie.Load() && t.total.Sign() > 0 {
			t.entries = []payment.PayoutEntry{{Account: n.Account(), Amount: t.total}}
			if t.hash, err = payment.PayoutTableHash(t.entries); err != nil {
				return
			}
		}
		pe.tables[e] = t
	}
	if t.total.Sign() == 0 {
		return // nothing to pay: no signature, no transaction
	}
	sigs, err := n.payoutSignatures(ctx, e, f, st.Committee)
	if err != nil {
		if ctx.Err() == nil {
			pe.warn("signatures", "dapp: payouts: signatures", "epoch", e, "err", err)
		}
		return
	}
	self := n.Account()
	if _, ok := sigs[self]; !ok {
		sig, err := payment.SignPayout(n.key, f.chain, f.fund.Address(), e, t.entries)
		if err != nil {
			pe.warn("sign", "dapp: payouts: sign", "epoch", e, "err", err)
			return
		}
		d := payoutSigDoc{Epoch: e, Fund: f.fund.Address(), Chain: f.chain.String(), TableHash: t.hash, Sig: sig}
		if err := pe.coll.Put(ctx, payoutSigID(e, self), d); err != nil {
			if ctx.Err() == nil {
				pe.warn("put", "dapp: payouts: write signature", "epoch", e, "err", err)
			}
			return
		}
		n.log.Info("dapp: payouts: signed", "epoch", e, "table", t.hash, "total", t.total, "rows", len(t.entries))
		sigs[self] = d
	}
	h, signers := majority(sigs, len(st.Committee))
	if len(signers) == 0 || h != t.hash {
		return
	}
	if _, ok := pe.seen[e]; !ok {
		pe.seen[e] = time.Now()
	}
	// The lowest account among the signers submits first; each next one
	// a Grace later, if the epoch is still unpaid.
	rank := slices.Index(signers, self)
	if rank < 0 || pe.mute.Load() {
		return
	}
	now := time.Now()
	if now.Before(pe.seen[e].Add(time.Duration(rank) * pe.cfg.Grace)) {
		return
	}
	if last, ok := pe.tried[e]; ok && now.Before(last.Add(max(pe.cfg.Grace, time.Second))) {
		return
	}
	pe.tried[e] = now
	list := make([][]byte, len(signers))
	for i, acc := range signers {
		list[i] = sigs[acc].Sig
	}
	tx, err := f.fund.SubmitPayout(ctx, e, t.entries, st.Committee, list)
	switch {
	case err == nil:
		pe.submitted.Add(1)
		n.log.Info("dapp: payouts: paid", "epoch", e, "table", t.hash, "total", t.total, "tx", tx)
	case errors.Is(err, payment.ErrStaleEpoch):
		// Another member paid it first (or a later epoch was paid).
		n.log.Debug("dapp: payouts: already paid", "epoch", e, "err", err)
	case errors.Is(err, payment.ErrReverted):
		// Sent while another member's payment was pending: done if the
		// fund shows the epoch paid, otherwise tried again later.
		if now, serr := f.fund.State(ctx); serr == nil && now.LastEpoch >= e {
			n.log.Debug("dapp: payouts: already paid", "epoch", e, "err", err)
		} else if ctx.Err() == nil {
			pe.warn("submit", "dapp: payouts: submit", "epoch", e, "err", err)
		}
	default:
		if ctx.Err() == nil {
			pe.warn("submit", "dapp: payouts: submit", "epoch", e, "err", err)
		}
	}
}

// prune deletes this instance's signatures of epochs below cutoff.
func (pe *payoutEngine) prune(ctx context.Context, cutoff uint64) {
	if cutoff <= pe.pruned {
		return
	}
	self := pe.n.Account()
	var own []string
	for doc, err := range pe.coll.Find(ctx) {
		if err != nil {
			return
		}
		if e, acc, err := parsePayoutSigID(doc.ID); err == nil && acc == self && e < cutoff {
			own = append(own, doc.ID)
		}
	}
	for _, id := range own {
		if err := pe.coll.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			if ctx.Err() == nil {
				pe.warn("prune", "dapp: payouts: prune signature", "id", id, "err", err)
			}
			return
		}
	}
	pe.pruned = cutoff
}

var (
	descPayoutRefused   = prometheus.NewDesc("dpaas_dapp_payout_signatures_refused_total", "Payout signature documents refused: forged author, bad signature, malformed fields.", nil, nil)
	descPayoutSubmitted = prometheus.NewDesc("dpaas_dapp_payouts_submitted_total", "Payouts this instance submitted and had mined.", nil, nil)
)

// payoutsCollector reports the payout counters.
type payoutsCollector struct{ n *Node }

func (c payoutsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPayoutRefused
	ch <- descPayoutSubmitted
}

func (c payoutsCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descPayoutRefused, prometheus.CounterValue, float64(c.n.payouts.refused.Load()))
	ch <- prometheus.MustNewConstMetric(descPayoutSubmitted, prometheus.CounterValue, float64(c.n.payouts.submitted.Load()))
}
