package frame

import (
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the size of a frame header: a u16 big-endian body length
// followed by a u8 type.
const HeaderSize = 3

// MaxBody is the largest body any frame can carry (the u16 length field).
const MaxBody = 0xffff

// Type is a coffer message type, the third byte of a frame header.
type Type uint8

// The seven message types of coffer/2 (docs/protocol.md §2).
const (
	TypeHello       Type = 0x00
	TypeLink        Type = 0x01
	TypeGet         Type = 0x02
	TypeOkGet       Type = 0x03
	TypeBye         Type = 0x99
	TypeKeyNotFound Type = 0xaa
	TypeError       Type = 0xff
)

// Per-type body limits. Each bounds what a peer can make the other side
// allocate before anything has been authenticated.
const (
	maxHelloBytes       = 1536 // fixed outer part with the 1,184-byte ML-KEM key, plus a ~172-byte box (1,445 in all)
	maxLinkBytes        = 1280 // nonce plus a box holding the 1,088-byte ML-KEM ciphertext (1,216 in all)
	maxGetBytes         = 4096 // a box holding the transcript hash and up to a few hundred names
	maxOkGetBytes       = MaxBody
	maxByeBytes         = 64  // a box holding {h:"bye"}
	maxKeyNotFoundBytes = 160 // nonce plus a box holding {h, th}
	maxErrorBytes       = 64  // a plain {code} or a box holding {h, code}
)

// String returns the message type's name, or its hex value when unknown.
func (t Type) String() string {
	switch t {
	case TypeHello:
		return "Hello"
	case TypeLink:
		return "Link"
	case TypeGet:
		return "Get"
	case TypeOkGet:
		return "OkGet"
	case TypeBye:
		return "Bye"
	case TypeKeyNotFound:
		return "KeyNotFound"
	case TypeError:
		return "Error"
	}
	return fmt.Sprintf("0x%02x", uint8(t))
}

// Known reports whether t is one of the seven coffer message types.
func (t Type) Known() bool {
	_, ok := t.Limit()
	return ok
}

// Limit returns the largest body a frame of type t may carry, and false
// when t is not a coffer type.
func (t Type) Limit() (int, bool) {
	switch t {
	case TypeHello:
		return maxHelloBytes, true
	case TypeLink:
		return maxLinkBytes, true
	case TypeGet:
		return maxGetBytes, true
	case TypeOkGet:
		return maxOkGetBytes, true
	case TypeBye:
		return maxByeBytes, true
	case TypeKeyNotFound:
		return maxKeyNotFoundBytes, true
	case TypeError:
		return maxErrorBytes, true
	}
	return 0, false
}

// Errors returned by Read. Callers end the connection on any of them.
var (
	ErrUnknownType = errors.New("frame: unknown message type")
	ErrTooLong     = errors.New("frame: body length exceeds the limit for its type")
	ErrUnexpected  = errors.New("frame: unexpected message type")
)

// Frame is one frame exactly as it was read or will be written. Raw holds
// the header and the body contiguously, because the transcript hashes the
// frame bytes as received, never a re-encoding.
type Frame struct {
	Type Type
	Raw  []byte // header followed by body
}

// Body returns the frame's body, a sub-slice of Raw.
func (f Frame) Body() []byte { return f.Raw[HeaderSize:] }

// Read reads exactly one frame from r. It reads the 3-byte header, checks
// the type against allowed (when allowed is non-empty) and the length
// against that type's limit, and only then allocates the body buffer and
// reads it with io.ReadFull. An EOF inside a frame is io.ErrUnexpectedEOF.
func Read(r io.Reader, allowed ...Type) (Frame, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	t := Type(hdr[2])
	limit, ok := t.Limit()
	if !ok {
		return Frame{}, fmt.Errorf("%w %s", ErrUnknownType, t)
	}
	if len(allowed) > 0 && !typeIn(t, allowed) {
		return Frame{}, fmt.Errorf("%w %s", ErrUnexpected, t)
	}
	n := int(hdr[0])<<8 | int(hdr[1])
	if n > limit {
		return Frame{}, fmt.Errorf("%w: %d bytes for %s, limit %d", ErrTooLong, n, t, limit)
	}
	raw := make([]byte, HeaderSize+n)
	copy(raw, hdr[:])
	if _, err := io.ReadFull(r, raw[HeaderSize:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return Frame{Type: t, Raw: raw}, nil
}

func typeIn(t Type, set []Type) bool {
	for _, a := range set {
		if a == t {
			return true
		}
	}
	return false
}

// New builds a frame of type t around body. It fails when body is longer
// than the type's limit, so a sender can never emit a frame the receiver
// must refuse.
func New(t Type, body []byte) (Frame, error) {
	limit, ok := t.Limit()
	if !ok {
		return Frame{}, fmt.Errorf("%w %s", ErrUnknownType, t)
	}
	if len(body) > limit {
		return Frame{}, fmt.Errorf("%w: %d bytes for %s, limit %d", ErrTooLong, len(body), t, limit)
	}
	raw := make([]byte, HeaderSize+len(body))
	raw[0] = byte(len(body) >> 8)
	raw[1] = byte(len(body))
	raw[2] = byte(t)
	copy(raw[HeaderSize:], body)
	return Frame{Type: t, Raw: raw}, nil
}

// AppendHeader appends the header of a frame of type t to b with a zero
// length, so that a sender can append the body in place (a box sealed
// straight into the frame buffer) and then call Finish.
func AppendHeader(b []byte, t Type) []byte {
	return append(b, 0, 0, byte(t))
}

// Finish completes the frame whose header AppendHeader wrote at
// b[start:]: it writes the length of everything after that header into
// it. It fails, as New does, when the type is unknown or the body is
// longer than the type's limit, so a sender can never emit a frame the
// receiver must refuse.
func Finish(b []byte, start int) ([]byte, error) {
	if len(b) < start+HeaderSize {
		return nil, fmt.Errorf("frame: finishing a frame with no header")
	}
	t := Type(b[start+2])
	limit, ok := t.Limit()
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownType, t)
	}
	n := len(b) - start - HeaderSize
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes for %s, limit %d", ErrTooLong, n, t, limit)
	}
	b[start] = byte(n >> 8)
	b[start+1] = byte(n)
	return b, nil
}
