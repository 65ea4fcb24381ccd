package frame_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/frame"
	"github.com/fxamacker/cbor/v2"
)

// The seed corpora live in testdata/fuzz/FuzzName/ and run as ordinary
// tests. `go test -run TestWriteFuzzSeeds -write-fuzz-seeds ./frame/`
// rewrites the seed-* files from fuzzSeeds below (crashers found by the
// fuzzer are kept beside them under their hash names).
var writeSeeds = flag.Bool("write-fuzz-seeds", false, "rewrite frame/testdata/fuzz/*/seed-* from fuzzSeeds")

// errQuotesInput reports whether msg repeats a run of 12 or more input
// bytes. Secret names are the one thing an error may quote (with %q), as
// they are identifiers, not values.
func errQuotesInput(data []byte, msg string) bool {
	if strings.HasPrefix(msg, "frame: invalid body: name ") {
		return false
	}
	const run = 12
	for i := 0; i+run <= len(msg); i++ {
		if bytes.Contains(data, []byte(msg[i:i+run])) {
			return true
		}
	}
	return false
}

func checkFuzzErr(t *testing.T, data []byte, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "frame: ") || len(msg) > 300 {
		t.Fatalf("unclean error %.300q", msg)
	}
	if errQuotesInput(data, msg) {
		t.Fatalf("error quotes input bytes: %q", msg)
	}
}

// fuzzBody decodes data as a T strictly and validates it. Accepted input
// must re-encode to exactly the same bytes (frame.Unmarshal enforces the
// deterministic form) and decode again to an equal value.
func fuzzBody[T any, P interface {
	*T
	Validate() error
}](t *testing.T, data []byte) {
	t.Helper()
	p, err := decodeBody[T, P](data)
	if err != nil {
		checkFuzzErr(t, data, err)
		return
	}
	enc, err := frame.Marshal(p)
	if err != nil {
		t.Fatalf("accepted %T does not encode: %v", p, err)
	}
	if !bytes.Equal(enc, data) {
		t.Fatalf("accepted %T re-encodes differently:\n got %x\nwant %x", p, enc, data)
	}
	p2, err := decodeBody[T, P](enc)
	if err != nil {
		t.Fatalf("re-encoded %T does not decode: %v", p, err)
	}
	if !reflect.DeepEqual(p, p2) {
		t.Fatalf("decode(encode(x)) != x: got %+v, want %+v", p2, p)
	}
}

func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		consumed := 0
		for i := 0; i < 1000; i++ {
			fr, err := frame.Read(r)
			if err != nil {
				switch {
				case err == io.EOF:
					if consumed != len(data) {
						t.Fatalf("io.EOF with %d of %d bytes consumed", consumed, len(data))
					}
				case err == io.ErrUnexpectedEOF, errors.Is(err, frame.ErrUnknownType), errors.Is(err, frame.ErrTooLong):
				default:
					t.Fatalf("unexpected error %v", err)
				}
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					checkFuzzErr(t, data, err)
				}
				return
			}
			limit, ok := fr.Type.Limit()
			if !ok {
				t.Fatalf("accepted unknown type %s", fr.Type)
			}
			if len(fr.Raw) > frame.HeaderSize+limit || cap(fr.Raw) > frame.HeaderSize+limit {
				t.Fatalf("%s frame of %d bytes (cap %d), limit %d", fr.Type, len(fr.Raw), cap(fr.Raw), limit)
			}
			if !bytes.Equal(fr.Raw, data[consumed:consumed+len(fr.Raw)]) {
				t.Fatalf("Raw is not the bytes read")
			}
			consumed += len(fr.Raw)
			again, err := frame.New(fr.Type, fr.Body())
			if err != nil || !bytes.Equal(again.Raw, fr.Raw) {
				t.Fatalf("New(Type, Body()) = %x, %v; want %x", again.Raw, err, fr.Raw)
			}
		}
	})
}

func FuzzHelloPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzBody[frame.HelloPayload](t, data) })
}

func FuzzLinkPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzBody[frame.LinkPayload](t, data)
		fuzzBody[frame.KeyNotFoundPayload](t, data)
	})
}

func FuzzGetPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzBody[frame.GetPayload](t, data) })
}

func FuzzOkGetPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzBody[frame.OkGetPayload](t, data) })
}

func FuzzErrorBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzBody[frame.ErrorBody](t, data)
		fuzzBody[frame.ErrorPayload](t, data)
		fuzzBody[frame.ByePayload](t, data)
	})
}

// FuzzParseHello covers the two fixed layouts that are split without CBOR:
// Hello's outer part and the nonce-and-box bodies of Link and KeyNotFound.
func FuzzParseHello(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := frame.ParseHello(data)
		if err != nil {
			checkFuzzErr(t, data, err)
			if len(data) >= 89+frame.KEMKeySize+frame.Overhead {
				t.Fatalf("refused %d bytes: %v", len(data), err)
			}
		} else {
			if len(h.Box) < frame.Overhead {
				t.Fatalf("box of %d bytes", len(h.Box))
			}
			if got := h.Append(nil); !bytes.Equal(got, data) {
				t.Fatalf("Append: got %x, want %x", got, data)
			}
		}
		nb, err := frame.ParseNonceBox(data)
		if err != nil {
			checkFuzzErr(t, data, err)
			if len(data) >= frame.NonceSize+frame.Overhead {
				t.Fatalf("refused %d bytes: %v", len(data), err)
			}
			return
		}
		if got := append(nb.Nonce[:], nb.Box...); !bytes.Equal(got, data) {
			t.Fatalf("nonce||box: got %x, want %x", got, data)
		}
	})
}

// canonical reports whether data is one well-formed CBOR item in RFC 8949
// core deterministic form, judged by a plain decode and re-encode.
func canonical(data []byte) bool {
	var v any
	if err := cbor.Unmarshal(data, &v); err != nil {
		return false
	}
	em, _ := cbor.CoreDetEncOptions().EncMode()
	enc, err := em.Marshal(v)
	return err == nil && bytes.Equal(enc, data)
}

func FuzzDecodeShard(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := frame.DecodeShard(data)
		if err != nil {
			checkFuzzErr(t, data, err)
			return
		}
		enc, err := frame.EncodeShard(s)
		if err != nil {
			t.Fatalf("accepted shard does not encode: %v", err)
		}
		// A null shard decodes as the empty one (EncodeShard(nil) is null).
		if canonical(data) && !bytes.Equal(enc, data) && !bytes.Equal(data, []byte{0xf6}) {
			t.Fatalf("canonical shard re-encodes differently:\n got %x\nwant %x", enc, data)
		}
		s2, err := frame.DecodeShard(enc)
		if err != nil {
			t.Fatalf("re-encoded shard does not decode: %v", err)
		}
		if len(s2) != len(s) {
			t.Fatalf("got %d values, want %d", len(s2), len(s))
		}
		for n, v := range s {
			if !sameValue(s2[n], v) {
				t.Fatalf("%q: got %+v, want %+v", n, s2[n], v)
			}
		}
		if enc2, _ := frame.EncodeShard(s2); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not stable")
		}
	})
}

func FuzzValue(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var v frame.Value
		if err := v.UnmarshalCBOR(data); err != nil {
			checkFuzzErr(t, data, err)
			if v.Kind != frame.KindInvalid {
				t.Fatalf("value half-filled on error: %+v", v)
			}
			return
		}
		enc, err := frame.Marshal(v)
		if err != nil {
			t.Fatalf("accepted value does not encode: %v", err)
		}
		if canonical(data) && !bytes.Equal(enc, data) {
			t.Fatalf("canonical value re-encodes differently:\n got %x\nwant %x", enc, data)
		}
		var v2 frame.Value
		if err := v2.UnmarshalCBOR(enc); err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if !sameValue(v, v2) {
			t.Fatalf("got %+v, want %+v", v2, v)
		}
		_ = v.AppendText(nil)
	})
}

// fuzzSeeds returns the seed inputs of every target.
func fuzzSeeds() map[string][][]byte {
	seeds := map[string][][]byte{}
	add := func(target string, in ...[]byte) { seeds[target] = append(seeds[target], in...) }

	// Frames: every type at its limit and one past it, len 0, unknown
	// types, truncated headers and bodies, two frames back to back.
	for _, tc := range allTypes {
		add("FuzzRead", append(header(tc.t, tc.limit), fill(tc.limit, 0x5a)...))
		add("FuzzRead", header(tc.t, 0))
		if tc.limit < frame.MaxBody {
			add("FuzzRead", append(header(tc.t, tc.limit+1), fill(tc.limit+1, 0x5a)...))
		}
	}
	for _, typ := range []byte{0x04, 0x98, 0xfe} {
		add("FuzzRead", []byte{0, 1, typ, 0})
	}
	add("FuzzRead", nil, []byte{0}, []byte{0, 5}, append(header(frame.TypeGet, 10), 1, 2, 3),
		cat(header(frame.TypeBye, 2), []byte{1, 2}, header(frame.TypeError, 1), []byte{0xa0}))

	k := func(n int, c byte) []byte { return bstr(fill(n, c)) }
	hello := func(h, v, c, s, e []byte) []byte {
		return mapOf(tstr("c"), c, tstr("e"), e, tstr("h"), h, tstr("k"), k(32, 4), tstr("s"), s, tstr("v"), v)
	}
	add("FuzzHelloPayload",
		hello(tstr("hello"), uint_(2), k(32, 1), k(32, 2), k(32, 3)),
		hello(tstr("hello"), uint_(1), k(32, 1), k(32, 2), k(32, 3)),
		hello(tstr("Hello"), uint_(2), k(32, 1), k(32, 2), k(32, 3)),
		hello(tstr("hello"), uint_(2), k(31, 1), k(33, 2), k(32, 3)),
		hello(tstr("hello"), []byte{0xf6}, k(32, 1), k(32, 2), k(32, 3)),
		mapOf(tstr("c"), k(32, 1), tstr("e"), k(32, 3), tstr("h"), tstr("hello"), tstr("s"), k(32, 2), tstr("v"), uint_(1)),
		cat(head(5, 5), tstr("H"), tstr("hello"), tstr("c"), k(32, 1), tstr("e"), k(32, 3), tstr("s"), k(32, 2), tstr("v"), uint_(1)),
		cat([]byte{0xbf}, tstr("h"), tstr("hello"), []byte{0xff}),
		cat(head(5, 2), tstr("h"), tstr("hello"), tstr("h"), tstr("hello")),
	)
	add("FuzzLinkPayload",
		mapOf(tstr("h"), tstr("link"), tstr("ct"), k(frame.KEMCiphertextSize, 3), tstr("se"), k(32, 4), tstr("th"), k(32, 5)),
		mapOf(tstr("h"), tstr("link"), tstr("ct"), k(frame.KEMCiphertextSize-1, 3), tstr("se"), k(32, 4), tstr("th"), k(32, 5)),
		mapOf(tstr("h"), tstr("link"), tstr("se"), k(32, 4), tstr("th"), k(32, 5)),
		mapOf(tstr("h"), tstr("keynotfound"), tstr("th"), k(32, 6)),
		mapOf(tstr("h"), tstr("link"), tstr("se"), k(33, 4), tstr("th"), k(31, 5)),
		mapOf(tstr("h"), tstr("link"), tstr("se"), cat([]byte{0xd8, 0x40}, k(32, 4)), tstr("th"), k(32, 5)),
		cat(mapOf(tstr("h"), tstr("keynotfound"), tstr("th"), k(32, 6)), []byte{0}),
	)
	th := k(32, 7)
	add("FuzzGetPayload",
		validGet(),
		cat(head(5, 3), tstr("h"), tstr("get"), tstr("th"), th, tstr("names"), cat(head(4, 3), tstr("db.password"), tstr("API_KEY"), tstr("x-1"))),
		cat(head(5, 3), tstr("h"), tstr("get"), tstr("th"), th, tstr("names"), []byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
		[]byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		cat(head(5, 3), tstr("h"), tstr("get"), tstr("th"), th, tstr("names"), []byte{0x81, 0x81, 0x81, 0x81, 0x81, 0x61, 'a'}),
		cat(head(5, 2), tstr("h"), []byte{0x63, 0xff, 0xfe, 0xfd}, tstr("th"), th),
		cat(head(5, 3), tstr("h"), tstr("get"), tstr("th"), th, tstr("x"), []byte{0xf9, 0x7e, 0x00}),
		cat(head(5, 3), tstr("h"), tstr("get"), tstr("th"), th, tstr("names"), head(4, 0)),
		cat(head(5, 3), tstr("h"), tstr("get"), tstr("th"), th, tstr("names"), cat(head(4, 1), tstr(".bad"))),
	)
	okget := func(i uint64, last bool, serial []byte, sh []byte, d []byte) []byte {
		lastB := []byte{0xf4}
		if last {
			lastB = []byte{0xf5}
		}
		pairs := [][]byte{tstr("d"), bstr(d), tstr("h"), tstr("okget"), tstr("i"), uint_(i), tstr("dh"), k(32, 1)}
		if sh != nil {
			pairs = append(pairs, tstr("sh"), bstr(sh))
		}
		pairs = append(pairs, tstr("last"), lastB, tstr("size"), uint_(uint64(len(d))), tstr("serial"), serial)
		return mapOf(pairs...)
	}
	add("FuzzOkGetPayload",
		okget(0, true, uint_(7), fill(32, 2), []byte{0xa1, 0x61, 'a', 0x01}),
		okget(0, false, uint_(1<<64-1), nil, fill(100, 3)),
		okget(2, true, uint_(1), fill(32, 2), nil),
		okget(0, true, head(1, 0), fill(32, 2), nil),
		okget(0, true, cat([]byte{0xc2}, bstr(fill(9, 1))), fill(32, 2), nil),
		okget(0, false, uint_(0), fill(32, 2), nil),
		mapOf(tstr("h"), tstr("okget"), tstr("i"), []byte{0xf6}),
	)
	add("FuzzErrorBody",
		mapOf(tstr("code"), uint_(1)), mapOf(tstr("code"), uint_(4)), mapOf(tstr("code"), uint_(0)),
		mapOf(tstr("code"), head(0, 1<<64-1)), mapOf(tstr("code"), tstr("busy")),
		mapOf(tstr("h"), tstr("error"), tstr("code"), uint_(3)),
		mapOf(tstr("h"), tstr("bye")), mapOf(tstr("h"), tstr("BYE")), nil,
	)
	helloOuter := frame.Hello{Version: 2, KEMKey: fill(frame.KEMKeySize, 0xaa), Box: fill(172, 0xbb)}
	add("FuzzParseHello", helloOuter.Append(nil), fill(104, 1), fill(105, 1), fill(1288, 1), fill(1289, 1), fill(40, 2), fill(39, 2), nil)

	sample, _ := frame.EncodeShard(sampleShard())
	add("FuzzDecodeShard", sample, []byte{0xa0}, []byte{0xf6},
		mapOf(tstr("a"), []byte{0xf6}),
		cat(head(5, 2), tstr("a"), uint_(1), tstr("a"), uint_(2)),
		mapOf(tstr(".x"), uint_(1)),
		cat(head(5, 2), tstr("b"), uint_(1), tstr("a"), uint_(2)),
		mapOf(tstr("a"), []byte{0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}),
		[]byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	)
	add("FuzzValue",
		tstr("hunter2"), uint_(0), head(1, 0), head(0, 1<<63-1), head(1, 1<<63-1), head(0, 1<<63), head(0, 1<<64-1),
		[]byte{0xf9, 0x3c, 0x00}, []byte{0xfb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}, []byte{0xfa, 0x3f, 0x80, 0, 0},
		[]byte{0xf9, 0x7e, 0x00}, []byte{0xf9, 0x7c, 0x00}, []byte{0xf4}, []byte{0xf5}, []byte{0xf6}, []byte{0xf7}, []byte{0xf8, 0x20},
		mapOf(tstr("t"), tstr("float"), tstr("v"), tstr("inf")),
		mapOf(tstr("t"), tstr("float"), tstr("v"), tstr("-inf")),
		mapOf(tstr("t"), tstr("float"), tstr("v"), tstr("nan")),
		mapOf(tstr("t"), tstr("datetime"), tstr("v"), tstr("1979-05-27T07:32:00Z")),
		mapOf(tstr("t"), tstr("datetime-local"), tstr("v"), tstr("1979-05-27T07:32:00")),
		mapOf(tstr("t"), tstr("date-local"), tstr("v"), tstr("1979-05-27")),
		mapOf(tstr("t"), tstr("time-local"), tstr("v"), tstr("07:32:00")),
		mapOf(tstr("t"), tstr("string"), tstr("v"), tstr("x")),
		bstr([]byte("x")), cat([]byte{0xc1}, uint_(1)), []byte{0x62, 0xc3, 0x28},
	)
	return seeds
}

// TestWriteFuzzSeeds writes the seeds in the go test fuzz v1 corpus format
// when -write-fuzz-seeds is given, and otherwise checks that every target
// has its seed files.
func TestWriteFuzzSeeds(t *testing.T) {
	for target, ins := range fuzzSeeds() {
		dir := filepath.Join("testdata", "fuzz", target)
		for i, in := range ins {
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
			if *writeSeeds {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != content {
				t.Errorf("%s is missing or stale; run with -write-fuzz-seeds", path)
			}
		}
	}
}
