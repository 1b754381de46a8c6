// Package server is one instance's HTTP face of the rides DApp: a JSON
// API that relays users' signed actions into the replicated store, the
// rides and reputations as this replica holds them, a stream of ride
// changes (server-sent events), governance (the fee) and a relay to the
// chain for the users' own escrow transactions, plus the web UI.
//
// The server holds no user key. It checks an action with the same rule
// every replica's validator applies (ride.Domain.Check) so that a refused
// action gets its reason at once, and writes it as it came: it cannot make
// or change one, and a forged action it wrote anyway would be refused by
// every replica.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/examples/rides/ride"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/payment"
	"github.com/dpaas/dpaas/store"
)

// Governance parameters the DApp reads.
const (
	// ParamFee is the DApp's share of each fare, in basis points.
	ParamFee = "rides.feeBps"
	// ParamFund is the address the fee goes to.
	ParamFund = "rides.fund"
)

// MirrorsCollection holds one document per instance: its web address.
const MirrorsCollection = "mirrors"

// Mirror is an instance as it announces itself.
type Mirror struct {
	Account string `json:"account"`
	Peer    string `json:"peer"`
	URL     string `json:"url"`
	Started int64  `json:"started"` // ms since 1970
}

// MirrorValidator lets an instance write only its own mirror document
// (named by its account).
func MirrorValidator(w store.Write) error {
	if !strings.EqualFold(w.ID, w.Author.Hex()) {
		return fmt.Errorf("rides: %s may not write the mirror entry of %.50q", w.Author, w.ID)
	}
	return nil
}

// Validators returns the store validators of the rides DApp, to put in
// dapp.Config.Store.Validators on every instance.
func Validators(d ride.Domain) map[string]store.Validator {
	return map[string]store.Validator{ride.Collection: ride.Validator(d), MirrorsCollection: MirrorValidator}
}

// DomainOf is the EIP-712 domain of the DApp whose manifest is m.
func DomainOf(m dapp.Manifest) ride.Domain {
	chainID := m.ChainID
	if chainID == 0 {
		chainID = 1337 // as governance
	}
	return ride.Domain{ChainID: chainID, AppID: m.AppID()}
}

// Config configures a Server.
type Config struct {
	Node *dapp.Node
	// Addr is the address to serve HTTP on; "" means 127.0.0.1:0.
	Addr string
	// ChainURL is the JSON-RPC endpoint relayed at /rpc for users' own
	// transactions ("" serves no relay).
	ChainURL string
	// Faucet, when set, funds a user who asks once (POST /api/faucet)
	// with gas and FaucetTokens: for development chains only.
	Faucet       func(ctx context.Context, to common.Address, tokens *big.Int) error
	FaucetTokens *big.Int
	// Web is the web UI served at / until the DApp approves a release
	// with a UI (cluster.PublishUI); from then on / serves the release's
	// UI through the node's gateway. With Web nil, / is always the
	// gateway's (a page saying no UI is approved yet, until one is).
	Web    fs.FS
	Logger *slog.Logger
}

// Server serves one instance. Close stops it.
type Server struct {
	cfg    Config
	node   *dapp.Node
	domain ride.Domain
	rides  *store.Collection
	log    *slog.Logger
	ln     net.Listener
	http   *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	states  map[string]ride.State
	reps    map[common.Address]*ride.Reputation // nil when stale
	subs    map[chan []byte]filter
	funded  map[common.Address]bool
	closed  bool
	stats   Stats
	sseSent uint64
}

// Stats counts what the server refused.
type Stats struct {
	Accepted int64 `json:"accepted"`
	Refused  int64 `json:"refused"`
}

// New loads the rides this replica holds, starts following their changes
// and serves HTTP.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Node == nil {
		return nil, errors.New("rides server: no node")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FaucetTokens == nil {
		cfg.FaucetTokens = big.NewInt(10_000)
	}
	s := &Server{
		cfg: cfg, node: cfg.Node, domain: DomainOf(cfg.Node.Manifest()), log: cfg.Logger,
		rides:  cfg.Node.Store().Collection(ride.Collection),
		states: map[string]ride.State{}, subs: map[chan []byte]filter{}, funded: map[common.Address]bool{},
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	changes := s.rides.Watch(wctx)
	if err := s.reload(ctx); err != nil {
		cancel()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("rides server: listen: %w", err)
	}
	s.ln = ln
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.follow(wctx, changes)
	}()
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("rides server: serve", "err", err)
		}
	}()
	m := Mirror{Account: s.node.Account().Hex(), Peer: s.node.ID().String(), URL: s.URL(), Started: time.Now().UnixMilli()}
	if err := s.node.Store().Collection(MirrorsCollection).Put(ctx, strings.ToLower(m.Account), m); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("rides server: announce mirror: %w", err)
	}
	return s, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops serving and following changes; it is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ch := range s.subs {
		close(ch)
		delete(s.subs, ch)
	}
	s.mu.Unlock()
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = s.http.Close()
	}
	s.wg.Wait()
	return err
}

// reload reads every ride again (at start, and when Watch lagged).
func (s *Server) reload(ctx context.Context) error {
	states := map[string]ride.State{}
	for doc, err := range s.rides.Find(ctx) {
		if err != nil {
			return fmt.Errorf("rides server: load rides: %w", err)
		}
		st, err := ride.Fold(doc.ID, doc.Data)
		if err != nil {
			s.log.Warn("rides server: unreadable ride", "id", doc.ID, "err", err)
			continue
		}
		states[doc.ID] = st
	}
	s.mu.Lock()
	s.states, s.reps = states, nil
	s.mu.Unlock()
	return nil
}

func (s *Server) follow(ctx context.Context, changes <-chan store.Change) {
	for ch := range changes {
		if ch.Lagged {
			if err := s.reload(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("rides server: reload after lag", "err", err)
			}
			s.broadcast(map[string]any{"type": "reload"}, nil, false)
			continue
		}
		if ch.Deleted || ch.Doc == nil {
			continue
		}
		st, err := ride.Fold(ch.ID, ch.Doc)
		if err != nil {
			s.log.Warn("rides server: unreadable ride", "id", ch.ID, "err", err)
			continue
		}
		s.mu.Lock()
		wasOpen := s.states[ch.ID].State == ride.StateRequested
		s.states[ch.ID], s.reps = st, nil
		s.mu.Unlock()
		s.broadcast(map[string]any{"type": "ride", "ride": st}, &st, wasOpen)
	}
}

// filter narrows a stream of ride changes to what one page needs. The
// zero filter passes everything.
type filter struct {
	// open passes the rides that are, or just stopped being, open
	// requests: a driver's list of requests.
	open bool
	// user, with open, also passes the rides the user is part of
	// (passenger, driver or offer).
	user common.Address
}

func (f filter) pass(st *ride.State, wasOpen bool) bool {
	if !f.open || st == nil {
		return true
	}
	if st.State == ride.StateRequested || wasOpen {
		return true
	}
	if f.user == (common.Address{}) {
		return false
	}
	if st.Passenger == f.user || st.Driver == f.user {
		return true
	}
	for _, o := range st.Offers {
		if o.Driver == f.user {
			return true
		}
	}
	return false
}

// broadcast sends v to every stream whose filter passes st (all of them
// when st is nil).
func (s *Server) broadcast(v any, st *ride.State, wasOpen bool) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch, f := range s.subs {
		if !f.pass(st, wasOpen) {
			continue
		}
		select {
		case ch <- b:
		default: // a slow page gets a reload cue instead of blocking everyone
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- []byte(`{"type":"reload"}`):
			default:
			}
		}
	}
}

// Ride returns the ride as this replica holds it.
func (s *Server) Ride(id string) (ride.State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[id]
	return st, ok
}

// Rides returns the rides this replica holds, newest request first.
func (s *Server) Rides() []ride.State {
	s.mu.Lock()
	out := make([]ride.State, 0, len(s.states))
	for _, st := range s.states {
		out = append(out, st)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b ride.State) int {
		if a.RequestedAt != b.RequestedAt {
			if a.RequestedAt > b.RequestedAt {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Reputation returns a user's reputation over the rides this replica holds.
func (s *Server) Reputation(user common.Address) ride.Reputation {
	s.mu.Lock()
	if s.reps == nil {
		states := make([]ride.State, 0, len(s.states))
		for _, st := range s.states {
			states = append(states, st)
		}
		s.reps = ride.Reputations(states)
	}
	r := s.reps[user]
	s.mu.Unlock()
	if r == nil {
		empty := ride.Reputations([]ride.State{{State: ride.StateRequested, Passenger: user}})[user]
		empty.Passenger = ride.Score{Score: 3000}
		return *empty
	}
	return *r
}

// Submit checks a signed action as every replica will, and writes it.
// It returns the ride as this replica holds it afterwards.
func (s *Server) Submit(ctx context.Context, a ride.Action) (ride.State, error) {
	value, err := json.Marshal(a)
	if err != nil {
		return ride.State{}, err
	}
	field := ride.Field(s.domain.Digest(a))
	before, err := s.rides.GetRaw(ctx, a.Ride)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return ride.State{}, err
	}
	if _, err := s.domain.Check(a.Ride, "set", field, value, before); err != nil {
		s.count(false)
		return ride.State{}, err
	}
	if a.Kind == ride.KindRequest {
		if err := s.admit(ctx, a); err != nil {
			s.count(false)
			return ride.State{}, err
		}
	}
	if a.Kind == ride.KindRequest && before != nil {
		if st, err := ride.Fold(a.Ride, before); err == nil && st.State != "" && st.RequestID != s.domain.Digest(a) {
			s.count(false)
			return ride.State{}, fmt.Errorf("%w: slot %s is taken; sign the request for the next slot", ErrSlotTaken, a.Ride)
		}
	}
	if err := s.rides.Update(ctx, a.Ride, store.Set(field, json.RawMessage(value))); err != nil {
		return ride.State{}, fmt.Errorf("rides server: write: %w", err)
	}
	s.count(true)
	doc, err := s.rides.GetRaw(ctx, a.Ride)
	if err != nil {
		return ride.State{}, err
	}
	return ride.Fold(a.Ride, doc)
}

// ErrSlotTaken: the passenger already requested a ride in that slot.
var ErrSlotTaken = errors.New("rides server: slot taken")

// ErrUnfunded: a passenger without reputation requested a ride whose fare
// their wallet cannot pay.
var ErrUnfunded = errors.New("rides server: request refused: a passenger with no completed ride must hold the fare")

// TrustedRides is how many completed rides as a passenger let a user
// request rides without holding the fare: below it, a request shows that
// the wallet can fund the escrow (its token balance covers the fare).
// Together with the validator's rate limit (ride.RateLimit requests per
// key and window), throwaway keys cannot flood drivers with requests.
const TrustedRides = 1

// admit is the spam rule for requests, checked by the instance a request
// is posted to (a balance is not something every replica can agree on
// at the same instant, so it is not the validator's): a passenger with
// TrustedRides completed rides is admitted; another must hold the fare.
func (s *Server) admit(ctx context.Context, a ride.Action) error {
	if s.Reputation(a.User).Passenger.Rides >= TrustedRides {
		return nil
	}
	var rd ride.RequestData
	if err := json.Unmarshal([]byte(a.Data), &rd); err != nil {
		return fmt.Errorf("%w: request data: %v", ride.ErrInvalid, err)
	}
	fare, ok := new(big.Int).SetString(rd.Fare, 10)
	if !ok {
		return fmt.Errorf("%w: fare %.40q", ride.ErrInvalid, rd.Fare)
	}
	p := s.node.Payments()
	if p == nil {
		return nil // no chain: nothing to check the fare against
	}
	bal, err := p.Balance(ctx, a.User)
	if err != nil {
		return fmt.Errorf("rides server: balance of %s: %w", a.User, err)
	}
	if bal.Cmp(fare) < 0 {
		return fmt.Errorf("%w (fare %s, balance %s)", ErrUnfunded, fare, bal)
	}
	return nil
}

func (s *Server) count(ok bool) {
	s.mu.Lock()
	if ok {
		s.stats.Accepted++
	} else {
		s.stats.Refused++
	}
	s.mu.Unlock()
}

// Stats returns what the server accepted and refused.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Terms are what a passenger's escrow deal must say, from governance.
type Terms struct {
	FeeBps   uint16           `json:"feeBps"`
	Fund     common.Address   `json:"fund"`
	Arbiters []common.Address `json:"arbiters"`
	Escrow   common.Address   `json:"escrow"`
	Token    common.Address   `json:"token"`
}

// Terms reads the fee, fund and arbiter panel from governance and the
// contracts from the chain.
func (s *Server) Terms(ctx context.Context) (Terms, error) {
	g := s.node.Governance()
	var t Terms
	var fee int
	if err := g.Param(ctx, ParamFee, &fee); err != nil && !errors.Is(err, governance.ErrNoParam) {
		return t, err
	}
	if fee < 0 || fee > payment.MaxBps {
		return t, fmt.Errorf("rides server: %s is %d, not 0 to %d", ParamFee, fee, payment.MaxBps)
	}
	t.FeeBps = uint16(fee)
	var fund string
	if err := g.Param(ctx, ParamFund, &fund); err != nil && !errors.Is(err, governance.ErrNoParam) {
		return t, err
	}
	t.Fund = common.HexToAddress(fund)
	members, err := g.Members(ctx)
	if err != nil {
		return t, err
	}
	t.Arbiters = members
	if p := s.node.Payments(); p != nil {
		t.Escrow = p.EscrowContract()
		t.Token = p.Token()
	}
	return t, nil
}

// Panel is what a payer opening a deal with salt needs: the deal's ID, the
// ordered arbiter list governance draws from that ID among the members
// (neither party on it, weighted by their reputation here), and the panel
// size k (governance's arbiters.k, at most the list's length).
func (s *Server) Panel(ctx context.Context, payer, payee common.Address, salt [32]byte) (payment.DealID, []common.Address, int, error) {
	p := s.node.Payments()
	if p == nil {
		return payment.DealID{}, nil, 0, errors.New("rides server: no chain")
	}
	g := s.node.Governance()
	members, err := g.Members(ctx)
	if err != nil {
		return payment.DealID{}, nil, 0, err
	}
	k := governance.DefaultArbiters
	if err := g.Param(ctx, governance.ParamArbiters, &k); err != nil && !errors.Is(err, governance.ErrNoParam) {
		return payment.DealID{}, nil, 0, err
	}
	weight := make(map[common.Address]*big.Int, len(members))
	for _, m := range members {
		rep := s.Reputation(m)
		weight[m] = big.NewInt(int64(rep.Driver.Score + rep.Passenger.Score))
	}
	id := payment.EscrowDealID(p.ChainID(), p.EscrowContract(), payer, salt)
	list := governance.ArbiterList(id, members, weight, payer, payee)
	if len(list) == 0 {
		return id, nil, 0, errors.New("rides server: no member can arbitrate this deal (the parties are the only members)")
	}
	return id, list, min(k, len(list)), nil
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
