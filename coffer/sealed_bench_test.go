package coffer

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkSealDefinition is the companion's cost of one small sealed
// file: an Ed25519 signature, an X25519 exchange, an ML-KEM-768
// encapsulation and the AEADs.
func BenchmarkSealDefinition(b *testing.B) {
	fx := newSealedFixture(b)
	toml := fx.toml("")
	for b.Loop() {
		env := Envelope{Serial: 1, TOML: toml, Created: time.Unix(1_700_000_000, 0)}
		if _, err := SealDefinition(fx.author, fx.sealing, &env, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenDefinition is the server's cost of loading one small
// sealed file: deriving the ML-KEM key, decapsulating, the X25519
// exchange, the AEADs, the signature check and parsing the definition.
func BenchmarkOpenDefinition(b *testing.B) {
	fx := newSealedFixture(b)
	file := fx.seal(b, Envelope{Serial: 1})
	trusted := fx.trusted()
	for b.Loop() {
		def, _, err := OpenDefinition(fx.server, trusted, file, nil)
		if err != nil {
			b.Fatal(err)
		}
		def.Clear()
	}
}

// fleetTOML is a definition in the shape coffer-bench writes: n clients
// of one key each and 10 values of 40 printable bytes.
func fleetTOML(b testing.TB, n int) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var sb strings.Builder
	sb.WriteString("[clients]\n")
	var seed [KeySize]byte
	for i := range n {
		binary.BigEndian.PutUint32(seed[:], uint32(i+1))
		k, err := NewPrivateKey(&seed)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&sb, "client%06d = %q\n", i, k.Public())
	}
	x := uint32(1)
	for i := range n {
		fmt.Fprintf(&sb, "\n[client%06d]\n", i)
		for j := range 10 {
			fmt.Fprintf(&sb, "secret_%02d = \"", j)
			for range 40 {
				x = x*1664525 + 1013904223
				sb.WriteByte(alphabet[x>>26])
			}
			sb.WriteString("\"\n")
		}
	}
	return []byte(sb.String())
}

// BenchmarkOpenDefinitionFleet is the same for a definition of 10,000
// clients x 10 values (6 MiB of TOML), the size where the copies, the
// decoding and the parse, not the key exchange, are the cost.
func BenchmarkOpenDefinitionFleet(b *testing.B) {
	fx := newSealedFixture(b)
	file := fx.seal(b, Envelope{Serial: 1, TOML: fleetTOML(b, 10_000)})
	trusted := fx.trusted()
	b.Run("signed", func(b *testing.B) { // decrypt, verify, decode; no parse
		b.SetBytes(int64(len(file)))
		b.ReportAllocs()
		for b.Loop() {
			env, err := openSigned(fx.server, trusted, file)
			if err != nil {
				b.Fatal(err)
			}
			clear(env.TOML)
		}
	})
	b.Run("definition", func(b *testing.B) {
		b.SetBytes(int64(len(file)))
		b.ReportAllocs()
		for b.Loop() {
			def, _, err := OpenDefinition(fx.server, trusted, file, nil)
			if err != nil {
				b.Fatal(err)
			}
			def.Clear()
		}
	})
}
