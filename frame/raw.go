package frame

import (
	"encoding/binary"
	"errors"
	"reflect"
)

// RawBytes is a CBOR byte string field that UnmarshalAliased leaves in
// the decoded input instead of copying: Content is a slice of the input.
// It encodes as the byte string Content, in its shortest head.
type RawBytes struct {
	Content []byte
	item    []byte // the whole item in the input, head included
}

// MarshalCBOR encodes r as a byte string, or as null when Content is
// nil, as a []byte field is encoded.
func (r RawBytes) MarshalCBOR() ([]byte, error) {
	if r.Content == nil {
		return []byte{0xf6}, nil
	}
	return append(byteStringHead(nil, len(r.Content)), r.Content...), nil
}

// UnmarshalCBOR keeps data, a definite-length byte string in the shortest
// form, as r.Content without copying it: data is a slice of the decoder's
// input (the cbor package passes the item as such), so r aliases it. A
// null leaves Content nil, as for a []byte.
func (r *RawBytes) UnmarshalCBOR(data []byte) error {
	if len(data) > 0 && data[0]>>5 != 2 {
		switch data[0] {
		case 0xf6: // null: a nil []byte, which encodes as null again
			*r = RawBytes{}
			return nil
		case 0xf7: // undefined: decoded as nil, encoded as null
			return errRawNotDeterministic
		}
		return errRawType
	}
	n, head, ok := parseByteStringHead(data)
	if !ok || len(data)-head != n || len(byteStringHead(nil, n)) != head {
		return errRawNotDeterministic
	}
	r.Content, r.item = data[head:len(data):len(data)], data
	return nil
}

// RawBytes's decode errors, which UnmarshalAliased reports as Unmarshal
// reports the same input decoded into a []byte: a null or a longer head
// than needed is not deterministic, and another type is the wrong type.
var (
	errRawNotDeterministic = errors.New("frame: not deterministic")
	errRawType             = errors.New("frame: wrong type")
)

// byteStringHead appends the shortest head of a byte string of n bytes.
func byteStringHead(dst []byte, n int) []byte {
	const major = 2 << 5
	switch u := uint64(n); {
	case u < 24:
		return append(dst, major|byte(u))
	case u <= 0xff:
		return append(dst, major|24, byte(u))
	case u <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, major|25), uint16(u))
	case u <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(dst, major|26), uint32(u))
	default:
		return binary.BigEndian.AppendUint64(append(dst, major|27), u)
	}
}

// parseByteStringHead reads the head of a definite-length byte string:
// its length and the head's size.
func parseByteStringHead(b []byte) (n, head int, ok bool) {
	if len(b) == 0 || b[0]>>5 != 2 {
		return 0, 0, false
	}
	var u uint64
	switch info := b[0] & 0x1f; {
	case info < 24:
		u, head = uint64(info), 1
	case info == 24 && len(b) >= 2:
		u, head = uint64(b[1]), 2
	case info == 25 && len(b) >= 3:
		u, head = uint64(binary.BigEndian.Uint16(b[1:])), 3
	case info == 26 && len(b) >= 5:
		u, head = uint64(binary.BigEndian.Uint32(b[1:])), 5
	case info == 27 && len(b) >= 9:
		u, head = binary.BigEndian.Uint64(b[1:]), 9
	default:
		return 0, 0, false
	}
	if u > uint64(len(b)-head) {
		return 0, 0, false
	}
	return int(u), head, true
}

// UnmarshalAliased is Unmarshal for a body with one large byte string,
// the RawBytes at field (a field of *v): the same rules and the same
// accepted encodings, but field.Content is left in data, not copied, and
// the re-encoding that checks determinism is made of the rest of the
// body only. A sealed definition's TOML is most of its plaintext: copying
// it and re-encoding it were two allocations of its size, about 0.2 s of
// a 16 MiB load on the development machine (docs/server.md, "Load
// time"). On success field.Content aliases data, so the caller keeps data
// and clears field.Content (not data) when done; on error nothing
// aliases data.
//
// The rest of the body is data with the field's item replaced by an
// empty byte string. Every item of a deterministic encoding is encoded on
// its own, so data is deterministic exactly when that rest is and the
// item's head is the shortest for its length (UnmarshalCBOR checks it).
func UnmarshalAliased(data []byte, v any, field *RawBytes) error {
	*field = RawBytes{}
	if err := strictDec.Unmarshal(data, v); err != nil {
		*field = RawBytes{}
		switch {
		case errors.Is(err, errRawNotDeterministic):
			return errNotDeterministic
		case errors.Is(err, errRawType):
			return errors.New("frame: malformed CBOR body: wrong type")
		}
		return malformedBody(err)
	}
	rest := data
	if field.item != nil {
		// field.item is data[start:end]: its capacity runs to cap(data).
		start := cap(data) - cap(field.item)
		end := start + len(field.item)
		if start < 0 || end > len(data) || &data[start] != &field.item[0] {
			*field = RawBytes{}
			return errors.New("frame: malformed CBOR body: the raw field is not in the body")
		}
		rest = make([]byte, 0, len(data)-len(field.item)+1)
		rest = append(append(append(rest, data[:start]...), 2<<5), data[end:]...)
	}
	// A fresh value of v's type for the rest, so v keeps the alias.
	fresh := reflect.New(reflect.TypeOf(v).Elem()).Interface()
	if err := Unmarshal(rest, fresh); err != nil {
		*field = RawBytes{}
		return err
	}
	return nil
}

// malformedBody is Unmarshal's error for a decode error.
func malformedBody(err error) error {
	return errors.New("frame: malformed CBOR body: " + cborErrorClass(err))
}
