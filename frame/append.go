package frame

import "slices"

// Hand-written deterministic encoders for the two bodies a client seals
// on every fetch. The reflection encoder builds an encoder for each type
// on its first use, which is most of what encoding costs a process that
// encodes each type once (docs/benchmarks.md, "Cold start"). The output
// is byte for byte what the deterministic mode gives (FuzzAppendCBOR
// compares the two): shortest heads, map keys in bytewise order of their
// encoding, a nil byte slice as null, an omitted empty names list.

// cborAppender is a body with a hand-written encoder; Marshal uses it.
type cborAppender interface {
	appendCBOR(b []byte) []byte
}

// CBOR major types.
const (
	majorUint  = 0 << 5
	majorBytes = 2 << 5
	majorText  = 3 << 5
	majorArray = 4 << 5
	majorMap   = 5 << 5
	cborNull   = 0xf6
)

// appendHead appends the shortest head of major type major with
// argument n.
func appendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= 0xff:
		return append(b, major|24, byte(n))
	case n <= 0xffff:
		return append(b, major|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, major|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, major|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, majorText, uint64(len(s))), s...)
}

// appendBytes appends p as a byte string, or null when p is nil.
func appendBytes(b, p []byte) []byte {
	if p == nil {
		return append(b, cborNull)
	}
	return append(appendHead(b, majorBytes, uint64(len(p))), p...)
}

// appendCBOR encodes {c, e, h, k, s, v}, the keys in that order.
func (p *HelloPayload) appendCBOR(b []byte) []byte {
	b = slices.Grow(b, 64+len(p.H)+len(p.C)+len(p.E)+len(p.K)+len(p.S))
	b = appendHead(b, majorMap, 6)
	b = appendBytes(appendText(b, "c"), p.C)
	b = appendBytes(appendText(b, "e"), p.E)
	b = appendText(appendText(b, "h"), p.H)
	b = appendBytes(appendText(b, "k"), p.K)
	b = appendBytes(appendText(b, "s"), p.S)
	return appendHead(appendText(b, "v"), majorUint, p.V)
}

// appendCBOR encodes {h, th, names}, names omitted when empty.
func (p *GetPayload) appendCBOR(b []byte) []byte {
	n, size := uint64(2), 32+len(p.H)+len(p.TH)
	if len(p.Names) > 0 {
		n = 3
	}
	for _, s := range p.Names {
		size += 9 + len(s)
	}
	b = slices.Grow(b, size)
	b = appendHead(b, majorMap, n)
	b = appendText(appendText(b, "h"), p.H)
	b = appendBytes(appendText(b, "th"), p.TH)
	if len(p.Names) == 0 {
		return b
	}
	b = appendHead(appendText(b, "names"), majorArray, uint64(len(p.Names)))
	for _, s := range p.Names {
		b = appendText(b, s)
	}
	return b
}
