package mirror

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/dpaas/dpaas/internal/frame"
	"github.com/fxamacker/cbor/v2"
)

// The replicas stream protocol (/dpaas/<appid>/replicas/1.0.0): one
// request frame, one answer frame. Frames are an unsigned varint length
// and that many bytes, the framing of every stream protocol of the SDK.

// MaxFrame bounds a frame: a directory answer of MaxDirectory heartbeats.
const MaxFrame = MaxDirectory*(MaxEnvelope+8) + 64

// MaxDirectory is the most heartbeats a directory answer carries.
const MaxDirectory = 256

// WriteFrame writes b as one frame.
func WriteFrame(w io.Writer, b []byte) error {
	if err := frame.WriteFrame(w, b); err != nil {
		return fmt.Errorf("mirror: write frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame of at most max bytes.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	b, err := frame.ReadFrame(r, max)
	if errors.Is(err, frame.ErrTooLarge) {
		return nil, fmt.Errorf("mirror: %w: %w", err, ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("mirror: read frame: %w", err)
	}
	return b, nil
}

// Request is what a peer asks on the replicas protocol: the directory
// (the signed heartbeats the answerer knows), or a probe.
type Request struct {
	// Directory asks for the answerer's directory; the other fields are
	// then empty.
	Directory bool `cbor:"d,omitempty"`
	// Nonce is the probe's fresh random nonce (16 bytes).
	Nonce []byte `cbor:"n,omitempty"`
	// Blob, Offset and Length are the storage challenge, if any: the
	// digest of Nonce and bytes [Offset, Offset+Length) of the blob.
	Blob   []byte `cbor:"c,omitempty"`
	Offset uint64 `cbor:"o,omitempty"`
	Length uint64 `cbor:"l,omitempty"`
}

// Answer is the answer to a Request.
type Answer struct {
	// Heartbeats is the directory: signed heartbeats, at most MaxDirectory.
	Heartbeats [][]byte `cbor:"h,omitempty"`
	// Seqs is the sum of the answerer's store version vector: how many
	// deltas it has processed, compared with the prober's own.
	Seqs uint64 `cbor:"s,omitempty"`
	// Digest answers the storage challenge; empty when the answerer does
	// not hold the blob.
	Digest []byte `cbor:"g,omitempty"`
}

// NonceSize is the length of a probe nonce.
const NonceSize = 16

// MaxChallengeLength bounds a challenged range.
const MaxChallengeLength = 64 << 10

var frameDecMode = func() cbor.DecMode {
	d, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxArrayElements:  MaxDirectory,
		MaxMapPairs:       16,
		MaxNestedLevels:   4,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return d
}()

// EncodeRequest encodes r.
func EncodeRequest(r Request) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return enc.Marshal(r)
}

// DecodeRequest decodes and checks a request.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if err := frameDecMode.Unmarshal(b, &r); err != nil {
		return Request{}, fmt.Errorf("mirror: decode request: %v: %w", err, ErrMalformed)
	}
	if err := r.check(); err != nil {
		return Request{}, err
	}
	return r, nil
}

func (r Request) check() error {
	if r.Directory {
		if r.Nonce != nil || r.Blob != nil || r.Offset != 0 || r.Length != 0 {
			return fmt.Errorf("mirror: directory request with probe fields: %w", ErrMalformed)
		}
		return nil
	}
	if len(r.Nonce) != NonceSize {
		return fmt.Errorf("mirror: probe nonce of %d bytes, want %d: %w", len(r.Nonce), NonceSize, ErrMalformed)
	}
	if len(r.Blob) > MaxCIDLen || r.Length > MaxChallengeLength || r.Offset > 1<<62 || (r.Blob == nil && (r.Offset != 0 || r.Length != 0)) {
		return fmt.Errorf("mirror: challenge of %d-byte CID, range %d+%d: %w", len(r.Blob), r.Offset, r.Length, ErrMalformed)
	}
	return nil
}

// EncodeAnswer encodes a.
func EncodeAnswer(a Answer) ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return enc.Marshal(a)
}

// DecodeAnswer decodes and checks an answer. It does not check the
// heartbeats' signatures: OpenHeartbeat does, one by one.
func DecodeAnswer(b []byte) (Answer, error) {
	var a Answer
	if err := frameDecMode.Unmarshal(b, &a); err != nil {
		return Answer{}, fmt.Errorf("mirror: decode answer: %v: %w", err, ErrMalformed)
	}
	if err := a.check(); err != nil {
		return Answer{}, err
	}
	return a, nil
}

func (a Answer) check() error {
	if len(a.Heartbeats) > MaxDirectory {
		return fmt.Errorf("mirror: %d heartbeats over the %d limit: %w", len(a.Heartbeats), MaxDirectory, ErrMalformed)
	}
	for _, h := range a.Heartbeats {
		if len(h) == 0 || len(h) > MaxEnvelope {
			return fmt.Errorf("mirror: heartbeat of %d bytes: %w", len(h), ErrMalformed)
		}
	}
	if a.Digest != nil && len(a.Digest) != 32 {
		return fmt.Errorf("mirror: digest of %d bytes: %w", len(a.Digest), ErrMalformed)
	}
	return nil
}
