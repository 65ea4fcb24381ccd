package coffer

import (
	"crypto/rand"
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
