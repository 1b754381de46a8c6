package payment

import (
	"context"
	"errors"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"
)

// TestLifecycleContract: an unusable Config fails Open with
// ErrInvalidConfig; Config.Metrics holds the metrics from Open until
// Close; a second Close returns ErrClosed.
func TestLifecycleContract(t *testing.T) {
	d := newDev(t)
	ctx := context.Background()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{Dev: d, AutoPayLimit: big.NewInt(-1)},
		{Dev: d, Host: newHost(t, key)}, // without AppID
	} {
		if _, err := Open(ctx, cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Open(%+v): %v, want ErrInvalidConfig", cfg, err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	p, err := Open(ctx, Config{Dev: d, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) == 0 {
		t.Fatalf("metrics after Open: %d families, %v", len(mfs), err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Fatalf("metrics after Close: %d families, %v", len(mfs), err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
}
