package peerex

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/multiformats/go-multiaddr"

	"github.com/dpaas/dpaas/internal/addrbook"
)

func sealed(t testing.TB, addr string) addrbook.Record {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r, err := addrbook.Seal(key, []multiaddr.Multiaddr{multiaddr.StringCast(addr)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMessageRoundTrip(t *testing.T) {
	a, b := sealed(t, "/ip4/10.0.0.1/tcp/1"), sealed(t, "/ip6/::1/udp/2/quic-v1")
	enc, err := Encode(Message{Records: [][]byte{a.Envelope, b.Envelope}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, enc); err != nil {
		t.Fatal(err)
	}
	frame, err := ReadFrame(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Records) != 2 || !bytes.Equal(m.Records[1], b.Envelope) {
		t.Fatalf("decoded %d records", len(m.Records))
	}
}

func TestDecodeRefuses(t *testing.T) {
	big := make([][]byte, MaxRecords+1)
	for i := range big {
		big[i] = []byte{1}
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not cbor", []byte("hello")},
		{"no records", []byte{0xa1, 0x61, 'r', 0x80}},
		{"empty record", []byte{0xa1, 0x61, 'r', 0x81, 0x40}},
		{"unknown field", []byte{0xa2, 0x61, 'r', 0x81, 0x41, 1, 0x61, 'x', 0x01}},
		{"too many records", func() []byte {
			b := []byte{0xa1, 0x61, 'r', 0x98, byte(len(big))}
			for range big {
				b = append(b, 0x41, 1)
			}
			return b
		}()},
		{"over the frame bound", make([]byte, MaxFrame+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
	one := [][]byte{{1}}
	two := [][]byte{{1}, {2}}
	for _, m := range []Message{
		{Records: one, Walk: 1},             // a walk without the joiner's record
		{Records: two, Walk: MaxWalk + 1},   // too long a walk
		{Records: two, Walk: 2, Join: true}, // both
	} {
		if _, err := Encode(m); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Encode(%+v) = %v, want ErrMalformed", m, err)
		}
	}
	if _, err := Encode(Message{Records: two, Walk: MaxWalk}); err != nil {
		t.Fatalf("a walk of MaxWalk: %v", err)
	}
	if _, err := Encode(Message{Records: big}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Encode of too many records = %v", err)
	}
	// A frame header announcing more than the bound is refused before
	// anything is allocated.
	var hdr bytes.Buffer
	WriteFrame(&hdr, nil)
	hdr.Reset()
	hdr.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	if _, err := ReadFrame(bufio.NewReader(&hdr)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ReadFrame of a huge length = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	r := sealed(f, "/ip4/127.0.0.1/tcp/4001")
	good, _ := Encode(Message{Records: [][]byte{r.Envelope}})
	f.Add(good)
	f.Add([]byte{0xa1, 0x61, 'r', 0x81, 0x41, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		for _, rec := range m.Records {
			if _, err := addrbook.ParseRecord(rec); err != nil && !errors.Is(err, addrbook.ErrBadRecord) {
				t.Fatalf("ParseRecord error %v does not wrap ErrBadRecord", err)
			}
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("a decoded message does not encode: %v", err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("a re-encoded message does not decode: %v", err)
		}
	})
}

func TestChooseSpreadsOverGroups(t *testing.T) {
	entry := func(addr string, verified bool) addrbook.Entry {
		r := sealed(t, addr)
		return addrbook.Entry{Record: r, Verified: verified}
	}
	due := []addrbook.Entry{
		entry("/ip4/10.0.0.1/tcp/1", true),
		entry("/ip4/10.0.0.2/tcp/1", true),
		entry("/ip4/10.0.0.3/tcp/1", true),
		entry("/ip4/10.0.1.1/tcp/1", true),
		entry("/ip4/192.168.5.1/tcp/1", false),
		entry("/ip6/2001:db8:1::1/tcp/1", true),
	}
	// Already connected to two in 10.0.0.0/24.
	got := Choose(due, map[string]int{"ip4:10.0.0": 2}, 3)
	var groups []string
	for _, e := range got {
		groups = append(groups, netGroup(e.Addrs))
	}
	want := []string{"ip4:10.0.1", "ip6:20010db80001", "ip4:10.0.0"}
	if len(groups) != 3 || groups[0] != want[0] || groups[1] != want[1] || groups[2] != want[2] {
		t.Fatalf("chose groups %v, want %v: new verified groups first, then the crowded one before a candidate", groups, want)
	}
	if got := Choose(due, nil, 10); len(got) != len(due) {
		t.Fatalf("chose %d of %d", len(got), len(due))
	}
}

// TestParseRecordCache: a record checked once is known by its bytes; any
// other bytes, a flipped one included, are checked again and refused when
// bad; the cache stays bounded.
func TestParseRecordCache(t *testing.T) {
	x := &Exchange{verified: make(map[[32]byte]addrbook.Record)}
	r := sealed(t, "/ip4/10.0.0.1/tcp/1")
	for range 2 {
		got, err := x.parseRecord(r.Envelope)
		if err != nil || got.ID != r.ID || got.Seq != r.Seq || len(got.Addrs) != 1 {
			t.Fatalf("parse: %+v, %v", got, err)
		}
	}
	if len(x.verified) != 1 {
		t.Fatalf("%d cached records, want 1", len(x.verified))
	}
	bad := bytes.Clone(r.Envelope)
	bad[len(bad)-1] ^= 1 // in the signature
	if _, err := x.parseRecord(bad); !errors.Is(err, addrbook.ErrBadRecord) {
		t.Fatalf("a tampered record: %v, want ErrBadRecord", err)
	}
	if len(x.verified) != 1 {
		t.Fatal("a refused record was cached")
	}
	for i := range maxVerified + 1 {
		r := sealed(t, fmt.Sprintf("/ip4/10.0.%d.%d/tcp/1", i/256, i%256))
		if _, err := x.parseRecord(r.Envelope); err != nil {
			t.Fatal(err)
		}
	}
	if len(x.verified) > maxVerified {
		t.Fatalf("%d cached records, over %d", len(x.verified), maxVerified)
	}
}
