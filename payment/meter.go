package payment

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dpaas/dpaas/internal/meter"
)

// MeterConfig prices a metered service.
type MeterConfig struct {
	// Price is what one unit costs, in the token's smallest unit. Required.
	Price *big.Int
	// Every is how many units may go unpaid before the meter asks the
	// payer's node for a voucher. 0 means 100.
	Every uint64
	// CreditLimit is the most a payer may owe unpaid; a Charge that would
	// go beyond it is refused. Nil means twice the price of Every units.
	CreditLimit *big.Int
}

// Meter charges peers for units of service at a price. The provider calls
// Charge as it serves; every Every unpaid units the meter asks the
// payer's node, over the metering protocol, to pay up to what it owes; the
// payer's node answers with a voucher on one of its channels to the
// provider, automatically, up to the limit its owner set
// (Config.AutoPayLimit, SetAutoPayLimit). A payer that owes more than
// CreditLimit is refused service. What a payer owes is shared by all
// meters of one Payments, as are the vouchers that pay for it.
type Meter struct {
	p     *Payments
	price *big.Int
	every uint64
	limit *big.Int

	mu      sync.Mutex
	unasked map[peer.ID]uint64
}

// NewMeter returns a meter; it needs Config.Host.
func (p *Payments) NewMeter(cfg MeterConfig) (*Meter, error) {
	if p.meters == nil {
		return nil, fmt.Errorf("payment: new meter: %w", ErrNoMetering)
	}
	if cfg.Price == nil || cfg.Price.Sign() <= 0 {
		return nil, fmt.Errorf("payment: new meter: price %v: %w", cfg.Price, ErrBadAmount)
	}
	if cfg.Every == 0 {
		cfg.Every = 100
	}
	limit := cfg.CreditLimit
	if limit == nil {
		limit = new(big.Int).Mul(cfg.Price, new(big.Int).SetUint64(2*cfg.Every))
	} else if limit.Sign() < 0 {
		return nil, fmt.Errorf("payment: new meter: credit limit %v: %w", limit, ErrBadAmount)
	}
	return &Meter{
		p:       p,
		price:   new(big.Int).Set(cfg.Price),
		every:   cfg.Every,
		limit:   new(big.Int).Set(limit),
		unasked: make(map[peer.ID]uint64),
	}, nil
}

// Charge records units served to payer. If payer would then owe more than
// the credit limit unpaid, nothing is recorded and the error wraps
// ErrCreditExceeded: stop serving. Asking for payment happens in the
// background and never blocks Charge.
func (m *Meter) Charge(payer peer.ID, units uint64) error {
	if m.p.closed.Load() {
		return fmt.Errorf("payment: charge: %w", ErrClosed)
	}
	addr, err := PeerAccount(payer)
	if err != nil {
		return fmt.Errorf("payment: charge: %w", err)
	}
	cost := new(big.Int).Mul(m.price, new(big.Int).SetUint64(units))
	p := m.p
	p.mu.Lock()
	owed := p.owedLocked(addr)
	unpaid := new(big.Int).Sub(owed, p.paidByLocked(addr))
	if new(big.Int).Add(unpaid, cost).Cmp(m.limit) > 0 {
		p.mu.Unlock()
		p.meters.askAsync(payer, addr)
		return fmt.Errorf("payment: charge %s: owes %v unpaid, %v more exceeds credit limit %v: %w", addr, unpaid, cost, m.limit, ErrCreditExceeded)
	}
	owed.Add(owed, cost)
	p.mu.Unlock()

	m.mu.Lock()
	m.unasked[payer] += units
	ask := m.unasked[payer] >= m.every
	if ask {
		m.unasked[payer] = 0
	}
	m.mu.Unlock()
	if ask {
		p.meters.askAsync(payer, addr)
	}
	return nil
}

// Settle asks payer's node now for everything it owes and returns once
// the answer is in: nil if the payer is then paid up.
func (m *Meter) Settle(ctx context.Context, payer peer.ID) error {
	addr, err := PeerAccount(payer)
	if err != nil {
		return fmt.Errorf("payment: settle: %w", err)
	}
	m.mu.Lock()
	m.unasked[payer] = 0
	m.mu.Unlock()
	if err := m.p.meters.ask(ctx, payer, addr); err != nil {
		return fmt.Errorf("payment: settle %s: %w", addr, err)
	}
	if u := m.p.Unpaid(addr); u.Sign() > 0 {
		return fmt.Errorf("payment: settle %s: still owes %v: %w", addr, u, ErrCreditExceeded)
	}
	return nil
}

// Charged is what payer was charged in total, through any meter, since
// Open; a payer first seen after a restart starts from what its vouchers
// already pay.
func (p *Payments) Charged(payer common.Address) *big.Int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return new(big.Int).Set(p.owedLocked(payer))
}

// Unpaid is what payer was charged beyond what its vouchers pay.
func (p *Payments) Unpaid(payer common.Address) *big.Int {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := new(big.Int).Sub(p.owedLocked(payer), p.paidByLocked(payer))
	if u.Sign() < 0 {
		u.SetInt64(0)
	}
	return u
}

func (p *Payments) owedLocked(payer common.Address) *big.Int {
	o := p.owed[payer]
	if o == nil {
		o = new(big.Int).Set(p.paidByLocked(payer))
		p.owed[payer] = o
	}
	return o
}

func (p *Payments) paidByLocked(payer common.Address) *big.Int {
	if s := p.paidBy[payer]; s != nil {
		return s
	}
	return new(big.Int)
}

// SetAutoPayLimit sets, for this instance as a payer, the most it pays
// payee in total when payee's meters ask (nil restores
// Config.AutoPayLimit).
func (p *Payments) SetAutoPayLimit(payee common.Address, limit *big.Int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if limit == nil {
		delete(p.autoLimit, payee)
		return
	}
	p.autoLimit[payee] = new(big.Int).Set(limit)
}

func (p *Payments) autoPayLimit(payee common.Address) *big.Int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.autoLimit[payee]; ok {
		return l
	}
	return p.cfg.AutoPayLimit
}

// PeerAccount is the Ethereum address of a peer whose libp2p identity is
// a secp256k1 key, as every dpaas instance's is.
func PeerAccount(id peer.ID) (common.Address, error) {
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return common.Address{}, fmt.Errorf("peer %s: %v: %w", id, err, ErrNotSecp256k1)
	}
	sk, ok := pk.(*p2pcrypto.Secp256k1PublicKey)
	if !ok {
		return common.Address{}, fmt.Errorf("peer %s: %w", id, ErrNotSecp256k1)
	}
	raw, err := sk.Raw()
	if err != nil {
		return common.Address{}, fmt.Errorf("peer %s: %v: %w", id, err, ErrNotSecp256k1)
	}
	pub, err := crypto.DecompressPubkey(raw)
	if err != nil {
		return common.Address{}, fmt.Errorf("peer %s: %v: %w", id, err, ErrNotSecp256k1)
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// meterService runs the metering protocol for one Payments: the client
// that asks payers and the server that answers payees.
type meterService struct {
	p      *Payments
	client *meter.Client
	server *meter.Server

	// payMu orders automatic payments so two requests never both pass the
	// limit check.
	payMu sync.Mutex

	mu       sync.Mutex
	closed   bool
	inflight map[peer.ID]bool // an ask goroutine runs for this payer
	again    map[peer.ID]bool // ...and must ask once more when done
}

func newMeterService(p *Payments) *meterService {
	s := &meterService{p: p, inflight: make(map[peer.ID]bool), again: make(map[peer.ID]bool)}
	id := meter.ProtocolID(p.cfg.AppID)
	s.client = meter.NewClient(p.cfg.Host, id)
	s.server = meter.Serve(p.cfg.Host, id, s.answer, func(from peer.ID, err error) {
		p.stats.badRequests.Add(1)
		p.log.Debug("metering: malformed request", "peer", from, "err", err)
	})
	return s
}

func (s *meterService) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.server.Close()
	s.client.Close()
}

// askAsync asks payer in the background, at most one ask per payer at a
// time; asks that arrive meanwhile fold into one more round.
func (s *meterService) askAsync(payer peer.ID, addr common.Address) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.inflight[payer] {
		s.again[payer] = true
		return
	}
	if s.p.track() != nil {
		return
	}
	s.inflight[payer] = true
	go func() {
		defer s.p.wg.Done()
		for {
			if err := s.ask(s.p.base, payer, addr); err != nil {
				s.p.log.Debug("metering: ask for payment", "payer", addr, "err", err)
			}
			s.mu.Lock()
			if !s.again[payer] || s.closed {
				delete(s.inflight, payer)
				delete(s.again, payer)
				s.mu.Unlock()
				return
			}
			s.again[payer] = false
			s.mu.Unlock()
		}
	}()
}

// ask requests payment of everything payer owes and accepts the voucher.
func (s *meterService) ask(ctx context.Context, payer peer.ID, addr common.Address) error {
	p := s.p
	p.mu.Lock()
	total := new(big.Int).Set(p.owedLocked(addr))
	paid := new(big.Int).Set(p.paidByLocked(addr))
	p.mu.Unlock()
	if total.Cmp(paid) <= 0 {
		return nil
	}
	resp, err := s.client.Ask(ctx, payer, meter.Request{Total: total})
	if err != nil {
		return err
	}
	if resp.Refusal != "" {
		return fmt.Errorf("%w: %q", ErrRefused, resp.Refusal)
	}
	v, err := ParseVoucher(resp.Voucher)
	if err != nil {
		p.stats.badRequests.Add(1)
		return err
	}
	if err := p.Accept(ctx, v); err != nil && !errors.Is(err, ErrNotAboveBest) {
		return err
	}
	return nil
}

// answer is the payer's side: pay payee (the asking peer) up to the
// requested total, within the automatic payment limit.
func (s *meterService) answer(ctx context.Context, from peer.ID, req meter.Request) meter.Response {
	p := s.p
	p.stats.meterRequests.Add(1)
	v, err := s.pay(from, req.Total)
	if err != nil {
		p.stats.meterRefused.Add(1)
		p.log.Debug("metering: refused to pay", "peer", from, "total", req.Total, "err", err)
		return meter.Response{Refusal: err.Error()}
	}
	b, err := v.MarshalBinary()
	if err != nil {
		p.stats.meterRefused.Add(1)
		return meter.Response{Refusal: err.Error()}
	}
	return meter.Response{Voucher: b}
}

func (s *meterService) pay(from peer.ID, total *big.Int) (Voucher, error) {
	p := s.p
	payee, err := PeerAccount(from)
	if err != nil {
		return Voucher{}, err
	}
	s.payMu.Lock()
	defer s.payMu.Unlock()
	var chans []*Channel
	paid := new(big.Int)
	for _, c := range p.Channels() {
		if c.Payee() == payee {
			chans = append(chans, c)
			paid.Add(paid, c.Paid())
		}
	}
	if len(chans) == 0 {
		return Voucher{}, fmt.Errorf("no channel to %s", payee)
	}
	// Latest expiry first: pay through the channel that lives longest.
	sort.Slice(chans, func(i, j int) bool { return chans[i].Expiry().After(chans[j].Expiry()) })
	if total.Cmp(paid) <= 0 {
		// Already paid: the asker lost our last voucher; send it again.
		for _, c := range chans {
			if v, ok := c.Latest(); ok {
				return v, nil
			}
		}
		return Voucher{}, fmt.Errorf("nothing owed to %s", payee)
	}
	limit := p.autoPayLimit(payee)
	if limit == nil || total.Cmp(limit) > 0 {
		return Voucher{}, fmt.Errorf("asked %v in total, limit %v: %w", total, limit, ErrAutoPayLimit)
	}
	inc := new(big.Int).Sub(total, paid)
	now := p.now()
	for _, c := range chans {
		room := new(big.Int).Sub(c.Deposit(), c.Paid())
		if room.Cmp(inc) < 0 || !now.Add(p.cfg.ExpiryMargin).Before(c.Expiry()) {
			continue
		}
		return c.Pay(inc)
	}
	return Voucher{}, fmt.Errorf("no channel to %s with %v left before expiry: %w", payee, inc, ErrAboveDeposit)
}
