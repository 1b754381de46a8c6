package payment

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/internal/voucher"
)

// Accept is the payee's side of a voucher: it checks that v is for this
// chain and contract, names an existing channel that pays this account,
// is signed by that channel's payer, raises both the best amount held so
// far and the amount already redeemed on-chain, stays within the deposit
// and arrives at least Config.ExpiryMargin before the expiry. It then
// keeps v, durably, as the channel's best voucher, and credits the payer
// (PaidBy) only with what v adds above both.
// Refusals wrap ErrWrongDomain, ErrUnknownChannel, ErrNotPayee,
// ErrBadSignature, ErrNotAboveBest, ErrAboveDeposit or ErrExpired.
//
// Concurrent Accepts on different channels run in parallel and share the
// synced writes that make them durable (group commit).
func (p *Payments) Accept(ctx context.Context, v Voucher) error {
	if err := p.accept(ctx, v); err != nil {
		p.stats.rejected.Add(1)
		return fmt.Errorf("payment: accept: %w", err)
	}
	p.stats.accepted.Add(1)
	return nil
}

func (p *Payments) accept(ctx context.Context, v Voucher) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if v.ChainID == nil || v.Amount == nil {
		return ErrMalformedVoucher
	}
	if v.ChainID.Cmp(p.chainID) != 0 || v.Contract != p.cfg.Channels {
		return fmt.Errorf("voucher for chain %v contract %s: %w", v.ChainID, v.Contract, ErrWrongDomain)
	}
	ch, err := p.channelFacts(ctx, v.Channel, false)
	if err != nil {
		return err
	}
	if v.Amount.Cmp(ch.Deposit) > 0 || p.redeemedAmount(v.Channel) == nil {
		// The payer may have topped the channel up since we last looked;
		// or the channel comes from the store, and nothing says yet what
		// was redeemed on it while this instance was down.
		if ch, err = p.channelFacts(ctx, v.Channel, true); err != nil {
			return err
		}
	}
	if r := p.redeemedAmount(v.Channel); r != nil && v.Amount.Cmp(r) <= 0 {
		return fmt.Errorf("voucher amount %v, already redeemed on-chain %v: %w", v.Amount, r, ErrNotAboveBest)
	}
	err = voucherErr(voucher.Check(voucher.Voucher(v), p.domain, ch, p.account, p.bestAmount(v.Channel), p.now(), p.cfg.ExpiryMargin))
	if errors.Is(err, ErrExpired) {
		// A top-up may have moved the expiry since we cached it.
		if ch, err = p.channelFacts(ctx, v.Channel, true); err != nil {
			return err
		}
		err = voucherErr(voucher.Check(voucher.Voucher(v), p.domain, ch, p.account, p.bestAmount(v.Channel), p.now(), p.cfg.ExpiryMargin))
	}
	if err != nil {
		return err
	}

	// One Accept at a time per channel decides and writes, so the stored
	// best only ever rises; other channels' Accepts go on in parallel and
	// their synced writes share fsyncs in Pebble's commit pipeline.
	lock := p.channelLock(v.Channel)
	lock.Lock()
	defer lock.Unlock()
	p.mu.Lock()
	prev := p.best[v.Channel]
	redeemed := p.redeemed[v.Channel]
	p.mu.Unlock()
	floor, credited := new(big.Int), new(big.Int)
	if redeemed != nil {
		floor.Set(redeemed)
	}
	if prev != nil {
		if prev.v.Amount.Cmp(floor) > 0 {
			floor.Set(prev.v.Amount)
		}
		credited.Set(prev.credited)
	}
	if v.Amount.Cmp(floor) <= 0 {
		return fmt.Errorf("voucher amount %v, already hold or redeemed %v: %w", v.Amount, floor, ErrNotAboveBest)
	}
	gain := new(big.Int).Sub(v.Amount, floor)
	h := &heldVoucher{v: v, ch: ch, credited: credited.Add(credited, gain)}
	rec, err := h.encode()
	if err != nil {
		return err
	}
	if err := p.space.Set(bestKey(v.Channel), rec, true); err != nil {
		return err
	}
	p.mu.Lock()
	p.best[v.Channel] = h
	sum := p.paidBy[ch.Payer]
	if sum == nil {
		sum = new(big.Int)
		p.paidBy[ch.Payer] = sum
	}
	sum.Add(sum, gain)
	p.mu.Unlock()
	p.startPayeeLoop()
	return nil
}

// channelLock is the mutex that orders Accepts on one channel.
func (p *Payments) channelLock(id common.Hash) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.chanLocks[id]
	if l == nil {
		l = new(sync.Mutex)
		p.chanLocks[id] = l
	}
	return l
}

// redeemedAmount is the amount known to be redeemed on-chain on channel,
// or nil when not known yet.
func (p *Payments) redeemedAmount(channel common.Hash) *big.Int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.redeemed[channel]
}

// noteRedeemed raises the known on-chain redeemed amount of channel.
func (p *Payments) noteRedeemed(channel common.Hash, amount *big.Int) {
	if amount == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.redeemed[channel]; r == nil || amount.Cmp(r) > 0 {
		p.redeemed[channel] = new(big.Int).Set(amount)
	}
}

// Best returns the best voucher held on channel as its payee.
func (p *Payments) Best(channel common.Hash) (Voucher, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, ok := p.best[channel]
	if !ok {
		return Voucher{}, false
	}
	return h.v, true
}

// PaidBy is what payer has paid this account through the vouchers it
// accepted, across the payer's channels to it: on each channel, what the
// accepted vouchers added above the amount already redeemed on-chain when
// they arrived. A voucher that a previous instance with the same key (or
// an instance that lost its directory) already redeemed counts nothing.
func (p *Payments) PaidBy(payer common.Address) *big.Int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.paidBy[payer]; s != nil {
		return new(big.Int).Set(s)
	}
	return new(big.Int)
}

func (p *Payments) bestAmount(channel common.Hash) *big.Int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h, ok := p.best[channel]; ok {
		return h.v.Amount
	}
	return nil
}

// Redeem cashes the best voucher held on channel and returns the
// transaction hash once mined. The contract pays only the increase over
// what was redeemed before; with nothing new it fails with
// ErrNothingToRedeem and sends nothing.
func (p *Payments) Redeem(ctx context.Context, channel common.Hash) (common.Hash, error) {
	p.mu.Lock()
	h, ok := p.best[channel]
	p.mu.Unlock()
	if !ok {
		return common.Hash{}, fmt.Errorf("payment: redeem %s: no voucher held: %w", channel, ErrNothingToRedeem)
	}
	ch, err := p.channelState(ctx, channel)
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: redeem %s: %w", channel, err)
	}
	p.noteRedeemed(channel, ch.Redeemed)
	if h.v.Amount.Cmp(ch.Redeemed) <= 0 {
		return common.Hash{}, fmt.Errorf("payment: redeem %s: best %v, redeemed %v: %w", channel, h.v.Amount, ch.Redeemed, ErrNothingToRedeem)
	}
	tx, err := p.redeemVoucher(ctx, h.v)
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: redeem %s: %w", channel, err)
	}
	p.noteRedeemed(channel, h.v.Amount)
	p.stats.redeemed.Add(1)
	return tx, nil
}

// redeemVoucher sends v to the contract as is, with no off-chain check.
func (p *Payments) redeemVoucher(ctx context.Context, v Voucher) (common.Hash, error) {
	r, err := p.send(ctx, p.channels, channelsABI.PackRedeem(v.Channel, v.Amount, v.Signature))
	if err != nil {
		return common.Hash{}, err
	}
	return r.TxHash, nil
}

// ChannelState is a channel as the contract holds it.
type ChannelState struct {
	ID       common.Hash
	Payer    common.Address
	Payee    common.Address
	Deposit  *big.Int
	Redeemed *big.Int
	// Expiry is ExpiryUnix as a time, saturated at a date billions of
	// years away for the largest values (2^64-1 is "never").
	Expiry time.Time
	// ExpiryUnix is the expiry exactly as the contract holds it, in Unix
	// seconds.
	ExpiryUnix uint64
}

// ChannelState reads channel from the contract; an unknown channel is
// ErrUnknownChannel.
func (p *Payments) ChannelState(ctx context.Context, channel common.Hash) (ChannelState, error) {
	s, err := p.channelState(ctx, channel)
	if err != nil {
		return ChannelState{}, fmt.Errorf("payment: channel state: %w", err)
	}
	return s, nil
}

func (p *Payments) channelState(ctx context.Context, id common.Hash) (ChannelState, error) {
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return ChannelState{}, err
	}
	defer cancel()
	out, err := bind.Call(p.channels, &bind.CallOpts{Context: ctx}, channelsABI.PackChannels(id), channelsABI.UnpackChannels)
	if err != nil {
		return ChannelState{}, p.chainErr(err)
	}
	if out.Payer == (common.Address{}) {
		return ChannelState{}, fmt.Errorf("channel %s: %w", id, ErrUnknownChannel)
	}
	return ChannelState{
		ID: id, Payer: out.Payer, Payee: out.Payee, Deposit: out.Deposit, Redeemed: out.Redeemed,
		Expiry: unixTime(out.Expiry), ExpiryUnix: out.Expiry,
	}, nil
}

// channelFacts returns what Accept needs to know about a channel, from
// the cache unless refresh or unknown. A read from the chain also updates
// the known redeemed amount.
func (p *Payments) channelFacts(ctx context.Context, id common.Hash, refresh bool) (voucher.Channel, error) {
	if !refresh {
		p.mu.Lock()
		ch, ok := p.known[id]
		p.mu.Unlock()
		if ok {
			return ch, nil
		}
	}
	s, err := p.channelState(ctx, id)
	if err != nil {
		return voucher.Channel{}, err
	}
	ch := voucher.Channel{ID: id, Payer: s.Payer, Payee: s.Payee, Deposit: s.Deposit, Expiry: s.Expiry}
	p.mu.Lock()
	p.known[id] = ch
	p.mu.Unlock()
	p.noteRedeemed(id, s.Redeemed)
	if ch.Payee == p.account {
		// From now on, keep the redeemed amount current from the events.
		p.startPayeeLoop()
	}
	return ch, nil
}

// Best-voucher record: voucher(Size) payer(20) payee(20) deposit(32)
// expiry(8) credited(32). Records written before credited existed end
// after the expiry; their voucher counted in full.
const (
	heldRecordSizeV1 = voucher.Size + 20 + 20 + 32 + 8
	heldRecordSize   = heldRecordSizeV1 + 32
)

func bestKey(id common.Hash) []byte { return append([]byte("best/"), id[:]...) }

func (h *heldVoucher) encode() ([]byte, error) {
	b, err := h.v.AppendBinary(make([]byte, 0, heldRecordSize))
	if err != nil {
		return nil, err
	}
	b = append(b, h.ch.Payer[:]...)
	b = append(b, h.ch.Payee[:]...)
	var dep [32]byte
	h.ch.Deposit.FillBytes(dep[:])
	b = append(b, dep[:]...)
	b = binary.BigEndian.AppendUint64(b, unixSeconds(h.ch.Expiry))
	var credited [32]byte
	h.credited.FillBytes(credited[:])
	return append(b, credited[:]...), nil
}

func decodeHeld(id common.Hash, b []byte) (*heldVoucher, error) {
	if len(b) != heldRecordSize && len(b) != heldRecordSizeV1 {
		return nil, fmt.Errorf("voucher record %s: %d bytes", id, len(b))
	}
	v, err := ParseVoucher(b[:voucher.Size])
	if err != nil {
		return nil, fmt.Errorf("voucher record %s: %w", id, err)
	}
	if v.Channel != id {
		return nil, fmt.Errorf("voucher record %s holds channel %s", id, v.Channel)
	}
	r := b[voucher.Size:]
	credited := new(big.Int).Set(v.Amount)
	if len(b) == heldRecordSize {
		credited.SetBytes(r[80:112])
	}
	return &heldVoucher{v: v, credited: credited, ch: voucher.Channel{
		ID:      id,
		Payer:   common.BytesToAddress(r[0:20]),
		Payee:   common.BytesToAddress(r[20:40]),
		Deposit: new(big.Int).SetBytes(r[40:72]),
		Expiry:  unixTime(binary.BigEndian.Uint64(r[72:80])),
	}}, nil
}

// restore loads the persisted payer channels and best vouchers of this
// chain and contract.
func (p *Payments) restore() error {
	for _, prefix := range []string{"best/", "chan/"} {
		it, err := p.space.PrefixIter([]byte(prefix))
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			k := p.space.Strip(it.Key())
			if len(k) != len(prefix)+common.HashLength {
				continue
			}
			id := common.BytesToHash(k[len(prefix):])
			val := bytes.Clone(it.Value())
			if prefix == "best/" {
				h, err := decodeHeld(id, val)
				if err != nil {
					it.Close()
					return err
				}
				if h.v.ChainID.Cmp(p.chainID) != 0 || h.v.Contract != p.cfg.Channels {
					continue // a voucher from another chain this instance once used
				}
				p.best[id] = h
				p.known[id] = h.ch
				sum := p.paidBy[h.ch.Payer]
				if sum == nil {
					sum = new(big.Int)
					p.paidBy[h.ch.Payer] = sum
				}
				sum.Add(sum, h.credited)
			} else {
				c, err := p.decodePayerRecord(id, val)
				if err != nil {
					it.Close()
					return err
				}
				if c.last != nil && (c.last.ChainID.Cmp(p.chainID) != 0 || c.last.Contract != p.cfg.Channels) {
					continue
				}
				p.payerChan[id] = c
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}
