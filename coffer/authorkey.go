package coffer

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/edwards25519"
)

// Text prefixes of an author's Ed25519 keys (docs/files.md, "Keys"). They
// share no prefix with the X25519 forms, so an author key given where a
// server or client key belongs, or the other way round, fails to parse
// with an error that names both kinds.
const (
	authorPublicPrefix = "cofferauthorpk1"
	authorSecretPrefix = "cofferauthorsk1"
)

// ErrSecretKeyGiven: key text that is a secret key was given where a
// public key belongs. The error never carries the text; the key should be
// treated as exposed to whoever saw the configuration.
var ErrSecretKeyGiven = errors.New("coffer: a secret key was given where a public key belongs (not printed); give the public key that 'coffer-companion pubkey KEYFILE' prints, and keep the secret key file private")

// keyKinds names each text prefix for errors, secret ones first marked.
var keyKinds = []struct {
	prefix, name string
	secret       bool
}{
	{publicPrefix, "an X25519 public key (server or client, cofferpk1...)", false},
	{secretPrefix, "an X25519 secret key", true},
	{authorPublicPrefix, "an author's signing public key (cofferauthorpk1...)", false},
	{authorSecretPrefix, "an author's secret signing key", true},
	{sealingPrefix, "a server's sealing key (cofferseal1...)", false},
}

// parseKeyText decodes s as the key of the given prefix into out. Text of
// another kind is refused naming both kinds, and secret text of any kind
// with ErrSecretKeyGiven; neither error quotes s.
func parseKeyText(prefix, want, s string, out []byte) error {
	s = strings.TrimSpace(s)
	for _, k := range keyKinds {
		if k.prefix == prefix || !hasPrefixFold([]byte(s), k.prefix) {
			continue
		}
		if k.secret {
			return ErrSecretKeyGiven
		}
		return fmt.Errorf("%w: this is %s; want %s", ErrKeyFormat, k.name, want)
	}
	return decodeKey(prefix, s, out)
}

// AuthorPublicKey is an author's Ed25519 public key: what the server's
// trusted list holds and a sealed definition's signature is checked with.
type AuthorPublicKey [ed25519.PublicKeySize]byte

// String returns the text form, cofferauthorpk1 followed by base32 of the
// key and a 4-byte checksum.
func (p AuthorPublicKey) String() string { return encodeKey(authorPublicPrefix, p[:]) }

// Fingerprint returns the first 8 bytes of SHA-256 of the key, in hex.
func (p AuthorPublicKey) Fingerprint() string {
	h := sha256.Sum256(p[:])
	return hex.EncodeToString(h[:8])
}

// ParseAuthorPublicKey parses the text form of an author's public key. It
// checks the prefix, length and checksum, and that the key is a point of
// the curve.
func ParseAuthorPublicKey(s string) (AuthorPublicKey, error) {
	var p AuthorPublicKey
	if err := parseKeyText(authorPublicPrefix, "an author's signing public key (cofferauthorpk1...)", s, p[:]); err != nil {
		return AuthorPublicKey{}, err
	}
	if _, err := new(edwards25519.Point).SetBytes(p[:]); err != nil {
		return AuthorPublicKey{}, fmt.Errorf("%w: not a point of the curve", ErrKeyFormat)
	}
	return p, nil
}

// AuthorKey is an author's Ed25519 signing key. It never prints its bytes:
// String and GoString say "redacted".
type AuthorKey struct {
	k   ed25519.PrivateKey
	pub AuthorPublicKey
}

// GenerateAuthorKey reads a 32-byte seed from rand and makes an author key.
func GenerateAuthorKey(rand io.Reader) (*AuthorKey, error) {
	var seed [ed25519.SeedSize]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("coffer: reading randomness: %w", err)
	}
	return NewAuthorKey(&seed), nil
}

// NewAuthorKey makes an author key of a 32-byte Ed25519 seed. The caller
// keeps ownership of seed and may clear it afterwards.
func NewAuthorKey(seed *[ed25519.SeedSize]byte) *AuthorKey {
	k := &AuthorKey{k: ed25519.NewKeyFromSeed(seed[:])}
	copy(k.pub[:], k.k[ed25519.SeedSize:])
	return k
}

// Public returns the public key.
func (k *AuthorKey) Public() AuthorPublicKey { return k.pub }

// String returns "redacted"; a secret key never prints.
func (k *AuthorKey) String() string { return "coffer.AuthorKey(redacted)" }

// GoString returns "redacted"; a secret key never prints.
func (k *AuthorKey) GoString() string { return k.String() }

// Format keeps %x, %v and friends from printing key bytes.
func (k *AuthorKey) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// sign signs msg with the key.
func (k *AuthorKey) sign(msg []byte) []byte { return ed25519.Sign(k.k, msg) }

// text returns the secret text form (of the seed); only the key file
// writer calls it.
func (k *AuthorKey) text() string { return encodeKey(authorSecretPrefix, k.k.Seed()) }
