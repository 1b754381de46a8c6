package payment

import (
	"encoding/json"
	"errors"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/internal/voucher"
)

// TestVoucherCodec: the public Voucher round-trips through its binary and
// JSON forms like the codec's, and the codec's refusals match the public
// sentinels with errors.Is.
func TestVoucherCodec(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	v, err := signWith(key, voucher.NewDomain(big.NewInt(1337), common.Address{1}), common.Hash{2}, big.NewInt(500))
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.MarshalBinary()
	if err != nil || len(b) != VoucherSize {
		t.Fatalf("MarshalBinary: %d bytes, %v", len(b), err)
	}
	back, err := ParseVoucher(b)
	if err != nil || back.Amount.Cmp(v.Amount) != 0 || back.Channel != v.Channel {
		t.Fatalf("ParseVoucher: %+v, %v", back, err)
	}
	if signer, err := back.Signer(); err != nil || signer != crypto.PubkeyToAddress(key.PublicKey) {
		t.Fatalf("Signer: %s, %v", signer, err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON Voucher
	if err := json.Unmarshal(j, &fromJSON); err != nil || fromJSON.Amount.Cmp(v.Amount) != 0 {
		t.Fatalf("JSON round trip: %+v, %v", fromJSON, err)
	}
	if _, err := ParseVoucher(b[:10]); !errors.Is(err, ErrMalformedVoucher) {
		t.Fatalf("ParseVoucher of 10 bytes: %v, want ErrMalformedVoucher", err)
	}
	b[0] = 9
	if _, err := ParseVoucher(b); !errors.Is(err, ErrMalformedVoucher) {
		t.Fatalf("ParseVoucher of an unknown version: %v, want ErrMalformedVoucher", err)
	}
}
