package payment

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/voucher"
)

// Payments is one instance's wallet on one chain: its token balance and
// transfers, the channels it pays through, the vouchers it holds as a
// payee, and the metering protocol. It is safe for concurrent use.
type Payments struct {
	cfg     Config
	log     *slog.Logger
	key     *ecdsa.PrivateKey
	account common.Address
	be      chainBackend
	rpc     *ethclient.Client // nil with an in-process DevChain
	// transport carries JSON-RPC over HTTP; nil with a DevChain.
	transport *http.Transport
	chainID   *big.Int
	domain    voucher.Domain

	token    *bind.BoundContract
	channels *bind.BoundContract
	escrow   *bind.BoundContract // nil without an escrow contract

	space  *kv.Space
	ownDB  *kv.DB // the private in-memory DB when Config.Space is nil
	meters *meterService

	// txMu orders nonce assignment: one transaction signed and sent at a
	// time from this account.
	txMu sync.Mutex

	mu        sync.Mutex
	best      map[common.Hash]*heldVoucher    // payee: best voucher per channel
	known     map[common.Hash]voucher.Channel // payee: channel facts read from the chain
	redeemed  map[common.Hash]*big.Int        // payee: amount redeemed on-chain, as last seen
	chanLocks map[common.Hash]*sync.Mutex     // payee: orders Accepts per channel
	paidBy    map[common.Address]*big.Int     // payee: value credited per payer (see PaidBy)
	loopOn    bool                            // payee: the payee loop (redeemer.go) runs
	payerChan map[common.Hash]*Channel        // payer: our channels
	owed      map[common.Address]*big.Int     // payee: metered charges per payer
	autoLimit map[common.Address]*big.Int     // payer: per-payee auto-pay limits

	stats      counters
	base       context.Context // ends on Close
	cancelBase context.CancelFunc
	closing    chan struct{}
	closed     atomic.Bool
	wg         sync.WaitGroup
}

// heldVoucher is a payee's best voucher on a channel with the channel's
// facts, as persisted, and the value credited to the payer for the
// channel: what the accepted vouchers added above the on-chain redeemed
// amount when each arrived.
type heldVoucher struct {
	v        Voucher
	ch       voucher.Channel
	credited *big.Int
}

type counters struct {
	accepted, rejected, redeemed, transfers  atomic.Uint64
	meterRequests, meterRefused, badRequests atomic.Uint64
	autoRedeemed, autoRedeemFailed, missed   atomic.Uint64
}

// Stats counts what a Payments did since Open.
type Stats struct {
	VouchersAccepted uint64 // Accept calls that raised a channel's best voucher
	VouchersRejected uint64 // Accept calls refused (bad, replayed, expired...)
	Redeemed         uint64 // successful Redeem transactions
	Transfers        uint64 // successful Transfer transactions
	MeterRequests    uint64 // payment requests answered as a payer
	MeterRefused     uint64 // payment requests refused as a payer
	BadRequests      uint64 // malformed metering messages received
	AutoRedeemed     uint64 // redemptions the payee loop sent before an expiry (also in Redeemed)
	AutoRedeemFailed uint64 // failed attempts of the payee loop to redeem (retried)
	RedeemMissed     uint64 // channels that expired holding a voucher above what was redeemed
}

// Stats returns the counters.
func (p *Payments) Stats() Stats {
	return Stats{
		VouchersAccepted: p.stats.accepted.Load(),
		VouchersRejected: p.stats.rejected.Load(),
		Redeemed:         p.stats.redeemed.Load(),
		Transfers:        p.stats.transfers.Load(),
		MeterRequests:    p.stats.meterRequests.Load(),
		MeterRefused:     p.stats.meterRefused.Load(),
		BadRequests:      p.stats.badRequests.Load(),
		AutoRedeemed:     p.stats.autoRedeemed.Load(),
		AutoRedeemFailed: p.stats.autoRedeemFailed.Load(),
		RedeemMissed:     p.stats.missed.Load(),
	}
}

// Open connects to the chain cfg names and restores the persisted
// channels and vouchers. With neither RPCURL nor Dev it returns
// ErrNoChain.
func Open(ctx context.Context, cfg Config) (_ *Payments, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.ensureDefaults()
	p := &Payments{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "payment"),
		key:       cfg.Key,
		best:      make(map[common.Hash]*heldVoucher),
		known:     make(map[common.Hash]voucher.Channel),
		redeemed:  make(map[common.Hash]*big.Int),
		chanLocks: make(map[common.Hash]*sync.Mutex),
		paidBy:    make(map[common.Address]*big.Int),
		payerChan: make(map[common.Hash]*Channel),
		owed:      make(map[common.Address]*big.Int),
		autoLimit: make(map[common.Address]*big.Int),
		closing:   make(chan struct{}),
	}
	p.base, p.cancelBase = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			p.release()
		}
	}()
	if p.key == nil {
		if p.key, err = crypto.GenerateKey(); err != nil {
			return nil, fmt.Errorf("payment: open: %w", err)
		}
	}
	p.account = crypto.PubkeyToAddress(p.key.PublicKey)

	if cfg.RPCURL != "" {
		if err := p.dial(ctx); err != nil {
			return nil, fmt.Errorf("payment: open: %w", err)
		}
	} else {
		p.be = cfg.Dev.backend()
		if p.cfg.Token == (common.Address{}) {
			p.cfg.Token = cfg.Dev.Token()
		}
		if p.cfg.Channels == (common.Address{}) {
			p.cfg.Channels = cfg.Dev.Channels()
		}
		if p.cfg.Escrow == (common.Address{}) {
			p.cfg.Escrow = cfg.Dev.Escrow()
		}
		cfg.Dev.markLocal(p.account)
		if p.chainID, err = p.be.ChainID(ctx); err != nil {
			return nil, fmt.Errorf("payment: open: chain id: %w", p.chainErr(err))
		}
	}
	for name, addr := range map[string]common.Address{"token": p.cfg.Token, "channels": p.cfg.Channels} {
		code, err := p.be.CodeAt(ctx, addr, nil)
		if err != nil {
			return nil, fmt.Errorf("payment: open: %s contract %s: %w", name, addr, p.chainErr(err))
		}
		if len(code) == 0 {
			return nil, fmt.Errorf("payment: open: no %s contract at %s on chain %v: %w", name, addr, p.chainID, ErrNoContracts)
		}
	}
	p.domain = voucher.NewDomain(p.chainID, p.cfg.Channels)
	p.token = tokenABI.Instance(p.be, p.cfg.Token)
	p.channels = channelsABI.Instance(p.be, p.cfg.Channels)
	if p.cfg.Escrow != (common.Address{}) {
		code, err := p.be.CodeAt(ctx, p.cfg.Escrow, nil)
		if err != nil {
			return nil, fmt.Errorf("payment: open: escrow contract %s: %w", p.cfg.Escrow, p.chainErr(err))
		}
		if len(code) == 0 {
			return nil, fmt.Errorf("payment: open: no escrow contract at %s on chain %v: %w", p.cfg.Escrow, p.chainID, ErrNoContracts)
		}
		p.escrow = escrowABI.Instance(p.be, p.cfg.Escrow)
	}

	p.space, _ = cfg.Space.(*kv.Space) // validate refused any other
	if p.space == nil {
		if p.ownDB, err = kv.Open(cfg.Dir, nil); err != nil {
			return nil, fmt.Errorf("payment: open: %w", err)
		}
		if p.space, err = p.ownDB.Space("payment"); err != nil {
			return nil, fmt.Errorf("payment: open: %w", err)
		}
	}
	if err := p.restore(); err != nil {
		return nil, fmt.Errorf("payment: open: %w", err)
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(p.Collector()); err != nil {
			return nil, fmt.Errorf("payment: open: register metrics: %w", err)
		}
	}
	if cfg.Host != nil {
		p.meters = newMeterService(p)
	}
	if len(p.best) > 0 {
		p.startPayeeLoop()
	}
	return p, nil
}

// dial connects to Config.RPCURL, reads the chain ID and, where the
// contract addresses are not configured, asks the endpoint for them
// (dpaas_info, which a served DevChain answers). An endpoint that does
// not answer is ErrChainUnreachable, not a missing contract.
func (p *Payments) dial(ctx context.Context) error {
	url := p.cfg.RPCURL
	// A transport of its own, so Close can drop its idle keep-alive
	// connections instead of leaving them (and their goroutines) to the
	// process.
	p.transport = http.DefaultTransport.(*http.Transport).Clone()
	rc, err := rpc.DialOptions(ctx, url, rpc.WithHTTPClient(&http.Client{Transport: p.transport}))
	if err != nil {
		return fmt.Errorf("cannot reach chain at %s: %v: %w", url, err, ErrChainUnreachable)
	}
	p.rpc = ethclient.NewClient(rc)
	p.be = p.rpc
	if p.chainID, err = p.be.ChainID(ctx); err != nil {
		if !answered(err) {
			return fmt.Errorf("cannot reach chain at %s: %v: %w", url, err, ErrChainUnreachable)
		}
		return fmt.Errorf("chain id from %s: %w", url, err)
	}
	if p.cfg.Token != (common.Address{}) && p.cfg.Channels != (common.Address{}) {
		return nil
	}
	info, err := devInfo(ctx, rc, url)
	if errors.Is(err, ErrNotDevChain) {
		return fmt.Errorf("%w (%v)", ErrNoContracts, err)
	}
	if err != nil {
		return err
	}
	if info.ChainID.Cmp(p.chainID) != 0 {
		return fmt.Errorf("%s: dpaas_info says chain %v, eth_chainId %v: %w", url, info.ChainID, p.chainID, ErrNotDevChain)
	}
	if p.cfg.Token == (common.Address{}) {
		p.cfg.Token = info.Token
	}
	if p.cfg.Channels == (common.Address{}) {
		p.cfg.Channels = info.Channels
	}
	if p.cfg.Escrow == (common.Address{}) {
		p.cfg.Escrow = info.Escrow
	}
	return nil
}

// Account is the instance's Ethereum address.
func (p *Payments) Account() common.Address { return p.account }

// ChainID is the chain's ID.
func (p *Payments) ChainID() *big.Int { return new(big.Int).Set(p.chainID) }

// Token is the ERC-20 contract's address.
func (p *Payments) Token() common.Address { return p.cfg.Token }

// ChannelsContract is the payment-channel contract's address.
func (p *Payments) ChannelsContract() common.Address { return p.cfg.Channels }

// Balance is who's token balance (smallest unit) at the latest block.
func (p *Payments) Balance(ctx context.Context, who common.Address) (*big.Int, error) {
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return nil, fmt.Errorf("payment: balance: %w", err)
	}
	defer cancel()
	b, err := bind.Call(p.token, &bind.CallOpts{Context: ctx}, tokenABI.PackBalanceOf(who), tokenABI.UnpackBalanceOf)
	if err != nil {
		return nil, fmt.Errorf("payment: balance of %s: %w", who, p.chainErr(err))
	}
	return b, nil
}

// GasBalance is who's ether balance in wei, which pays for transactions.
func (p *Payments) GasBalance(ctx context.Context, who common.Address) (*big.Int, error) {
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return nil, fmt.Errorf("payment: gas balance: %w", err)
	}
	defer cancel()
	b, err := p.be.BalanceAt(ctx, who, nil)
	if err != nil {
		return nil, fmt.Errorf("payment: gas balance of %s: %w", who, p.chainErr(err))
	}
	return b, nil
}

// Transfer sends amount tokens to to and returns the transaction hash once
// it is mined with Config.Confirmations. Beyond the balance it fails with
// ErrInsufficientFunds and sends nothing; without ether for the gas, with
// ErrNoGas. On a private DevChain (in process, not served), the first
// transfer to an account no Payments of this process uses logs a warning:
// no other process can see that chain.
func (p *Payments) Transfer(ctx context.Context, to common.Address, amount *big.Int) (common.Hash, error) {
	if amount == nil || amount.Sign() <= 0 {
		return common.Hash{}, fmt.Errorf("payment: transfer %v: %w", amount, ErrBadAmount)
	}
	if p.cfg.RPCURL == "" {
		p.cfg.Dev.warnUnseen(p.log, to)
	}
	r, err := p.send(ctx, p.token, tokenABI.PackTransfer(to, amount))
	if err != nil {
		return common.Hash{}, fmt.Errorf("payment: transfer %v to %s: %w", amount, to, err)
	}
	p.stats.transfers.Add(1)
	return r.TxHash, nil
}

// Transfer is a token transfer seen on the chain.
type Transfer struct {
	From, To common.Address
	Amount   *big.Int
	Tx       common.Hash
	Block    uint64
}

// WatchTransfers reports token transfers to this account mined from now
// on, polling every Config.PollInterval. The channel closes when ctx ends
// or Payments closes.
func (p *Payments) WatchTransfers(ctx context.Context) (<-chan Transfer, error) {
	from, err := p.be.BlockNumber(ctx)
	if err != nil {
		return nil, fmt.Errorf("payment: watch transfers: %w", p.chainErr(err))
	}
	out := make(chan Transfer, 16)
	topic := tokenABI.GetABI().Events["Transfer"].ID
	if err := p.track(); err != nil {
		return nil, fmt.Errorf("payment: watch transfers: %w", err)
	}
	go func() {
		defer p.wg.Done()
		defer close(out)
		next := from + 1
		t := time.NewTicker(p.cfg.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.closing:
				return
			case <-t.C:
			}
			head, err := p.be.BlockNumber(ctx)
			if err != nil || head < next {
				continue
			}
			logs, err := p.be.FilterLogs(ctx, ethereum.FilterQuery{
				FromBlock: new(big.Int).SetUint64(next), ToBlock: new(big.Int).SetUint64(head),
				Addresses: []common.Address{p.cfg.Token},
				Topics:    [][]common.Hash{{topic}, nil, {common.BytesToHash(p.account[:])}},
			})
			if err != nil {
				p.log.Debug("watch transfers: filter logs", "err", err)
				continue
			}
			for i := range logs {
				ev, err := tokenABI.UnpackTransferEvent(&logs[i])
				if err != nil {
					continue
				}
				select {
				case out <- Transfer{From: ev.From, To: ev.To, Amount: ev.Value, Tx: logs[i].TxHash, Block: logs[i].BlockNumber}:
				case <-ctx.Done():
					return
				case <-p.closing:
					return
				}
			}
			next = head + 1
		}
	}()
	return out, nil
}

// send signs and sends a call of contract with data, then waits for it to
// be mined with the configured confirmations. A refusal by the contract
// comes back wrapping the matching sentinel.
func (p *Payments) send(ctx context.Context, contract *bind.BoundContract, data []byte) (*types.Receipt, error) {
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	opts := bind.NewKeyedTransactor(p.key, p.chainID)
	opts.Context = ctx
	p.txMu.Lock()
	tx, err := bind.Transact(contract, opts, data)
	p.txMu.Unlock()
	if err != nil {
		return nil, p.chainErr(p.sendError(ctx, contract.Address(), data, err))
	}
	r, err := waitReceipt(ctx, p.be, tx.Hash(), p.cfg.PollInterval, p.closing)
	if err != nil {
		return r, p.chainErr(err)
	}
	if err := p.confirm(ctx, r.BlockNumber.Uint64()); err != nil {
		return r, p.chainErr(err)
	}
	return r, nil
}

// sendError explains why a transaction could not be sent: a refusal by a
// contract wraps its sentinel; a lack of ether for gas (which go-ethereum
// reports as "insufficient funds for transfer", "insufficient funds for
// gas * price + value" or "gas required exceeds allowance") wraps ErrNoGas
// and names the account, its balance and about what the call needs.
func (p *Payments) sendError(ctx context.Context, to common.Address, data []byte, err error) error {
	if mapped := revertError(err); mapped != err {
		return mapped // a contract's refusal, named by its sentinel
	}
	msg := err.Error()
	if !strings.Contains(msg, "insufficient funds") && !strings.Contains(msg, "gas required exceeds allowance") {
		return err
	}
	have, berr := p.be.BalanceAt(ctx, p.account, nil)
	if berr != nil {
		return err
	}
	// Estimated without a gas price, the call is checked as if gas were
	// free: it succeeds unless the contract itself refuses.
	gas, eerr := p.be.EstimateGas(ctx, ethereum.CallMsg{From: p.account, To: &to, Data: data})
	if eerr != nil {
		return fmt.Errorf("%s holds %v wei for gas (%v): %w; and the call fails anyway: %w",
			p.account, have, err, ErrNoGas, revertError(eerr))
	}
	need := p.gasCost(ctx, gas)
	if need == nil {
		return fmt.Errorf("%s holds %v wei for gas, needs %d gas (%v): %w", p.account, have, gas, err, ErrNoGas)
	}
	return fmt.Errorf("%s holds %v wei for gas, needs about %v wei (%d gas): %w", p.account, have, need, gas, ErrNoGas)
}

// gasCost is what gas costs at most at the current fees, as bind prices a
// transaction (tip plus twice the base fee), or nil if unknown.
func (p *Payments) gasCost(ctx context.Context, gas uint64) *big.Int {
	tip, err := p.be.SuggestGasTipCap(ctx)
	if err != nil {
		return nil
	}
	head, err := p.be.HeaderByNumber(ctx, nil)
	if err != nil || head.BaseFee == nil {
		return nil
	}
	price := new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))
	return price.Mul(price, new(big.Int).SetUint64(gas))
}

// confirm waits until block has Config.Confirmations blocks on top of it,
// counting itself. On a DevChain, which only mines on demand, it mines
// the missing empty blocks.
func (p *Payments) confirm(ctx context.Context, block uint64) error {
	want := block + p.cfg.Confirmations - 1
	for {
		head, err := p.be.BlockNumber(ctx)
		if err != nil {
			return fmt.Errorf("confirm: %w", err)
		}
		if head >= want {
			return nil
		}
		if p.cfg.RPCURL == "" {
			p.cfg.Dev.mine()
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("confirm: %w", ctx.Err())
		case <-p.closing:
			return fmt.Errorf("confirm: %w", ErrClosed)
		case <-time.After(p.cfg.PollInterval):
		}
	}
}

// chainErr marks errors caused by a closed Payments or DevChain.
func (p *Payments) chainErr(err error) error {
	if err == nil || errors.Is(err, ErrClosed) {
		return err
	}
	if p.closed.Load() || (p.cfg.RPCURL == "" && p.cfg.Dev.isClosed()) {
		return fmt.Errorf("%w (%v)", ErrClosed, err)
	}
	return err
}

// opCtx derives a context that also ends when Payments closes.
func (p *Payments) opCtx(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if p.closed.Load() {
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.base, cancel)
	return ctx, func() { stop(); cancel() }, nil
}

// track counts one more goroutine that Close must wait for, unless
// Payments is closed already.
func (p *Payments) track() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return ErrClosed
	}
	p.wg.Add(1)
	return nil
}

// now is the clock for expiries.
func (p *Payments) now() time.Time { return p.cfg.Now() }

// Close stops metering and watches and waits for their goroutines. It
// does not close a shared DevChain or the database of Config.Space. Calling it
// again returns ErrClosed.
func (p *Payments) Close() error {
	p.mu.Lock()
	already := p.closed.Swap(true)
	p.mu.Unlock()
	if already {
		return fmt.Errorf("payment: close: %w", ErrClosed)
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.Unregister(p.Collector())
	}
	close(p.closing)
	p.cancelBase()
	if p.meters != nil {
		p.meters.close()
	}
	p.wg.Wait()
	return p.release()
}

func (p *Payments) release() error {
	p.cancelBase()
	var errs []error
	if p.rpc != nil {
		p.rpc.Close()
		p.rpc = nil
	}
	if p.transport != nil {
		p.transport.CloseIdleConnections()
		p.transport = nil
	}
	if p.ownDB != nil {
		errs = append(errs, p.ownDB.Close())
		p.ownDB = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("payment: close: %w", err)
	}
	return nil
}
