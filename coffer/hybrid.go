package coffer

import (
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// The hybrid encryption of a sealed definition to the server (docs/files.md,
// "Sealed definition", "Encryption"): an ephemeral X25519 exchange with the
// server's X25519 key and an ML-KEM-768 encapsulation to the server's
// ML-KEM key, both shared secrets and the whole transcript fed to one KDF,
// in the manner of X-Wing. A file key wrapped under that KDF's output
// encrypts the signed definition, so the definition stays confidential as
// long as either X25519 or ML-KEM-768 holds.

// Labels of the sealed file's derivations. Each names the format version,
// so no key of one version is ever a key of another.
const (
	sealingKDFLabel = "coffer-def/2 hybrid x25519 ml-kem-768"
	authorCopyLabel = "coffer-def/2 author copy"
)

// Sizes of the hybrid parts.
const (
	fileKeySize    = chacha20poly1305.KeySize
	wrappedKeySize = fileKeySize + chacha20poly1305.Overhead
)

// sealingPrefix is the text prefix of a server's sealing key.
const sealingPrefix = "cofferseal1"

// SealingKey is a server's public identity for sealing definitions to it:
// its X25519 public key (what clients pin) and the ML-KEM-768
// encapsulation key of the key file's independent seed. Its text form is
// cofferseal1 followed by base32 of both keys and a 4-byte checksum
// (about 1,950 characters, one line).
type SealingKey struct {
	X25519 PublicKey
	mlkem  *mlkem.EncapsulationKey768
}

// sealingKeyBytes is the size of a sealing key's binary form.
const sealingKeyBytes = KeySize + mlkem.EncapsulationKeySize768

// String returns the one-line text form, cofferseal1...
func (s *SealingKey) String() string {
	b := make([]byte, 0, sealingKeyBytes)
	b = append(b, s.X25519[:]...)
	b = append(b, s.mlkem.Bytes()...)
	return encodeKey(sealingPrefix, b)
}

// ParseSealingKey parses the text form of a sealing key. It checks the
// prefix, length and checksum, the X25519 key as ParsePublicKey does, and
// the ML-KEM key's encoding as FIPS 203 requires. Key text of any other
// kind is refused with an error that names the kind (and never prints a
// secret key).
func ParseSealingKey(s string) (*SealingKey, error) {
	var b [sealingKeyBytes]byte
	if err := parseKeyText(sealingPrefix, "a server's sealing key (cofferseal1..., from 'coffer-companion pubkey --sealing SERVER.key')", s, b[:]); err != nil {
		return nil, err
	}
	sk := &SealingKey{}
	copy(sk.X25519[:], b[:KeySize])
	if err := CheckPublicKey(&sk.X25519); err != nil {
		return nil, err
	}
	ek, err := mlkem.NewEncapsulationKey768(b[KeySize:])
	if err != nil {
		return nil, fmt.Errorf("%w: the ML-KEM-768 key is not a valid encoding", ErrKeyFormat)
	}
	sk.mlkem = ek
	return sk, nil
}

// SealingKey returns the server's sealing key: its X25519 public key and
// the encapsulation key of sealingDecapsulationKey.
func (k *PrivateKey) SealingKey() (*SealingKey, error) {
	dk, err := k.sealingDecapsulationKey()
	if err != nil {
		return nil, err
	}
	return &SealingKey{X25519: k.pub, mlkem: dk.EncapsulationKey()}, nil
}

// sealingDecapsulationKey is the server's ML-KEM-768 decapsulation key,
// made from the key file's own random seed (d ‖ z of FIPS 203's
// ML-KEM.KeyGen_internal), independent of the X25519 secret: whoever
// recovers the X25519 secret learns nothing of it.
func (k *PrivateKey) sealingDecapsulationKey() (*mlkem.DecapsulationKey768, error) {
	if k.sealingSeed == nil {
		return nil, ErrNoSealingSeed
	}
	return mlkem.NewDecapsulationKey768(k.sealingSeed[:])
}

// hybridHeader is the part of a sealed file the wrapped keys depend on:
// the ephemeral X25519 key and the ML-KEM ciphertext.
type hybridHeader struct {
	ephemeral PublicKey
	mlkemCT   [mlkem.CiphertextSize768]byte
}

// hybridKey is the combiner: HKDF-SHA256 over both shared secrets (ML-KEM
// first, as X-Wing and the TLS hybrid X25519MLKEM768 order them) with the
// whole transcript in info: the label, the ephemeral and the server's
// X25519 keys, the ML-KEM ciphertext and encapsulation key. X-Wing may
// leave the ML-KEM ciphertext and key out because ML-KEM binds them
// itself; including them costs nothing here and does not lean on that.
func hybridKey(ssM, ssX []byte, h *hybridHeader, server PublicKey, ek *mlkem.EncapsulationKey768) (*[32]byte, error) {
	ikm := make([]byte, 0, len(ssM)+len(ssX))
	ikm = append(append(ikm, ssM...), ssX...)
	defer clear(ikm)
	info := make([]byte, 0, len(sealingKDFLabel)+2*KeySize+len(h.mlkemCT)+mlkem.EncapsulationKeySize768)
	info = append(info, sealingKDFLabel...)
	info = append(info, h.ephemeral[:]...)
	info = append(info, server[:]...)
	info = append(info, h.mlkemCT[:]...)
	info = append(info, ek.Bytes()...)
	b, err := hkdf.Key(sha256.New, ikm, nil, string(info), 32)
	if err != nil {
		return nil, err
	}
	out := new([32]byte)
	copy(out[:], b)
	clear(b)
	return out, nil
}

// encapsulate runs the sender's half: a fresh X25519 key from rand and an
// ML-KEM encapsulation (crypto/mlkem reads crypto/rand itself). It returns
// the header to write and the key that wraps the file key.
func (s *SealingKey) encapsulate(rand io.Reader) (*hybridHeader, *[32]byte, error) {
	e, err := generateX25519(rand)
	if err != nil {
		return nil, nil, err
	}
	ssX, err := e.dh(&s.X25519)
	if err != nil {
		return nil, nil, err
	}
	defer clear(ssX[:])
	ssM, ct := s.mlkem.Encapsulate()
	defer clear(ssM)
	h := &hybridHeader{ephemeral: e.Public()}
	copy(h.mlkemCT[:], ct)
	key, err := hybridKey(ssM, ssX[:], h, s.X25519, s.mlkem)
	return h, key, err
}

// decapsulate runs the server's half with its X25519 key and ML-KEM
// decapsulation key. A wrong key of either kind gives a wrong result
// (ML-KEM's implicit rejection returns a pseudorandom secret), which the
// wrapped key's tag then refuses.
func decapsulate(x *PrivateKey, dk *mlkem.DecapsulationKey768, h *hybridHeader) (*[32]byte, error) {
	ssX, err := x.dh(&h.ephemeral)
	if err != nil {
		return nil, err
	}
	defer clear(ssX[:])
	ssM, err := dk.Decapsulate(h.mlkemCT[:])
	if err != nil {
		return nil, err
	}
	defer clear(ssM)
	return hybridKey(ssM, ssX[:], h, x.pub, dk.EncapsulationKey())
}

// authorCopyKey is the key that wraps the file key for the author who
// sealed it, so the author can open its own files again (open, edit,
// --previous) without the server's key: HKDF-SHA256 of the author's seed,
// salted with the file's ephemeral key so that each file has its own.
// It is symmetric, so quantum computers do not weaken it either.
func (k *AuthorKey) authorCopyKey(ephemeral PublicKey) (*[32]byte, error) {
	seed := k.k.Seed()
	defer clear(seed)
	b, err := hkdf.Key(sha256.New, seed, ephemeral[:], authorCopyLabel, 32)
	if err != nil {
		return nil, err
	}
	out := new([32]byte)
	copy(out[:], b)
	clear(b)
	return out, nil
}

// errAEAD is any failed tag; callers map it to their sentinel.
var errAEAD = errors.New("coffer: message authentication failed")

// aeadSeal encrypts pt under key with a zero nonce, appending to dst. Each
// key seals one message only (a file key, or a key derived from a fresh
// ephemeral), so the nonce never repeats under a key.
func aeadSeal(dst []byte, key *[32]byte, pt, ad []byte) []byte {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic("coffer: chacha20poly1305 refused a 32-byte key")
	}
	var n [chacha20poly1305.NonceSize]byte
	return a.Seal(dst, n[:], pt, ad)
}

// aeadOpen is aeadSeal's inverse; it returns errAEAD on a bad tag.
func aeadOpen(key *[32]byte, ct, ad []byte) ([]byte, error) {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic("coffer: chacha20poly1305 refused a 32-byte key")
	}
	var n [chacha20poly1305.NonceSize]byte
	pt, err := a.Open(nil, n[:], ct, ad)
	if err != nil {
		return nil, errAEAD
	}
	return pt, nil
}
