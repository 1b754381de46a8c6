package payment

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/voucher"
)

// VoucherSize is the length of a voucher's binary form.
const VoucherSize = 182 // the voucher codec's size (TestVoucherSizeMatchesCodec)

// Channel is the payer's side of a payment channel. It is safe for
// concurrent use; vouchers are signed one at a time.
type Channel struct {
	p     *Payments
	id    common.Hash
	payee common.Address

	mu      sync.Mutex
	deposit *big.Int
	expiry  time.Time
	paid    *big.Int
	last    *Voucher // latest signed voucher; nil before the first Pay
}

// OpenChannel locks deposit tokens in a new channel to payee that expires
// ttl from now (the chain's time on a DevChain), and returns it once the
// opening is mined. It sends two transactions: an ERC-20 approve and the
// opening.
func (p *Payments) OpenChannel(ctx context.Context, payee common.Address, deposit *big.Int, ttl time.Duration) (*Channel, error) {
	if deposit == nil || deposit.Sign() <= 0 {
		return nil, fmt.Errorf("payment: open channel: deposit %v: %w", deposit, ErrBadAmount)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("payment: open channel: ttl %s: %w", ttl, ErrBadExpiry)
	}
	expiry := p.now().Add(ttl).Truncate(time.Second)
	if _, err := p.send(ctx, p.token, tokenABI.PackApprove(p.cfg.Channels, deposit)); err != nil {
		return nil, fmt.Errorf("payment: open channel: approve: %w", err)
	}
	r, err := p.send(ctx, p.channels, channelsABI.PackOpen(payee, deposit, unixSeconds(expiry)))
	if err != nil {
		return nil, fmt.Errorf("payment: open channel to %s: %w", payee, err)
	}
	var id common.Hash
	for _, l := range r.Logs {
		if ev, err := channelsABI.UnpackOpenedEvent(l); err == nil && l.Address == p.cfg.Channels {
			id = ev.Id
			break
		}
	}
	if id == (common.Hash{}) {
		return nil, fmt.Errorf("payment: open channel: no Opened event in %s: %w", r.TxHash, ErrReverted)
	}
	c := &Channel{p: p, id: id, payee: payee, deposit: new(big.Int).Set(deposit), expiry: expiry, paid: new(big.Int)}
	if err := c.persist(); err != nil {
		return nil, fmt.Errorf("payment: open channel: %w", err)
	}
	p.mu.Lock()
	p.payerChan[id] = c
	p.mu.Unlock()
	p.log.Debug("channel opened", "id", id, "payee", payee, "deposit", deposit, "expiry", expiry)
	return c, nil
}

// Channel returns one of this instance's channels as a payer.
func (p *Payments) Channel(id common.Hash) (*Channel, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.payerChan[id]
	return c, ok
}

// Channels lists this instance's channels as a payer, including those
// restored from a previous run.
func (p *Payments) Channels() []*Channel {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Channel, 0, len(p.payerChan))
	for _, c := range p.payerChan {
		out = append(out, c)
	}
	return out
}

// ID is the channel's on-chain identifier.
func (c *Channel) ID() common.Hash { return c.id }

// Payee is the account the channel pays.
func (c *Channel) Payee() common.Address { return c.payee }

// Deposit is the amount locked in the channel.
func (c *Channel) Deposit() *big.Int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return new(big.Int).Set(c.deposit)
}

// Expiry is when the payee's right to redeem ends and the payer may
// reclaim the rest.
func (c *Channel) Expiry() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.expiry
}

// Paid is the cumulative amount of the latest voucher signed.
func (c *Channel) Paid() *big.Int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return new(big.Int).Set(c.paid)
}

// Latest is the latest voucher signed, if any.
func (c *Channel) Latest() (Voucher, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return Voucher{}, false
	}
	return *c.last, true
}

// Pay signs the next cumulative voucher: what was paid so far plus
// amount. It refuses to go beyond the deposit (ErrAboveDeposit) or to sign
// after the expiry (ErrExpired), and records the new total durably before
// returning the voucher.
func (c *Channel) Pay(amount *big.Int) (Voucher, error) {
	if amount == nil || amount.Sign() <= 0 {
		return Voucher{}, fmt.Errorf("payment: pay %v: %w", amount, ErrBadAmount)
	}
	if c.p.closed.Load() {
		return Voucher{}, fmt.Errorf("payment: pay: %w", ErrClosed)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	total := new(big.Int).Add(c.paid, amount)
	if total.Cmp(c.deposit) > 0 {
		return Voucher{}, fmt.Errorf("payment: pay %v on channel %s: total %v, deposit %v: %w", amount, c.id, total, c.deposit, ErrAboveDeposit)
	}
	if now := c.p.now(); !now.Before(c.expiry) {
		return Voucher{}, fmt.Errorf("payment: pay on channel %s: expired %s: %w", c.id, c.expiry.UTC().Format(time.RFC3339), ErrExpired)
	}
	sv, err := voucher.Sign(c.p.key, c.p.domain, c.id, total)
	v := Voucher(sv)
	if err != nil {
		return Voucher{}, fmt.Errorf("payment: pay: %w", err)
	}
	prevPaid, prevLast := c.paid, c.last
	c.paid, c.last = total, &v
	if err := c.persistLocked(); err != nil {
		c.paid, c.last = prevPaid, prevLast
		return Voucher{}, fmt.Errorf("payment: pay: %w", err)
	}
	return v, nil
}

// TopUp adds amount (may be zero) to the deposit and moves the expiry to
// ttl from now if that is later. It returns once mined.
func (c *Channel) TopUp(ctx context.Context, amount *big.Int, ttl time.Duration) error {
	if amount == nil || amount.Sign() < 0 {
		return fmt.Errorf("payment: top up %v: %w", amount, ErrBadAmount)
	}
	c.mu.Lock()
	expiry := c.expiry
	c.mu.Unlock()
	if e := c.p.now().Add(ttl).Truncate(time.Second); e.After(expiry) {
		expiry = e
	}
	if amount.Sign() > 0 {
		if _, err := c.p.send(ctx, c.p.token, tokenABI.PackApprove(c.p.cfg.Channels, amount)); err != nil {
			return fmt.Errorf("payment: top up: approve: %w", err)
		}
	}
	if _, err := c.p.send(ctx, c.p.channels, channelsABI.PackTopUp(c.id, amount, unixSeconds(expiry))); err != nil {
		return fmt.Errorf("payment: top up channel %s: %w", c.id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deposit.Add(c.deposit, amount)
	c.expiry = expiry
	if err := c.persistLocked(); err != nil {
		return fmt.Errorf("payment: top up: %w", err)
	}
	return nil
}

// Reclaim takes back, after the channel's expiry, whatever its payee did
// not redeem. Only the payer may call it; before the expiry it fails with
// ErrNotExpired.
func (p *Payments) Reclaim(ctx context.Context, channel common.Hash) (common.Hash, error) {
	r, err := p.send(ctx, p.channels, channelsABI.PackReclaim(channel))
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: reclaim %s: %w", channel, err)
	}
	return r.TxHash, nil
}

// Payer channel record: payee(20) deposit(32) expiry(8) paid(32) [voucher].
const payerRecordSize = 20 + 32 + 8 + 32

func payerKey(id common.Hash) []byte { return append([]byte("chan/"), id[:]...) }

func (c *Channel) persist() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.persistLocked()
}

func (c *Channel) persistLocked() error {
	b := make([]byte, payerRecordSize, payerRecordSize+voucher.Size)
	copy(b[0:20], c.payee[:])
	c.deposit.FillBytes(b[20:52])
	binary.BigEndian.PutUint64(b[52:60], unixSeconds(c.expiry))
	c.paid.FillBytes(b[60:92])
	if c.last != nil {
		var err error
		if b, err = c.last.AppendBinary(b); err != nil {
			return err
		}
	}
	return c.p.space.Set(payerKey(c.id), b, true)
}

func (p *Payments) decodePayerRecord(id common.Hash, b []byte) (*Channel, error) {
	if len(b) != payerRecordSize && len(b) != payerRecordSize+voucher.Size {
		return nil, fmt.Errorf("channel record %s: %d bytes", id, len(b))
	}
	c := &Channel{
		p:       p,
		id:      id,
		payee:   common.BytesToAddress(b[0:20]),
		deposit: new(big.Int).SetBytes(b[20:52]),
		expiry:  unixTime(binary.BigEndian.Uint64(b[52:60])),
		paid:    new(big.Int).SetBytes(b[60:92]),
	}
	if len(b) > payerRecordSize {
		v, err := ParseVoucher(b[payerRecordSize:])
		if err != nil {
			return nil, fmt.Errorf("channel record %s: %w", id, err)
		}
		c.last = &v
	}
	return c, nil
}
