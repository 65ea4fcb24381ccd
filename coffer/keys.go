package coffer

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/salsa20/salsa"
)

// KeySize is the size of X25519 public and private keys.
const KeySize = 32

// Text prefixes of the key forms. The "1" is the format version.
const (
	publicPrefix = "cofferpk1"
	secretPrefix = "coffersk1"
	// sealingSeedPrefix: a server key file's ML-KEM-768 sealing seed.
	sealingSeedPrefix = "cofferkemsk1"
	checksumSize      = 4
)

// keyEncoding is lowercase RFC 4648 base32 without padding: no characters
// that shells, TOML or URLs treat specially, and case-insensitive on read.
var keyEncoding = base32.NewEncoding(keyEncodingAlphabet).WithPadding(base32.NoPadding)

const keyEncodingAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// Errors about keys. None of them carries key material.
var (
	ErrKeyFormat   = errors.New("coffer: malformed key")
	ErrKeyChecksum = errors.New("coffer: key checksum mismatch (a typo or a truncated copy)")
	ErrWeakKey     = errors.New("coffer: low-order or non-canonical public key")
)

// PublicKey is an X25519 public key: a client's or a server's identity.
// (Authors sign with Ed25519 keys, AuthorPublicKey.)
type PublicKey [KeySize]byte

// String returns the one-line text form, cofferpk1 followed by base32 of
// the key and a 4-byte checksum.
func (p PublicKey) String() string { return encodeKey(publicPrefix, p[:]) }

// Fingerprint returns a short, stable name for logs: the first 8 bytes of
// SHA-256 of the key, in hex.
func (p PublicKey) Fingerprint() string {
	h := sha256.Sum256(p[:])
	return hex.EncodeToString(h[:8])
}

// ParsePublicKey parses the text form of a public key. It checks the
// prefix, the length and the checksum, and refuses low-order and
// non-canonical points, so a bad key is caught where it is typed.
func ParsePublicKey(s string) (PublicKey, error) {
	var p PublicKey
	if err := parseKeyText(publicPrefix, "an X25519 public key (cofferpk1...)", s, p[:]); err != nil {
		return PublicKey{}, err
	}
	if err := CheckPublicKey(&p); err != nil {
		return PublicKey{}, err
	}
	return p, nil
}

// CheckPublicKey refuses the encodings that would make X25519 output
// predictable or that have two spellings: the high bit set, values at or
// above 2^255-19, and the five canonical points of small order.
func CheckPublicKey(p *PublicKey) error {
	if p[31]&0x80 != 0 || !belowP(p) {
		return ErrWeakKey
	}
	for i := range lowOrder {
		if subtle.ConstantTimeCompare(p[:], lowOrder[i][:]) == 1 {
			return ErrWeakKey
		}
	}
	return nil
}

// belowP reports whether the little-endian value of p is below 2^255-19.
func belowP(p *PublicKey) bool {
	if p[31] != 0x7f {
		return true
	}
	for i := 30; i >= 1; i-- {
		if p[i] != 0xff {
			return true
		}
	}
	return p[0] < 0xed
}

// lowOrder lists the canonical u-coordinates of points of order 1, 2, 4
// and 8 on Curve25519: 0, 1, p-1 and the two points of order 8.
var lowOrder = [5]PublicKey{
	{},
	{1},
	mustHexKey("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
	mustHexKey("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
	mustHexKey("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
}

func mustHexKey(s string) PublicKey {
	var p PublicKey
	if n, err := hex.Decode(p[:], []byte(s)); err != nil || n != KeySize {
		panic("coffer: bad built-in key constant")
	}
	return p
}

// PrivateKey is an X25519 private key with its public key cached. It
// never prints its bytes: String and GoString say "redacted".
type PrivateKey struct {
	k   *ecdh.PrivateKey
	pub PublicKey
	// sealingSeed is the 64-byte seed (d ‖ z of FIPS 203) of the
	// ML-KEM-768 key that sealed definitions are encrypted to when this is
	// a server's key; nil for keys made without one (docs/files.md).
	sealingSeed *[mlkem.SeedSize]byte
}

// GenerateKey reads 32 bytes from rand and makes a private key of them.
// (crypto/ecdh's own GenerateKey ignores its reader in Go 1.26, and tests
// need to inject one.)
//
// It then reads 64 more bytes, the independent seed of the key's
// ML-KEM-768 sealing key (used when the key is a server's), so that
// breaking X25519 tells nothing about it.
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	k, err := generateX25519(rand)
	if err != nil {
		return nil, err
	}
	if err := k.AddSealingSeed(rand); err != nil {
		return nil, err
	}
	return k, nil
}

// generateX25519 makes an X25519 key of 32 bytes read from rand, without
// a sealing seed (an ephemeral key).
func generateX25519(rand io.Reader) (*PrivateKey, error) {
	var b [KeySize]byte
	defer clear(b[:])
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("coffer: reading randomness: %w", err)
	}
	return NewPrivateKey(&b)
}

// AddSealingSeed reads a fresh 64-byte ML-KEM-768 seed from rand into k.
// It refuses a key that already has one.
func (k *PrivateKey) AddSealingSeed(rand io.Reader) error {
	if k.sealingSeed != nil {
		return ErrHasSealingSeed
	}
	var seed [mlkem.SeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		clear(seed[:])
		return fmt.Errorf("coffer: reading randomness: %w", err)
	}
	k.sealingSeed = &seed
	return nil
}

// HasSealingSeed reports whether k carries an ML-KEM-768 sealing seed.
func (k *PrivateKey) HasSealingSeed() bool { return k.sealingSeed != nil }

// ErrHasSealingSeed: AddSealingSeed on a key that has a seed already.
var ErrHasSealingSeed = errors.New("coffer: the key already has an ML-KEM-768 sealing seed")

// ErrNoSealingSeed: a server key without the ML-KEM-768 seed that sealed
// definitions need (a key file made before the seed existed).
var ErrNoSealingSeed = errors.New("coffer: the server key file has no ML-KEM-768 sealing seed; add one with: coffer-companion keygen --upgrade KEYFILE (then give authors the new sealing key: coffer-companion pubkey --sealing)")

// NewPrivateKey makes a private key of 32 raw bytes (clamped by X25519).
// The caller keeps ownership of b and may clear it afterwards.
func NewPrivateKey(b *[KeySize]byte) (*PrivateKey, error) {
	k, err := ecdh.X25519().NewPrivateKey(b[:])
	if err != nil {
		return nil, ErrKeyFormat
	}
	pk := &PrivateKey{k: k}
	copy(pk.pub[:], k.PublicKey().Bytes())
	return pk, nil
}

// Public returns the public key.
func (k *PrivateKey) Public() PublicKey { return k.pub }

// String returns "redacted"; a private key never prints.
func (k *PrivateKey) String() string { return "coffer.PrivateKey(redacted)" }

// GoString returns "redacted"; a private key never prints.
func (k *PrivateKey) GoString() string { return k.String() }

// Format keeps %x, %v and friends from printing key bytes.
func (k *PrivateKey) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// text returns the secret text form; only the key file writer calls it.
func (k *PrivateKey) text() string {
	b := k.k.Bytes()
	defer clear(b)
	return encodeKey(secretPrefix, b)
}

// dh computes X25519(k, p) through crypto/ecdh, which fails on an
// all-zero output (a low-order p).
func (k *PrivateKey) dh(p *PublicKey) (*[32]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(p[:])
	if err != nil {
		return nil, ErrWeakKey
	}
	s, err := k.k.ECDH(pub)
	if err != nil {
		return nil, ErrWeakKey
	}
	var out [32]byte
	copy(out[:], s)
	clear(s)
	return &out, nil
}

// boxKey computes K(k, p) = HSalsa20(X25519(k, p), 0^16), the shared key
// of a NaCl box between k and p, equal to box.Precompute at half its
// cost (box.Precompute also recomputes k's public key).
func (k *PrivateKey) boxKey(p *PublicKey) (*[32]byte, error) {
	s, err := k.dh(p)
	if err != nil {
		return nil, err
	}
	var zero [16]byte
	out := new([32]byte)
	salsa.HSalsa20(out, &zero, s, &salsa.Sigma)
	clear(s[:])
	return out, nil
}

func encodeKey(prefix string, key []byte) string {
	buf := make([]byte, 0, len(key)+checksumSize)
	buf = append(buf, key...)
	sum := keyChecksum(prefix, key)
	buf = append(buf, sum[:]...)
	s := prefix + keyEncoding.EncodeToString(buf)
	clear(buf)
	return s
}

func decodeKey(prefix, s string, out []byte) error {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return fmt.Errorf("%w: want a %s... key", ErrKeyFormat, prefix)
	}
	want := keyEncoding.EncodedLen(len(out) + checksumSize)
	body := s[len(prefix):]
	if len(body) != want {
		return fmt.Errorf("%w: %d characters after %s, want %d", ErrKeyFormat, len(body), prefix, want)
	}
	buf := make([]byte, len(out)+checksumSize)
	defer clear(buf)
	lower := strings.ToLower(body)
	n, err := keyEncoding.Decode(buf, []byte(lower))
	if err != nil || n != len(buf) {
		return fmt.Errorf("%w: not base32", ErrKeyFormat)
	}
	// The last base32 character carries two unused bits; accept only the
	// spelling with them zero, so each key has exactly one text form.
	if keyEncoding.EncodeToString(buf) != lower {
		return fmt.Errorf("%w: non-canonical base32", ErrKeyFormat)
	}
	sum := keyChecksum(prefix, buf[:len(out)])
	if subtle.ConstantTimeCompare(sum[:], buf[len(out):]) != 1 {
		return ErrKeyChecksum
	}
	copy(out, buf[:len(out)])
	return nil
}

func keyChecksum(prefix string, key []byte) [checksumSize]byte {
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write(key)
	var sum [checksumSize]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
