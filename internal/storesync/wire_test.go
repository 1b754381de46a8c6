package storesync

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	author := bytes.Repeat([]byte{7}, 20)
	for _, m := range []Message{
		{Delta: []byte{1, 2, 3}},
		{Announce: &Announce{Heads: [][]byte{{1}}, Versions: []Version{{Author: author, Seq: 9}}}},
	} {
		b, err := Encode(&m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := Encode(got)
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the message")
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	both, _ := Encode(&Message{Delta: []byte{1}, Announce: &Announce{}})
	neither, _ := Encode(&Message{})
	shortAuthor, _ := Encode(&Request{Versions: []Version{{Author: []byte{1}, Seq: 1}}})
	if _, err := DecodeMessage(both); !errors.Is(err, ErrMalformed) {
		t.Errorf("delta and announcement: %v", err)
	}
	if _, err := DecodeMessage(neither); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty message: %v", err)
	}
	if _, err := DecodeRequest(shortAuthor); !errors.Is(err, ErrMalformed) {
		t.Errorf("short author: %v", err)
	}
	if _, err := DecodeMessage([]byte{0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, f := range [][]byte{{}, []byte("hello"), bytes.Repeat([]byte{1}, 70000)} {
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, n := range []int{0, 5, 70000} {
		f, err := ReadFrame(r)
		if err != nil || len(f) != n {
			t.Fatalf("frame of %d bytes: got %d, %v", n, len(f), err)
		}
	}
	if _, err := ReadFrame(r); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
	huge := bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}))
	if _, err := ReadFrame(huge); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized frame: %v", err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	b, _ := Encode(&Message{Announce: &Announce{Versions: []Version{{Author: make([]byte, 20), Seq: 1}}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := DecodeMessage(b); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		if _, err := DecodeRequest(b); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		_, _ = ReadFrame(bufio.NewReader(bytes.NewReader(b)))
	})
}
