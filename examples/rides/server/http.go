package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/dpaas/dpaas/examples/rides/ride"
	"github.com/dpaas/dpaas/governance"
	"github.com/dpaas/dpaas/payment"
)

// routes is the HTTP API:
//
//	GET  /api/info                  the DApp: AppID, EIP-712 domain, chain, fee terms, limits
//	POST /api/actions               a signed ride.Action, any kind; answers the ride
//	POST /api/rides                 the same, for a request
//	POST /api/rides/{id}/{kind}     the same, for an action of that kind on that ride
//	GET  /api/rides?state=&user=&limit=   rides, newest first
//	GET  /api/rides/{id}            one ride
//	GET  /api/users/{address}       a user's reputation
//	GET  /api/events?open=1&user=   server-sent events: {"type":"ride","ride":{...}} per change; with
//	                                open=1 only open requests (and those that just stopped being
//	                                open) and the rides user is part of, as a driver's page needs
//	GET  /api/mirrors               the instances of the DApp and their web addresses
//	GET  /api/escrow/{id}           an escrow deal as the chain holds it
//	GET  /api/panel?payer=&payee=&salt=  the deal ID a payer's salt makes, and the ordered
//	                                arbiter list and panel size to open it with (governance's
//	                                draw from that ID, weighted by reputation)
//	POST /api/faucet {"address"}    development chains only: gas and tokens, once per address
//	GET  /api/stats                 actions accepted and refused here
//	POST /api/propose-fee {feeBps, minutes}  this instance, as a member, proposes a new fee
//	POST /rpc                       JSON-RPC relay to the chain (eth_, net_, web3_ methods)
//	     /api/gov/...               governance.Handler: proposals, ballots, params, members
//
// Errors are {"error": "..."}: 400 for a refused action, 409 for a taken
// slot, 402 for a request from a passenger with no completed ride whose
// wallet does not hold the fare (TrustedRides), 404 for an unknown ride.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/info", s.info)
	mux.HandleFunc("POST /api/actions", func(w http.ResponseWriter, r *http.Request) { s.action(w, r, "", "") })
	mux.HandleFunc("POST /api/rides", func(w http.ResponseWriter, r *http.Request) { s.action(w, r, "", ride.KindRequest) })
	mux.HandleFunc("POST /api/rides/{id}/{kind}", func(w http.ResponseWriter, r *http.Request) {
		s.action(w, r, r.PathValue("id"), r.PathValue("kind"))
	})
	mux.HandleFunc("GET /api/rides", s.list)
	mux.HandleFunc("GET /api/rides/{id}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := s.Ride(r.PathValue("id"))
		if !ok {
			fail(w, http.StatusNotFound, errors.New("no such ride here"))
			return
		}
		answer(w, st)
	})
	mux.HandleFunc("GET /api/users/{addr}", func(w http.ResponseWriter, r *http.Request) {
		if !common.IsHexAddress(r.PathValue("addr")) {
			fail(w, http.StatusBadRequest, errors.New("not an address"))
			return
		}
		answer(w, s.Reputation(common.HexToAddress(r.PathValue("addr"))))
	})
	mux.HandleFunc("GET /api/events", s.events)
	mux.HandleFunc("GET /api/mirrors", s.mirrors)
	mux.HandleFunc("GET /api/escrow/{id}", s.escrow)
	mux.HandleFunc("GET /api/panel", s.panel)
	mux.HandleFunc("POST /api/faucet", s.faucet)
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) { answer(w, s.Stats()) })
	mux.HandleFunc("POST /rpc", s.rpc)
	mux.HandleFunc("POST /api/propose-fee", s.proposeFee)
	mux.Handle("/api/gov/", http.StripPrefix("/api/gov", s.node.Governance().Handler()))
	gw := s.node.Gateway()
	mux.Handle("/dpaas/", gw) // mirrors, badges, the failover client
	mux.Handle("/ipfs/", gw)
	mux.Handle("/", s.ui(gw))
	return cors(mux)
}

// ui serves the web UI: the approved release's, through the gateway, once
// there is one; before that the built-in files, if any.
func (s *Server) ui(gw http.Handler) http.Handler {
	if s.cfg.Web == nil {
		return gw
	}
	files := http.FileServerFS(s.cfg.Web)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.releasedUI(r.Context()) {
			gw.ServeHTTP(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// releasedUI reports whether an approved release has a web UI.
func (s *Server) releasedUI(ctx context.Context) bool {
	rs, err := s.node.Governance().Releases(ctx)
	if err != nil {
		return false
	}
	for _, r := range rs {
		if r.UI != "" {
			return true
		}
	}
	return false
}

// cors lets a page served by one instance call the API of another, which
// is how it fails over. Nothing here trusts the caller: actions are
// signed, and the chain relay passes only what a wallet may send.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" && (strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/rpc") {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
				w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// Info is what /api/info answers.
type Info struct {
	AppID     string         `json:"appId"`
	Name      string         `json:"name"`
	ChainID   uint64         `json:"chainId"`
	Domain    map[string]any `json:"domain"`
	Types     map[string]any `json:"types"`
	Instance  common.Address `json:"instance"`
	Terms     Terms          `json:"terms"`
	Window    int            `json:"window"`
	RateLimit int            `json:"rateLimit"`
	MapSize   int            `json:"mapSize"`
	Faucet    bool           `json:"faucet"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	t, err := s.Terms(r.Context())
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	td := s.domain.TypedData(ride.Action{})
	answer(w, Info{
		AppID: fmt.Sprintf("%x", s.domain.AppID), Name: s.node.Manifest().Name, ChainID: s.domain.ChainID,
		Domain: td["domain"].(map[string]any), Types: td["types"].(map[string]any), Instance: s.node.Account(),
		Terms: t, Window: ride.Window, RateLimit: ride.RateLimit, MapSize: ride.MapSize, Faucet: s.cfg.Faucet != nil,
	})
}

func (s *Server) action(w http.ResponseWriter, r *http.Request, id, kind string) {
	var a ride.Action
	if err := readJSON(r, &a); err != nil {
		s.count(false)
		fail(w, http.StatusBadRequest, fmt.Errorf("%w: %v", ride.ErrInvalid, err))
		return
	}
	if kind != "" && a.Kind != kind || id != "" && a.Ride != id {
		s.count(false)
		fail(w, http.StatusBadRequest, fmt.Errorf("%w: a %s action for ride %.64q posted as %s of %.64q", ride.ErrInvalid, a.Kind, a.Ride, kind, id))
		return
	}
	st, err := s.Submit(r.Context(), a)
	switch {
	case errors.Is(err, ErrSlotTaken):
		fail(w, http.StatusConflict, err)
	case errors.Is(err, ErrUnfunded):
		fail(w, http.StatusPaymentRequired, err)
	case errors.Is(err, ride.ErrInvalid), errors.Is(err, ride.ErrNotAllowed), errors.Is(err, ride.ErrSignature):
		fail(w, http.StatusBadRequest, err)
	case err != nil:
		fail(w, http.StatusInternalServerError, err)
	default:
		answer(w, st)
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state, user := q.Get("state"), q.Get("user")
	limit := 200
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 && l <= 1_000_000 {
		limit = l
	}
	var who common.Address
	if user != "" {
		if !common.IsHexAddress(user) {
			fail(w, http.StatusBadRequest, errors.New("user is not an address"))
			return
		}
		who = common.HexToAddress(user)
	}
	out := []ride.State{}
	for _, st := range s.Rides() {
		if state != "" && st.State != state || user != "" && st.Passenger != who && st.Driver != who {
			continue
		}
		out = append(out, st)
		if len(out) == limit {
			break
		}
	}
	answer(w, out)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		fail(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	var f filter
	if r.URL.Query().Get("open") == "1" {
		f.open = true
		if u := r.URL.Query().Get("user"); u != "" {
			if !common.IsHexAddress(u) {
				fail(w, http.StatusBadRequest, errors.New("user is not an address"))
				return
			}
			f.user = common.HexToAddress(u)
		}
	}
	ch := make(chan []byte, 256)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		fail(w, http.StatusServiceUnavailable, errors.New("closing"))
		return
	}
	s.subs[ch] = f
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
		}
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprint(w, "retry: 1000\n: hello\n\n")
	flusher.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
			flusher.Flush()
		case b, ok := <-ch:
			if !ok {
				return
			}
			fmt.Fprintf(w, "data: %s\n\n", b)
			// Write what else is waiting before flushing: one write for a
			// burst of changes, not one each.
			for more := true; more; {
				select {
				case b, ok := <-ch:
					if !ok {
						flusher.Flush()
						return
					}
					fmt.Fprintf(w, "data: %s\n\n", b)
				default:
					more = false
				}
			}
			flusher.Flush()
		}
	}
}

func (s *Server) mirrors(w http.ResponseWriter, r *http.Request) {
	out := []Mirror{}
	for doc, err := range s.node.Store().Collection(MirrorsCollection).Find(r.Context()) {
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		var m Mirror
		if doc.Decode(&m) == nil {
			out = append(out, m)
		}
	}
	answer(w, out)
}

func (s *Server) escrow(w http.ResponseWriter, r *http.Request) {
	p := s.node.Payments()
	if p == nil {
		fail(w, http.StatusServiceUnavailable, errors.New("no chain"))
		return
	}
	var id common.Hash
	if err := id.UnmarshalText([]byte(r.PathValue("id"))); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	info, err := p.EscrowState(r.Context(), id)
	if errors.Is(err, payment.ErrUnknownDeal) {
		fail(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	answer(w, map[string]any{"id": info.ID, "payer": info.Payer, "payee": info.Payee, "fund": info.Fund,
		"amount": info.Amount.String(), "feeBps": info.FeeBps, "deadline": info.Deadline.Unix(), "arbiters": info.Arbiters,
		"status": info.Status.String()})
}

// panel answers the arbiters a deal must be opened with, so that a dispute
// on it becomes a governance case every replica draws the same panel for.
func (s *Server) panel(w http.ResponseWriter, r *http.Request) {
	p := s.node.Payments()
	if p == nil || p.EscrowContract() == (common.Address{}) {
		fail(w, http.StatusServiceUnavailable, errors.New("no escrow contract"))
		return
	}
	q := r.URL.Query()
	var payer, payee common.Address
	var salt common.Hash
	for _, f := range []struct {
		name string
		dst  interface{ UnmarshalText([]byte) error }
	}{{"payer", &payer}, {"payee", &payee}, {"salt", &salt}} {
		if err := f.dst.UnmarshalText([]byte(q.Get(f.name))); err != nil {
			fail(w, http.StatusBadRequest, fmt.Errorf("%s: %w", f.name, err))
			return
		}
	}
	id, list, k, err := s.Panel(r.Context(), payer, payee, salt)
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	answer(w, map[string]any{"id": id, "arbiters": list, "panelSize": k})
}

func (s *Server) faucet(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Faucet == nil {
		fail(w, http.StatusNotFound, errors.New("no faucet: not a development chain"))
		return
	}
	var req struct {
		Address common.Address `json:"address"`
	}
	if err := readJSON(r, &req); err != nil || req.Address == (common.Address{}) {
		fail(w, http.StatusBadRequest, errors.New(`want {"address":"0x..."}`))
		return
	}
	s.mu.Lock()
	done := s.funded[req.Address]
	s.funded[req.Address] = true
	s.mu.Unlock()
	if done {
		answer(w, map[string]any{"funded": false, "reason": "already funded by this instance"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := s.cfg.Faucet(ctx, req.Address, s.cfg.FaucetTokens); err != nil {
		s.mu.Lock()
		delete(s.funded, req.Address)
		s.mu.Unlock()
		fail(w, http.StatusInternalServerError, err)
		return
	}
	answer(w, map[string]any{"funded": true, "tokens": s.cfg.FaucetTokens.String()})
}

// rpc relays users' JSON-RPC calls to the chain, so that a page signs and
// sends its own transactions through the instance that serves it. Only
// the eth_, net_ and web3_ namespaces pass: never a faucet or admin call.
func (s *Server) rpc(w http.ResponseWriter, r *http.Request) {
	if s.cfg.ChainURL == "" {
		fail(w, http.StatusNotFound, errors.New("no chain relay"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil || len(body) > 1<<20 {
		fail(w, http.StatusRequestEntityTooLarge, errors.New("request over 1 MiB"))
		return
	}
	var calls []struct {
		Method string `json:"method"`
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		err = json.Unmarshal(body, &calls)
	} else {
		calls = make([]struct {
			Method string `json:"method"`
		}, 1)
		err = json.Unmarshal(body, &calls[0])
	}
	if err != nil || len(calls) > 100 {
		fail(w, http.StatusBadRequest, errors.New("not JSON-RPC, or a batch over 100"))
		return
	}
	for _, c := range calls {
		ns, _, _ := strings.Cut(c.Method, "_")
		if ns != "eth" && ns != "net" && ns != "web3" {
			fail(w, http.StatusForbidden, fmt.Errorf("method %.40q not relayed", c.Method))
			return
		}
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, s.cfg.ChainURL, bytes.NewReader(body))
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail(w, http.StatusBadGateway, err)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 8<<20))
}

// proposeFee lets the instance's operator, when the instance's account is
// a governance member, propose a new fee from the web UI. It signs with
// the instance's own key: it speaks for the instance, never for a user.
func (s *Server) proposeFee(w http.ResponseWriter, r *http.Request) {
	var req struct {
		FeeBps  int `json:"feeBps"`
		Minutes int `json:"minutes"`
	}
	if err := readJSON(r, &req); err != nil || req.FeeBps < 0 || req.FeeBps > payment.MaxBps || req.Minutes < 1 || req.Minutes > 7*24*60 {
		fail(w, http.StatusBadRequest, errors.New(`want {"feeBps": 0 to 10000, "minutes": 1 to 10080}`))
		return
	}
	id, err := s.node.Governance().Propose(r.Context(), governance.Proposal{
		Title:   fmt.Sprintf("Set the ride fee to %d bps", req.FeeBps),
		End:     time.Now().Add(time.Duration(req.Minutes) * time.Minute),
		Actions: []governance.Action{governance.SetParam(ParamFee, req.FeeBps)},
	})
	if errors.Is(err, governance.ErrNotMember) {
		fail(w, http.StatusForbidden, err)
		return
	}
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	answer(w, map[string]string{"id": id.String()})
}
