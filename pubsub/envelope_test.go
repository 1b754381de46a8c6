package pubsub

import (
	"bytes"
	"testing"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	k, _ := ethcrypto.GenerateKey()
	env, err := seal(k, "/dpaas/app/chat", 7, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	pub, payload, err := open("/dpaas/app/chat", env)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub, ethcrypto.FromECDSAPub(&k.PublicKey)) || string(payload) != "hello" {
		t.Fatalf("opened %x %q", pub, payload)
	}
	if _, _, err := open("/dpaas/app/other", env); err == nil {
		t.Fatal("envelope accepted on another topic")
	}
	for i := range headerLen {
		bad := bytes.Clone(env)
		bad[i] ^= 1
		if _, _, err := open("/dpaas/app/chat", bad); err == nil {
			t.Fatalf("envelope with byte %d flipped accepted", i)
		}
	}
}

// FuzzOpen feeds arbitrary bytes to the envelope decoder, which reads
// network input: it must never panic, and what it accepts must re-verify.
func FuzzOpen(f *testing.F) {
	k, _ := ethcrypto.GenerateKey()
	env, _ := seal(k, "/dpaas/app/t", 1, []byte("seed"))
	f.Add(env)
	f.Add([]byte{})
	f.Add(make([]byte, headerLen))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, payload, err := open("/dpaas/app/t", data)
		if err != nil {
			return
		}
		if len(pub) != 65 || !bytes.Equal(payload, data[headerLen:]) {
			t.Fatalf("accepted envelope gave key %x payload %q", pub, payload)
		}
	})
}
