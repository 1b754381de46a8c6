package pubsub

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/sha3"
)

// Every message is sealed in an envelope that its sender signs with its
// secp256k1 instance key:
//
//	version (1 byte) | sender address (20) | sequence number (8) |
//	signature (65: r, s, v) | payload
//
// The signature covers a domain tag, the full topic name (which carries the
// AppID), the sender's address, the sequence number and the payload, so a
// message cannot be altered or replayed on another topic or DApp.
// Receivers recover the signer's key, require its address to be the one
// the envelope names (so a forgery is told from a stranger's message), and
// derive the sender's peer ID from it: Message.From.
//
// A receiver checks the signature only when the envelope reached it
// through someone other than its sender: from the sender itself, the
// authenticated libp2p connection already proves who wrote it.
//
// A payload that carries its own signature by its sender (a signed
// document delta, a signed heartbeat) can go in an unsigned envelope
// instead (Topic.PublishSigned):
//
//	version 2 (1 byte) | sender address (20) | payload
//
// Every receiver then has the topic's Authenticator recover the signer
// from the payload, and requires its address to be the one named: one
// signature check per message instead of two. Its message ID is its hash,
// as for any envelope, so the same payload from the same sender is one
// message.
//
// The envelope replaces GossipSub's own signing, which uses a pure-Go curve
// and verifies each message twice on the publisher; go-ethereum's
// libsecp256k1 recovers a key several times faster, and that check is what
// bounds the message rate.
const (
	envelopeVersion = 1
	addrEnd         = 1 + 20
	seqEnd          = addrEnd + 8
	headerLen       = seqEnd + 65

	selfSignedVersion = 2
	selfSignedLen     = addrEnd // the header of an unsigned envelope
)

var errEnvelope = errors.New("pubsub: malformed envelope")

var signDomain = []byte("dpaas/pubsub/1\x00")

// digest is what the sender signs: everything in the envelope but the
// version and the signature, bound to the topic.
func digest(fullTopic string, env []byte) []byte {
	h := sha3.NewLegacyKeccak256()
	h.Write(signDomain)
	h.Write([]byte(fullTopic))
	h.Write([]byte{0})
	h.Write(env[1:seqEnd])
	h.Write(env[headerLen:])
	return h.Sum(nil)
}

// seal signs payload for fullTopic with key and returns the envelope.
func seal(key *ecdsa.PrivateKey, fullTopic string, seq uint64, payload []byte) ([]byte, error) {
	env := make([]byte, headerLen+len(payload))
	env[0] = envelopeVersion
	addr := ethcrypto.PubkeyToAddress(key.PublicKey)
	copy(env[1:addrEnd], addr[:])
	binary.BigEndian.PutUint64(env[addrEnd:seqEnd], seq)
	copy(env[headerLen:], payload)
	sig, err := ethcrypto.Sign(digest(fullTopic, env), key)
	if err != nil {
		return nil, fmt.Errorf("pubsub: sign: %w", err)
	}
	copy(env[seqEnd:headerLen], sig)
	return env, nil
}

// sealSelfSigned puts payload, signed by the sender itself, in an
// unsigned envelope.
func sealSelfSigned(sender [20]byte, payload []byte) []byte {
	env := make([]byte, selfSignedLen+len(payload))
	env[0] = selfSignedVersion
	copy(env[1:addrEnd], sender[:])
	copy(env[selfSignedLen:], payload)
	return env
}

// openSelfSigned has auth recover the signer of env's payload, which must
// be the sender env names, and returns the signer's key, the payload and
// what auth decoded.
func openSelfSigned(auth Authenticator, env []byte) (pub []byte, payload []byte, decoded any, err error) {
	if len(env) < selfSignedLen || env[0] != selfSignedVersion {
		return nil, nil, nil, fmt.Errorf("%w: not an unsigned envelope", errEnvelope)
	}
	payload = env[selfSignedLen:]
	pub, decoded, err = auth(payload)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: payload not authenticated: %v", errEnvelope, err)
	}
	if len(pub) != 65 || pub[0] != 4 {
		return nil, nil, nil, fmt.Errorf("%w: authenticator gave a %d-byte key, want 65 bytes uncompressed", errEnvelope, len(pub))
	}
	if !bytes.Equal(ethcrypto.Keccak256(pub[1:])[12:], env[1:addrEnd]) {
		return nil, nil, nil, fmt.Errorf("%w: payload is not signed by the named sender", errEnvelope)
	}
	return pub, payload, decoded, nil
}

// open checks env's signature and returns its sender's public key (65
// bytes, uncompressed) and payload. It allocates nothing but the key.
func open(fullTopic string, env []byte) (pub []byte, payload []byte, err error) {
	if len(env) < headerLen {
		return nil, nil, fmt.Errorf("%w: %d bytes, need at least %d", errEnvelope, len(env), headerLen)
	}
	if env[0] != envelopeVersion {
		return nil, nil, fmt.Errorf("%w: version %d", errEnvelope, env[0])
	}
	sig := env[seqEnd:headerLen]
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:64])
	// Only low-s signatures: a message has exactly one valid envelope.
	if !ethcrypto.ValidateSignatureValues(sig[64], r, s, true) {
		return nil, nil, fmt.Errorf("%w: invalid signature values", errEnvelope)
	}
	pub, err = ethcrypto.Ecrecover(digest(fullTopic, env), sig)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: bad signature: %v", errEnvelope, err)
	}
	// The address is the last 20 bytes of the key's hash; compare in place.
	if !bytes.Equal(ethcrypto.Keccak256(pub[1:])[12:], env[1:addrEnd]) {
		return nil, nil, fmt.Errorf("%w: signature is not by the named sender", errEnvelope)
	}
	return pub, env[headerLen:], nil
}

// sentDirectly reports whether env names as its sender the neighbour it
// arrived from. The libp2p connection (Noise or TLS, keyed by the same
// secp256k1 key) already proves who that neighbour is, so such an envelope
// needs no signature check here; relayed copies are checked by every
// receiver that gets them from someone else.
func (c *senderIDs) sentDirectly(env []byte, from peer.ID) bool {
	if len(env) < headerLen || env[0] != envelopeVersion {
		return false
	}
	return c.names(env, from)
}

// names reports whether the envelope env, of any version, names from as
// its sender.
func (c *senderIDs) names(env []byte, from peer.ID) bool {
	if len(env) < addrEnd {
		return false
	}
	addr, ok := c.address(from)
	return ok && bytes.Equal(addr[:], env[1:addrEnd])
}

// address returns the Ethereum address of a secp256k1 peer ID.
func (c *senderIDs) address(id peer.ID) ([20]byte, bool) {
	c.mu.Lock()
	a, ok := c.addrs[id]
	c.mu.Unlock()
	if ok {
		return a, true
	}
	pk, err := id.ExtractPublicKey()
	if err != nil || pk.Type() != p2pcrypto.Secp256k1 {
		return a, false
	}
	raw, err := pk.Raw()
	if err != nil {
		return a, false
	}
	pub, err := ethcrypto.DecompressPubkey(raw)
	if err != nil {
		return a, false
	}
	a = ethcrypto.PubkeyToAddress(*pub)
	c.mu.Lock()
	if c.addrs == nil || len(c.addrs) >= maxSenderIDs {
		c.addrs = make(map[peer.ID][20]byte)
	}
	c.addrs[id] = a
	c.mu.Unlock()
	return a, true
}

// senderIDs maps recovered public keys to peer IDs. Deriving an ID costs a
// curve check and a hash; a DApp has few senders, so they are remembered.
type senderIDs struct {
	mu    sync.Mutex
	ids   map[string]peer.ID
	addrs map[peer.ID][20]byte
}

const maxSenderIDs = 4096

func (c *senderIDs) id(pub []byte) (peer.ID, error) {
	c.mu.Lock()
	id, ok := c.ids[string(pub)]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	k, err := p2pcrypto.UnmarshalSecp256k1PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: sender key: %v", errEnvelope, err)
	}
	id, err = peer.IDFromPublicKey(k)
	if err != nil {
		return "", fmt.Errorf("%w: sender id: %v", errEnvelope, err)
	}
	c.mu.Lock()
	if c.ids == nil || len(c.ids) >= maxSenderIDs {
		c.ids = make(map[string]peer.ID)
	}
	c.ids[string(pub)] = id
	c.mu.Unlock()
	return id, nil
}

// signingKey returns the secp256k1 key behind a libp2p private key.
func signingKey(k p2pcrypto.PrivKey) (*ecdsa.PrivateKey, error) {
	if k == nil || k.Type() != p2pcrypto.Secp256k1 {
		return nil, fmt.Errorf("pubsub: the host's key is not secp256k1: set Config.Key, or give the host a secp256k1 identity (dpaas instance keys are): %w", ErrInvalidConfig)
	}
	raw, err := k.Raw()
	if err != nil {
		return nil, fmt.Errorf("pubsub: host key: %w", err)
	}
	return ethcrypto.ToECDSA(raw)
}
