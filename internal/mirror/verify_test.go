package mirror

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func keyPair(t testing.TB, typ int) (crypto.PrivKey, peer.ID) {
	t.Helper()
	priv, _, err := crypto.GenerateKeyPairWithReader(typ, 256, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, id
}

// highS returns the other valid form of a DER secp256k1 signature (s
// replaced by n - s), which libp2p's Verify accepts too.
func highS(t *testing.T, der []byte) []byte {
	t.Helper()
	s, err := ecdsa.ParseDERSignature(der)
	if err != nil {
		t.Fatal(err)
	}
	r, sv := s.R(), s.S()
	sv.Negate()
	return ecdsa.NewSignature(&r, &sv).Serialize()
}

// TestVerifyAgreesWithLibp2p: the libsecp256k1 check accepts and refuses
// exactly what libp2p's key.Verify does.
func TestVerifyAgreesWithLibp2p(t *testing.T) {
	data := []byte("dpaas mirror payload")
	secp, secpID := keyPair(t, crypto.Secp256k1)
	ed, edID := keyPair(t, crypto.Ed25519)
	_, otherID := keyPair(t, crypto.Secp256k1)
	if _, ok := secp256k1Key(secpID); !ok {
		t.Fatal("a secp256k1 peer ID's key not found inline")
	}
	if _, ok := secp256k1Key(edID); ok {
		t.Fatal("an ed25519 peer ID taken for secp256k1")
	}
	sig, err := secp.Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	edSig, err := ed.Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), sig...)
	tampered[len(tampered)-1] ^= 1
	high := highS(t, sig)
	var zero secp256k1.ModNScalar
	zeroSig := ecdsa.NewSignature(&zero, &zero).Serialize()
	cases := []struct {
		name   string
		signer peer.ID
		data   []byte
		sig    []byte
	}{
		{"valid", secpID, data, sig},
		{"high s", secpID, data, high},
		{"other signer", otherID, data, sig},
		{"other data", secpID, []byte("other"), sig},
		{"tampered", secpID, data, tampered},
		{"not DER", secpID, data, []byte{1, 2, 3}},
		{"empty", secpID, data, nil},
		{"zero r and s", secpID, data, zeroSig},
		{"ed25519 valid", edID, data, edSig},
		{"ed25519 signature for a secp256k1 signer", secpID, data, edSig},
		{"secp256k1 signature for an ed25519 signer", edID, data, sig},
	}
	for _, tc := range cases {
		pub, err := tc.signer.ExtractPublicKey()
		if err != nil {
			t.Fatal(err)
		}
		want, err := pub.Verify(tc.data, tc.sig)
		want = want && err == nil
		if got := verify(tc.signer, tc.data, tc.sig); got != want {
			t.Errorf("%s: verify %v, libp2p %v", tc.name, got, want)
		}
	}
	if !verify(secpID, data, sig) || !verify(secpID, data, high) || !verify(edID, data, edSig) {
		t.Fatal("a valid signature refused")
	}
}

func BenchmarkVerify(b *testing.B) {
	data := make([]byte, 300)
	priv, id := keyPair(b, crypto.Secp256k1)
	sig, err := priv.Sign(data)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("libsecp256k1", func(b *testing.B) {
		for b.Loop() {
			if !verify(id, data, sig) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("libp2p", func(b *testing.B) {
		for b.Loop() {
			pub, err := id.ExtractPublicKey()
			if err != nil {
				b.Fatal(err)
			}
			if ok, err := pub.Verify(data, sig); !ok || err != nil {
				b.Fatal("refused")
			}
		}
	})
}

// AccountOf reads the key a peer ID inlines; the account is the one
// go-ethereum derives from the key libp2p extracts, and IDs of other key
// types or of no key are refused.
func TestAccountOfAgreesWithLibp2p(t *testing.T) {
	for range 20 {
		_, pub, err := crypto.GenerateSecp256k1Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := pub.Raw()
		if err != nil {
			t.Fatal(err)
		}
		k, err := ethcrypto.DecompressPubkey(raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AccountOf(id)
		if err != nil || got != ethcrypto.PubkeyToAddress(*k) {
			t.Fatalf("AccountOf(%s) = %s, %v; want %s", id, got, err, ethcrypto.PubkeyToAddress(*k))
		}
	}
	_, edPub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edID, err := peer.IDFromPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []peer.ID{edID, "", "not a peer id"} {
		if _, err := AccountOf(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("AccountOf(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}
