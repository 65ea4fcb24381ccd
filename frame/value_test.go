package frame_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/frame"
)

func sameValue(a, b frame.Value) bool {
	if a.Kind != b.Kind || !bytes.Equal(a.Text, b.Text) || a.Int != b.Int || a.Bool != b.Bool {
		return false
	}
	if math.IsNaN(a.Float) {
		return math.IsNaN(b.Float)
	}
	return math.Float64bits(a.Float) == math.Float64bits(b.Float)
}

func TestValueRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    frame.Value
		want []byte // deterministic encoding (docs/protocol.md §5)
		text string // AppendText
	}{
		{"string", frame.Value{Kind: frame.KindString, Text: []byte("hunter2")}, tstr("hunter2"), "hunter2"},
		{"string-empty", frame.Value{Kind: frame.KindString, Text: []byte{}}, tstr(""), ""},
		{"string-utf8", frame.Value{Kind: frame.KindString, Text: []byte("π≈3.14\n")}, tstr("π≈3.14\n"), "π≈3.14\n"},
		{"int-0", frame.Value{Kind: frame.KindInt}, []byte{0x00}, "0"},
		{"int-neg", frame.Value{Kind: frame.KindInt, Int: -1}, []byte{0x20}, "-1"},
		{"int-max", frame.Value{Kind: frame.KindInt, Int: math.MaxInt64}, head(0, math.MaxInt64), "9223372036854775807"},
		{"int-min", frame.Value{Kind: frame.KindInt, Int: math.MinInt64}, head(1, math.MaxInt64), "-9223372036854775808"},
		{"float-1", frame.Value{Kind: frame.KindFloat, Float: 1}, []byte{0xf9, 0x3c, 0x00}, "1"},
		{"float-neg-zero", frame.Value{Kind: frame.KindFloat, Float: math.Copysign(0, -1)}, []byte{0xf9, 0x80, 0x00}, "-0"},
		{"float-pi", frame.Value{Kind: frame.KindFloat, Float: math.Pi}, []byte{0xfb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}, "3.141592653589793"},
		{"float-f32", frame.Value{Kind: frame.KindFloat, Float: 0.15625}, []byte{0xf9, 0x31, 0x00}, "0.15625"},
		{"float-inf", frame.Value{Kind: frame.KindFloat, Float: math.Inf(1)}, mapOf(tstr("t"), tstr("float"), tstr("v"), tstr("inf")), "inf"},
		{"float-neg-inf", frame.Value{Kind: frame.KindFloat, Float: math.Inf(-1)}, mapOf(tstr("t"), tstr("float"), tstr("v"), tstr("-inf")), "-inf"},
		{"float-nan", frame.Value{Kind: frame.KindFloat, Float: math.NaN()}, mapOf(tstr("t"), tstr("float"), tstr("v"), tstr("nan")), "nan"},
		{"bool-true", frame.Value{Kind: frame.KindBool, Bool: true}, []byte{0xf5}, "true"},
		{"bool-false", frame.Value{Kind: frame.KindBool}, []byte{0xf4}, "false"},
		{"datetime", frame.Value{Kind: frame.KindDateTime, Text: []byte("1979-05-27T07:32:00Z")}, mapOf(tstr("t"), tstr("datetime"), tstr("v"), tstr("1979-05-27T07:32:00Z")), "1979-05-27T07:32:00Z"},
		{"datetime-local", frame.Value{Kind: frame.KindLocalDateTime, Text: []byte("1979-05-27T07:32:00")}, mapOf(tstr("t"), tstr("datetime-local"), tstr("v"), tstr("1979-05-27T07:32:00")), "1979-05-27T07:32:00"},
		{"date-local", frame.Value{Kind: frame.KindLocalDate, Text: []byte("1979-05-27")}, mapOf(tstr("t"), tstr("date-local"), tstr("v"), tstr("1979-05-27")), "1979-05-27"},
		{"time-local", frame.Value{Kind: frame.KindLocalTime, Text: []byte("07:32:00.999")}, mapOf(tstr("t"), tstr("time-local"), tstr("v"), tstr("07:32:00.999")), "07:32:00.999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := frame.Marshal(tc.v)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(enc, tc.want) {
				t.Errorf("encoding: got %x, want %x", enc, tc.want)
			}
			var got frame.Value
			if err := got.UnmarshalCBOR(enc); err != nil {
				t.Fatalf("UnmarshalCBOR: %v", err)
			}
			if !sameValue(got, tc.v) {
				t.Errorf("got %+v, want %+v", got, tc.v)
			}
			if s := string(got.AppendText(nil)); s != tc.text {
				t.Errorf("AppendText: got %q, want %q", s, tc.text)
			}
		})
	}
}

func TestValueRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"uint64-over-int64", head(0, math.MaxInt64+1)},
		{"uint64-max", head(0, math.MaxUint64)},
		{"neg-over-int64", head(1, math.MaxInt64+1)},
		{"bytes", bstr([]byte("x"))},
		{"array", cat(head(4, 1), uint_(1))},
		{"tag", cat([]byte{0xc1}, uint_(1))},
		{"bignum", cat([]byte{0xc2}, bstr(fill(9, 1)))},
		{"null", []byte{0xf6}},
		{"undefined", []byte{0xf7}},
		{"simple-0", []byte{0xe0}},
		{"simple-32", []byte{0xf8, 0x20}},
		{"half-nan", []byte{0xf9, 0x7e, 0x00}},
		{"half-inf", []byte{0xf9, 0x7c, 0x00}},
		{"double-neg-inf", []byte{0xfb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0}},
		{"break", []byte{0xff}},
		{"invalid-utf8", []byte{0x62, 0xc3, 0x28}},
		{"indefinite-text", cat([]byte{0x7f}, tstr("a"), []byte{0xff})},
		{"tagged-unknown-kind", mapOf(tstr("t"), tstr("duration"), tstr("v"), tstr("1s"))},
		{"tagged-canary-kind", mapOf(tstr("t"), tstr(canary), tstr("v"), tstr("1s"))},
		{"tagged-string-kind", mapOf(tstr("t"), tstr("string"), tstr("v"), tstr("x"))},
		{"tagged-invalid-kind", mapOf(tstr("t"), tstr("invalid"), tstr("v"), tstr("x"))},
		{"tagged-empty-date", mapOf(tstr("t"), tstr("date-local"), tstr("v"), tstr(""))},
		{"tagged-missing-v", mapOf(tstr("t"), tstr("date-local"))},
		{"tagged-missing-t", mapOf(tstr("v"), tstr("1979-05-27"))},
		{"tagged-float-1", mapOf(tstr("t"), tstr("float"), tstr("v"), tstr("1"))},
		{"tagged-float-Inf", mapOf(tstr("t"), tstr("float"), tstr("v"), tstr("Inf"))},
		{"tagged-extra-field", mapOf(tstr("t"), tstr("float"), tstr("v"), tstr("inf"), tstr("x"), uint_(0))},
		{"tagged-upper-T", mapOf(tstr("T"), tstr("float"), tstr("v"), tstr("inf"))},
		{"tagged-dup", cat(head(5, 2), tstr("t"), tstr("float"), tstr("t"), tstr("float"))},
		{"trailing", []byte{0x01, 0x01}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v frame.Value
			err := v.UnmarshalCBOR(tc.in)
			if err == nil {
				t.Fatalf("got %+v, nil; want an error", v)
			}
			if v.Kind != frame.KindInvalid {
				t.Errorf("value half-filled on error: %+v", v)
			}
			checkClean(t, err)
		})
	}
}

func TestValueMarshalInvalidKind(t *testing.T) {
	for _, k := range []frame.Kind{frame.KindInvalid, 9, 200} {
		if _, err := frame.Marshal(frame.Value{Kind: k}); err == nil {
			t.Errorf("kind %s: got nil error, want one", k)
		}
	}
}

func TestKindString(t *testing.T) {
	want := []string{"invalid", "string", "int", "float", "bool", "datetime", "datetime-local", "date-local", "time-local"}
	for i, w := range want {
		if got := frame.Kind(i).String(); got != w {
			t.Errorf("Kind(%d): got %q, want %q", i, got, w)
		}
	}
	if got := frame.Kind(42).String(); got != "kind(42)" {
		t.Errorf("Kind(42): got %q, want %q", got, "kind(42)")
	}
}

func sampleShard() frame.Shard {
	return frame.Shard{
		"db.password": {Kind: frame.KindString, Text: []byte("s3cret")},
		"port":        {Kind: frame.KindInt, Int: 5432},
		"ratio":       {Kind: frame.KindFloat, Float: math.Inf(-1)},
		"debug":       {Kind: frame.KindBool, Bool: true},
		"since":       {Kind: frame.KindLocalDate, Text: []byte("2026-01-02")},
	}
}

func TestShardRoundTrip(t *testing.T) {
	s := sampleShard()
	enc, err := frame.EncodeShard(s)
	if err != nil {
		t.Fatal(err)
	}
	raw := map[string][]byte{}
	for n, v := range s {
		b, err := frame.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		raw[n] = b
	}
	asm, err := frame.AssembleShard(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(asm, enc) {
		t.Errorf("AssembleShard: got %x, want %x (EncodeShard)", asm, enc)
	}
	got, err := frame.DecodeShard(enc)
	if err != nil {
		t.Fatalf("DecodeShard: %v", err)
	}
	if len(got) != len(s) {
		t.Fatalf("got %d values, want %d", len(got), len(s))
	}
	for n, v := range s {
		if !sameValue(got[n], v) {
			t.Errorf("%s: got %+v, want %+v", n, got[n], v)
		}
	}
	enc2, _ := frame.EncodeShard(got)
	if !bytes.Equal(enc, enc2) {
		t.Errorf("re-encoding: got %x, want %x", enc2, enc)
	}
	// Keys in core deterministic order: shorter first, then bytewise.
	if !bytes.HasPrefix(enc, cat(head(5, 5), tstr("port"))) {
		t.Errorf("got %x, want the map to start with the shortest key", enc[:8])
	}
	empty, err := frame.DecodeShard([]byte{0xa0})
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("empty shard: got %v, %v, want an empty non-nil shard", empty, err)
	}
}

func TestShardRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"bad-name", mapOf(tstr(".x"), uint_(1))},
		{"long-name", mapOf(tstr(strings.Repeat("a", 129)), uint_(1))},
		{"int-key", mapOf(uint_(1), uint_(1))},
		{"dup-key", cat(head(5, 2), tstr("a"), uint_(1), tstr("a"), uint_(2))},
		{"indefinite", cat([]byte{0xbf}, tstr("a"), uint_(1), []byte{0xff})},
		{"null-value", mapOf(tstr("a"), []byte{0xf6})},
		{"bytes-value", mapOf(tstr("a"), bstr(nil))},
		{"nested-map", mapOf(tstr("a"), mapOf(tstr("t"), mapOf(tstr("x"), uint_(1))))},
		{"huge-map", []byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"over-max-pairs", cat(head(5, 65537), []byte{0x61})},
		{"trailing", append(mapOf(tstr("a"), uint_(1)), 0)},
		{"array", cat(head(4, 1), uint_(1))},
		{"canary-value-bad-kind", mapOf(tstr("a"), mapOf(tstr("t"), tstr(canary), tstr("v"), tstr(canary)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := frame.DecodeShard(tc.in)
			if err == nil {
				t.Fatalf("got %v, nil; want an error", s)
			}
			checkClean(t, err)
		})
	}
	if _, err := frame.EncodeShard(frame.Shard{"a b": {Kind: frame.KindInt}}); !errors.Is(err, frame.ErrInvalid) {
		t.Errorf("EncodeShard with a bad name: got %v, want ErrInvalid", err)
	}
	if _, err := frame.AssembleShard(map[string][]byte{"": {0}}); !errors.Is(err, frame.ErrInvalid) {
		t.Errorf("AssembleShard with an empty name: got %v, want ErrInvalid", err)
	}
}
