package frame

import (
	"bytes"
	"errors"

	"github.com/fxamacker/cbor/v2"
)

// Decoding limits for the strict CBOR mode. They bound what a sealed body,
// once opened, can make the decoder build.
const (
	maxNesting     = 4     // bodies are flat maps; values nest one level more
	maxArrayItems  = 512   // names in a Get
	maxMapPairs    = 16    // fields of a body (the library's minimum)
	maxShardValues = 65536 // secret names in one shard
)

var (
	strictDec cbor.DecMode           // message bodies
	shardDec  cbor.DecMode           // a whole shard: more map pairs, same rules
	detEnc    cbor.UserBufferEncMode // RFC 8949 core deterministic encoding
)

func init() {
	opts := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		MaxNestedLevels:   maxNesting,
		MaxArrayElements:  maxArrayItems,
		MaxMapPairs:       maxMapPairs,
		UTF8:              cbor.UTF8RejectInvalid,
		NaN:               cbor.NaNDecodeForbidden,
		Inf:               cbor.InfDecodeForbidden,
		BignumTag:         cbor.BignumTagForbidden,
		BinaryUnmarshaler: cbor.BinaryUnmarshalerNone,
		IntDec:            cbor.IntDecConvertNone,
	}
	var err error
	if strictDec, err = opts.DecMode(); err != nil {
		panic("frame: strict CBOR decode options: " + err.Error())
	}
	opts.MaxMapPairs = maxShardValues
	if shardDec, err = opts.DecMode(); err != nil {
		panic("frame: shard CBOR decode options: " + err.Error())
	}
	eopts := cbor.CoreDetEncOptions()
	eopts.NaNConvert = cbor.NaNConvertReject
	eopts.InfConvert = cbor.InfConvertReject
	if detEnc, err = eopts.UserBufferEncMode(); err != nil {
		panic("frame: deterministic CBOR encode options: " + err.Error())
	}
}

// Unmarshal decodes data into v with the strict mode: no duplicate map
// keys, no indefinite lengths, no tags, no unknown fields, no trailing
// bytes, small nesting, array and map limits. It then re-encodes v and
// requires the exact input bytes back, because the decoder forgives a null
// or missing field (leaving the zero value) and non-shortest forms: every
// body has exactly one accepted encoding (docs/protocol.md §3.6). The error
// never quotes data.
func Unmarshal(data []byte, v any) error {
	if err := strictDec.Unmarshal(data, v); err != nil {
		return malformedBody(err)
	}
	// The bodies decoded here hold no map (a shard travels as bytes), so
	// the encoding needs no sorting room: data's own size.
	enc, err := marshal(v, len(data)+64)
	// The re-encoding is a copy of data, which may hold secrets (a
	// sealed definition's TOML, a shard): clear it once compared.
	defer clear(enc)
	if err != nil || !bytes.Equal(enc, data) {
		return errNotDeterministic
	}
	return nil
}

var errNotDeterministic = errors.New("frame: malformed CBOR body: not deterministic, or a field is null or missing")

// Marshal encodes v with RFC 8949 core deterministic encoding, so equal
// values give equal bytes and hashes and vectors are stable. A
// *HelloPayload or *GetPayload is encoded by hand, to the same bytes
// (append.go).
func Marshal(v any) ([]byte, error) {
	if a, ok := v.(cborAppender); ok {
		return a.appendCBOR(nil), nil
	}
	return marshal(v, 256)
}

// marshal encodes v with detEnc into a buffer of its own, which starts at
// hint bytes. detEnc.Marshal encodes into a buffer from the cbor
// package's pool and returns a copy, so the encoding (a shard's secret
// values, a definition's TOML) stayed behind in the pooled buffer for its
// next user; and a map is sorted in the buffer's spare capacity, which
// then holds a second copy of its pairs. Here nothing is pooled and the
// spare capacity is cleared (TestMarshalLeavesNoCopy). A buffer that
// has to grow leaves its smaller copy to the collector uncleared, so hint
// should cover the encoding, twice over when it holds a map.
func marshal(v any, hint int) ([]byte, error) {
	return AppendMarshal(make([]byte, 0, hint), v)
}

// AppendMarshal appends v's deterministic encoding (Marshal's bytes) to
// dst, in dst's spare capacity when it is large enough, and clears the
// spare capacity left after it (see marshal). On an error dst's contents
// are returned and what was appended is cleared.
func AppendMarshal(dst []byte, v any) ([]byte, error) {
	b := bytes.NewBuffer(dst)
	err := detEnc.MarshalToBuffer(v, b)
	out := b.Bytes()
	clear(out[len(out):cap(out)])
	if err != nil {
		clear(out[min(len(dst), len(out)):])
		return out[:len(dst)], err
	}
	return out, nil
}

// cborErrorClass names the kind of a decode error without its text, which
// may quote bytes of the (possibly secret) input.
func cborErrorClass(err error) string {
	switch err.(type) {
	case *cbor.DupMapKeyError:
		return "duplicate map key"
	case *cbor.UnknownFieldError:
		return "unknown field"
	case *cbor.UnmarshalTypeError:
		return "wrong type"
	case *cbor.ExtraneousDataError:
		return "trailing bytes"
	case *cbor.MaxNestedLevelError:
		return "nesting too deep"
	case *cbor.MaxArrayElementsError:
		return "array too long"
	case *cbor.MaxMapPairsError:
		return "map too large"
	case *cbor.IndefiniteLengthError:
		return "indefinite length"
	case *cbor.TagsMdError:
		return "tag not allowed"
	case *cbor.SyntaxError:
		return "syntax error"
	case *cbor.SemanticError:
		return "semantic error"
	}
	return "invalid encoding"
}
