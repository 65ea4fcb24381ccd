package coffer

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// TestHMACMatchesStdlib checks the allocation-free HMAC against
// crypto/hmac for every key length up to a block and message lengths up
// to the buffer, and the key schedule against crypto/hkdf.
func TestHMACMatchesStdlib(t *testing.T) {
	for kl := 0; kl <= 64; kl++ {
		for _, ml := range []int{0, 1, 13, 32, 127, 128} {
			key, msg := make([]byte, kl), make([]byte, ml)
			rand.Read(key)
			rand.Read(msg)
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			want := m.Sum(nil)
			got := hmacSHA256(key, msg[:ml/2], msg[ml/2:])
			if !hmac.Equal(got[:], want) {
				t.Fatalf("key %d bytes, message %d bytes: got %x, want %x", kl, ml, got, want)
			}
		}
	}

	var th2 hash
	var es, ss, ee, se [32]byte
	for _, b := range [][]byte{th2[:], es[:], ss[:], ee[:], se[:]} {
		rand.Read(b)
	}
	cs, sc, err := sessionKeys(&th2, &es, &ss, &ee, &se)
	if err != nil {
		t.Fatal(err)
	}
	ikm := append(append(append(append([]byte{}, es[:]...), ss[:]...), ee[:]...), se[:]...)
	prk, err := hkdf.Extract(sha256.New, ikm, th2[:])
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		label string
		got   []byte
	}{{labelC2S, cs.key[:]}, {labelS2C, sc.key[:]}} {
		want, err := hkdf.Expand(sha256.New, prk, k.label, 32)
		if err != nil {
			t.Fatal(err)
		}
		if !hmac.Equal(k.got, want) {
			t.Errorf("%s: got %x, want %x", k.label, k.got, want)
		}
	}
}

// TestMixFrame checks the stack-buffer transcript hash against
// sha256.New on both of its paths (a frame that fits, one that does not).
func TestMixFrame(t *testing.T) {
	var th hash
	rand.Read(th[:])
	for _, n := range []int{0, 3, 163, 259, 260, 4096} {
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
