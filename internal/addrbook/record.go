package addrbook

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/multiformats/go-multiaddr"
)

// Limits of a signed record a peer may pass on.
const (
	MaxRecordSize = 4096
	MaxAddrs      = 16
)

// ErrBadRecord is wrapped by every error of ParseRecord.
var ErrBadRecord = errors.New("addrbook: bad peer record")

// Record is a signed peer record whose signature has been checked: the
// key that signed it is the key of ID.
type Record struct {
	ID       peer.ID
	Seq      uint64
	Addrs    []multiaddr.Multiaddr
	Envelope []byte // the signed envelope, as received; passed on as is
}

// ParseRecord checks a signed envelope holding a libp2p peer record: its
// size, its signature, and that the peer ID it names is the signer's. At
// most MaxAddrs addresses are kept.
func ParseRecord(envelope []byte) (Record, error) {
	if len(envelope) > MaxRecordSize {
		return Record{}, fmt.Errorf("addrbook: record of %d bytes over the %d limit: %w", len(envelope), MaxRecordSize, ErrBadRecord)
	}
	env, rec, err := record.ConsumeEnvelope(envelope, peer.PeerRecordEnvelopeDomain)
	if err != nil {
		return Record{}, fmt.Errorf("addrbook: %v: %w", err, ErrBadRecord)
	}
	pr, ok := rec.(*peer.PeerRecord)
	if !ok {
		return Record{}, fmt.Errorf("addrbook: envelope holds a %T, not a peer record: %w", rec, ErrBadRecord)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return Record{}, fmt.Errorf("addrbook: signer key: %v: %w", err, ErrBadRecord)
	}
	if signer != pr.PeerID {
		return Record{}, fmt.Errorf("addrbook: record for %s signed by %s: %w", pr.PeerID, signer, ErrBadRecord)
	}
	if len(pr.Addrs) == 0 {
		return Record{}, fmt.Errorf("addrbook: record for %s has no address: %w", pr.PeerID, ErrBadRecord)
	}
	addrs := pr.Addrs
	if len(addrs) > MaxAddrs {
		addrs = addrs[:MaxAddrs]
	}
	return Record{ID: pr.PeerID, Seq: pr.Seq, Addrs: addrs, Envelope: envelope}, nil
}

// Seal signs a peer record of id's addresses with key, for an instance to
// hand out its own record.
func Seal(key crypto.PrivKey, addrs []multiaddr.Multiaddr) (Record, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return Record{}, fmt.Errorf("addrbook: seal: %w", err)
	}
	if len(addrs) > MaxAddrs {
		addrs = addrs[:MaxAddrs]
	}
	pr := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: id, Addrs: addrs})
	env, err := record.Seal(pr, key)
	if err != nil {
		return Record{}, fmt.Errorf("addrbook: seal: %w", err)
	}
	b, err := env.Marshal()
	if err != nil {
		return Record{}, fmt.Errorf("addrbook: seal: %w", err)
	}
	return Record{ID: id, Seq: pr.Seq, Addrs: addrs, Envelope: b}, nil
}
