package govmsg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// MaxTypedData bounds the JSON ParseTypedData reads.
const MaxTypedData = 256 << 10

// Field is one member of an EIP-712 struct type.
type Field struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// fields parses an encodeType string into the struct types it names:
// "A(uint64 x)B(string y)" gives {"A": [x], "B": [y]}.
func fields(encoded string) map[string][]Field {
	out := map[string][]Field{}
	for rest := encoded; rest != ""; {
		open := strings.IndexByte(rest, '(')
		end := strings.IndexByte(rest, ')')
		name, members := rest[:open], rest[open+1:end]
		var fs []Field
		for _, m := range strings.Split(members, ",") {
			typ, field, _ := strings.Cut(m, " ")
			fs = append(fs, Field{Name: field, Type: typ})
		}
		out[name] = fs
		rest = rest[end+1:]
	}
	return out
}

// Types returns the EIP-712 types of the primary type primary ("Ballot",
// "Proposal", "Delegation", "Closing", "Case", "Evidence", "CaseBallot"), EIP712Domain included: the "types"
// member of the typed data a wallet signs.
func Types(primary string) (map[string][]Field, error) {
	types, ok := typesOf[primary]
	if !ok {
		return nil, fmt.Errorf("%w: unknown primary type %.40q", ErrMalformed, primary)
	}
	out := make(map[string][]Field, len(types))
	for name, fs := range types {
		out[name] = slices.Clone(fs)
	}
	return out, nil
}

// typesJSON holds each primary type's types as TypedData writes them.
var typesJSON = func() map[string][]byte {
	out := map[string][]byte{}
	for primary, types := range typesOf {
		out[primary], _ = json.Marshal(types)
	}
	return out
}()

// typesOf holds each primary type's types, parsed once.
var typesOf = func() map[string]map[string][]Field {
	out := map[string]map[string][]Field{}
	for primary, encoded := range map[string]string{"Ballot": ballotType, "Proposal": proposalType,
		"Delegation": delegationType, "Closing": closingType, "Case": caseType, "Evidence": evidenceType,
		"CaseBallot": caseBallotType} {
		types := fields(encoded)
		types["EIP712Domain"] = fields(domainType)["EIP712Domain"]
		out[primary] = types
	}
	return out
}()

// TypedData is the JSON a wallet signs with eth_signTypedData_v4.
type TypedData struct {
	Types       map[string][]Field `json:"types"`
	PrimaryType string             `json:"primaryType"`
	Domain      jsonDomain         `json:"domain"`
	Message     json.RawMessage    `json:"message"`
}

type jsonDomain struct {
	Name    string          `json:"name"`
	Version string          `json:"version"`
	ChainID json.RawMessage `json:"chainId"`
	Salt    string          `json:"salt"`
	// A verifying contract is not part of this domain; one that is set
	// makes the typed data another domain's.
	VerifyingContract *string `json:"verifyingContract,omitempty"`
}

// Wire forms of the messages: integers as decimal strings (wallets and
// ethers take them, and a uint256 does not fit a JSON number), bytes as
// 0x hex.
type (
	jsonBallot struct {
		Proposal common.Hash    `json:"proposal"`
		Voter    common.Address `json:"voter"`
		Choice   []uintString   `json:"choice"`
		Time     uintString     `json:"time"`
		Reason   string         `json:"reason"`
	}
	jsonAction struct {
		Kind  string        `json:"kind"`
		Name  string        `json:"name"`
		Value hexutil.Bytes `json:"value"`
	}
	jsonProposal struct {
		Author     common.Address `json:"author"`
		Title      string         `json:"title"`
		Body       string         `json:"body"`
		Kind       string         `json:"kind"`
		Choices    []string       `json:"choices"`
		Start      uintString     `json:"start"`
		End        uintString     `json:"end"`
		Electorate string         `json:"electorate"`
		Snapshot   uintString     `json:"snapshot"`
		Quorum     bigString      `json:"quorum"`
		Threshold  uintString     `json:"threshold"`
		Actions    []jsonAction   `json:"actions"`
		Created    uintString     `json:"created"`
	}
	jsonDelegation struct {
		Delegator common.Address `json:"delegator"`
		Delegate  common.Address `json:"delegate"`
		Time      uintString     `json:"time"`
	}
	jsonClosing struct {
		Proposal common.Hash `json:"proposal"`
		Root     common.Hash `json:"root"`
	}
	jsonCase struct {
		Deal  common.Hash    `json:"deal"`
		Party common.Address `json:"party"`
		Time  uintString     `json:"time"`
	}
	jsonEvidence struct {
		Deal  common.Hash    `json:"deal"`
		Party common.Address `json:"party"`
		Text  string         `json:"text"`
		Docs  []string       `json:"docs"`
		Blobs []string       `json:"blobs"`
		Time  uintString     `json:"time"`
	}
	jsonCaseBallot struct {
		Deal     common.Hash    `json:"deal"`
		Arbiter  common.Address `json:"arbiter"`
		PayeeBps uintString     `json:"payeeBps"`
		Ruling   hexutil.Bytes  `json:"ruling"`
		Time     uintString     `json:"time"`
	}
)

// uintString is a uint64 written as a decimal string; it also reads a
// JSON number or 0x hex.
type uintString uint64

func (u uintString) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatUint(uint64(u), 10)), nil
}

func (u *uintString) UnmarshalJSON(b []byte) error {
	x, err := parseUint(b)
	if err != nil {
		return err
	}
	if !x.IsUint64() {
		return fmt.Errorf("%w: %s does not fit 64 bits", ErrMalformed, x)
	}
	*u = uintString(x.Uint64())
	return nil
}

// bigString is a uint256 written as a decimal string.
type bigString struct{ *big.Int }

func (b bigString) MarshalJSON() ([]byte, error) {
	x := b.Int
	if x == nil {
		x = new(big.Int)
	}
	return strconv.AppendQuote(nil, x.String()), nil
}

func (b *bigString) UnmarshalJSON(data []byte) error {
	x, err := parseUint(data)
	if err != nil {
		return err
	}
	b.Int = x
	return nil
}

// parseUint reads a non-negative integer of at most 256 bits: a JSON
// number without fraction or exponent, or a string in decimal or 0x hex.
func parseUint(b []byte) (*big.Int, error) {
	// Most integers are short decimal strings: no big.Int parse for them.
	if n := len(b); n >= 3 && n <= 21 && b[0] == '"' && b[n-1] == '"' && b[1] != '0' || n == 3 && string(b) == `"0"` {
		if v, err := strconv.ParseUint(string(b[1:n-1]), 10, 64); err == nil {
			return new(big.Int).SetUint64(v), nil
		}
	}
	s := string(b)
	if len(s) > 0 && s[0] == '"' {
		var err error
		if s, err = strconv.Unquote(s); err != nil {
			return nil, fmt.Errorf("%w: integer %.40s", ErrMalformed, b)
		}
	}
	x, ok := new(big.Int), false
	switch {
	case len(s) > 80:
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		_, ok = x.SetString(s[2:], 16)
	default:
		_, ok = x.SetString(s, 10)
	}
	if !ok || len(s) == 0 || s[0] == '+' || s[0] == '-' || !checkUint256(x) {
		return nil, fmt.Errorf("%w: %.40q is not an unsigned 256-bit integer", ErrMalformed, s)
	}
	return x, nil
}

func typedData(d Domain, primary string, msg any) TypedData {
	types, _ := Types(primary)
	m, _ := json.Marshal(msg) // the wire structs always marshal
	return TypedData{
		Types:       types,
		PrimaryType: primary,
		Domain: jsonDomain{
			Name:    DomainName,
			Version: DomainVersion,
			ChainID: json.RawMessage(strconv.Quote(d.ChainID.String())),
			Salt:    hexutil.Encode(d.App[:]),
		},
		Message: m,
	}
}

// TypedData returns the typed data a wallet signs for b in domain d.
func (b *Ballot) TypedData(d Domain) TypedData {
	j := jsonBallot{Proposal: b.Proposal, Voter: b.Voter, Time: uintString(b.Time), Reason: b.Reason,
		Choice: make([]uintString, len(b.Choice))}
	for i, c := range b.Choice {
		j.Choice[i] = uintString(c)
	}
	return typedData(d, "Ballot", j)
}

// TypedData returns the typed data a wallet signs for p in domain d.
func (p *Proposal) TypedData(d Domain) TypedData {
	j := jsonProposal{
		Author: p.Author, Title: p.Title, Body: p.Body, Kind: p.Kind, Choices: p.Choices,
		Start: uintString(p.Start), End: uintString(p.End), Electorate: p.Electorate,
		Snapshot: uintString(p.Snapshot), Quorum: bigString{p.Quorum}, Threshold: uintString(p.Threshold),
		Actions: make([]jsonAction, len(p.Actions)), Created: uintString(p.Created),
	}
	if j.Choices == nil {
		j.Choices = []string{}
	}
	for i, a := range p.Actions {
		j.Actions[i] = jsonAction{Kind: a.Kind, Name: a.Name, Value: a.Value}
		if j.Actions[i].Value == nil {
			j.Actions[i].Value = hexutil.Bytes{}
		}
	}
	return typedData(d, "Proposal", j)
}

// TypedData returns the typed data a wallet signs for g in domain d.
func (g *Delegation) TypedData(d Domain) TypedData {
	return typedData(d, "Delegation", jsonDelegation{Delegator: g.Delegator, Delegate: g.Delegate, Time: uintString(g.Time)})
}

// TypedData returns the typed data a wallet signs for c in domain d.
func (c *Closing) TypedData(d Domain) TypedData {
	return typedData(d, "Closing", jsonClosing{Proposal: c.Proposal, Root: c.Root})
}

// TypedData returns the typed data a party's wallet signs for c in domain d.
func (c *Case) TypedData(d Domain) TypedData {
	return typedData(d, "Case", jsonCase{Deal: c.Deal, Party: c.Party, Time: uintString(c.Time)})
}

// TypedData returns the typed data a party's wallet signs for e in domain d.
func (e *Evidence) TypedData(d Domain) TypedData {
	j := jsonEvidence{Deal: e.Deal, Party: e.Party, Text: e.Text, Docs: e.Docs, Blobs: e.Blobs, Time: uintString(e.Time)}
	if j.Docs == nil {
		j.Docs = []string{}
	}
	if j.Blobs == nil {
		j.Blobs = []string{}
	}
	return typedData(d, "Evidence", j)
}

// TypedData returns the typed data an arbiter's wallet signs for b in
// domain d.
func (b *CaseBallot) TypedData(d Domain) TypedData {
	ruling := hexutil.Bytes(b.Ruling)
	if ruling == nil {
		ruling = hexutil.Bytes{}
	}
	return typedData(d, "CaseBallot", jsonCaseBallot{Deal: b.Deal, Arbiter: b.Arbiter, PayeeBps: uintString(b.PayeeBps),
		Ruling: ruling, Time: uintString(b.Time)})
}

// Message is one of *Ballot, *Proposal, *Delegation, *Closing, *Case,
// *Evidence, *CaseBallot.
type Message interface {
	Digest(Domain) common.Hash
	TypedData(Domain) TypedData
}

// ParseTypedData reads the typed data a wallet signed (the JSON given to
// eth_signTypedData_v4) and returns its message, if it is one of this
// package's types in domain d, written exactly as TypedData writes it:
// the same types, the same domain, no field missing or unknown.
func ParseTypedData(data []byte, d Domain) (Message, error) {
	if len(data) > MaxTypedData {
		return nil, fmt.Errorf("%w: typed data of %d bytes, limit %d", ErrMalformed, len(data), MaxTypedData)
	}
	var td struct {
		TypedData
		Types json.RawMessage `json:"types"`
	}
	if err := strictUnmarshal(data, &td); err != nil {
		return nil, fmt.Errorf("%w: typed data: %v", ErrMalformed, err)
	}
	want, ok := typesOf[td.PrimaryType]
	if !ok {
		return nil, fmt.Errorf("%w: unknown primary type %.40q", ErrMalformed, td.PrimaryType)
	}
	// Types written as TypedData writes them are recognised by their
	// bytes; any other spelling (order, spaces) is parsed and compared.
	if !bytes.Equal(td.Types, typesJSON[td.PrimaryType]) {
		var types map[string][]Field
		if err := json.Unmarshal(td.Types, &types); err != nil || !sameTypes(types, want) {
			return nil, fmt.Errorf("%w: the types of %s are not this DApp's", ErrMalformed, td.PrimaryType)
		}
	}
	if err := checkDomain(td.Domain, d); err != nil {
		return nil, err
	}
	// Exactly the type's members: one missing would hash as its zero
	// value, which the signer never saw; one unknown was never signed.
	if err := exactMembers(td.Message, want[td.PrimaryType]); err != nil {
		return nil, err
	}
	var msg Message
	switch td.PrimaryType {
	case "Ballot":
		var j jsonBallot
		if err := strictUnmarshal(td.Message, &j); err != nil {
			return nil, fmt.Errorf("%w: ballot: %v", ErrMalformed, err)
		}
		b := &Ballot{Proposal: j.Proposal, Voter: j.Voter, Time: uint64(j.Time), Reason: j.Reason, Choice: make([]uint32, len(j.Choice))}
		for i, c := range j.Choice {
			if c > 1<<32-1 {
				return nil, fmt.Errorf("%w: choice %d does not fit 32 bits", ErrMalformed, c)
			}
			b.Choice[i] = uint32(c)
		}
		msg = b
	case "Proposal":
		var j jsonProposal
		if err := strictUnmarshal(td.Message, &j); err != nil {
			return nil, fmt.Errorf("%w: proposal: %v", ErrMalformed, err)
		}
		if j.Threshold > 1<<16-1 {
			return nil, fmt.Errorf("%w: threshold %d does not fit 16 bits", ErrMalformed, j.Threshold)
		}
		p := &Proposal{Author: j.Author, Title: j.Title, Body: j.Body, Kind: j.Kind, Choices: j.Choices,
			Start: uint64(j.Start), End: uint64(j.End), Electorate: j.Electorate, Snapshot: uint64(j.Snapshot),
			Quorum: j.Quorum.Int, Threshold: uint16(j.Threshold), Created: uint64(j.Created)}
		for _, a := range j.Actions {
			p.Actions = append(p.Actions, Action{Kind: a.Kind, Name: a.Name, Value: a.Value})
		}
		msg = p
	case "Delegation":
		var j jsonDelegation
		if err := strictUnmarshal(td.Message, &j); err != nil {
			return nil, fmt.Errorf("%w: delegation: %v", ErrMalformed, err)
		}
		msg = &Delegation{Delegator: j.Delegator, Delegate: j.Delegate, Time: uint64(j.Time)}
	case "Closing":
		var j jsonClosing
		if err := strictUnmarshal(td.Message, &j); err != nil {
			return nil, fmt.Errorf("%w: closing: %v", ErrMalformed, err)
		}
		msg = &Closing{Proposal: j.Proposal, Root: j.Root}
	case "Case":
		var j jsonCase
		if err := strictUnmarshal(td.Message, &j); err != nil {
			return nil, fmt.Errorf("%w: case: %v", ErrMalformed, err)
		}
		msg = &Case{Deal: j.Deal, Party: j.Party, Time: uint64(j.Time)}
	case "Evidence":
		var j jsonEvidence
		if err := strictUnmarshal(td.Message, &j); err != nil {
			return nil, fmt.Errorf("%w: evidence: %v", ErrMalformed, err)
		}
		msg = &Evidence{Deal: j.Deal, Party: j.Party, Text: j.Text, Docs: j.Docs, Blobs: j.Blobs, Time: uint64(j.Time)}
	case "CaseBallot":
		var j jsonCaseBallot
		if err := strictUnmarshal(td.Message, &j); err != nil {
			return nil, fmt.Errorf("%w: case ballot: %v", ErrMalformed, err)
		}
		if j.PayeeBps > 1<<16-1 {
			return nil, fmt.Errorf("%w: payee share %d does not fit 16 bits", ErrMalformed, j.PayeeBps)
		}
		msg = &CaseBallot{Deal: j.Deal, Arbiter: j.Arbiter, PayeeBps: uint16(j.PayeeBps), Ruling: j.Ruling, Time: uint64(j.Time)}
	}
	return msg, nil
}

// strictUnmarshal is json.Unmarshal that also refuses invalid UTF-8
// (which json.Unmarshal would replace) and more than one value.
func strictUnmarshal(data []byte, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("invalid UTF-8")
	}
	return json.Unmarshal(data, v)
}

func exactMembers(msg json.RawMessage, want []Field) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(msg, &members); err != nil {
		return fmt.Errorf("%w: message: %v", ErrMalformed, err)
	}
	for _, f := range want {
		if v, ok := members[f.Name]; !ok || string(v) == "null" {
			return fmt.Errorf("%w: message lacks %q", ErrMalformed, f.Name)
		}
	}
	if len(members) != len(want) {
		return fmt.Errorf("%w: message has members its type does not name", ErrMalformed)
	}
	return nil
}

func sameTypes(got, want map[string][]Field) bool {
	if len(got) != len(want) {
		return false
	}
	for name, fs := range want {
		if !slices.Equal(got[name], fs) {
			return false
		}
	}
	return true
}

func checkDomain(got jsonDomain, d Domain) error {
	chain, err := parseUint(got.ChainID)
	if err != nil {
		return fmt.Errorf("%w: domain chainId: %v", ErrMalformed, err)
	}
	salt, err := hexutil.Decode(got.Salt)
	if err != nil || len(salt) != 32 {
		return fmt.Errorf("%w: domain salt %.80q", ErrMalformed, got.Salt)
	}
	if got.Name != DomainName || got.Version != DomainVersion || got.VerifyingContract != nil ||
		chain.Cmp(d.ChainID) != 0 || !bytes.Equal(salt, d.App[:]) {
		return fmt.Errorf("%w: domain %.40q version %.10q chain %s app %x, want chain %s app %x",
			ErrWrongDomain, got.Name, got.Version, chain, salt, d.ChainID, d.App)
	}
	return nil
}
