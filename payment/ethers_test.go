package payment

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/internal/ethtest"
)

// TestEthersInterop checks the dev chain, the contracts and the vouchers
// against an independent client, ethers v6 (pinned in
// testdata/ethers/package.json), over the dev chain's JSON-RPC: standard
// ERC-20 calls and transactions (EIP-1559 and legacy), the EIP-712 domain
// and digest, ethers' signTypedData giving byte for byte the SDK's voucher
// signature, and the SDK accepting and redeeming a voucher ethers signed;
// likewise an escrow ruling, and a fund's payout table hash (ethers' ABI
// coder), payout, committee and budget digests and signatures, the fund
// paying out on the payout signature ethers made.
// It runs `npm ci` in testdata/ethers when node_modules is missing. Without
// node or npm, or when npm ci fails, it skips, unless CI=true makes that a
// failure.
func TestEthersInterop(t *testing.T) {
	dir := filepath.Join("testdata", "ethers")
	node := ethtest.Node(t, dir)

	d := newDev(t)
	ctx := testCtx(t)
	url, err := d.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	payerKey := newKey(t)
	payer := openFunded(t, d, Config{Key: payerKey}, tokens(105)) // 10 into a channel, 5 into a fund
	payee := openFunded(t, d, Config{}, nil)
	ch, err := payer.OpenChannel(ctx, payee.Account(), tokens(10), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	goVoucher, err := ch.Pay(tokens(2))
	if err != nil {
		t.Fatal(err)
	}
	to := common.Address{0x42}
	// A fund whose committee is the payer alone, with 5 tokens in it.
	fundAddr, err := payer.DeployFund(ctx, FundConfig{Committee: []common.Address{payer.Account()}, Budget: tokens(5)})
	if err != nil {
		t.Fatal(err)
	}
	fund, err := payer.OpenFund(ctx, fundAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fund.Deposit(ctx, tokens(5)); err != nil {
		t.Fatal(err)
	}
	const epoch = uint64(1)<<40 + 9
	table := []PayoutEntry{{Account: common.Address{0xa1}, Amount: tokens(2)}, {Account: common.Address{0xb2}, Amount: big.NewInt(12345)}}
	nextCommittee := []common.Address{{0xc1}, payer.Account(), {0xc3}}
	facts := map[string]any{
		"url":            url,
		"chainId":        d.ChainID().Uint64(),
		"token":          d.Token(),
		"channels":       d.Channels(),
		"payerKey":       hexutil.Encode(crypto.FromECDSA(payerKey)),
		"holder":         payer.Account(),
		"to":             to,
		"amount":         "1000",
		"channel":        ch.ID(),
		"voucherAmount":  tokens(2).String(),
		"voucherAmount2": tokens(3).String(),
		"goSignature":    hexutil.Encode(goVoucher.Signature),
		"escrow":         d.Escrow(),
		"deal":           common.Hash{0xde, 0xa1},
		"payeeBps":       3000,
		"fund":           fundAddr,
		"epoch":          epoch,
		"recipients":     []common.Address{table[0].Account, table[1].Account},
		"amounts":        []string{table[0].Amount.String(), table[1].Amount.String()},
		"nextCommittee":  nextCommittee,
		"budget":         tokens(7).String(),
		"nonce":          0,
	}
	in, err := json.Marshal(facts)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, node, "check.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DPAAS_CHECK="+string(in))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node check.js: %v\n%s", err, stderr.String())
	}
	var got struct {
		Name, Symbol, TotalSupply, BalanceBefore, BalanceAfter, Allowance string
		Decimals, TransferStatus, TransferType, ApproveType               int
		TransferLogs                                                      []struct{ From, To, Value string }
		Signature, Signature2, Digest, ContractDigest                     string
		DomainSeparator, ContractDomainSeparator, RecoveredFromGo, Payer  string
		RulingDigest, RulingSignature                                     string
		TableHash, ContractTableHash, PayoutDigest, ContractPayoutDigest  string
		PayoutSignature, SetCommitteeDigest, SetCommitteeSignature        string
		SetBudgetDigest, SetBudgetSignature                               string
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("check.js output %q: %v", stdout, err)
	}
	t.Logf("ethers saw: %s", stdout)

	// ERC-20 through a standard ABI.
	if got.Name != "dpaas dev token" || got.Symbol != "DPT" || got.Decimals != 18 {
		t.Errorf("name %q symbol %q decimals %d", got.Name, got.Symbol, got.Decimals)
	}
	if got.BalanceBefore != tokens(90).String() {
		t.Errorf("ethers balanceOf before = %s, want %v", got.BalanceBefore, tokens(90))
	}
	want := new(big.Int).Sub(tokens(90), big.NewInt(1000))
	if got.BalanceAfter != want.String() || balance(t, payer, payer.Account()).Cmp(want) != 0 {
		t.Errorf("after ethers' transfer: ethers says %s, SDK says %v, want %v", got.BalanceAfter, balance(t, payer, payer.Account()), want)
	}
	if b := balance(t, payer, to); b.Cmp(big.NewInt(1000)) != 0 {
		t.Errorf("recipient of ethers' transfer holds %v, want 1000", b)
	}
	if got.TransferStatus != 1 || got.TransferType != 2 || got.ApproveType != 0 {
		t.Errorf("transfer status %d type %d, approve type %d; want 1, 2 (EIP-1559), 0 (legacy)", got.TransferStatus, got.TransferType, got.ApproveType)
	}
	if len(got.TransferLogs) != 1 || !strings.EqualFold(got.TransferLogs[0].From, payer.Account().Hex()) ||
		!strings.EqualFold(got.TransferLogs[0].To, to.Hex()) || got.TransferLogs[0].Value != "1000" {
		t.Errorf("Transfer events decoded by ethers: %+v", got.TransferLogs)
	}
	allowance, err := bind.Call(payer.token, nil, tokenABI.PackAllowance(payer.Account(), d.Channels()), tokenABI.UnpackAllowance)
	if err != nil {
		t.Fatal(err)
	}
	if got.Allowance != "12345" || allowance.Cmp(big.NewInt(12345)) != 0 {
		t.Errorf("allowance after ethers' approve: ethers %s, SDK %v, want 12345", got.Allowance, allowance)
	}

	// EIP-712: same domain, digest and signature.
	if !strings.EqualFold(got.DomainSeparator, payer.domain.Separator().Hex()) ||
		!strings.EqualFold(got.ContractDomainSeparator, payer.domain.Separator().Hex()) {
		t.Errorf("domain separator: ethers %s, contract via ethers %s, SDK %s", got.DomainSeparator, got.ContractDomainSeparator, payer.domain.Separator())
	}
	digest := payer.domain.Digest(ch.ID(), tokens(2))
	if !strings.EqualFold(got.Digest, digest.Hex()) || !strings.EqualFold(got.ContractDigest, digest.Hex()) {
		t.Errorf("voucher digest: ethers %s, contract %s, SDK %s", got.Digest, got.ContractDigest, digest)
	}
	if want := "0x" + hex.EncodeToString(goVoucher.Signature); got.Signature != want {
		t.Errorf("ethers signTypedData = %s, SDK voucher signature %s", got.Signature, want)
	}
	if !strings.EqualFold(got.RecoveredFromGo, payer.Account().Hex()) {
		t.Errorf("ethers verifyTypedData of the SDK's voucher = %s, want the payer %s", got.RecoveredFromGo, payer.Account())
	}

	// An arbiter's escrow ruling: the same digest and signature.
	rulingDigest := RulingDigest(d.ChainID(), d.Escrow(), common.Hash{0xde, 0xa1}, 3000)
	rulingSig, err := SignRuling(payerKey, d.ChainID(), d.Escrow(), common.Hash{0xde, 0xa1}, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(got.RulingDigest, rulingDigest.Hex()) || got.RulingSignature != hexutil.Encode(rulingSig) {
		t.Errorf("ruling: ethers digest %s signature %s, SDK %s %s", got.RulingDigest, got.RulingSignature, rulingDigest, hexutil.Encode(rulingSig))
	}

	// A fund's payout and governance messages: the same table hash,
	// digests and signatures; the fund pays on the signature ethers made.
	tableHash, err := PayoutTableHash(table)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(got.TableHash, tableHash.Hex()) || !strings.EqualFold(got.ContractTableHash, tableHash.Hex()) {
		t.Errorf("table hash: ethers %s, contract via ethers %s, SDK %s", got.TableHash, got.ContractTableHash, tableHash)
	}
	payoutDigest := PayoutDigest(d.ChainID(), fundAddr, epoch, tableHash)
	payoutSig, err := SignPayout(payerKey, d.ChainID(), fundAddr, epoch, table)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(got.PayoutDigest, payoutDigest.Hex()) || !strings.EqualFold(got.ContractPayoutDigest, payoutDigest.Hex()) ||
		got.PayoutSignature != hexutil.Encode(payoutSig) {
		t.Errorf("payout: ethers digest %s, contract %s, signature %s; SDK %s %s",
			got.PayoutDigest, got.ContractPayoutDigest, got.PayoutSignature, payoutDigest, hexutil.Encode(payoutSig))
	}
	committeeDigest := SetCommitteeDigest(d.ChainID(), fundAddr, nextCommittee, 0)
	committeeSig, err := SignSetCommittee(payerKey, d.ChainID(), fundAddr, nextCommittee, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(got.SetCommitteeDigest, committeeDigest.Hex()) || got.SetCommitteeSignature != hexutil.Encode(committeeSig) {
		t.Errorf("set committee: ethers %s %s, SDK %s %s", got.SetCommitteeDigest, got.SetCommitteeSignature, committeeDigest, hexutil.Encode(committeeSig))
	}
	budgetDigest := SetBudgetDigest(d.ChainID(), fundAddr, tokens(7), 0)
	budgetSig, err := SignSetBudget(payerKey, d.ChainID(), fundAddr, tokens(7), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(got.SetBudgetDigest, budgetDigest.Hex()) || got.SetBudgetSignature != hexutil.Encode(budgetSig) {
		t.Errorf("set budget: ethers %s %s, SDK %s %s", got.SetBudgetDigest, got.SetBudgetSignature, budgetDigest, hexutil.Encode(budgetSig))
	}
	ethersPayoutSig, err := hexutil.Decode(got.PayoutSignature)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fund.SubmitPayout(ctx, epoch, table, nil, [][]byte{ethersPayoutSig}); err != nil {
		t.Fatalf("SubmitPayout with ethers' signature: %v", err)
	}
	if b := balance(t, payer, common.Address{0xb2}); b.Cmp(big.NewInt(12345)) != 0 {
		t.Errorf("recipient of the ethers-signed payout holds %v, want 12345", b)
	}

	// The SDK accepts and redeems a voucher ethers signed.
	sig, err := hexutil.Decode(got.Signature2)
	if err != nil {
		t.Fatal(err)
	}
	v := Voucher{ChainID: d.ChainID(), Contract: d.Channels(), Channel: ch.ID(), Amount: tokens(3), Signature: sig}
	if err := payee.Accept(ctx, v); err != nil {
		t.Fatalf("Accept of an ethers-signed voucher: %v", err)
	}
	if _, err := payee.Redeem(ctx, ch.ID()); err != nil {
		t.Fatalf("Redeem of an ethers-signed voucher: %v", err)
	}
	if b := balance(t, payee, payee.Account()); b.Cmp(tokens(3)) != 0 {
		t.Errorf("payee holds %v after redeeming the ethers voucher, want %v", b, tokens(3))
	}
}
