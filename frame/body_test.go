package frame_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/frame"
)

// Tiny CBOR builders, so that hostile encodings are spelled out byte by
// byte instead of coming from the encoder under test.
func head(major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return []byte{m | byte(n)}
	case n <= 0xff:
		return []byte{m | 24, byte(n)}
	case n <= 0xffff:
		return []byte{m | 25, byte(n >> 8), byte(n)}
	case n <= 0xffffffff:
		return []byte{m | 26, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return []byte{m | 27, byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32),
		byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func tstr(s string) []byte  { return append(head(3, uint64(len(s))), s...) }
func bstr(b []byte) []byte  { return append(head(2, uint64(len(b))), b...) }
func uint_(n uint64) []byte { return head(0, n) }
func mapOf(pairs ...[]byte) []byte {
	return cat(append([][]byte{head(5, uint64(len(pairs)/2))}, pairs...)...)
}
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func fill(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }

// decodeBody is what a receiver does with an opened box: strict decode,
// then Validate.
func decodeBody[T any, P interface {
	*T
	Validate() error
}](data []byte) (*T, error) {
	p := P(new(T))
	if err := frame.Unmarshal(data, p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return (*T)(p), nil
}

const canary = "CANARYxSECRETx42"

// checkClean fails when an error quotes the canary or is absurdly long.
func checkClean(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	if strings.Contains(msg, canary) || len(msg) > 200 {
		t.Errorf("error quotes its input or is too long: %.200q", msg)
	}
	if !strings.HasPrefix(msg, "frame: ") {
		t.Errorf("error %q lacks the frame: prefix", msg)
	}
}

func validGet() []byte {
	return mapOf(tstr("h"), tstr("get"), tstr("th"), bstr(fill(32, 7)))
}

func TestGetPayloadHostile(t *testing.T) {
	th := bstr(fill(32, 7))
	tests := []struct {
		name string
		in   []byte
	}{
		{"duplicate-key", cat(head(5, 3), tstr("h"), tstr("get"), tstr("th"), th, tstr("h"), tstr("get"))},
		{"duplicate-key-last-wins-attempt", cat(head(5, 3), tstr("h"), tstr("bye"), tstr("h"), tstr("get"), tstr("th"), th)},
		{"indefinite-map", cat([]byte{0xbf}, tstr("h"), tstr("get"), tstr("th"), th, []byte{0xff})},
		{"indefinite-bytes", cat(head(5, 2), tstr("h"), tstr("get"), tstr("th"), []byte{0x5f}, bstr(fill(16, 7)), bstr(fill(16, 7)), []byte{0xff})},
		{"indefinite-text", cat(head(5, 2), tstr("h"), []byte{0x7f}, tstr("ge"), tstr("t"), []byte{0xff}, tstr("th"), th)},
		{"tag-on-field", cat(head(5, 2), tstr("h"), tstr("get"), tstr("th"), []byte{0xd8, 0x40}, th)},
		{"tag-on-body", cat([]byte{0xd9, 0xd9, 0xf7}, validGet())},
		{"nesting", cat(head(5, 3), tstr("h"), tstr("get"), tstr("names"), []byte{0x81, 0x81, 0x81, 0x81, 0x81, 0x61, 'a'}, tstr("th"), th)},
		{"huge-array", cat(head(5, 3), tstr("h"), tstr("get"), tstr("names"), []byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, tstr("th"), th)},
		{"huge-map", []byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x61, 'h'}},
		{"huge-bytes", cat(head(5, 2), tstr("h"), tstr("get"), tstr("th"), []byte{0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})},
		{"array-over-limit", cat(head(5, 3), tstr("h"), tstr("get"), tstr("names"), head(4, 513), bytes.Repeat(tstr("a"), 513), tstr("th"), th)},
		{"names-over-max", cat(head(5, 3), tstr("h"), tstr("get"), tstr("names"), head(4, 257), bytes.Repeat(tstr("a"), 257), tstr("th"), th)},
		{"invalid-utf8", cat(head(5, 2), tstr("h"), []byte{0x63, 0xff, 0xfe, 0xfd}, tstr("th"), th)},
		{"nan", cat(head(5, 2), tstr("h"), []byte{0xf9, 0x7e, 0x00}, tstr("th"), th)},
		{"inf", cat(head(5, 2), tstr("h"), []byte{0xf9, 0x7c, 0x00}, tstr("th"), th)},
		{"unknown-field", cat(head(5, 3), tstr("h"), tstr("get"), tstr("th"), th, tstr("x"), uint_(1))},
		{"unknown-field-canary", cat(head(5, 3), tstr("h"), tstr("get"), tstr("th"), th, tstr(canary), tstr(canary))},
		{"upper-H", mapOf(tstr("H"), tstr("get"), tstr("th"), th)},
		{"upper-TH", mapOf(tstr("h"), tstr("get"), tstr("TH"), th)},
		{"wrong-kind", mapOf(tstr("h"), tstr("okget"), tstr("th"), th)},
		{"wrong-kind-canary", mapOf(tstr("h"), tstr(canary), tstr("th"), th)},
		{"missing-h", mapOf(tstr("th"), th)},
		{"missing-th", mapOf(tstr("h"), tstr("get"))},
		{"null-th", mapOf(tstr("h"), tstr("get"), tstr("th"), []byte{0xf6})},
		{"undefined-th", mapOf(tstr("h"), tstr("get"), tstr("th"), []byte{0xf7})},
		{"null-names", cat(head(5, 3), tstr("h"), tstr("get"), tstr("names"), []byte{0xf6}, tstr("th"), th)},
		{"empty-names", cat(head(5, 3), tstr("h"), tstr("get"), tstr("names"), head(4, 0), tstr("th"), th)},
		{"bad-name", cat(head(5, 3), tstr("h"), tstr("get"), tstr("names"), head(4, 1), tstr(".x"), tstr("th"), th)},
		{"name-129", cat(head(5, 3), tstr("h"), tstr("get"), tstr("names"), head(4, 1), tstr(strings.Repeat("a", 129)), tstr("th"), th)},
		{"th-31", mapOf(tstr("h"), tstr("get"), tstr("th"), bstr(fill(31, 7)))},
		{"th-33", mapOf(tstr("h"), tstr("get"), tstr("th"), bstr(fill(33, 7)))},
		{"th-as-text", mapOf(tstr("h"), tstr("get"), tstr("th"), tstr(strings.Repeat("a", 32)))},
		{"trailing-byte", append(validGet(), 0x00)},
		{"two-bodies", append(validGet(), validGet()...)},
		{"truncated", validGet()[:20]},
		{"keys-unsorted", cat(head(5, 2), tstr("th"), th, tstr("h"), tstr("get"))},
		{"non-shortest-length", cat(head(5, 2), tstr("h"), []byte{0x78, 3}, []byte("get"), tstr("th"), th)},
		{"array-not-map", cat(head(4, 2), tstr("get"), th)},
		{"empty", nil},
		{"null", []byte{0xf6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodeBody[frame.GetPayload](tc.in)
			if err == nil {
				t.Fatalf("got %+v, nil; want an error", p)
			}
			checkClean(t, err)
		})
	}
	t.Run("valid", func(t *testing.T) {
		if _, err := decodeBody[frame.GetPayload](validGet()); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})
}

func TestOkGetPayloadHostile(t *testing.T) {
	valid := func(edit func(m map[string][]byte)) []byte {
		m := map[string][]byte{
			"h": tstr("okget"), "i": uint_(0), "last": {0xf5}, "serial": uint_(7),
			"dh": bstr(fill(32, 1)), "size": uint_(3), "sh": bstr(fill(32, 2)), "d": bstr([]byte("abc")),
		}
		if edit != nil {
			edit(m)
		}
		// Core deterministic order: shorter keys first, then bytewise.
		order := []string{"d", "h", "i", "dh", "sh", "def", "last", "size", "serial"}
		var pairs [][]byte
		for _, k := range order {
			if v, ok := m[k]; ok {
				pairs = append(pairs, tstr(k), v)
			}
		}
		return mapOf(pairs...)
	}
	if _, err := decodeBody[frame.OkGetPayload](valid(nil)); err != nil {
		t.Fatalf("valid chunk: got %v, want nil", err)
	}
	tests := []struct {
		name string
		edit func(m map[string][]byte)
	}{
		{"negative-serial", func(m map[string][]byte) { m["serial"] = head(1, 0) }},
		{"zero-serial", func(m map[string][]byte) { m["serial"] = uint_(0) }},
		{"bignum-serial", func(m map[string][]byte) { m["serial"] = cat([]byte{0xc2}, bstr([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})) }},
		{"float-serial", func(m map[string][]byte) { m["serial"] = []byte{0xf9, 0x3c, 0x00} }},
		{"non-shortest-serial", func(m map[string][]byte) { m["serial"] = []byte{0x18, 7} }},
		{"negative-i", func(m map[string][]byte) { m["i"] = head(1, 4) }},
		{"negative-size", func(m map[string][]byte) { m["size"] = head(1, 0) }},
		{"size-over-max", func(m map[string][]byte) { m["size"] = uint_(16<<20 + 1) }},
		{"chunk-over-max", func(m map[string][]byte) { m["d"] = bstr(make([]byte, 60<<10+1)) }},
		{"dh-31", func(m map[string][]byte) { m["dh"] = bstr(fill(31, 1)) }},
		{"dh-33", func(m map[string][]byte) { m["dh"] = bstr(fill(33, 1)) }},
		{"sh-missing-on-last", func(m map[string][]byte) { delete(m, "sh") }},
		{"sh-before-last", func(m map[string][]byte) { m["last"] = []byte{0xf4} }},
		{"missing-i", func(m map[string][]byte) { delete(m, "i") }},
		{"missing-last", func(m map[string][]byte) { delete(m, "last"); delete(m, "sh") }},
		{"missing-size", func(m map[string][]byte) { delete(m, "size") }},
		{"missing-d", func(m map[string][]byte) { delete(m, "d") }},
		{"null-i", func(m map[string][]byte) { m["i"] = []byte{0xf6} }},
		{"null-last", func(m map[string][]byte) { m["last"] = []byte{0xf6}; delete(m, "sh") }},
		{"null-size", func(m map[string][]byte) { m["size"] = []byte{0xf7} }},
		{"last-as-int", func(m map[string][]byte) { m["last"] = uint_(1) }},
		{"d-as-text", func(m map[string][]byte) { m["d"] = tstr("abc") }},
		{"wrong-kind", func(m map[string][]byte) { m["h"] = tstr("get") }},
		{"canary-kind", func(m map[string][]byte) { m["h"] = tstr(canary) }},
		{"def-default", func(m map[string][]byte) { m["def"] = tstr("default") }},
		{"def-empty", func(m map[string][]byte) { m["def"] = tstr("") }},
		{"def-upper", func(m map[string][]byte) { m["def"] = tstr("Team") }},
		{"def-65", func(m map[string][]byte) { m["def"] = tstr(strings.Repeat("a", 65)) }},
		{"def-leading-dash", func(m map[string][]byte) { m["def"] = tstr("-a") }},
		{"def-as-bytes", func(m map[string][]byte) { m["def"] = bstr([]byte("team-a")) }},
		{"def-canary", func(m map[string][]byte) { m["def"] = tstr(canary) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodeBody[frame.OkGetPayload](valid(tc.edit))
			if err == nil {
				t.Fatalf("got %+v, nil; want an error", p)
			}
			checkClean(t, err)
		})
	}
	t.Run("max-serial", func(t *testing.T) {
		p, err := decodeBody[frame.OkGetPayload](valid(func(m map[string][]byte) { m["serial"] = uint_(1<<64 - 1) }))
		if err != nil || p.Serial != 1<<64-1 {
			t.Fatalf("got %v, want serial 2^64-1 accepted", err)
		}
	})
	t.Run("def-named", func(t *testing.T) {
		p, err := decodeBody[frame.OkGetPayload](valid(func(m map[string][]byte) { m["def"] = tstr("team-a_01") }))
		if err != nil || p.Def != "team-a_01" {
			t.Fatalf("got %+v, %v; want def team-a_01 accepted", p, err)
		}
	})
	t.Run("chunk-at-max", func(t *testing.T) {
		p, err := decodeBody[frame.OkGetPayload](valid(func(m map[string][]byte) { m["d"] = bstr(make([]byte, 60<<10)) }))
		if err != nil || len(p.D) != frame.MaxChunkBytes {
			t.Fatalf("got %v, want a chunk of %d bytes accepted", err, frame.MaxChunkBytes)
		}
	})
}

func TestHelloPayloadHostile(t *testing.T) {
	key := func(n int, c byte) []byte { return bstr(fill(n, c)) }
	build := func(h []byte, v []byte, c, s, e []byte) []byte {
		return mapOf(tstr("c"), c, tstr("e"), e, tstr("h"), h, tstr("k"), key(32, 4), tstr("s"), s, tstr("v"), v)
	}
	good := build(tstr("hello"), uint_(2), key(32, 1), key(32, 2), key(32, 3))
	p, err := decodeBody[frame.HelloPayload](good)
	if err != nil {
		t.Fatalf("valid hello payload: got %v, want nil", err)
	}
	enc, _ := frame.Marshal(p)
	if !bytes.Equal(enc, good) {
		t.Errorf("re-encoding: got %x, want %x", enc, good)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"v1", build(tstr("hello"), uint_(1), key(32, 1), key(32, 2), key(32, 3))},
		{"v0", build(tstr("hello"), uint_(0), key(32, 1), key(32, 2), key(32, 3))},
		{"v-negative", build(tstr("hello"), head(1, 0), key(32, 1), key(32, 2), key(32, 3))},
		{"v-null", build(tstr("hello"), []byte{0xf6}, key(32, 1), key(32, 2), key(32, 3))},
		{"c-31", build(tstr("hello"), uint_(2), key(31, 1), key(32, 2), key(32, 3))},
		{"c-33", build(tstr("hello"), uint_(2), key(33, 1), key(32, 2), key(32, 3))},
		{"s-31", build(tstr("hello"), uint_(2), key(32, 1), key(31, 2), key(32, 3))},
		{"e-33", build(tstr("hello"), uint_(2), key(32, 1), key(32, 2), key(33, 3))},
		{"e-null", build(tstr("hello"), uint_(2), key(32, 1), key(32, 2), []byte{0xf6})},
		{"kind-link", build(tstr("link"), uint_(2), key(32, 1), key(32, 2), key(32, 3))},
		{"kind-Hello", build(tstr("Hello"), uint_(2), key(32, 1), key(32, 2), key(32, 3))},
		{"missing-s", mapOf(tstr("c"), key(32, 1), tstr("e"), key(32, 3), tstr("h"), tstr("hello"), tstr("k"), key(32, 4), tstr("v"), uint_(2))},
		{"missing-k", mapOf(tstr("c"), key(32, 1), tstr("e"), key(32, 3), tstr("h"), tstr("hello"), tstr("s"), key(32, 2), tstr("v"), uint_(2))},
		{"k-31", mapOf(tstr("c"), key(32, 1), tstr("e"), key(32, 3), tstr("h"), tstr("hello"), tstr("k"), key(31, 4), tstr("s"), key(32, 2), tstr("v"), uint_(2))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodeBody[frame.HelloPayload](tc.in)
			if err == nil {
				t.Fatalf("got %+v, nil; want an error", p)
			}
			checkClean(t, err)
		})
	}
}

// TestRoundTrip encodes a valid value of every body, decodes it strictly,
// validates it and requires the same value and the same bytes back.
func TestRoundTrip(t *testing.T) {
	k := func(c byte) []byte { return fill(32, c) }
	tests := []struct {
		name string
		v    interface{ Validate() error }
		new  func() interface{ Validate() error }
	}{
		{"hello", &frame.HelloPayload{H: "hello", V: 2, C: k(1), S: k(2), E: k(3), K: k(4)}, func() interface{ Validate() error } { return new(frame.HelloPayload) }},
		{"link", &frame.LinkPayload{H: "link", SE: k(4), TH: k(5), CT: fill(frame.KEMCiphertextSize, 6)}, func() interface{ Validate() error } { return new(frame.LinkPayload) }},
		{"keynotfound", &frame.KeyNotFoundPayload{H: "keynotfound", TH: k(6)}, func() interface{ Validate() error } { return new(frame.KeyNotFoundPayload) }},
		{"get-all", &frame.GetPayload{H: "get", TH: k(7)}, func() interface{ Validate() error } { return new(frame.GetPayload) }},
		{"get-names", &frame.GetPayload{H: "get", TH: k(7), Names: []string{"db.password", "API_KEY", "x-1"}}, func() interface{ Validate() error } { return new(frame.GetPayload) }},
		{"get-256-names", &frame.GetPayload{H: "get", TH: k(7), Names: manyNames(256)}, func() interface{ Validate() error } { return new(frame.GetPayload) }},
		{"okget-first", &frame.OkGetPayload{H: "okget", I: 0, Serial: 1, DH: k(8), Size: 100, D: fill(60, 1)}, func() interface{ Validate() error } { return new(frame.OkGetPayload) }},
		{"okget-last", &frame.OkGetPayload{H: "okget", I: 2, Last: true, Serial: 1<<64 - 1, DH: k(8), Size: 16 << 20, SH: k(9), D: []byte{}}, func() interface{ Validate() error } { return new(frame.OkGetPayload) }},
		{"bye", &frame.ByePayload{H: "bye"}, func() interface{ Validate() error } { return new(frame.ByePayload) }},
		{"error-body", &frame.ErrorBody{Code: frame.CodeBusy}, func() interface{ Validate() error } { return new(frame.ErrorBody) }},
		{"error-payload", &frame.ErrorPayload{H: "error", Code: frame.CodeInternal}, func() interface{ Validate() error } { return new(frame.ErrorPayload) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.v.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			enc, err := frame.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			got := tc.new()
			if err := frame.Unmarshal(enc, got); err != nil {
				t.Fatalf("Unmarshal: got %v, want nil", err)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("Validate after decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Errorf("got %+v, want %+v", got, tc.v)
			}
			enc2, _ := frame.Marshal(got)
			if !bytes.Equal(enc, enc2) {
				t.Errorf("re-encoding: got %x, want %x", enc2, enc)
			}
		})
	}
}

func manyNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "n" + strings.Repeat("x", i%100) + string(rune('a'+i%26))
	}
	return names
}

// TestEncodingExamples pins the deterministic encoding of two bodies, so
// the bytes in docs/protocol.md stay true.
func TestEncodingExamples(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want []byte
	}{
		{"bye", frame.ByePayload{H: "bye"}, mapOf(tstr("h"), tstr("bye"))},
		{"error-body", frame.ErrorBody{Code: frame.CodeVersion}, mapOf(tstr("code"), uint_(2))},
		{"get-order", frame.GetPayload{H: "get", TH: fill(32, 0), Names: []string{"b", "a"}},
			mapOf(tstr("h"), tstr("get"), tstr("th"), bstr(fill(32, 0)), tstr("names"), cat(head(4, 2), tstr("b"), tstr("a")))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := frame.Marshal(tc.v)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("got %x, %v, want %x", got, err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	k := fill(32, 1)
	tests := []struct {
		name string
		v    interface{ Validate() error }
	}{
		{"link-kind", &frame.LinkPayload{H: "hello", SE: k, TH: k, CT: fill(frame.KEMCiphertextSize, 2)}},
		{"link-se-31", &frame.LinkPayload{H: "link", SE: k[:31], TH: k, CT: fill(frame.KEMCiphertextSize, 2)}},
		{"link-th-missing", &frame.LinkPayload{H: "link", SE: k, CT: fill(frame.KEMCiphertextSize, 2)}},
		{"link-ct-missing", &frame.LinkPayload{H: "link", SE: k, TH: k}},
		{"link-ct-1087", &frame.LinkPayload{H: "link", SE: k, TH: k, CT: fill(frame.KEMCiphertextSize-1, 2)}},
		{"link-ct-1089", &frame.LinkPayload{H: "link", SE: k, TH: k, CT: fill(frame.KEMCiphertextSize+1, 2)}},
		{"knf-kind", &frame.KeyNotFoundPayload{H: "link", TH: k}},
		{"knf-th-33", &frame.KeyNotFoundPayload{H: "keynotfound", TH: append(k, 0)}},
		{"bye-kind", &frame.ByePayload{H: "Bye"}},
		{"error-body-zero", &frame.ErrorBody{}},
		{"error-payload-zero", &frame.ErrorPayload{H: "error"}},
		{"error-payload-kind", &frame.ErrorPayload{H: "okget", Code: 1}},
		{"get-257-names", &frame.GetPayload{H: "get", TH: k, Names: manyNames(257)}},
		{"okget-sh-not-last", &frame.OkGetPayload{H: "okget", Serial: 1, DH: k, SH: k}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Validate()
			if !errors.Is(err, frame.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			checkClean(t, err)
		})
	}
}

func TestValidName(t *testing.T) {
	good := []string{"a", "A", "db.password", "API_KEY", "x-1", "a.b.c", strings.Repeat("z", 128), "0"}
	bad := []string{"", ".a", "a.", ".", "a b", "a/b", "é", "a\x00", "a\n", strings.Repeat("z", 129), "a=b", "$x"}
	for _, n := range good {
		if err := frame.ValidName(n); err != nil {
			t.Errorf("ValidName(%q): got %v, want nil", n, err)
		}
	}
	for _, n := range bad {
		if err := frame.ValidName(n); !errors.Is(err, frame.ErrInvalid) {
			t.Errorf("ValidName(%q): got %v, want ErrInvalid", n, err)
		}
	}
}

func TestParseHello(t *testing.T) {
	h := frame.Hello{Version: 2, KEMKey: fill(frame.KEMKeySize, 0xaa), Box: fill(frame.Overhead, 0xbb)}
	copy(h.Client[:], fill(32, 1))
	copy(h.Ephemeral[:], fill(32, 2))
	copy(h.Nonce[:], fill(24, 3))
	body := h.Append(nil)
	if len(body) != 89+1184+16 {
		t.Fatalf("got %d bytes, want %d", len(body), 89+1184+16)
	}
	got, err := frame.ParseHello(body)
	if err != nil {
		t.Fatalf("ParseHello: %v", err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("got %+v, want %+v", got, h)
	}
	if !bytes.Equal(got.Append(nil), body) {
		t.Errorf("re-encoding differs")
	}
	// The version is the caller's to check.
	body[0] = 1
	if got, err := frame.ParseHello(body); err != nil || got.Version != 1 {
		t.Errorf("version 1: got %d, %v, want 1, nil", got.Version, err)
	}
	// A coffer/1 Hello (89 + 16 bytes at least) is too short for coffer/2.
	for _, n := range []int{0, 1, 88, 89, 104, 105, 89 + 1184, 89 + 1184 + 15} {
		if _, err := frame.ParseHello(body[:n]); !errors.Is(err, frame.ErrInvalid) {
			t.Errorf("%d bytes: got %v, want ErrInvalid", n, err)
		}
	}
}

func TestParseNonceBox(t *testing.T) {
	body := append(fill(24, 9), fill(16, 8)...)
	nb, err := frame.ParseNonceBox(body)
	if err != nil {
		t.Fatalf("ParseNonceBox: %v", err)
	}
	if !bytes.Equal(nb.Nonce[:], body[:24]) || !bytes.Equal(nb.Box, body[24:]) {
		t.Errorf("got %x %x, want %x %x", nb.Nonce, nb.Box, body[:24], body[24:])
	}
	for _, n := range []int{0, 23, 24, 39} {
		if _, err := frame.ParseNonceBox(body[:n]); !errors.Is(err, frame.ErrInvalid) {
			t.Errorf("%d bytes: got %v, want ErrInvalid", n, err)
		}
	}
}

func TestErrorCodeString(t *testing.T) {
	seen := map[string]bool{}
	for c := frame.CodeMalformed; c <= frame.CodeInternal; c++ {
		s := c.String()
		if strings.HasPrefix(s, "unknown") || seen[s] {
			t.Errorf("code %d: got %q, want a distinct fixed text", c, s)
		}
		seen[s] = true
	}
	if got, want := frame.ErrorCode(99).String(), "unknown error code 99"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestNestingDepthCounted pins docs/protocol.md §3.6: the top-level map
// is depth 1, each array or map inside it (even an empty one) one level
// more, scalars none; depth 4 is decoded, depth 5 refused.
func TestNestingDepthCounted(t *testing.T) {
	depth4 := []byte{0xa1, 0x61, 'a', 0xa1, 0x61, 't', 0x81, 0x81, 0x61, 'x'} // {a: {t: [["x"]]}}
	depth5 := []byte{0xa1, 0x61, 'a', 0xa1, 0x61, 't', 0x81, 0x81, 0x80}      // {a: {t: [[[]]]}}
	var v any
	if err := frame.Unmarshal(depth4, &v); err != nil {
		t.Errorf("depth 4: got %v, want it decoded", err)
	}
	if err := frame.Unmarshal(depth5, &v); err == nil || !strings.Contains(err.Error(), "nesting too deep") {
		t.Errorf("depth 5: got %v, want nesting too deep", err)
	}
	if _, err := frame.DecodeShard(depth5); err == nil || !strings.Contains(err.Error(), "nesting too deep") {
		t.Errorf("depth 5 shard: got %v, want nesting too deep", err)
	}
}
