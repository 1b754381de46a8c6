package mirror

import (
	"bytes"
	"crypto/sha256"

	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// verify reports whether signer's key signed data with sig, as libp2p's
// key.Verify does. Every instance checks every heartbeat and attestation
// of the DApp: for a secp256k1 peer the check runs in libsecp256k1 (cgo),
// several times faster than libp2p's pure-Go secp256k1, which it uses for
// any other key.
func verify(signer peer.ID, data, sig []byte) bool {
	if key, ok := secp256k1Key(signer); ok {
		s, err := ecdsa.ParseDERSignature(sig)
		if err != nil {
			return false
		}
		// libp2p accepts both forms of s; libsecp256k1 only the low one.
		r, sv := s.R(), s.S()
		if sv.IsOverHalfOrder() {
			sv.Negate()
		}
		var rs [64]byte
		r.PutBytesUnchecked(rs[:32])
		sv.PutBytesUnchecked(rs[32:])
		digest := sha256.Sum256(data)
		return ethcrypto.VerifySignature(key, digest[:], rs[:])
	}
	pub, err := signer.ExtractPublicKey()
	if err != nil {
		return false
	}
	ok, err := pub.Verify(data, sig)
	return err == nil && ok
}

// secp256k1Prefix starts the protobuf encoding of a libp2p secp256k1
// public key (type 2, then 33 bytes of compressed point), which a peer ID
// of such a key holds whole, under the identity multihash.
var secp256k1Prefix = []byte{0x08, 0x02, 0x12, 33}

// secp256k1Key returns the compressed secp256k1 public key a peer ID
// inlines, without decompressing it.
func secp256k1Key(p peer.ID) ([]byte, bool) {
	dm, err := multihash.Decode([]byte(p))
	if err != nil || dm.Code != multihash.IDENTITY || len(dm.Digest) != len(secp256k1Prefix)+33 || !bytes.HasPrefix(dm.Digest, secp256k1Prefix) {
		return nil, false
	}
	return dm.Digest[len(secp256k1Prefix):], true
}
