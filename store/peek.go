package store

import (
	"encoding/binary"

	"github.com/ethereum/go-ethereum/common"
)

// peekAuthorSeq reads a delta block's author and sequence number without
// decoding or verifying it, from where the canonical encoding (the only
// one delta.Decode accepts) puts them: the author first, the sequence
// number last before the signature. A pushed delta above its author's
// version here is new, so the lookups that spare a known delta the
// signature check can be skipped. What it reads is never trusted: a block
// it misreads is decoded and verified, and the applier finds a known
// delta again by its own lookup.
func peekAuthorSeq(block []byte) (common.Address, uint64, bool) {
	var a common.Address
	const sigEntry = 4 + 65 // "z", a 65-byte string's head, the signature
	if len(block) < 4+common.AddressLength+3+sigEntry || block[0] != 0xa6 || block[1] != 0x61 || block[2] != 'a' || block[3] != 0x40|common.AddressLength {
		return a, 0, false
	}
	copy(a[:], block[4:4+common.AddressLength])
	end := len(block) - sigEntry
	if block[end] != 0x61 || block[end+1] != 'z' || block[end+2] != 0x58 || block[end+3] != 65 {
		return a, 0, false
	}
	// key "s", then an unsigned integer of 1, 2, 3, 5 or 9 bytes; the
	// bytes of a long one can read as a shorter one, so only a single
	// reading counts
	var seq uint64
	found := 0
	for _, n := range []int{1, 2, 3, 5, 9} {
		at := end - n
		if at < 4+common.AddressLength+2 || block[at-2] != 0x61 || block[at-1] != 's' {
			continue
		}
		v := block[at+1 : end]
		switch h := block[at]; {
		case n == 1 && h < 24:
			seq, found = uint64(h), found+1
		case n == 2 && h == 0x18:
			seq, found = uint64(v[0]), found+1
		case n == 3 && h == 0x19:
			seq, found = uint64(binary.BigEndian.Uint16(v)), found+1
		case n == 5 && h == 0x1a:
			seq, found = uint64(binary.BigEndian.Uint32(v)), found+1
		case n == 9 && h == 0x1b:
			seq, found = binary.BigEndian.Uint64(v), found+1
		}
	}
	return a, seq, found == 1
}

// surelyNew reports whether a pushed block is above its author's version
// here, and so neither applied nor refused here yet.
func (s *Store) surelyNew(block []byte) bool {
	a, seq, ok := peekAuthorSeq(block)
	return ok && seq > s.snap.Load().vv.get(a)
}
