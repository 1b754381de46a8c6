package dapp

import (
	"testing"

	"github.com/multiformats/go-multiaddr"
)

func TestPreferTCPDialsTCPFirst(t *testing.T) {
	addrs := []multiaddr.Multiaddr{
		multiaddr.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1"),
		multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001"),
		multiaddr.StringCast("/ip4/198.51.100.7/udp/4001/quic-v1"),
		multiaddr.StringCast("/ip4/198.51.100.7/tcp/4001"),
		multiaddr.StringCast("/ip4/198.51.100.9/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"),
	}
	got := preferTCP(addrs)
	if len(got) != len(addrs) {
		t.Fatalf("%d addresses ranked, want %d", len(got), len(addrs))
	}
	for _, ad := range got {
		t.Logf("%v after %v", ad.Addr, ad.Delay)
		switch {
		case isDirectTCP(ad.Addr) && ad.Delay != 0:
			t.Errorf("TCP address %v delayed %v, want 0", ad.Addr, ad.Delay)
		case isDirectQUIC(ad.Addr) && ad.Delay < quicFallback:
			t.Errorf("QUIC address %v after %v, want at least %v", ad.Addr, ad.Delay, quicFallback)
		}
	}
}

func TestPreferTCPWithoutTCPIsLibp2pDefault(t *testing.T) {
	addrs := []multiaddr.Multiaddr{
		multiaddr.StringCast("/ip4/198.51.100.7/udp/4001/quic-v1"),
		multiaddr.StringCast("/ip6/2001:db8::7/udp/4001/quic-v1"),
	}
	for _, ad := range preferTCP(addrs) {
		if ad.Delay >= quicFallback {
			t.Errorf("QUIC-only peer: %v after %v, want no fallback wait", ad.Addr, ad.Delay)
		}
	}
}
