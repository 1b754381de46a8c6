package payment

import (
	"context"
	"errors"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
)

// The payee loop runs from the first voucher a Payments holds until Close.
// Each round it brings the on-chain facts of the held channels up to date
// from the Channels contract's events (Redeemed to this account, ToppedUp
// on held channels), then redeems every held voucher whose channel has
// entered its last Config.ExpiryMargin, retrying failures with backoff
// until the expiry.

// maxRedeemBackoff caps the wait between two failed automatic redemptions.
const maxRedeemBackoff = 30 * time.Second

// redeemAttempt is the payee loop's memory of one channel's failures.
type redeemAttempt struct {
	failures int
	next     time.Time // wall clock: no new attempt before
	missed   bool      // the expiry passed with value unredeemed (reported once)
}

// startPayeeLoop starts the payee loop unless it runs or Payments closed.
func (p *Payments) startPayeeLoop() {
	p.mu.Lock()
	if p.loopOn || p.closed.Load() {
		p.mu.Unlock()
		return
	}
	p.loopOn = true
	p.wg.Add(1)
	p.mu.Unlock()
	go p.payeeLoop()
}

func (p *Payments) payeeLoop() {
	defer p.wg.Done()
	ctx := p.base
	interval := max(p.cfg.PollInterval, 20*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	attempts := make(map[common.Hash]*redeemAttempt)
	var next uint64 // first block whose events are not applied; 0: sync first
	for {
		if next == 0 {
			next = p.syncHeld(ctx)
		} else {
			next = p.applyEvents(ctx, next)
		}
		p.redeemDue(ctx, interval, attempts)
		select {
		case <-p.closing:
			return
		case <-t.C:
		}
	}
}

// heldIDs lists the channels this account holds a voucher on.
func (p *Payments) heldIDs() []common.Hash {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]common.Hash, 0, len(p.best))
	for id := range p.best {
		ids = append(ids, id)
	}
	return ids
}

// syncHeld reads every held channel from the contract and returns the
// block after the head read first (so no event after the reads is
// missed), or 0 to try again next round.
func (p *Payments) syncHeld(ctx context.Context) uint64 {
	head, err := p.be.BlockNumber(ctx)
	if err != nil {
		p.log.Debug("payee loop: block number", "err", err)
		return 0
	}
	for _, id := range p.heldIDs() {
		if _, err := p.channelFacts(ctx, id, true); err != nil {
			p.log.Debug("payee loop: channel state", "channel", id, "err", err)
			return 0
		}
	}
	return head + 1
}

// applyEvents applies the Channels events of blocks from..head that
// concern held channels and returns head+1 (from on failure).
func (p *Payments) applyEvents(ctx context.Context, from uint64) uint64 {
	head, err := p.be.BlockNumber(ctx)
	if err != nil || head < from {
		return from
	}
	ev := channelsABI.GetABI().Events
	q := ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(from), ToBlock: new(big.Int).SetUint64(head),
		Addresses: []common.Address{p.cfg.Channels},
		Topics:    [][]common.Hash{{ev["Redeemed"].ID}, nil, {common.BytesToHash(p.account[:])}},
	}
	logs, err := p.be.FilterLogs(ctx, q)
	if err != nil {
		p.log.Debug("payee loop: redeemed events", "err", err)
		return from
	}
	for i := range logs {
		if e, err := channelsABI.UnpackRedeemedEvent(&logs[i]); err == nil {
			p.noteRedeemed(e.Id, e.Amount)
		}
	}
	ids := p.heldIDs()
	if len(ids) == 0 {
		return head + 1
	}
	q.Topics = [][]common.Hash{{ev["ToppedUp"].ID}, ids}
	if logs, err = p.be.FilterLogs(ctx, q); err != nil {
		p.log.Debug("payee loop: top-up events", "err", err)
		return from
	}
	for i := range logs {
		e, err := channelsABI.UnpackToppedUpEvent(&logs[i])
		if err != nil {
			continue
		}
		p.mu.Lock()
		if ch, ok := p.known[e.Id]; ok {
			if e.Deposit.Cmp(ch.Deposit) > 0 {
				ch.Deposit = e.Deposit
			}
			if x := unixTime(e.Expiry); x.After(ch.Expiry) {
				ch.Expiry = x
			}
			p.known[e.Id] = ch
		}
		p.mu.Unlock()
	}
	return head + 1
}

// dueVoucher is a held voucher with what the loop knows of its channel.
type dueVoucher struct {
	id       common.Hash
	amount   *big.Int
	expiry   time.Time
	redeemed *big.Int
}

// redeemDue redeems the held vouchers whose channels are inside the
// expiry margin and hold more than was redeemed.
func (p *Payments) redeemDue(ctx context.Context, interval time.Duration, attempts map[common.Hash]*redeemAttempt) {
	if p.cfg.ExpiryMargin <= 0 {
		return
	}
	now := p.now()
	var due []dueVoucher
	p.mu.Lock()
	for id, h := range p.best {
		d := dueVoucher{id: id, amount: h.v.Amount, expiry: h.ch.Expiry, redeemed: p.redeemed[id]}
		if ch, ok := p.known[id]; ok {
			d.expiry = ch.Expiry
		}
		if d.redeemed != nil && d.amount.Cmp(d.redeemed) <= 0 {
			delete(attempts, id)
			continue
		}
		if now.Before(d.expiry.Add(-p.cfg.ExpiryMargin)) {
			continue
		}
		due = append(due, d)
	}
	p.mu.Unlock()
	wall := time.Now()
	for _, d := range due {
		a := attempts[d.id]
		if a == nil {
			a = &redeemAttempt{}
			attempts[d.id] = a
		}
		if !now.Before(d.expiry) && !a.missed {
			// The cached expiry may be stale (a top-up not seen yet).
			if ch, err := p.channelFacts(ctx, d.id, true); err == nil && ch.Expiry.After(d.expiry) {
				continue
			}
		}
		if !now.Before(d.expiry) {
			if !a.missed {
				a.missed = true
				p.stats.missed.Add(1)
				p.log.Error("channel expired before its best voucher was redeemed: the payer may reclaim it",
					"channel", d.id, "voucher", d.amount, "redeemed", d.redeemed, "expiry", d.expiry)
			}
			continue
		}
		if wall.Before(a.next) {
			continue
		}
		tx, err := p.Redeem(ctx, d.id)
		switch {
		case err == nil:
			p.stats.autoRedeemed.Add(1)
			p.log.Info("redeemed the best voucher before the channel's expiry",
				"channel", d.id, "amount", d.amount, "tx", tx, "expiry", d.expiry)
			delete(attempts, d.id)
		case errors.Is(err, ErrNothingToRedeem):
			delete(attempts, d.id) // redeemed meanwhile (by Redeem, or another instance)
		case p.closed.Load():
			return
		default:
			a.failures++
			wait := min(interval<<min(a.failures, 16), maxRedeemBackoff)
			a.next = time.Now().Add(wait)
			p.stats.autoRedeemFailed.Add(1)
			p.log.Warn("automatic redemption failed; retrying", "channel", d.id, "amount", d.amount,
				"attempt", a.failures, "retry_in", wait, "expiry", d.expiry, "err", err)
		}
	}
}
