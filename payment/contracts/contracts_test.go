package contracts

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dpaas/dpaas/payment/internal/testtoken"
)

// TestBindingsMatchSources compiles the Solidity sources with the pinned
// solc (npm ci in this directory installs it) and checks that the
// committed bindings carry exactly that bytecode and ABI, so nobody edits
// a .sol file without running gen.sh. Without node or the npm package it
// skips, unless DPAAS_REQUIRE_SOLC=1 makes that a failure (for CI).
func TestBindingsMatchSources(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("node_modules/solc/package.json")
	}
	if err != nil {
		if os.Getenv("DPAAS_REQUIRE_SOLC") == "1" {
			t.Fatalf("solc unavailable (%v): run `npm ci` in payment/contracts", err)
		}
		t.Skipf("solc unavailable (%v): run `npm ci` in payment/contracts to enable", err)
	}
	type compiledContracts struct {
		Contracts map[string]struct {
			ABI json.RawMessage `json:"abi"`
			Bin string          `json:"bin"`
		}
	}
	compile := func(dir string) compiledContracts {
		out, err := exec.Command(node, "compile.js", dir).Output()
		if err != nil {
			t.Fatalf("node compile.js %s: %v", dir, err)
		}
		var c compiledContracts
		if err := json.Unmarshal(out, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	compiled := compile(".")
	test := compile("../internal/testtoken")
	for name, md := range map[string]struct{ abi, bin string }{
		"Token.sol:Token":                 {TokenMetaData.ABI, TokenMetaData.Bin},
		"Channels.sol:Channels":           {ChannelsMetaData.ABI, ChannelsMetaData.Bin},
		"Escrow.sol:Escrow":               {EscrowMetaData.ABI, EscrowMetaData.Bin},
		"Fund.sol:Fund":                   {FundMetaData.ABI, FundMetaData.Bin},
		"NoReturnToken.sol:NoReturnToken": {testtoken.NoReturnTokenMetaData.ABI, testtoken.NoReturnTokenMetaData.Bin},
		"FeeToken.sol:FeeToken":           {testtoken.FeeTokenMetaData.ABI, testtoken.FeeTokenMetaData.Bin},
		"HookToken.sol:HookToken":         {testtoken.HookTokenMetaData.ABI, testtoken.HookTokenMetaData.Bin},
	} {
		c, ok := compiled.Contracts[name]
		if !ok {
			c, ok = test.Contracts[name]
		}
		if !ok {
			t.Fatalf("compile.js produced no %s", name)
		}
		if "0x"+c.Bin != md.bin {
			t.Errorf("%s: bytecode in bindings.go differs from a fresh compile: run gen.sh", name)
		}
		if squeeze(string(c.ABI)) != squeeze(md.abi) {
			t.Errorf("%s: ABI in bindings.go differs from a fresh compile: run gen.sh", name)
		}
	}
}

// squeeze drops all whitespace: abigen stores the ABI without any.
func squeeze(s string) string {
	return strings.Join(strings.Fields(s), "")
}
