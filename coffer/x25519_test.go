package coffer

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func unhex32(t testing.TB, s string) *[32]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad hex %q", s)
	}
	return (*[32]byte)(b)
}

// ecdhX25519 is the reference: crypto/ecdh's X25519, with its error.
func ecdhX25519(k, u *[32]byte) ([]byte, bool) {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		panic(err)
	}
	pub, err := ecdh.X25519().NewPublicKey(u[:])
	if err != nil {
		panic(err)
	}
	out, err := priv.ECDH(pub)
	return out, err == nil
}

// TestX25519RFC7748 checks the ladder against RFC 7748 §5.2 (one vector
// and the iterated test, 1 and 1,000 rounds) and §6.1 (the key exchange,
// public keys from the fixed-base path).
func TestX25519RFC7748(t *testing.T) {
	var out [32]byte
	k := unhex32(t, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
	u := unhex32(t, "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
	if !x25519(&out, k, u) || hex.EncodeToString(out[:]) != "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552" {
		t.Errorf("§5.2 vector: got %x", out)
	}

	k, u = &[32]byte{9}, &[32]byte{9}
	for i := 1; i <= 1000; i++ {
		if !x25519(&out, k, u) {
			t.Fatalf("iteration %d: all-zero output", i)
		}
		u, k = k, &[32]byte{}
		*k = out
		switch i {
		case 1:
			if got := hex.EncodeToString(out[:]); got != "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079" {
				t.Errorf("after 1 iteration: %s", got)
			}
		case 1000:
			if got := hex.EncodeToString(out[:]); got != "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51" {
				t.Errorf("after 1,000 iterations: %s", got)
			}
		}
	}

	alice := &ephemeralKey{scalar: *unhex32(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")}
	bob := &ephemeralKey{scalar: *unhex32(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")}
	for _, e := range []*ephemeralKey{alice, bob} {
		pub, err := newEphemeralKey(bytes.NewReader(e.scalar[:]))
		if err != nil {
			t.Fatal(err)
		}
		e.pub = pub.pub
	}
	if got := hex.EncodeToString(alice.pub[:]); got != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Errorf("Alice's public key: %s", got)
	}
	if got := hex.EncodeToString(bob.pub[:]); got != "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f" {
		t.Errorf("Bob's public key: %s", got)
	}
	var ab, ba [32]byte
	if !x25519(&ab, &alice.scalar, (*[32]byte)(&bob.pub)) || !x25519(&ba, &bob.scalar, (*[32]byte)(&alice.pub)) || ab != ba ||
		hex.EncodeToString(ab[:]) != "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742" {
		t.Errorf("§6.1 shared secret: %x and %x", ab, ba)
	}
}

// TestX25519MatchesECDH compares the ladder and the fixed-base public key
// with crypto/ecdh on random scalars and points, points with the top bit
// set, non-canonical points (u >= p) and every low-order point.
func TestX25519MatchesECDH(t *testing.T) {
	points := [][32]byte{
		{}, {1}, // 0 and 1: low order
		*unhex32(t, "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), // p-1
		*unhex32(t, "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), // p (= 0)
		*unhex32(t, "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), // p+1 (= 1)
		*unhex32(t, "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), // order 8
		*unhex32(t, "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"), // order 8
		*unhex32(t, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
		{9},
	}
	for range 200 {
		var u [32]byte
		rand.Read(u[:])
		points = append(points, u)
	}
	for i := range 500 {
		var k [32]byte
		rand.Read(k[:])
		e, err := newEphemeralKey(bytes.NewReader(k[:]))
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := ecdh.X25519().NewPrivateKey(k[:])
		if !bytes.Equal(e.pub[:], ref.PublicKey().Bytes()) {
			t.Fatalf("key %x: public key %x, crypto/ecdh %x", k, e.pub, ref.PublicKey().Bytes())
		}
		if l, err := newLadderEphemeralKey(bytes.NewReader(k[:])); err != nil || *l != *e {
			t.Fatalf("key %x: the ladder's key pair differs from the fixed-base one (%v)", k, err)
		}
		u := &points[i%len(points)]
		var got [32]byte
		ok := x25519(&got, &k, u)
		want, wantOK := ecdhX25519(&k, u)
		if ok != wantOK || (ok && !bytes.Equal(got[:], want)) {
			t.Fatalf("X25519(%x, %x) = %x, %v; crypto/ecdh %x, %v", k, u, got, ok, want, wantOK)
		}
	}
}

// TestEphemeralBoxKey checks that an ephemeral key's box key equals the
// static path's (crypto/ecdh then HSalsa20) from the other side.
func TestEphemeralBoxKey(t *testing.T) {
	e, err := newEphemeralKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp := s.Public()
	k1, err := e.boxKey(&sp)
	if err != nil {
		t.Fatal(err)
	}
	ep := e.Public()
	k2, err := s.boxKey(&ep)
	if err != nil {
		t.Fatal(err)
	}
	if *k1 != *k2 {
		t.Fatal("box keys differ")
	}
	low := PublicKey{1}
	if _, err := e.boxKey(&low); err != ErrWeakKey {
		t.Fatalf("low-order point: %v, want ErrWeakKey", err)
	}
	e.clear()
	if e.scalar != [32]byte{} {
		t.Fatal("clear left the scalar")
	}
}

// FuzzX25519 compares the ladder with crypto/ecdh on any scalar and point.
func FuzzX25519(f *testing.F) {
	f.Add(make([]byte, 64))
	f.Add(append(bytes.Repeat([]byte{0xff}, 32), 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 64 {
			b = append(b, make([]byte, 64-len(b))...)
		}
		k, u := (*[32]byte)(b[:32]), (*[32]byte)(b[32:64])
		var got [32]byte
		ok := x25519(&got, k, u)
		want, wantOK := ecdhX25519(k, u)
		if ok != wantOK || (ok && !bytes.Equal(got[:], want)) {
			t.Fatalf("X25519(%x, %x) = %x, %v; crypto/ecdh %x, %v", k, u, got, ok, want, wantOK)
		}
	})
}

// TestEphemeralKeyNeverPrints checks that no formatting verb shows the
// scalar, in hex or raw.
func TestEphemeralKeyNeverPrints(t *testing.T) {
	e, err := newEphemeralKey(bytes.NewReader(bytes.Repeat([]byte{0xab}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %x %X %s %q %d", e, e, e, e, e, e, e, e), fmt.Sprint(e), fmt.Sprintf("%v", *e)} {
		if strings.Contains(strings.ToLower(s), "abab") || strings.Contains(s, "171 171") || strings.Contains(s, "\xab") {
			t.Errorf("formatted ephemeral key %q shows the scalar", s)
		}
	}
}
