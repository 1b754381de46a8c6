package payment

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
)

// ErrChainBehind: the chain's confirmed head is not yet past the end of
// the period asked about, so the answer could still change.
var ErrChainBehind = errors.New("payment: chain not past the period's end")

// RedeemedTo returns, per payee, the sum of what the Channels contract's
// Redeemed events paid (their paid field) in the blocks whose timestamp
// is in [from, to). Payees paid nothing are absent. It fails with
// ErrChainBehind until a confirmed block (Config.Confirmations) has a
// timestamp at or after to; from then on every caller gets the same
// answer. It is how an instance's traffic served in an epoch is
// measured for payouts: what its users' vouchers paid it, never what it
// says of itself.
func (p *Payments) RedeemedTo(ctx context.Context, from, to time.Time) (map[common.Address]*big.Int, error) {
	if !from.Before(to) {
		return nil, fmt.Errorf("payment: redeemed from %v to %v: empty period", from, to)
	}
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return nil, fmt.Errorf("payment: redeemed: %w", err)
	}
	defer cancel()
	head, err := p.confirmedPast(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("payment: redeemed to %v: %w", to, err)
	}
	first, err := p.firstBlockAt(ctx, from, head)
	if err != nil {
		return nil, fmt.Errorf("payment: redeemed: %w", err)
	}
	end, err := p.firstBlockAt(ctx, to, head)
	if err != nil {
		return nil, fmt.Errorf("payment: redeemed: %w", err)
	}
	out := map[common.Address]*big.Int{}
	if first >= end {
		return out, nil
	}
	q := ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(first), ToBlock: new(big.Int).SetUint64(end - 1),
		Addresses: []common.Address{p.cfg.Channels},
		Topics:    [][]common.Hash{{channelsABI.GetABI().Events["Redeemed"].ID}},
	}
	logs, err := p.be.FilterLogs(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("payment: redeemed: blocks %d to %d: %w", first, end-1, p.chainErr(err))
	}
	for i := range logs {
		if logs[i].Removed {
			continue
		}
		e, err := channelsABI.UnpackRedeemedEvent(&logs[i])
		if err != nil {
			return nil, fmt.Errorf("payment: redeemed: block %d log %d: %w", logs[i].BlockNumber, logs[i].Index, err)
		}
		if e.Paid == nil || e.Paid.Sign() == 0 {
			continue
		}
		sum := out[e.Payee]
		if sum == nil {
			sum = new(big.Int)
			out[e.Payee] = sum
		}
		sum.Add(sum, e.Paid)
	}
	return out, nil
}

// LastBlockBefore returns the number of the last block whose timestamp
// is before t: the chain as it stood at t, the same for every caller. It
// fails with ErrChainBehind until a confirmed block (Config.Confirmations)
// has a timestamp at or after t, and when no block is before t.
func (p *Payments) LastBlockBefore(ctx context.Context, t time.Time) (uint64, error) {
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return 0, fmt.Errorf("payment: last block before %v: %w", t, err)
	}
	defer cancel()
	head, err := p.confirmedPast(ctx, t)
	if err != nil {
		return 0, fmt.Errorf("payment: last block before %v: %w", t, err)
	}
	first, err := p.firstBlockAt(ctx, t, head)
	if err != nil {
		return 0, fmt.Errorf("payment: last block before %v: %w", t, err)
	}
	if first == 0 {
		return 0, fmt.Errorf("payment: last block before %v: the chain starts later: %w", t, ErrChainBehind)
	}
	return first - 1, nil
}

// confirmedPast returns the confirmed head, or ErrChainBehind if its
// timestamp is before t.
func (p *Payments) confirmedPast(ctx context.Context, t time.Time) (uint64, error) {
	head, err := p.be.BlockNumber(ctx)
	if err != nil {
		return 0, p.chainErr(err)
	}
	if head+1 < p.cfg.Confirmations {
		return 0, ErrChainBehind
	}
	head -= p.cfg.Confirmations - 1
	headTime, err := p.blockTime(ctx, head)
	if err != nil {
		return 0, err
	}
	if headTime.Before(t) {
		return 0, fmt.Errorf("confirmed head %d at %v: %w", head, headTime, ErrChainBehind)
	}
	return head, nil
}

// blockTime is the timestamp of block n.
func (p *Payments) blockTime(ctx context.Context, n uint64) (time.Time, error) {
	h, err := p.be.HeaderByNumber(ctx, new(big.Int).SetUint64(n))
	if err != nil {
		return time.Time{}, fmt.Errorf("header %d: %w", n, p.chainErr(err))
	}
	return time.Unix(int64(h.Time), 0), nil
}

// firstBlockAt is the first block up to head whose timestamp is at or
// after t, or head+1 if none is: a binary search, block timestamps never
// decreasing.
func (p *Payments) firstBlockAt(ctx context.Context, t time.Time, head uint64) (uint64, error) {
	lo, hi := uint64(0), head+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		bt, err := p.blockTime(ctx, mid)
		if err != nil {
			return 0, err
		}
		if bt.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}
