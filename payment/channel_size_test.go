package payment

import (
	"testing"

	"github.com/dpaas/dpaas/internal/voucher"
)

// TestVoucherSizeMatchesCodec: the public size is the codec's.
func TestVoucherSizeMatchesCodec(t *testing.T) {
	if VoucherSize != voucher.Size {
		t.Fatalf("payment.VoucherSize %d, the codec's %d", VoucherSize, voucher.Size)
	}
}
