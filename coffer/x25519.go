package coffer

import (
	"crypto/subtle"
	"fmt"
	"io"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
	"golang.org/x/crypto/salsa20/salsa"
)

// ephemeralKey is a one-session X25519 key: Ce on the client, Se on the
// server. crypto/ecdh computes a private key's public half with a full
// Montgomery ladder from u = 9 when the key is made (about 37 µs here);
// an ephemeral key instead gets it from a fixed-base multiplication on
// the birationally equivalent Edwards curve (RFC 7748 §4.1), with
// precomputed tables, and maps the point to its Montgomery u-coordinate
// (about 14 µs). Its two DHs use the ladder below, which costs what
// crypto/ecdh's does. The static keys stay on crypto/ecdh.
//
// The key is the same 32 random bytes either way: both sides of a test
// vector derive the same public key and shared secrets as before.
type ephemeralKey struct {
	scalar [KeySize]byte
	pub    PublicKey
}

// newEphemeralKey reads 32 bytes from rand and makes the key pair.
func newEphemeralKey(rand io.Reader) (*ephemeralKey, error) {
	e := new(ephemeralKey)
	if _, err := io.ReadFull(rand, e.scalar[:]); err != nil {
		return nil, fmt.Errorf("coffer: reading randomness: %w", err)
	}
	s, err := edwards25519.NewScalar().SetBytesWithClamping(e.scalar[:])
	if err != nil { // only for a length other than 32
		return nil, ErrKeyFormat
	}
	defer s.Set(edwards25519.NewScalar())
	// A clamped scalar is 2^254 plus a multiple of 8 below 2^254, never a
	// multiple of the group order, so the point is never the identity
	// (whose u-coordinate would be the 1/0 of the map).
	copy(e.pub[:], new(edwards25519.Point).ScalarBaseMult(s).BytesMontgomery())
	return e, nil
}

// newLadderEphemeralKey is newEphemeralKey for a process that makes one
// key and exits, such as coffer-client: the first fixed-base
// multiplication in a process builds the precomputed tables (about 1 ms
// here), where a ladder from u = 9 costs about 40 µs. The key pair is
// the same.
func newLadderEphemeralKey(rand io.Reader) (*ephemeralKey, error) {
	e := new(ephemeralKey)
	if _, err := io.ReadFull(rand, e.scalar[:]); err != nil {
		return nil, fmt.Errorf("coffer: reading randomness: %w", err)
	}
	base := [32]byte{9}
	if !x25519((*[32]byte)(&e.pub), &e.scalar, &base) {
		return nil, ErrKeyFormat // cannot happen: 9 generates the prime-order subgroup
	}
	return e, nil
}

// Public returns the public key.
func (e *ephemeralKey) Public() PublicKey { return e.pub }

// String, GoString and Format keep the scalar out of any formatted
// output, as for PrivateKey. Value receivers, so that a copy of the key
// formats the same way.
func (ephemeralKey) String() string                  { return "coffer.ephemeralKey(redacted)" }
func (e ephemeralKey) GoString() string              { return e.String() }
func (e ephemeralKey) Format(f fmt.State, verb rune) { io.WriteString(f, e.String()) }

// boxKey returns K(e,p) = HSalsa20(X25519(e,p), 0^16), like
// PrivateKey.boxKey. A low-order p gives ErrWeakKey.
func (e *ephemeralKey) boxKey(p *PublicKey) (*[32]byte, error) {
	var s [32]byte
	defer clear(s[:])
	if !x25519(&s, &e.scalar, (*[32]byte)(p)) {
		return nil, ErrWeakKey
	}
	var zero [16]byte
	out := new([32]byte)
	salsa.HSalsa20(out, &zero, &s, &salsa.Sigma)
	return out, nil
}

// clear zeroes the private scalar.
func (e *ephemeralKey) clear() {
	if e != nil {
		clear(e.scalar[:])
	}
}

// x25519 sets dst to X25519(scalar, u) (RFC 7748 §5): the scalar is
// clamped, the top bit of u is ignored and non-canonical u accepted, as
// crypto/ecdh does. It returns false, like crypto/ecdh's error, when the
// result is all zeros (u of low order). The ladder runs in constant time:
// the scalar's bits only select conditional swaps.
func x25519(dst, scalar, u *[32]byte) bool {
	k := *scalar
	defer clear(k[:])
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64

	var x1, x2, z2, x3, z3, a, aa, b, bb, e, c, d field.Element
	if _, err := x1.SetBytes(u[:]); err != nil {
		return false // only for a length other than 32
	}
	x2.One()
	z2.Zero()
	x3.Set(&x1)
	z3.One()
	swap := 0
	for pos := 254; pos >= 0; pos-- {
		bit := int(k[pos>>3]>>(pos&7)) & 1
		swap ^= bit
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = bit

		a.Add(&x2, &z2)       // A = x2 + z2
		aa.Square(&a)         // AA = A^2
		b.Subtract(&x2, &z2)  // B = x2 - z2
		bb.Square(&b)         // BB = B^2
		e.Subtract(&aa, &bb)  // E = AA - BB
		c.Add(&x3, &z3)       // C = x3 + z3
		d.Subtract(&x3, &z3)  // D = x3 - z3
		d.Multiply(&d, &a)    // DA = D * A
		c.Multiply(&c, &b)    // CB = C * B
		x3.Add(&d, &c)        // x3 = (DA + CB)^2
		x3.Square(&x3)        //
		z3.Subtract(&d, &c)   // z3 = x1 * (DA - CB)^2
		z3.Square(&z3)        //
		z3.Multiply(&x1, &z3) //
		x2.Multiply(&aa, &bb) // x2 = AA * BB
		z2.Mult32(&e, 121665) // z2 = E * (AA + a24 * E)
		z2.Add(&aa, &z2)      //
		z2.Multiply(&e, &z2)  //
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)
	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	out := x2.Bytes()
	copy(dst[:], out)
	clear(out)
	var zero [32]byte
	return subtle.ConstantTimeCompare(dst[:], zero[:]) == 0
}
