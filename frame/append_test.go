package frame

import (
	"bytes"
	"fmt"
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
