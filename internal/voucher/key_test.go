package voucher

import (
	stdecdsa "crypto/ecdsa"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// testKey is a test key with its address at hand.
type testKey struct{ *stdecdsa.PrivateKey }

func (k *testKey) addr() common.Address { return crypto.PubkeyToAddress(k.PublicKey) }
