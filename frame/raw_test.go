package frame

import (
	"bytes"
	"testing"
)

// aliasCopied and aliasRaw are one body, with its byte string field "b"
// decoded as a copy and as an alias.
type aliasCopied struct {
	H string `cbor:"h"`
	N uint64 `cbor:"n"`
	B []byte `cbor:"b"`
	O []byte `cbor:"o,omitempty"`
	S string `cbor:"s,omitempty"`
}

type aliasRaw struct {
	H string   `cbor:"h"`
	N uint64   `cbor:"n"`
	B RawBytes `cbor:"b"`
	O []byte   `cbor:"o,omitempty"`
	S string   `cbor:"s,omitempty"`
}

// FuzzUnmarshalAliased: UnmarshalAliased accepts exactly what Unmarshal
// accepts, with the same error, gives the same values, and leaves the raw
// field in the input, not copied.
func FuzzUnmarshalAliased(f *testing.F) {
	for _, n := range []int{0, 1, 23, 24, 255, 256, 65535, 65536} {
		b, err := Marshal(&aliasCopied{H: "x", N: 7, B: bytes.Repeat([]byte{'t'}, n), S: "name"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := Marshal(&aliasCopied{H: "x", N: 1, B: []byte("ab")})
	f.Add(bytes.Replace(b, []byte{0x42, 'a', 'b'}, []byte{0x58, 2, 'a', 'b'}, 1)) // a longer head
	f.Add(bytes.Replace(b, []byte{0x42, 'a', 'b'}, []byte{0xf6}, 1))              // null
	f.Add(bytes.Replace(b, []byte{0x42, 'a', 'b'}, []byte{0x62, 'a', 'b'}, 1))    // a text string
	f.Fuzz(func(t *testing.T, data []byte) {
		var c aliasCopied
		var r aliasRaw
		errC := Unmarshal(data, &c)
		errR := UnmarshalAliased(data, &r, &r.B)
		if (errC == nil) != (errR == nil) {
			t.Fatalf("Unmarshal: %v; UnmarshalAliased: %v", errC, errR)
		}
		if errC != nil {
			if errC.Error() != errR.Error() {
				t.Fatalf("errors differ: Unmarshal %q, UnmarshalAliased %q", errC, errR)
			}
			if r.B.Content != nil {
				t.Fatal("UnmarshalAliased left an alias after an error")
			}
			return
		}
		if c.H != r.H || c.N != r.N || !bytes.Equal(c.O, r.O) || c.S != r.S || !bytes.Equal(c.B, r.B.Content) {
			t.Fatalf("values differ: %+v and %+v", c, r)
		}
		if n := len(r.B.Content); n > 0 {
			// The content's last byte is a byte of data: an alias.
			last := &r.B.Content[n-1]
			in := false
			for i := range data {
				if &data[i] == last {
					in = true
					break
				}
			}
			if !in {
				t.Fatal("the raw field was copied, not left in the input")
			}
		}
	})
}

// TestRawBytesRoundTrip: a RawBytes encodes as the byte string it holds,
// in the shortest head, so Marshal of either struct gives the same bytes.
func TestRawBytesRoundTrip(t *testing.T) {
	for _, n := range []int{0, 23, 24, 255, 256, 65535, 65536} {
		content := bytes.Repeat([]byte{'v'}, n)
		a, err := Marshal(&aliasCopied{H: "h", N: 2, B: content})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Marshal(&aliasRaw{H: "h", N: 2, B: RawBytes{Content: content}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%d bytes: encodings differ", n)
		}
	}
}
