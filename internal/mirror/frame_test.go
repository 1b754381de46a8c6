package mirror

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

func TestRequestAnswerCodec(t *testing.T) {
	for _, r := range []Request{
		{Directory: true},
		{Nonce: make([]byte, NonceSize)},
		{Nonce: make([]byte, NonceSize), Blob: []byte{1, 85, 0}, Offset: 9, Length: 100},
	} {
		b, err := EncodeRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRequest(b)
		if err != nil || got.Directory != r.Directory || !bytes.Equal(got.Nonce, r.Nonce) || got.Offset != r.Offset {
			t.Fatalf("round trip %+v: %+v, %v", r, got, err)
		}
	}
	for name, r := range map[string]Request{
		"no nonce":        {},
		"directory+probe": {Directory: true, Nonce: make([]byte, NonceSize)},
		"long range":      {Nonce: make([]byte, NonceSize), Blob: []byte{1}, Length: MaxChallengeLength + 1},
		"range, no blob":  {Nonce: make([]byte, NonceSize), Length: 5},
	} {
		if _, err := EncodeRequest(r); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	a := Answer{Heartbeats: [][]byte{{1, 2}}, Seqs: 42, Digest: make([]byte, 32)}
	b, err := EncodeAnswer(a)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeAnswer(b); err != nil || got.Seqs != 42 || len(got.Heartbeats) != 1 {
		t.Fatalf("answer round trip: %+v, %v", got, err)
	}
	if _, err := EncodeAnswer(Answer{Digest: []byte{1}}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short digest: %v", err)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(bufio.NewReader(&buf), len(b))
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("frame: %v", err)
	}
	buf.Reset()
	_ = WriteFrame(&buf, b)
	if _, err := ReadFrame(bufio.NewReader(&buf), len(b)-1); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized frame: %v", err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	b, _ := EncodeRequest(Request{Nonce: make([]byte, NonceSize), Blob: []byte{1}, Length: 3})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if r.check() != nil {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzDecodeAnswer(f *testing.F) {
	b, _ := EncodeAnswer(Answer{Heartbeats: [][]byte{{1}}, Seqs: 3, Digest: make([]byte, 32)})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAnswer(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if a.check() != nil {
			t.Fatalf("accepted %+v", a)
		}
	})
}
