package governance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/dpaas/dpaas/internal/govmsg"
	"github.com/dpaas/dpaas/payment"
)

// Handler serves governance to web pages, whose users sign with their own
// wallets. Every answer is JSON.
//
//	GET  /proposals                    every proposal's Result, latest end first
//	GET  /proposals/{id}               one proposal's Result
//	GET  /ballot?proposal=&voter=&choice=1,2&reason=
//	                                   the typed data the voter's wallet signs
//	                                   (eth_signTypedData_v4)
//	GET  /case?deal=&party=            the typed data a party's wallet signs to
//	                                   open a case on a deal it disputed on-chain
//	GET  /evidence?deal=&party=&text=&doc=&blob=
//	                                   the typed data a party signs to attach
//	                                   evidence (doc and blob may repeat)
//	GET  /ruling?deal=&payeeBps=       the escrow ruling an arbiter's wallet
//	                                   signs first (RulingTypedData)
//	GET  /case-ballot?deal=&arbiter=&payeeBps=&ruling=0x...
//	                                   the ballot it signs second, carrying
//	                                   that signature (CaseBallotTypedData)
//	POST /submit {"typedData": {...}, "signature": "0x..."}
//	                                   a wallet-signed proposal, ballot,
//	                                   delegation, case, evidence or case
//	                                   ballot; answers {"id": "0x..."}
//	GET  /params, GET /members         the current parameters and members
//	GET  /deals                        the escrow deals known to the DApp (Deals)
//	GET  /cases                        every dispute case (Cases)
//	GET  /cases/{deal}                 one case: panel, evidence, ballots,
//	                                   settlement with its transaction hash
//
// Mount it under a prefix with http.StripPrefix. Errors are {"error": "..."}
// with 400 for bad input, 404 for an unknown proposal or case, 405 for a
// wrong method, 503 without an escrow contract.
func (g *Governance) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /proposals", func(w http.ResponseWriter, r *http.Request) {
		res, err := g.Proposals(r.Context())
		answer(w, res, err)
	})
	mux.HandleFunc("GET /proposals/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := ParseID(r.PathValue("id"))
		if err != nil {
			answer(w, nil, err)
			return
		}
		res, err := g.Result(r.Context(), id)
		answer(w, res, err)
	})
	mux.HandleFunc("GET /ballot", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		id, err := ParseID(q.Get("proposal"))
		if err != nil {
			answer(w, nil, err)
			return
		}
		if !common.IsHexAddress(q.Get("voter")) {
			answer(w, nil, fmt.Errorf("%w: voter %.50q is not an address", ErrInvalid, q.Get("voter")))
			return
		}
		var choice Choice
		for _, f := range strings.Split(q.Get("choice"), ",") {
			v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
			if err != nil {
				answer(w, nil, fmt.Errorf("%w: choice %.50q: want numbers separated by commas", ErrInvalidChoice, q.Get("choice")))
				return
			}
			choice.values = append(choice.values, uint32(v))
		}
		if len(q.Get("reason")) > MaxReason {
			answer(w, nil, fmt.Errorf("%w: reason over %d bytes", ErrInvalid, MaxReason))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(g.TypedData(id, common.HexToAddress(q.Get("voter")), choice, q.Get("reason")))
	})
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			TypedData json.RawMessage `json:"typedData"`
			Signature hexutil.Bytes   `json:"signature"`
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, govmsg.MaxTypedData+1024))
		if err == nil {
			err = json.Unmarshal(raw, &body)
		}
		if err != nil {
			answer(w, nil, fmt.Errorf("%w: request: %v", ErrInvalid, err))
			return
		}
		id, err := g.Submit(r.Context(), body.TypedData, body.Signature)
		answer(w, map[string]string{"id": id.String()}, err)
	})
	mux.HandleFunc("GET /case", func(w http.ResponseWriter, r *http.Request) {
		deal, party, err := dealParty(r)
		if err != nil {
			answer(w, nil, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(g.CaseTypedData(deal, party))
	})
	mux.HandleFunc("GET /evidence", func(w http.ResponseWriter, r *http.Request) {
		deal, party, err := dealParty(r)
		if err != nil {
			answer(w, nil, err)
			return
		}
		q := r.URL.Query()
		e := Evidence{Text: q.Get("text"), Docs: q["doc"], Blobs: q["blob"]}
		if err := checkEvidence(e.Text, nonNil(e.Docs), nonNil(e.Blobs)); err != nil {
			answer(w, nil, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(g.EvidenceTypedData(deal, party, e))
	})
	mux.HandleFunc("GET /ruling", func(w http.ResponseWriter, r *http.Request) {
		deal, bps, err := dealShare(r)
		if err != nil {
			answer(w, nil, err)
			return
		}
		td, err := g.RulingTypedData(r.Context(), deal, bps)
		if err != nil {
			answer(w, nil, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(td)
	})
	mux.HandleFunc("GET /case-ballot", func(w http.ResponseWriter, r *http.Request) {
		deal, bps, err := dealShare(r)
		if err != nil {
			answer(w, nil, err)
			return
		}
		q := r.URL.Query()
		if !common.IsHexAddress(q.Get("arbiter")) {
			answer(w, nil, fmt.Errorf("%w: arbiter %.50q is not an address", ErrInvalid, q.Get("arbiter")))
			return
		}
		ruling, err := hexutil.Decode(q.Get("ruling"))
		if err != nil || len(ruling) != 65 {
			answer(w, nil, fmt.Errorf("%w: ruling %.150q: want the 65-byte signature of /ruling's typed data, 0x hex", ErrInvalid, q.Get("ruling")))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(g.CaseBallotTypedData(deal, common.HexToAddress(q.Get("arbiter")), bps, ruling))
	})
	mux.HandleFunc("GET /params", func(w http.ResponseWriter, r *http.Request) {
		res, err := g.Params(r.Context())
		answer(w, res, err)
	})
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		res, err := g.Members(r.Context())
		answer(w, res, err)
	})
	mux.HandleFunc("GET /deals", func(w http.ResponseWriter, r *http.Request) {
		res, err := g.Deals(r.Context())
		answer(w, res, err)
	})
	mux.HandleFunc("GET /cases", func(w http.ResponseWriter, r *http.Request) {
		res, err := g.Cases(r.Context())
		answer(w, res, err)
	})
	mux.HandleFunc("GET /cases/{deal}", func(w http.ResponseWriter, r *http.Request) {
		id, err := ParseID(r.PathValue("deal"))
		if err != nil {
			answer(w, nil, err)
			return
		}
		res, err := g.Case(r.Context(), common.Hash(id))
		answer(w, res, err)
	})
	return mux
}

func answer(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrNoCase):
			status = http.StatusNotFound
		case errors.Is(err, ErrInvalid), errors.Is(err, ErrBadSignature), errors.Is(err, ErrInvalidChoice),
			errors.Is(err, ErrNotMember), errors.Is(err, ErrNotOpen), errors.Is(err, govmsg.ErrMalformed),
			errors.Is(err, govmsg.ErrWrongDomain), errors.Is(err, govmsg.ErrBadSignature),
			errors.Is(err, ErrNotParty), errors.Is(err, ErrNotArbiter), errors.Is(err, payment.ErrDealClosed),
			errors.Is(err, payment.ErrUnknownDeal):
			status = http.StatusBadRequest
		case errors.Is(err, ErrClosed), errors.Is(err, ErrNoEscrow):
			status = http.StatusServiceUnavailable
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(v)
}

// dealShare reads the deal and payeeBps query parameters.
func dealShare(r *http.Request) (payment.DealID, uint16, error) {
	q := r.URL.Query()
	var deal payment.DealID
	if err := deal.UnmarshalText([]byte(q.Get("deal"))); err != nil {
		return deal, 0, fmt.Errorf("%w: deal %.80q: %v", ErrInvalid, q.Get("deal"), err)
	}
	bps, err := strconv.ParseUint(q.Get("payeeBps"), 10, 16)
	if err != nil || bps > payment.MaxBps {
		return deal, 0, fmt.Errorf("%w: payeeBps %.20q: want 0 to %d", ErrInvalid, q.Get("payeeBps"), payment.MaxBps)
	}
	return deal, uint16(bps), nil
}

// dealParty reads the deal and party query parameters.
func dealParty(r *http.Request) (payment.DealID, common.Address, error) {
	q := r.URL.Query()
	var deal payment.DealID
	if err := deal.UnmarshalText([]byte(q.Get("deal"))); err != nil {
		return deal, common.Address{}, fmt.Errorf("%w: deal %.80q: %v", ErrInvalid, q.Get("deal"), err)
	}
	if !common.IsHexAddress(q.Get("party")) {
		return deal, common.Address{}, fmt.Errorf("%w: party %.50q is not an address", ErrInvalid, q.Get("party"))
	}
	return deal, common.HexToAddress(q.Get("party")), nil
}
