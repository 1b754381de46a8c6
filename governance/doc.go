// Package governance lets a DApp's members decide together, with no owner
// and no hub: wallet-signed proposals and ballots, counted the same way on
// every replica, closed by a certificate that anyone can check, and
// actions that run by themselves on every replica once a vote passes.
//
// Proposals, ballots and closing signatures are EIP-712 typed data (the
// domain is "dpaas governance", version 1, the Manifest's ChainID, and the
// AppID as salt), so a wallet such as MetaMask or ethers signs them as
// well as an instance does. They are stored as documents of the DApp's
// replicated store, and checked by its validators on every replica: the
// signature, the limits, and that each document holds the message its ID
// names. Voting is free: nothing goes on-chain.
//
// # Usage
//
//	g := node.Governance()
//	id, err := g.Propose(ctx, governance.Proposal{
//		Title:   "Raise the ride fee to 3%",
//		End:     time.Now().Add(72 * time.Hour),
//		Actions: []governance.Action{governance.SetParam("fee-bps", 300)},
//	})
//	err = g.Vote(ctx, id, governance.For())
//	res, err := g.Result(ctx, id) // the count so far; Final once certified
//	var fee int
//	err = g.Param(ctx, "fee-bps", &fee) // 300 on every replica once executed
//
// An end user votes with their own key: TypedData gives the JSON their
// wallet signs with eth_signTypedData_v4, and Submit takes it back with
// the signature. VoteAs and ProposeAs take any Signer. Handler serves the
// same to web pages as JSON over HTTP (the proposals, the typed data of a
// ballot, the submission of what a wallet signed, parameters, members).
//
// # Members and electorate
//
// The Manifest names the genesis members; proposals admit and remove
// members (AdmitMember, RemoveMember). Only members propose, and each
// member has one vote. A proposal's electorate is fixed when it starts:
// the members after every passed proposal that had ended by then.
//
// A member may give their vote to another account (Delegate, or a
// wallet-signed delegation through Submit) until they revoke it by
// delegating to the zero address. A delegation counts for proposals that
// start after it; a member who votes on a proposal takes their vote back
// for that proposal. Delegations are not passed on (a delegate's own
// delegation moves only the delegate's own vote).
//
// # Kinds of vote
//
// Basic (for, against, abstain), SingleChoice, Approval, Weighted,
// Quadratic and RankedChoice (instant runoff). A voter may vote again
// until the end; their latest ballot counts. A proposal passes when its
// Quorum of voters is met (abstentions count) and the winner exceeds its
// Threshold: for Basic, of for+against (a majority by default); for the
// other kinds, of all the votes (the top choice, by default). The count is
// an integer computation, the same on every machine.
//
// # Closing
//
// When a vote ends, each closer (the Manifest's Closers, or else the
// proposal's electorate) waits CloseDelay for late copies of ballots, then
// signs the root of the ballots it counted. Once more than half of the
// closers have signed one root, the result is final: Result returns it
// with its Certificate, which Certificate.Verify checks against the
// closers. The final result counts exactly the certified ballots, so a
// ballot that arrives later, delayed or backdated, changes nothing, on any
// replica, including one that was cut off during the close and comes back.
// Closers that signed different roots (they had not all received the same
// ballots) sign again as soon as they hold what the others counted.
//
// # Actions
//
// A final, passed proposal's actions run in order on every replica, and
// proposals in the order of their end. SetParam, AdmitMember,
// RemoveMember and ApproveRelease change governance's own state (Param,
// Members, Releases). Any other
// kind runs the handler the application registered with Handle, once per
// instance: the instance records, durably, that it starts an action before
// calling the handler, so a restart never runs it twice; a failing
// handler's error is recorded (ActionStatus) and it is not called again.
// Actions of a kind with no handler wait until one is registered.
//
// # Escrow cases
//
// With Config.Escrow set (dapp sets it to the instance's payments),
// governance arbitrates disputes on payment's escrow deals:
//
//	id, err := g.OpenDeal(ctx, payment.EscrowDeal{Payee: p, Amount: a, Deadline: d})
//	err = g.OpenCase(ctx, id)                           // a party: dispute, open the case
//	_, err = g.AddEvidence(ctx, id, governance.Evidence{Text: "...", Blobs: []string{cid}})
//	err = g.Rule(ctx, id, 7000)                          // an arbiter: 70% to the payee
//	c, err := g.Case(ctx, id) // panel, evidence, ballots, settlement (tx hash)
//
// OpenDeal draws the deal's arbiters before opening it: the deal's ID
// comes from a salt (payment.EscrowDealID), and ArbiterList orders the
// current members by a deterministic weighted draw seeded by that ID
// (weights from Config.Reputation; neither party drawn). The deal carries
// that list and the panel size k, the parameter ParamArbiters ("arbiters.k",
// odd, default 3) at opening. Every replica reads the same list and k from
// the chain, so every replica computes the same panel.
//
// Cases, evidence, ballots, settlements and deal records are documents of
// the collections DealsCollection ... SettlementsCollection, signed as
// EIP-712 typed data in the governance domain and checked by the store's
// validators on every replica (signature, own ID, limits: MaxEvidenceText,
// MaxEvidenceRefs, MaxEvidenceRef, blob CIDs). What depends on the deal is
// checked on every replica against the deal as the escrow contract holds
// it, and a document that fails is kept but ignored: a case counts once
// the deal is disputed on-chain (OpenCase disputes it if needed) and only
// if opened by a party; the earliest opening (by its signed time, then
// address) is the case's open time. Evidence counts only from a party. A
// ballot counts only from a member of the current panel, for this chain
// and contract; it holds the arbiter's payment.SignRuling signature, so
// the ballots settle on-chain as they are, and the arbiter's latest
// ballot counts.
//
// Parties who are users with wallets rather than instances open cases
// and attach evidence the way they vote: CaseTypedData and
// EvidenceTypedData (GET /case and /evidence of the Handler) give the
// typed data their wallet signs, and Submit (POST /submit) checks the
// signature, that the signer is a party of the deal and, for a case, that
// the deal is already disputed on-chain (the wallet calls the escrow
// contract's dispute itself), then records it as OpenCase and AddEvidence
// would.
//
// Replacement rule: time runs in rounds of the case window
// (ParamCaseWindow, "arbiters.window", default one hour) from the case's
// open time. At the end of each round, each panel member whose first
// ballot is not signed before that end is replaced by the next of the
// deal's list, while the list has members left; a replacement has the
// next full round. The panel is thus a function of the documents' signed
// times and the clock, the same on every replica whose clock has passed
// the same round ends. A case is decided when floor(k/2)+1 members of the
// panel agree on one share; then the instances of the parties and of the
// arbiters in the majority submit Settle with their signatures, and
// record the transaction in a settlement document. Duplicate submissions
// are refused by the contract (payment.ErrDealClosed) and change nothing.
// Handler serves GET /deals, /cases and /cases/{deal}.
//
// Limits: signed times are the signers' word. A party who backdates its
// opening shortens the first round; an arbiter who backdates a ballot
// keeps a seat they would have lost (replicas that received it agree on
// that too). A replacement needs a member left on the list: a list of k
// (fewer than k+1 eligible members) replaces nobody. The window and the
// member set in force are each replica's current ones; the list and k are
// fixed on-chain at opening. An instance that settles but stops before
// recording it leaves the settlement to the chain: Case still reports it
// (OnChain, with no By).
//
// # Caller duties
//
//  1. Use the same Manifest (members, closers, parameters, ChainID) on
//     every instance; it is part of the AppID.
//  2. Register handlers (Handle) right after Open, on every instance, for
//     every action kind the DApp's proposals use.
//  3. Keep clocks roughly right: a ballot carries its signer's time, and a
//     closer signs CloseDelay after the end by its own clock. A case's
//     rounds are measured by each replica's clock from the signed times.
//
// # Bad input
//
// A document that is not a correctly signed message of its collection,
// under its own ID and within the limits (MaxTitle, MaxBody, MaxReason,
// MaxActions, MaxActionValue), is refused by the store's validators on
// every replica and counted there. Messages that are well signed but do
// not count (a proposal by a non-member, a ballot by someone outside the
// electorate, outside the window or with an invalid choice, a closing by a
// non-closer) are kept but ignored by the count, the same everywhere;
// Propose and Vote refuse them up front with ErrNotMember, ErrNotOpen,
// ErrInvalidChoice or ErrInvalid.
//
// # Not yet
//
// Token-balance electorates (the ERC-20 balance at a snapshot block) are
// not counted yet: a proposal uses the members electorate.
//
// # Lifecycle
//
// Every component of the SDK (store, blobs, pubsub, payment, governance,
// dapp) has one lifecycle. Open(ctx, Config) starts it; a zero Config
// field means its default (Config says which fields are required), and
// Open copies the Config. A Config that Open cannot use fails it with an
// error wrapping the package's ErrInvalidConfig. A nil Config.Logger
// discards logs; Config.Metrics, when set, receives the component's
// Prometheus metrics from Open until Close; a clock, where a component
// takes one, is Config.Now. Close stops the component and waits for
// every goroutine it started; it is safe to call more than once, and every
// call after the first returns an error wrapping the package's ErrClosed.
package governance
