package frame

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range [][]byte{{}, []byte("a"), bytes.Repeat([]byte("x"), 300)} {
		if err := WriteFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
	}
	// The encoding is encoding/binary's uvarint, then the bytes.
	want := append(binary.AppendUvarint(nil, 0), binary.AppendUvarint(nil, 1)...)
	want = append(append(want, 'a'), binary.AppendUvarint(nil, 300)...)
	want = append(want, bytes.Repeat([]byte("x"), 300)...)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("wire bytes %x, want %x", buf.Bytes(), want)
	}
	r := bufio.NewReader(&buf)
	for _, n := range []int{0, 1, 300} {
		p, err := ReadFrame(r, 300)
		if err != nil || len(p) != n {
			t.Fatalf("frame of %d: %d bytes, %v", n, len(p), err)
		}
	}
	if _, err := ReadFrame(r, 300); err != io.EOF {
		t.Fatalf("at a clean end: %v, want io.EOF itself", err)
	}
}

func TestBadFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"over the limit", AppendFrame(nil, []byte("abcd")), 3, ErrTooLarge},
		{"length over 64 bits", bytes.Repeat([]byte{0xff}, 10), 1 << 20, ErrTooLarge},
		{"length cut", []byte{0x80}, 10, ErrTruncated},
		{"body cut", []byte{5, 'a', 'b'}, 10, ErrTruncated},
	} {
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(tc.in)), tc.max)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == ErrTruncated && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v, want io.ErrUnexpectedEOF too", tc.name, err)
		}
	}
	// A large length fails before any allocation of that size.
	huge := binary.AppendUvarint(nil, 1<<62)
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(huge)), 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("length 2^62: %v", err)
	}
}

func TestOptionalFrames(t *testing.T) {
	b := AppendOptionalHeader(nil, 3, true)
	b = append(b, "abc"...)
	b = AppendOptionalHeader(b, 0, false)
	b = AppendOptionalHeader(b, 0, true)
	if !bytes.Equal(b, []byte{4, 'a', 'b', 'c', 0, 1}) {
		t.Fatalf("wire bytes %x", b)
	}
	r := bufio.NewReader(bytes.NewReader(b))
	for _, want := range []struct {
		p       string
		present bool
	}{{"abc", true}, {"", false}, {"", true}} {
		p, present, err := ReadOptional(r, 3)
		if err != nil || string(p) != want.p || present != want.present {
			t.Fatalf("got %q %v %v, want %q %v", p, present, err, want.p, want.present)
		}
	}
	if _, _, err := ReadOptional(bufio.NewReader(bytes.NewReader([]byte{5, 1, 2, 3, 4})), 3); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("4 bytes, limit 3: %v", err)
	}
}

// FuzzReadFrame: reading arbitrary bytes never panics, fails only with
// io.EOF or the package's errors, never returns more than the limit, and
// every frame it returns is written and read back the same.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{3, 'a', 'b', 'c', 0}, 8)
	f.Add([]byte{0x80, 0x80}, 8)
	f.Add(bytes.Repeat([]byte{0xff}, 11), 1<<20)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 0 || max > 1<<20 {
			return
		}
		br := bytes.NewReader(in)
		r := bufio.NewReader(br)
		for {
			p, err := ReadFrame(r, max)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTruncated) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(p) > max {
				t.Fatalf("%d bytes over the limit %d", len(p), max)
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, p); err != nil {
				t.Fatal(err)
			}
			back, err := ReadFrame(bufio.NewReader(&buf), max)
			if err != nil || !bytes.Equal(back, p) {
				t.Fatalf("round trip of %x: %x, %v", p, back, err)
			}
		}
		if _, _, err := ReadOptional(bufio.NewReader(bytes.NewReader(in)), max); err != nil &&
			!errors.Is(err, io.EOF) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("optional: unexpected error %v", err)
		}
	})
}
