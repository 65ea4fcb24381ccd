package coffer

import (
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/coffer-project/coffer/frame"
)

// TestSessionKeys checks the key schedule against the formula in
// docs/protocol.md §3, written out with crypto/hmac (RFC 5869: Extract is
// HMAC(salt, ikm); a 32-byte Expand is the one block HMAC(prk, info ||
// 0x01)), and that the two directions get different keys.
func TestSessionKeys(t *testing.T) {
	mac := func(key []byte, parts ...[]byte) []byte {
		m := hmac.New(sha256.New, key)
		for _, p := range parts {
			m.Write(p)
		}
		return m.Sum(nil)
	}
	for i := range 4 {
		var th2 hash
		var kem, es, ss, ee, se [32]byte
		for _, b := range [][]byte{th2[:], kem[:], es[:], ss[:], ee[:], se[:]} {
			rand.Read(b)
		}
		cs, sc, err := sessionKeys(&th2, &kem, &es, &ss, &ee, &se)
		if err != nil {
			t.Fatal(err)
		}
		prk := mac(th2[:], kem[:], es[:], ss[:], ee[:], se[:])
		for _, k := range []struct {
			label string
			got   []byte
		}{{labelC2S, cs.key[:]}, {labelS2C, sc.key[:]}} {
			if want := mac(prk, []byte(k.label), []byte{1}); !hmac.Equal(k.got, want) {
				t.Errorf("round %d, %s: got %x, want %x", i, k.label, k.got, want)
			}
		}
		if cs.key == sc.key {
			t.Errorf("round %d: k_cs equals k_sc", i)
		}
	}
}

// TestMixFrame checks the stack-buffer transcript hash against
// sha256.New on both of its paths (a frame that fits, one that does not).
func TestMixFrame(t *testing.T) {
	var th hash
	rand.Read(th[:])
	for _, n := range []int{0, 3, 163, 259, 260, 1448, maxHandshakeFrame, maxHandshakeFrame + 1, 4096} {
		raw := make([]byte, n)
		rand.Read(raw)
		h := sha256.New()
		h.Write(th[:])
		h.Write(raw)
		if got := mixFrame(&th, raw); !hmac.Equal(got[:], h.Sum(nil)) {
			t.Errorf("%d-byte frame: wrong hash", n)
		}
	}
}

// BenchmarkSessionKeys measures the key schedule alone: one Extract and
// two Expands per session, on each side.
func BenchmarkSessionKeys(b *testing.B) {
	var th2 hash
	var kem, es, ss, ee, se [32]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := sessionKeys(&th2, &kem, &es, &ss, &ee, &se); err != nil {
			b.Fatal(err)
		}
	}
}

// TestKEMSizes ties frame's ML-KEM sizes, which frame states without
// importing crypto/mlkem, to crypto/mlkem's.
func TestKEMSizes(t *testing.T) {
	if frame.KEMKeySize != mlkem.EncapsulationKeySize768 || frame.KEMCiphertextSize != mlkem.CiphertextSize768 {
		t.Errorf("frame: ek %d, ct %d; crypto/mlkem: ek %d, ct %d", frame.KEMKeySize, frame.KEMCiphertextSize,
			mlkem.EncapsulationKeySize768, mlkem.CiphertextSize768)
	}
}
