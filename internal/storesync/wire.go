// Package storesync is the wire format of the store's replication: the
// messages gossiped on the store's pubsub topic and the frames of the bulk
// catch-up stream protocol.
//
// # Gossip
//
// A Message carries either one delta block in full (the fast path: peers
// apply it on arrival) or an Announce of the sender's version vector and
// heads (sent periodically, so that a replica learns it is behind).
//
// # Catch-up stream
//
// The replica that is behind opens a stream and writes one Request frame
// holding its version vector: for every author, the highest sequence
// number it has applied. Because a replica applies deltas only after their
// parents, and an author's deltas form a chain, that vector says exactly
// what it holds. The serving replica answers with a Header frame (how many
// deltas follow) and then every delta block the requester lacks, one frame
// each, in the order the server applied them, which is a causal order. The
// requester applies them as they come; when the stream breaks it simply
// asks again with its new vector, so catch-up resumes where it stopped.
//
// A frame is an unsigned varint length followed by that many bytes.
// Every decoder here takes bytes from the network: it bounds sizes and
// returns an error wrapping ErrMalformed rather than panicking.
package storesync

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/dpaas/dpaas/internal/frame"
	"github.com/ethereum/go-ethereum/common"
	"github.com/fxamacker/cbor/v2"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("storesync: malformed message")

// Limits of what a peer may send.
const (
	MaxFrame    = 8<<20 + 1024
	MaxVersions = 1 << 16
	MaxHeads    = 1024
)

// Version is the highest sequence number applied from one author.
type Version struct {
	Author []byte `cbor:"a"`
	Seq    uint64 `cbor:"s"`
}

// Announce tells peers what the sender holds.
type Announce struct {
	Heads    [][]byte  `cbor:"h"`
	Versions []Version `cbor:"v"`
}

// Message is one gossip message: a delta block or an announcement.
type Message struct {
	Delta    []byte    `cbor:"d,omitempty"`
	Announce *Announce `cbor:"a,omitempty"`
}

// Request opens a catch-up: the requester's version vector, and how long
// ago, in milliseconds, the peer must have processed a delta to send it
// (0: everything it holds). A replica comparing versions with a neighbour
// asks only for what gossip should have brought by then.
type Request struct {
	Versions []Version `cbor:"v"`
	Settled  uint32    `cbor:"s,omitempty"`
}

// Header precedes the delta frames of a catch-up answer.
type Header struct {
	Total uint64 `cbor:"t"`
}

var (
	enc cbor.EncMode
	dec cbor.DecMode
)

func init() {
	var err error
	enc, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	dec, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxArrayElements:  MaxVersions,
		MaxNestedLevels:   8,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Encode encodes a Message, Request or Header.
func Encode(v any) ([]byte, error) {
	b, err := enc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("storesync: encode: %w", err)
	}
	return b, nil
}

func checkVersions(vs []Version) error {
	if len(vs) > MaxVersions {
		return fmt.Errorf("storesync: %d versions: %w", len(vs), ErrMalformed)
	}
	for _, v := range vs {
		if len(v.Author) != common.AddressLength {
			return fmt.Errorf("storesync: version author is %d bytes: %w", len(v.Author), ErrMalformed)
		}
	}
	return nil
}

// DecodeMessage decodes a gossip message.
func DecodeMessage(b []byte) (*Message, error) {
	var m Message
	if err := dec.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("storesync: decode message: %v: %w", err, ErrMalformed)
	}
	if (m.Delta == nil) == (m.Announce == nil) {
		return nil, fmt.Errorf("storesync: message must hold a delta or an announcement: %w", ErrMalformed)
	}
	if a := m.Announce; a != nil {
		if len(a.Heads) > MaxHeads {
			return nil, fmt.Errorf("storesync: %d heads: %w", len(a.Heads), ErrMalformed)
		}
		if err := checkVersions(a.Versions); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// DecodeRequest decodes a catch-up request.
func DecodeRequest(b []byte) (*Request, error) {
	var r Request
	if err := dec.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("storesync: decode request: %v: %w", err, ErrMalformed)
	}
	return &r, checkVersions(r.Versions)
}

// DecodeHeader decodes a catch-up header.
func DecodeHeader(b []byte) (*Header, error) {
	var h Header
	if err := dec.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("storesync: decode header: %v: %w", err, ErrMalformed)
	}
	return &h, nil
}

// WriteFrame writes one length-prefixed frame (internal/frame).
func WriteFrame(w io.Writer, b []byte) error {
	if err := frame.WriteFrame(w, b); err != nil {
		return fmt.Errorf("storesync: %w", err)
	}
	return nil
}

// ReadFrame reads one frame of at most MaxFrame bytes; a longer one is
// ErrMalformed. It returns io.EOF only when the stream ends cleanly
// between frames.
func ReadFrame(r *bufio.Reader) ([]byte, error) {
	b, err := frame.ReadFrame(r, MaxFrame)
	switch {
	case err == io.EOF:
		return nil, io.EOF
	case errors.Is(err, frame.ErrTooLarge):
		return nil, fmt.Errorf("storesync: %w: %w", err, ErrMalformed)
	case err != nil:
		return nil, fmt.Errorf("storesync: %w", err)
	}
	return b, nil
}
