package governance

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpaas/dpaas/internal/govern"
	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/internal/group"
	"github.com/dpaas/dpaas/store"
)

// Errors. Each is wrapped with what went wrong.
var (
	ErrInvalidConfig = errors.New("governance: invalid config")
	ErrClosed        = errors.New("governance: closed")
	ErrInvalid       = errors.New("governance: invalid message")
	ErrBadSignature  = errors.New("governance: bad signature")
	ErrNotFound      = errors.New("governance: no such proposal")
	ErrNoParam       = errors.New("governance: no such parameter")
	ErrNotMember     = errors.New("governance: not a member")
	ErrNotOpen       = errors.New("governance: voting is not open")
	ErrInvalidChoice = errors.New("governance: invalid choice")
)

// Built-in action kinds: their effects are part of governance's state
// (Param, Members) and need no handler.
const (
	ActionSetParam     = "set-param"
	ActionAdmitMember  = "admit-member"
	ActionRemoveMember = "remove-member"
	// ActionApproveRelease approves a release of the DApp's code (Release).
	ActionApproveRelease = "approve-release"
)

// Genesis is what a DApp's governance starts with; every instance must
// use the same (dapp takes it from the Manifest).
type Genesis struct {
	// Members may propose and vote.
	Members []common.Address
	// Closers sign closing certificates; nil means each proposal's
	// electorate.
	Closers []common.Address
	// Params are the initial parameters, JSON values by name.
	Params map[string]json.RawMessage
	// VotingPeriod is a proposal's default length; 0 means 72 hours.
	VotingPeriod time.Duration
	// Quorum is a proposal's default quorum: the number of members who
	// must vote (abstentions count). 0 means none.
	Quorum uint64
	// ChainID is the EIP-712 domain's chain ID; 0 means 1337. It must be
	// the same on every instance, whatever chain each pays on.
	ChainID uint64
	// ProposalThreshold is the least token balance at the snapshot that
	// the author of a Tokens proposal must hold; nil means any.
	ProposalThreshold *big.Int
}

// Balances reads token balances from the chain, for Tokens electorates.
// *payment.Payments implements it.
type Balances interface {
	// BalanceAt is who's token balance at the end of block block.
	BalanceAt(ctx context.Context, who common.Address, block uint64) (*big.Int, error)
	// BlockNumber is the latest block's number.
	BlockNumber(ctx context.Context) (uint64, error)
}

// Config configures Open. The zero value of a field means its default.
type Config struct {
	// Store holds the DApp's proposals, ballots and closings. Required.
	// Install Validators in its Config before it receives anything.
	Store *store.Store
	// Key is the instance's key: it signs the instance's own proposals,
	// ballots and closing signatures. Required.
	Key *ecdsa.PrivateKey
	// AppID is the DApp's identifier, the EIP-712 domain's salt. Required.
	AppID [32]byte
	// Genesis holds the genesis members and parameters.
	Genesis Genesis
	// Balances reads token balances for proposals whose electorate is
	// Tokens; nil means such proposals cannot be made or counted here.
	Balances Balances
	// Journal remembers, across restarts, which actions this instance has
	// run; nil keeps it in memory (every action runs again after a
	// restart).
	Journal Journal
	// CloseDelay is how long after a proposal's end a closer waits for
	// late copies of ballots before it signs; 0 means 2 seconds.
	CloseDelay time.Duration
	// ResignAfter is how long after signing a closer that sees no
	// certificate signs again over the ballots it holds then; 0 means 10
	// times CloseDelay.
	ResignAfter time.Duration
	// Escrow is the escrow contract that cases settle deals on (OpenDeal,
	// OpenCase, Rule...); nil means no cases (ErrNoEscrow). dapp sets it
	// to the instance's payments.
	Escrow Escrow
	// Reputation weighs members in the draw of a deal's arbiters
	// (OpenDeal); nil, or a nil or non-positive weight, counts as 1.
	Reputation func(member common.Address) *big.Int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics, if set, receives governance's counters.
	Metrics prometheus.Registerer
	// Logger receives governance's logs; nil discards them.
	Logger *slog.Logger
}

// Validators returns the store validators of governance's collections for
// a DApp: give them to store.Config.Validators, so that no governance
// message is ever applied unchecked, even before Open.
func Validators(appID [32]byte, g Genesis) map[string]store.Validator {
	return validators(domain(appID, g))
}

func domain(appID [32]byte, g Genesis) govmsg.Domain {
	chain := g.ChainID
	if chain == 0 {
		chain = 1337
	}
	return govmsg.NewDomain(new(big.Int).SetUint64(chain), appID)
}

// Governance is one instance's view of a DApp's governance. It is safe for
// concurrent use.
type Governance struct {
	cfg     Config
	domain  govmsg.Domain
	self    common.Address
	genesis govern.Genesis
	log     *slog.Logger
	metrics *metrics

	props, ballots, closings, delegations *store.Collection

	book     *caseBook
	caseWake chan struct{}

	group  *group.Group
	wake   chan struct{}
	closed atomic.Bool

	mu       sync.Mutex
	input    inputs
	handlers map[string]*handlerEntry
	signed   map[common.Hash]signedRoot // this instance's latest closing per proposal
	state    atomic.Pointer[govern.State]
	// evaluated is closed and replaced each time state is updated.
	evaluated chan struct{}
}

type inputs struct {
	proposals   map[common.Hash]govern.Proposal
	ballots     map[common.Hash]govern.Ballot
	closings    map[string]govern.Closing
	balances    map[govern.BalanceKey]*big.Int
	fetching    map[govern.BalanceKey]bool
	delegations map[common.Hash]govern.Delegation
	dirty       bool
}

type handlerEntry struct {
	fn func(context.Context, Action) error
}

// Open starts governance on a store.
func Open(ctx context.Context, cfg Config) (*Governance, error) {
	switch {
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	case cfg.Key == nil:
		return nil, fmt.Errorf("%w: Key is required", ErrInvalidConfig)
	case cfg.CloseDelay < 0 || cfg.ResignAfter < 0 || cfg.Genesis.VotingPeriod < 0:
		return nil, fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	}
	if cfg.CloseDelay == 0 {
		cfg.CloseDelay = 2 * time.Second
	}
	if cfg.ResignAfter == 0 {
		cfg.ResignAfter = 10 * cfg.CloseDelay
	}
	if cfg.Genesis.VotingPeriod == 0 {
		cfg.Genesis.VotingPeriod = 72 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Journal == nil {
		cfg.Journal = NewMemJournal()
	}
	for name, v := range cfg.Genesis.Params {
		if !json.Valid(v) {
			return nil, fmt.Errorf("%w: genesis parameter %.40q is not JSON", ErrInvalidConfig, name)
		}
	}
	g := &Governance{
		cfg:    cfg,
		domain: domain(cfg.AppID, cfg.Genesis),
		self:   crypto.PubkeyToAddress(cfg.Key.PublicKey),
		genesis: govern.Genesis{
			Members:           govern.Sorted(slices.Clone(cfg.Genesis.Members)),
			Params:            cfg.Genesis.Params,
			ProposalThreshold: cfg.Genesis.ProposalThreshold,
		},
		log:         cfg.Logger.With("component", "governance"),
		metrics:     newMetrics(),
		props:       cfg.Store.Collection(ProposalsCollection),
		ballots:     cfg.Store.Collection(BallotsCollection),
		closings:    cfg.Store.Collection(ClosingsCollection),
		delegations: cfg.Store.Collection(DelegationsCollection),
		wake:        make(chan struct{}, 1),
		book:        newCaseBook(),
		caseWake:    make(chan struct{}, 1),
		handlers:    map[string]*handlerEntry{},
		signed:      map[common.Hash]signedRoot{},
		evaluated:   make(chan struct{}),
		input: inputs{
			proposals:   map[common.Hash]govern.Proposal{},
			ballots:     map[common.Hash]govern.Ballot{},
			closings:    map[string]govern.Closing{},
			balances:    map[govern.BalanceKey]*big.Int{},
			fetching:    map[govern.BalanceKey]bool{},
			delegations: map[common.Hash]govern.Delegation{},
		},
	}
	if cfg.Genesis.Closers != nil {
		g.genesis.Closers = govern.Sorted(slices.Clone(cfg.Genesis.Closers))
	}
	for coll, v := range validators(g.domain) {
		cfg.Store.Collection(coll).SetValidator(v)
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(g.metrics); err != nil {
			return nil, fmt.Errorf("governance: open: register metrics: %w", err)
		}
	}
	g.group = group.New(context.Background())
	runCtx := g.group.Context()
	// Watch before loading, so nothing written in between is missed.
	colls := []*store.Collection{g.props, g.ballots, g.closings, g.delegations}
	for _, name := range caseCollections {
		colls = append(colls, cfg.Store.Collection(name))
	}
	changes := make([]<-chan store.Change, 0, len(colls))
	for _, c := range colls {
		changes = append(changes, c.Watch(runCtx))
	}
	if err := g.loadAll(ctx); err != nil {
		g.group.Stop()
		if cfg.Metrics != nil {
			cfg.Metrics.Unregister(g.metrics)
		}
		return nil, fmt.Errorf("governance: open: %w", err)
	}
	g.evaluate()
	for i, ch := range changes {
		coll := colls[i]
		g.group.Go(func(ctx context.Context) { g.follow(ctx, coll, ch) })
	}
	g.group.Go(g.run)
	g.group.Go(g.runCases)
	return g, nil
}

// Close stops governance and waits for its goroutines. Later calls return
// an error wrapping ErrClosed.
func (g *Governance) Close() error {
	if !g.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("governance: close: %w", ErrClosed)
	}
	g.group.Stop()
	if g.cfg.Metrics != nil {
		g.cfg.Metrics.Unregister(g.metrics)
	}
	return nil
}

func (g *Governance) checkOpen(op string) error {
	if g.closed.Load() {
		return fmt.Errorf("governance: %s: %w", op, ErrClosed)
	}
	return nil
}

// Account is the instance's account, which signs its proposals, ballots
// and closings.
func (g *Governance) Account() common.Address { return g.self }

// loadAll reads every governance document the store holds.
func (g *Governance) loadAll(ctx context.Context) error {
	colls := []*store.Collection{g.props, g.ballots, g.closings, g.delegations}
	for _, name := range caseCollections {
		colls = append(colls, g.cfg.Store.Collection(name))
	}
	for _, c := range colls {
		for doc, err := range c.Find(ctx) {
			if err != nil {
				return err
			}
			g.absorb(c.Name(), doc.ID, doc.Data)
		}
	}
	return nil
}

// follow feeds one collection's changes into the inputs.
func (g *Governance) follow(ctx context.Context, c *store.Collection, ch <-chan store.Change) {
	for {
		select {
		case <-ctx.Done():
			return
		case change, ok := <-ch:
			if !ok {
				return
			}
			if change.Lagged {
				// Some changes were dropped for us: read everything again.
				for doc, err := range c.Find(ctx) {
					if err != nil {
						break
					}
					g.absorb(c.Name(), doc.ID, doc.Data)
				}
			} else if !change.Deleted {
				g.absorb(change.Collection, change.ID, change.Doc)
			}
			g.poke()
		}
	}
}

func (g *Governance) poke() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// absorb adds one document to the inputs. Documents were checked by the
// store's validators; a document that fails here (written before
// validators existed) is counted and dropped.
func (g *Governance) absorb(coll, id string, raw json.RawMessage) {
	if isCaseCollection(coll) {
		g.absorbCase(coll, id, raw)
		return
	}
	m, err := decodeRecord(g.domain, coll, id, raw)
	if err != nil {
		g.metrics.refused.WithLabelValues("stored").Inc()
		g.log.Warn("governance: ignoring an invalid stored message", "collection", coll, "id", cut(id), "err", err)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case m.proposal != nil:
		g.input.proposals[m.proposal.ID] = *m.proposal
	case m.ballot != nil:
		g.input.ballots[m.ballot.ID] = *m.ballot
	case m.closing != nil:
		g.input.closings[id] = *m.closing
	case m.delegation != nil:
		g.input.delegations[m.delegation.ID] = *m.delegation
	}
	g.input.dirty = true
}

// evaluate recomputes the state from the inputs if they changed.
func (g *Governance) evaluate() *govern.State {
	g.mu.Lock()
	if !g.input.dirty && g.state.Load() != nil {
		st := g.state.Load()
		g.mu.Unlock()
		return st
	}
	in := govern.Input{
		Proposals:   make([]govern.Proposal, 0, len(g.input.proposals)),
		Ballots:     make([]govern.Ballot, 0, len(g.input.ballots)),
		Closings:    make([]govern.Closing, 0, len(g.input.closings)),
		Delegations: make([]govern.Delegation, 0, len(g.input.delegations)),
	}
	for _, p := range g.input.proposals {
		in.Proposals = append(in.Proposals, p)
	}
	for _, b := range g.input.ballots {
		in.Ballots = append(in.Ballots, b)
	}
	for _, c := range g.input.closings {
		in.Closings = append(in.Closings, c)
	}
	for _, d := range g.input.delegations {
		in.Delegations = append(in.Delegations, d)
	}
	in.Balances = make(map[govern.BalanceKey]*big.Int, len(g.input.balances))
	for k, v := range g.input.balances {
		in.Balances[k] = v
	}
	g.input.dirty = false
	g.mu.Unlock()

	st := govern.Evaluate(g.genesis, in)
	ignored := st.Orphans
	for _, o := range st.Outcomes {
		ignored += o.Result.Refused + o.Ineligible
	}
	g.metrics.ignored.Set(float64(ignored))
	g.mu.Lock()
	g.state.Store(&st)
	close(g.evaluated)
	g.evaluated = make(chan struct{})
	g.mu.Unlock()
	return &st
}

// current returns the latest state, evaluating only when there is none
// yet: callers that can live with a state a few milliseconds old (the
// loop re-evaluates after every change) skip the cost of a count.
func (g *Governance) current() *govern.State {
	if st := g.state.Load(); st != nil {
		return st
	}
	return g.evaluate()
}

// run is governance's loop: it re-evaluates after changes, signs closings
// when they are due and runs the actions of passed proposals.
func (g *Governance) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		began := time.Now()
		st := g.evaluate()
		g.fetchBalances(ctx, st)
		// While ballots pour in, let at least twice the time of a count
		// pass between two counts, so counting takes at most a third of
		// the processor whatever the number of ballots.
		gather := max(2*time.Millisecond, 2*time.Since(began))
		g.runActions(ctx, st)
		// Look again at least every second, whatever the closings due, so
		// that a clock that jumps (or a test's clock) is followed.
		next := g.close(ctx, st)
		if next <= 0 || next > time.Second {
			next = time.Second
		}
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
			// Let a burst of changes gather before evaluating again.
			select {
			case <-ctx.Done():
				return
			case <-time.After(gather):
			}
		case <-timer.C:
		}
	}
}

func cut(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ID identifies a proposal: the EIP-712 hash its author signed.
type ID [32]byte

// String returns the ID in hex, as Result and the store show it.
func (id ID) String() string { return "0x" + hex.EncodeToString(id[:]) }

// ParseID reads an ID written by String.
func ParseID(s string) (ID, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil || len(b) != 32 {
		return ID{}, fmt.Errorf("%w: proposal ID %.80q", ErrInvalid, s)
	}
	return ID(b), nil
}

// Members returns the current members, in ascending order: the genesis
// members, with every admission and removal of final, passed proposals.
func (g *Governance) Members(ctx context.Context) ([]common.Address, error) {
	if err := g.checkOpen("members"); err != nil {
		return nil, err
	}
	return slices.Clone(g.evaluate().Members), nil
}

// Param reads parameter name into dst (json.Unmarshal): its genesis value,
// or the value the last executed proposal set.
func (g *Governance) Param(ctx context.Context, name string, dst any) error {
	if err := g.checkOpen("param"); err != nil {
		return err
	}
	v, ok := g.evaluate().Params[name]
	if !ok {
		return fmt.Errorf("governance: param %.80q: %w", name, ErrNoParam)
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("governance: param %.80q: %w", name, err)
	}
	return nil
}

// Params returns every parameter's current value.
func (g *Governance) Params(ctx context.Context) (map[string]json.RawMessage, error) {
	if err := g.checkOpen("params"); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for k, v := range g.evaluate().Params {
		out[k] = slices.Clone(v)
	}
	return out, nil
}
