package meter

import (
	"bytes"
	"context"
	"errors"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCodecRoundTrip(t *testing.T) {
	for _, total := range []*big.Int{new(big.Int), big.NewInt(1), new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))} {
		b, err := AppendRequest(nil, Request{Total: total})
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeRequest(b)
		if err != nil || r.Total.Cmp(total) != 0 {
			t.Fatalf("request %v -> %v, %v", total, r.Total, err)
		}
	}
	if _, err := AppendRequest(nil, Request{Total: new(big.Int).Lsh(big.NewInt(1), 256)}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("2^256 request = %v", err)
	}
	for _, resp := range []Response{{Voucher: []byte{1, 2, 3}}, {Refusal: "limit reached"}} {
		b, err := AppendResponse(nil, resp)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeResponse(b)
		if err != nil || !bytes.Equal(got.Voucher, resp.Voucher) || got.Refusal != resp.Refusal {
			t.Fatalf("response %+v -> %+v, %v", resp, got, err)
		}
	}
	long, err := AppendResponse(nil, Response{Refusal: strings.Repeat("é", MaxReason)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeResponse(long); err != nil || len(got.Refusal) > MaxReason {
		t.Fatalf("long refusal not truncated to valid UTF-8: %d bytes, %v", len(got.Refusal), err)
	}
	for _, b := range [][]byte{nil, {1}, {1, 0}, {2, 0, 1}, {1, 7, 1}, {1, 1, 0xff}} {
		if _, err := DecodeResponse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeResponse(%x) = %v", b, err)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	ok, _ := AppendRequest(nil, Request{Total: big.NewInt(12345)})
	f.Add(ok)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		again, err := AppendRequest(nil, r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %x -> %x (%v)", b, again, err)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	v, _ := AppendResponse(nil, Response{Voucher: bytes.Repeat([]byte{7}, 182)})
	r, _ := AppendResponse(nil, Response{Refusal: "no"})
	f.Add(v)
	f.Add(r)
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := DecodeResponse(b)
		if err != nil {
			return
		}
		again, err := AppendResponse(nil, resp)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %x -> %x (%v)", b, again, err)
		}
	})
}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestAskOverLibp2p(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	payer, payee := newHost(t), newHost(t)
	if err := payee.Connect(ctx, peer.AddrInfo{ID: payer.ID(), Addrs: payer.Addrs()}); err != nil {
		t.Fatal(err)
	}
	id := ProtocolID("app")
	var asked atomic.Int64
	var malformed atomic.Int64
	srv := Serve(payer, id, func(_ context.Context, from peer.ID, req Request) Response {
		asked.Add(1)
		if from != payee.ID() {
			return Response{Refusal: "who are you"}
		}
		if req.Total.Cmp(big.NewInt(100)) > 0 {
			return Response{Refusal: "too much"}
		}
		return Response{Voucher: req.Total.Bytes()}
	}, func(peer.ID, error) { malformed.Add(1) })
	cl := NewClient(payee, id)

	for i := int64(1); i <= 5; i++ {
		resp, err := cl.Ask(ctx, payer.ID(), Request{Total: big.NewInt(i * 10)})
		if err != nil {
			t.Fatal(err)
		}
		if new(big.Int).SetBytes(resp.Voucher).Int64() != i*10 {
			t.Fatalf("answer %x for %d", resp.Voucher, i*10)
		}
	}
	ours := func(h host.Host, p peer.ID) []network.Stream {
		var out []network.Stream
		for _, c := range h.Network().ConnsToPeer(p) {
			for _, s := range c.GetStreams() {
				if s.Protocol() == id {
					out = append(out, s)
				}
			}
		}
		return out
	}
	if n := len(ours(payee, payer.ID())); n != 1 {
		t.Fatalf("%d streams open after 5 asks, want one reused", n)
	}
	resp, err := cl.Ask(ctx, payer.ID(), Request{Total: big.NewInt(1000)})
	if err != nil || resp.Refusal != "too much" {
		t.Fatalf("refusal = %+v, %v", resp, err)
	}

	// A stream the server dropped is replaced transparently.
	for _, s := range ours(payer, payee.ID()) {
		s.Reset()
	}
	if _, err := cl.Ask(ctx, payer.ID(), Request{Total: big.NewInt(1)}); err != nil {
		t.Fatalf("Ask after the stream was reset: %v", err)
	}
	if asked.Load() != 7 || malformed.Load() != 0 {
		t.Fatalf("asked %d, malformed %d", asked.Load(), malformed.Load())
	}

	srv.Close()
	if _, err := cl.Ask(ctx, payer.ID(), Request{Total: big.NewInt(1)}); err == nil {
		t.Fatal("Ask succeeded after the server closed")
	}
	cl.Close()
	if _, err := cl.Ask(ctx, payer.ID(), Request{Total: big.NewInt(1)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ask after Close = %v", err)
	}
}
