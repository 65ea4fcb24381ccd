package frame

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMarshalLeavesNoCopy: an encoding of secret values leaves no second
// copy in the spare capacity of its buffer (where the library sorts a
// map's pairs), and no encoder in this package uses the cbor package's
// pooled buffers, which would keep the encoding for their next user.
func TestMarshalLeavesNoCopy(t *testing.T) {
	const canary = "SECRET-CANARY-5e1f"
	values := map[string][]byte{}
	shard := Shard{}
	for _, n := range []string{"A", "B", "C", "D", "E", "F", "G", "H"} {
		v := Value{Kind: KindString, Text: []byte(canary + n)}
		enc, err := v.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		values[n], shard[n] = enc, v
	}
	check := func(name string, out []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Contains(out, []byte(canary)) {
			t.Fatalf("%s: the encoding lacks the values", name)
		}
		if spare := out[len(out):cap(out)]; bytes.ContainsFunc(spare, func(r rune) bool { return r != 0 }) {
			t.Fatalf("%s: %d bytes of spare capacity hold data", name, len(spare))
		}
	}
	out, err := AssembleShard(values)
	check("AssembleShard", out, err)
	out, err = EncodeShard(shard)
	check("EncodeShard", out, err)
	out, err = Value{Kind: KindDateTime, Text: []byte("1979-05-27T07:32:00Z")}.MarshalCBOR()
	if err != nil || out[len(out):cap(out)] != nil && bytes.ContainsFunc(out[len(out):cap(out)], func(r rune) bool { return r != 0 }) {
		t.Fatalf("datetime: %v, spare capacity holds data", err)
	}

	prefix := []byte("room for a signature")
	dst := make([]byte, len(prefix), 4096)
	copy(dst, prefix)
	out, err = AppendMarshal(dst, &OkGetPayload{H: PurposeOkGet, Last: true, Serial: 3, DH: []byte(canary), Size: 9})
	check("AppendMarshal", out, err)
	if !bytes.HasPrefix(out, prefix) || &out[0] != &dst[0] {
		t.Fatal("AppendMarshal: the prefix changed, or the encoding left dst's buffer")
	}

	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(src, []byte("detEnc.Marshal(")) {
			t.Errorf("%s calls detEnc.Marshal, which encodes in the cbor package's pooled buffers; use marshal", f)
		}
	}
}

// BenchmarkAssembleShard assembles a served shard of 10 values of 40
// bytes, as every fetch does, and unmarshals a 6 MiB body the way a
// sealed definition's envelope is checked.
func BenchmarkAssembleShard(b *testing.B) {
	values := map[string][]byte{}
	for i := range 10 {
		enc, _ := Value{Kind: KindString, Text: bytes.Repeat([]byte{'v'}, 40)}.MarshalCBOR()
		values[string(rune('A'+i))+"_SECRET"] = enc
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AssembleShard(values); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalLarge(b *testing.B) {
	type body struct {
		H    string `cbor:"h"`
		TOML []byte `cbor:"toml"`
	}
	data, err := Marshal(&body{H: "x", TOML: bytes.Repeat([]byte{'t'}, 6<<20)})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v body
		if err := Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}
