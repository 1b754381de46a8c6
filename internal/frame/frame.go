// Package frame is the one length-prefixed framing of every stream
// protocol of the SDK (store catch-up, metering, blob holdings and
// blocks): a frame is its length as an unsigned varint (LEB128, as
// encoding/binary writes it) followed by that many bytes.
//
// The blocks protocol's answers also use optional frames: a uvarint that
// is 0 for "absent", else the length plus one, followed by the bytes.
//
// Reading never trusts a length: one over the caller's limit fails before
// anything is allocated. A stream that ends cleanly between frames gives
// io.EOF itself; one that ends inside a frame gives ErrTruncated.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

var (
	// ErrTooLarge is wrapped when a frame's length is over the reader's
	// limit, or does not fit in 64 bits.
	ErrTooLarge = errors.New("frame: over the size limit")
	// ErrTruncated is wrapped, with io.ErrUnexpectedEOF, when the stream
	// ends inside a frame.
	ErrTruncated = errors.New("frame: truncated")
)

// Reader is what frames are read from: a bufio.Reader, typically.
type Reader interface {
	io.Reader
	io.ByteReader
}

// AppendFrame appends the frame of p to b.
func AppendFrame(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// AppendHeader appends the length prefix of an n-byte frame to b, for a
// writer that appends the n bytes itself.
func AppendHeader(b []byte, n int) []byte { return binary.AppendUvarint(b, uint64(n)) }

// AppendOptionalHeader appends the prefix of an optional frame: of an
// n-byte frame when present, else of an absent one (which has no bytes).
func AppendOptionalHeader(b []byte, n int, present bool) []byte {
	if !present {
		return binary.AppendUvarint(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

// WriteFrame writes the frame of p to w in one Write.
func WriteFrame(w io.Writer, p []byte) error {
	if _, err := w.Write(AppendFrame(make([]byte, 0, binary.MaxVarintLen64+len(p)), p)); err != nil {
		return fmt.Errorf("frame: write: %w", err)
	}
	return nil
}

// ReadFrame reads one frame of at most max bytes.
func ReadFrame(r Reader, max int) ([]byte, error) {
	n, err := readLength(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("frame: %d bytes, limit %d: %w", n, max, ErrTooLarge)
	}
	return readBody(r, n)
}

// ReadOptional reads one optional frame of at most max bytes; present is
// false for an absent one.
func ReadOptional(r Reader, max int) (p []byte, present bool, err error) {
	n, err := readLength(r)
	if err != nil {
		return nil, false, err
	}
	if n == 0 {
		return nil, false, nil
	}
	if n-1 > uint64(max) {
		return nil, false, fmt.Errorf("frame: %d bytes, limit %d: %w", n-1, max, ErrTooLarge)
	}
	p, err = readBody(r, n-1)
	return p, err == nil, err
}

// readLength reads a uvarint: io.EOF if the stream ends before it.
func readLength(r io.ByteReader) (uint64, error) {
	var n uint64
	for shift := 0; ; shift += 7 {
		b, err := r.ReadByte()
		if err != nil {
			if shift == 0 && err == io.EOF {
				return 0, io.EOF
			}
			return 0, readErr(err)
		}
		if shift == 63 && b > 1 {
			return 0, fmt.Errorf("frame: length overflows 64 bits: %w", ErrTooLarge)
		}
		n |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return n, nil
		}
	}
}

func readBody(r io.Reader, n uint64) ([]byte, error) {
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, readErr(err)
	}
	return p, nil
}

// readErr reports a stream that ended inside a frame as ErrTruncated and
// io.ErrUnexpectedEOF; other errors (a reset, a deadline) as they are.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("frame: read: %w", err)
}
