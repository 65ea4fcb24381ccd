package frame

import (
	"fmt"
	"math"
	"strconv"

	"github.com/fxamacker/cbor/v2"
)

// Kind is the type of a secret value. The TOML definition's value kinds
// are kept end to end (docs/protocol.md §5).
type Kind uint8

// Value kinds.
const (
	KindInvalid       Kind = iota
	KindString             // UTF-8 text
	KindInt                // 64-bit signed integer
	KindFloat              // 64-bit float, including inf and nan
	KindBool               // true or false
	KindDateTime           // offset date-time, RFC 3339 text
	KindLocalDateTime      // date-time without an offset: never given a zone
	KindLocalDate          // date without a time or zone
	KindLocalTime          // time of day without a date or zone
)

var kindNames = [...]string{"invalid", "string", "int", "float", "bool",
	"datetime", "datetime-local", "date-local", "time-local"}

// String returns the kind's name as used on the wire and in JSON output.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

func kindByName(s string) Kind {
	for i, n := range kindNames {
		if n == s && i > 0 {
			return Kind(i)
		}
	}
	return KindInvalid
}

// Value is one typed secret value. Text holds a string's bytes or a date
// or time kind's canonical text; it is a byte slice so that secrets stay
// out of immutable strings until the output edge.
type Value struct {
	Kind  Kind
	Text  []byte
	Int   int64
	Float float64
	Bool  bool
}

// taggedValue is the wire form of the kinds CBOR has no plain form for
// without tags: the four date/time kinds and non-finite floats.
type taggedValue struct {
	T string `cbor:"t"`
	V string `cbor:"v"`
}

// MarshalCBOR encodes a string, int, finite float or bool as the plain
// CBOR item, and any other kind as the map {t: kind, v: text}.
func (v Value) MarshalCBOR() ([]byte, error) {
	switch v.Kind {
	case KindString:
		return v.AppendCBOR(make([]byte, 0, 9+len(v.Text)))
	case KindInt:
		return marshal(v.Int, 16)
	case KindFloat:
		if math.IsInf(v.Float, 0) || math.IsNaN(v.Float) {
			return marshal(taggedValue{T: "float", V: formatFloat(v.Float)}, 64)
		}
		return marshal(v.Float, 16)
	case KindBool:
		return marshal(v.Bool, 16)
	case KindDateTime, KindLocalDateTime, KindLocalDate, KindLocalTime:
		return marshal(taggedValue{T: v.Kind.String(), V: string(v.Text)}, 2*(64+len(v.Text)))
	}
	return nil, fmt.Errorf("frame: cannot encode a value of kind %s", v.Kind)
}

// AppendCBOR appends MarshalCBOR's bytes to b. A string, the common kind,
// is written directly from Text: MarshalCBOR's path copies it into a Go
// string, which nobody can clear, and allocates for every value, which
// was most of a large definition's encoding at load
// (BenchmarkAppendValue).
func (v Value) AppendCBOR(b []byte) ([]byte, error) {
	if v.Kind == KindString {
		return append(appendHead(b, majorText, uint64(len(v.Text))), v.Text...), nil
	}
	enc, err := v.MarshalCBOR()
	if err != nil {
		return b, err
	}
	return append(b, enc...), nil
}

// UnmarshalCBOR decodes one value, dispatching on the CBOR major type.
func (v *Value) UnmarshalCBOR(data []byte) error {
	if len(data) == 0 {
		return invalid("empty value")
	}
	var nv Value
	switch major := data[0] >> 5; major {
	case 0, 1:
		nv.Kind = KindInt
		if err := strictDec.Unmarshal(data, &nv.Int); err != nil {
			return invalid("integer value out of range")
		}
	case 3:
		var s string
		if err := strictDec.Unmarshal(data, &s); err != nil {
			return invalid("bad text value")
		}
		nv.Kind, nv.Text = KindString, []byte(s)
	case 5:
		var tv taggedValue
		if err := strictDec.Unmarshal(data, &tv); err != nil {
			return invalid("bad typed value")
		}
		if err := nv.fromTagged(tv); err != nil {
			return err
		}
	case 7:
		// Only false, true and the three float widths are values: null,
		// undefined and the other simple values would otherwise decode as
		// a float 0 (or their number) without an error.
		switch data[0] {
		case 0xf4, 0xf5:
			nv.Kind, nv.Bool = KindBool, data[0] == 0xf5
		case 0xf9, 0xfa, 0xfb:
			nv.Kind = KindFloat
			if err := strictDec.Unmarshal(data, &nv.Float); err != nil {
				return invalid("bad float value")
			}
		default:
			return invalid("value is a CBOR simple value, not a bool or float")
		}
	default:
		return invalid("value has CBOR major type %d", major)
	}
	*v = nv
	return nil
}

func (v *Value) fromTagged(tv taggedValue) error {
	if tv.T == "float" {
		f, ok := parseSpecialFloat(tv.V)
		if !ok {
			return invalid("tagged float is not inf, -inf or nan")
		}
		v.Kind, v.Float = KindFloat, f
		return nil
	}
	k := kindByName(tv.T)
	if k < KindDateTime || tv.V == "" {
		return invalid("unknown or empty typed value")
	}
	v.Kind, v.Text = k, []byte(tv.V)
	return nil
}

func parseSpecialFloat(s string) (float64, bool) {
	switch s {
	case "inf":
		return math.Inf(1), true
	case "-inf":
		return math.Inf(-1), true
	case "nan":
		return math.NaN(), true
	}
	return 0, false
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// AppendText appends the value's plain text form to b: a string's bytes
// exactly, an integer in decimal, a float in the shortest form that reads
// back exactly (inf, -inf, nan), true or false, or a date/time's text.
func (v Value) AppendText(b []byte) []byte {
	switch v.Kind {
	case KindInt:
		return strconv.AppendInt(b, v.Int, 10)
	case KindFloat:
		return append(b, formatFloat(v.Float)...)
	case KindBool:
		return strconv.AppendBool(b, v.Bool)
	}
	return append(b, v.Text...)
}

// Shard is a client's set of named values.
type Shard map[string]Value

// EncodeShard encodes s as a deterministic CBOR map, checking names.
func EncodeShard(s Shard) ([]byte, error) {
	size := 9
	for n, v := range s {
		if err := ValidName(n); err != nil {
			return nil, err
		}
		size += 9 + len(n) + 64 + len(v.Text)
	}
	return marshal(s, 2*size)
}

// DecodeShard decodes a shard with the strict rules and checks its names.
// The caller has already checked the size against MaxShardBytes.
func DecodeShard(data []byte) (Shard, error) {
	var s Shard
	if err := shardDec.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("frame: malformed shard: %s", cborErrorClass(err))
	}
	for n := range s {
		if err := ValidName(n); err != nil {
			return nil, err
		}
	}
	if s == nil {
		s = Shard{}
	}
	return s, nil
}

// AssembleShard builds the encoded shard from values that are each
// already encoded (as a store keeps them), in deterministic order, without
// decoding them.
func AssembleShard(values map[string][]byte) ([]byte, error) {
	m := make(map[string]cbor.RawMessage, len(values))
	size := 9
	for n, raw := range values {
		if err := ValidName(n); err != nil {
			return nil, err
		}
		m[n] = raw
		size += 9 + len(n) + len(raw)
	}
	return marshal(m, 2*size)
}
