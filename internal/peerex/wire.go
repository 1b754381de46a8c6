package peerex

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"

	"github.com/dpaas/dpaas/internal/addrbook"
	"github.com/dpaas/dpaas/internal/frame"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("peerex: malformed message")

// Limits of what a peer may send.
const (
	// MaxRecords is the most signed records one message may carry: the
	// sender's own and those of the instances it passes on.
	MaxRecords = 32
	// MaxFrame bounds a frame: MaxRecords records and CBOR overhead.
	MaxFrame = MaxRecords*(addrbook.MaxRecordSize+16) + 64
)

// MaxWalk bounds the length of a forwarded join's random walk.
const MaxWalk = 8

// Message is what each side of an exchange sends: signed peer records,
// each a libp2p record envelope, the sender's own first.
//
// An ask with Join set comes from an instance with at most one connection
// to the DApp: the answerer also sends its record on random walks (see
// Walk), so that instances far from where it joined link to it too.
//
// A message with Walk > 0 is a step of such a walk, not an ask: its second
// and last record is the joining instance's. The receiver passes it on to
// a random instance it is connected to with Walk-1, or, at Walk 1, dials
// the joining instance. It is not answered.
type Message struct {
	Records [][]byte `cbor:"r"`
	Join    bool     `cbor:"j,omitempty"`
	Walk    uint8    `cbor:"w,omitempty"`
}

var (
	enc cbor.EncMode
	dec cbor.DecMode
)

func init() {
	var err error
	if enc, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	dec, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxArrayElements:  MaxRecords,
		MaxNestedLevels:   4,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Encode encodes m; it refuses a message a peer would refuse.
func Encode(m Message) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b, err := enc.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("peerex: encode: %w", err)
	}
	return b, nil
}

// Decode decodes a message and checks its bounds. It does not check the
// records' signatures: addrbook.ParseRecord does, one by one.
func Decode(b []byte) (Message, error) {
	if len(b) > MaxFrame {
		return Message{}, fmt.Errorf("peerex: message of %d bytes over the %d limit: %w", len(b), MaxFrame, ErrMalformed)
	}
	var m Message
	if err := dec.Unmarshal(b, &m); err != nil {
		return Message{}, fmt.Errorf("peerex: decode: %v: %w", err, ErrMalformed)
	}
	if err := m.check(); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (m Message) check() error {
	if len(m.Records) == 0 || len(m.Records) > MaxRecords {
		return fmt.Errorf("peerex: %d records, want 1 to %d: %w", len(m.Records), MaxRecords, ErrMalformed)
	}
	if m.Walk > MaxWalk || (m.Walk > 0 && (len(m.Records) != 2 || m.Join)) {
		return fmt.Errorf("peerex: walk %d with %d records, join %v: want at most %d, 2 records, no join: %w",
			m.Walk, len(m.Records), m.Join, MaxWalk, ErrMalformed)
	}
	for _, r := range m.Records {
		if len(r) == 0 || len(r) > addrbook.MaxRecordSize {
			return fmt.Errorf("peerex: record of %d bytes, want 1 to %d: %w", len(r), addrbook.MaxRecordSize, ErrMalformed)
		}
	}
	return nil
}

// WriteFrame writes b as one frame (internal/frame).
func WriteFrame(w io.Writer, b []byte) error {
	if err := frame.WriteFrame(w, b); err != nil {
		return fmt.Errorf("peerex: %w", err)
	}
	return nil
}

// ReadFrame reads one frame of at most MaxFrame bytes; a longer one is
// ErrMalformed.
func ReadFrame(r *bufio.Reader) ([]byte, error) {
	b, err := frame.ReadFrame(r, MaxFrame)
	if errors.Is(err, frame.ErrTooLarge) {
		return nil, fmt.Errorf("peerex: %w: %w", err, ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("peerex: read frame: %w", err)
	}
	return b, nil
}
