package frame

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// FuzzAppendCBOR checks the hand-written encoders against the
// deterministic reflection encoder they stand in for: the same bytes for
// any field values, nil and empty slices, long strings and invalid UTF-8
// included.
func FuzzAppendCBOR(f *testing.F) {
	k := bytes.Repeat([]byte{7}, 32)
	f.Add("hello", uint64(2), k, k, k, k, uint8(0), "get", k, "")
	f.Add("get", uint64(0), []byte{}, k, k[:1], k, uint8(0x15), "get", []byte{}, "a,b.c,d-e")
	f.Add("\xff\xfe", uint64(1)<<40, bytes.Repeat(k, 10), k, k, k, uint8(0xff), strings.Repeat("x", 300), k, strings.Repeat("n,", 30))
	f.Fuzz(func(t *testing.T, h string, v uint64, c, e, kk, s []byte, nils uint8, gh string, th []byte, names string) {
		nilIf := func(bit uint8, p []byte) []byte {
			if nils&bit != 0 {
				return nil
			}
			return p
		}
		hp := &HelloPayload{H: h, V: v, C: nilIf(1, c), E: nilIf(2, e), K: nilIf(4, kk), S: nilIf(8, s)}
		gp := &GetPayload{H: gh, TH: nilIf(16, th)}
		if nils&32 != 0 {
			gp.Names = strings.Split(names, ",")
		} else if nils&64 != 0 {
			gp.Names = []string{}
		}
		for _, p := range []any{hp, gp} {
			want, err := detEnc.Marshal(p)
			if err != nil {
				t.Fatalf("reflection encoder: %v", err)
			}
			got, err := Marshal(p)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%T: hand-written encoding %x (%v), deterministic mode %x", p, got, err, want)
			}
		}
	})
}

// BenchmarkMarshalHello and BenchmarkMarshalGet time the hand-written
// encoders; the ...Reflect variants the reflection encoder they replace.
// The per-call figures are warm: what the hand-written encoders save a
// fetch is mostly the reflection encoder's first use of each type.
func BenchmarkMarshalHello(b *testing.B)        { benchMarshal(b, benchHello(), Marshal) }
func BenchmarkMarshalHelloReflect(b *testing.B) { benchMarshal(b, benchHello(), detEnc.Marshal) }
func BenchmarkMarshalGet(b *testing.B)          { benchMarshal(b, benchGet(), Marshal) }
func BenchmarkMarshalGetReflect(b *testing.B)   { benchMarshal(b, benchGet(), detEnc.Marshal) }

func benchHello() any {
	k := make([]byte, 32)
	return &HelloPayload{H: PurposeHello, V: Version, C: k, S: k, E: k, K: k}
}

func benchGet() any { return &GetPayload{H: PurposeGet, TH: make([]byte, HashSize)} }

func benchMarshal(b *testing.B, v any, marshal func(any) ([]byte, error)) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstMarshal times what the hand-written encoders are for: the
// first encoding of a Hello and a Get payload in a fresh process, as a
// client does it once per run. Each iteration starts this test binary
// again (TestFirstMarshalChild) and reads back the time the child spent
// in those two calls; ...Reflect does the same with the reflection
// encoder. The figure to read is first-ns/op.
func BenchmarkFirstMarshal(b *testing.B)        { benchFirstMarshal(b, "hand") }
func BenchmarkFirstMarshalReflect(b *testing.B) { benchFirstMarshal(b, "reflect") }

func benchFirstMarshal(b *testing.B, mode string) {
	var total time.Duration
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFirstMarshalChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "COFFER_FIRST_MARSHAL="+mode)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		var ns int64
		if _, err := fmt.Sscanf(string(out), "first-marshal-ns %d", &ns); err != nil {
			b.Fatalf("child output %q: %v", out, err)
		}
		total += time.Duration(ns)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "first-ns/op")
}

// TestFirstMarshalChild is BenchmarkFirstMarshal's child; it does
// nothing unless started by it.
func TestFirstMarshalChild(t *testing.T) {
	mode := os.Getenv("COFFER_FIRST_MARSHAL")
	if mode == "" {
		t.Skip("run by BenchmarkFirstMarshal")
	}
	marshal := Marshal
	if mode == "reflect" {
		marshal = detEnc.Marshal
	}
	hello, get := benchHello(), benchGet()
	start := time.Now()
	_, err1 := marshal(hello)
	_, err2 := marshal(get)
	d := time.Since(start)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	fmt.Printf("first-marshal-ns %d\n", d.Nanoseconds())
}

// FuzzValueAppendCBOR: Value.AppendCBOR appends exactly MarshalCBOR's
// bytes, for every kind and for strings whose lengths cross each CBOR
// head size, and leaves what b held before untouched.
func FuzzValueAppendCBOR(f *testing.F) {
	for _, n := range []int{0, 1, 23, 24, 255, 256, 65535, 65536} {
		f.Add(uint8(KindString), bytes.Repeat([]byte{'s'}, n), int64(0), 0.0, false, []byte("prefix"))
	}
	f.Add(uint8(KindInt), []byte(nil), int64(-1)<<40, 0.0, false, []byte{})
	f.Add(uint8(KindFloat), []byte(nil), int64(0), math.Inf(-1), false, []byte{1})
	f.Add(uint8(KindFloat), []byte(nil), int64(0), 1.5, false, []byte{})
	f.Add(uint8(KindBool), []byte(nil), int64(0), 0.0, true, []byte{})
	f.Add(uint8(KindDateTime), []byte("1979-05-27T07:32:00Z"), int64(0), 0.0, false, []byte{})
	f.Add(uint8(KindLocalTime), []byte("07:32:00"), int64(0), 0.0, false, []byte{})
	f.Add(uint8(KindInvalid), []byte("x"), int64(0), 0.0, false, []byte{})
	f.Fuzz(func(t *testing.T, kind uint8, text []byte, i int64, fl float64, bo bool, prefix []byte) {
		v := Value{Kind: Kind(kind % 10), Text: text, Int: i, Float: fl, Bool: bo}
		want, werr := v.MarshalCBOR()
		b := append([]byte(nil), prefix...)
		got, gerr := v.AppendCBOR(b)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("kind %d: MarshalCBOR error %v, AppendCBOR error %v", kind, werr, gerr)
		}
		if !bytes.Equal(got[:len(prefix)], prefix) {
			t.Fatalf("kind %d: the prefix changed", kind)
		}
		if werr != nil {
			if len(got) != len(prefix) {
				t.Fatalf("kind %d: %d bytes appended on an error", kind, len(got)-len(prefix))
			}
			return
		}
		if !bytes.Equal(got[len(prefix):], want) {
			t.Fatalf("kind %d: AppendCBOR %x, MarshalCBOR %x", kind, got[len(prefix):], want)
		}
	})
}

// BenchmarkAppendValue encodes a 40-byte string value, the common case
// of a definition's load: MarshalCBOR against AppendCBOR into a reused
// buffer.
func BenchmarkAppendValue(b *testing.B) {
	v := Value{Kind: KindString, Text: bytes.Repeat([]byte{'s'}, 40)}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.MarshalCBOR(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			var err error
			if buf, err = v.AppendCBOR(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
