package shard

import (
	"encoding/binary"
	"errors"
	"slices"
)

// A client's values are stored as one blob, sealed as a whole, so a
// session costs one Badger read and one AEAD open, and a value can be
// neither changed, removed, added nor moved without failing it. The
// plaintext is
//
//	count(4 BE) { nameLen(2 BE) name valueLen(4 BE) value }*
//
// with names sorted and unique.

// blobSize returns the encoded size of values.
func blobSize(values map[string][]byte) int {
	n := 4
	for name, v := range values {
		n += 2 + len(name) + 4 + len(v)
	}
	return n
}

// appendBlob appends the encoding of values to dst, in name order.
func appendBlob(dst []byte, values map[string][]byte, names []string) ([]byte, []string) {
	names = names[:0]
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(names)))
	for _, name := range names {
		v := values[name]
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
		dst = append(dst, name...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	return dst, names
}

var errBlob = errors.New("malformed shard blob")

// parseBlob calls fn for each name and value of b, which alias b. want,
// if not nil, limits the calls to those names.
func parseBlob(b []byte, want map[string]bool, fn func(name []byte, value []byte)) error {
	if len(b) < 4 {
		return errBlob
	}
	count := binary.BigEndian.Uint32(b)
	b = b[4:]
	var prev []byte
	for i := uint32(0); i < count; i++ {
		if len(b) < 2 {
			return errBlob
		}
		nl := int(binary.BigEndian.Uint16(b))
		if nl == 0 || len(b) < 2+nl+4 {
			return errBlob
		}
		name := b[2 : 2+nl]
		vl := int(binary.BigEndian.Uint32(b[2+nl:]))
		b = b[2+nl+4:]
		if vl > len(b) || (i > 0 && string(prev) >= string(name)) {
			return errBlob
		}
		if want == nil || want[string(name)] {
			fn(name, b[:vl:vl])
		}
		prev, b = name, b[vl:]
	}
	if len(b) != 0 {
		return errBlob
	}
	return nil
}
