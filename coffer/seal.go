package coffer

import (
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/coffer-project/coffer/frame"
	"golang.org/x/crypto/nacl/box"
)

// This file is the only importer of nacl/box. It holds the pieces both
// sides share: the transcript hash, the session key schedule, counter
// nonces and the seal/open helpers (docs/protocol.md §3).

// Labels of coffer/2 (docs/protocol.md §3). Each names the version, so
// no transcript or key of coffer/1 is ever one of coffer/2.
const (
	protocolName = "coffer/2"
	labelC2S     = "coffer/2 c2s"
	labelS2C     = "coffer/2 s2c"
)

// maxHandshakeFrame is the largest Hello or Link frame (frame's Hello
// limit of 1,536 bytes plus the header): the transcript hashes them
// from a stack buffer of this size.
const maxHandshakeFrame = frame.HeaderSize + 1536

// maxFramesPerDirection bounds the counter nonces of one session: a
// counter never wraps, so no (key, nonce) pair can repeat, and a peer
// cannot keep a session alive with endless frames.
const maxFramesPerDirection = 1 << 16

// nonce is a 24-byte XSalsa20 nonce.
type nonce [frame.NonceSize]byte

// hash is a SHA-256 transcript hash.
type hash [frame.HashSize]byte

// errOpen is the one error every failed box open gives; the detail is
// never shown to a peer.
var errOpen = errors.New("coffer: box did not open")

// transcriptStart returns th0 = H("coffer/2" || S_pub), the prologue that
// binds the protocol name and the pinned server key.
func transcriptStart(server *PublicKey) hash {
	h := sha256.New()
	h.Write([]byte(protocolName))
	h.Write(server[:])
	var th hash
	h.Sum(th[:0])
	return th
}

// mixFrame returns H(th || raw), raw being a whole frame (header and
// body) exactly as sent or received. Hashed from a stack buffer: a Hello
// or a Link fits, so the handshake's transcript costs no allocation.
func mixFrame(th *hash, raw []byte) hash {
	var buf [len(hash{}) + maxHandshakeFrame]byte
	if len(raw) > len(buf)-len(th) {
		h := sha256.New()
		h.Write(th[:])
		h.Write(raw)
		var out hash
		h.Sum(out[:0])
		return out
	}
	n := copy(buf[:], th[:])
	n += copy(buf[n:], raw)
	return sha256.Sum256(buf[:n])
}

// equalHash compares a transcript hash carried in a plaintext with the
// expected one in constant time.
func equalHash(got []byte, want *hash) bool {
	return subtle.ConstantTimeCompare(got, want[:]) == 1
}

// readNonce fills a random nonce from r.
func readNonce(r io.Reader) (nonce, error) {
	var n nonce
	_, err := io.ReadFull(r, n[:])
	return n, err
}

// seal appends box(key, n, msg) to out (XSalsa20-Poly1305 with a key
// from K(a,B), the session schedule or cacheKey, 16-byte tag first; the
// same bytes as NaCl secretbox).
func seal(out, msg []byte, n *nonce, key *[32]byte) []byte {
	return box.SealAfterPrecomputation(out, msg, (*[24]byte)(n), key)
}

// open appends the plaintext of sealed to out, or fails with errOpen.
func open(out, sealed []byte, n *nonce, key *[32]byte) ([]byte, error) {
	m, ok := box.OpenAfterPrecomputation(out, sealed, (*[24]byte)(n), key)
	if !ok {
		return nil, errOpen
	}
	return m, nil
}

// sessionKeys derives k_cs and k_sc with crypto/hkdf:
//
//	prk  = HKDF-Extract(salt = th2, ikm = kem || es || ss || ee || se)
//	k_cs = HKDF-Expand(prk, "coffer/2 c2s", 32)
//	k_sc = HKDF-Expand(prk, "coffer/2 s2c", 32)
//
// where kem is the ML-KEM-768 shared secret of the session's ek and ct,
// and, seen from the client, es = K(Ce,S), ss = K(C,S), ee = K(Ce,Se)
// and se = K(C,Se). The combiner is the TLS 1.3 hybrid's: the secrets
// concatenated (ML-KEM first, as X25519MLKEM768 orders them) into one
// extract whose salt, th2, hashes every byte of Hello and Link, ek and
// ct included; the keys stay secret while either ML-KEM-768 or X25519
// does (docs/protocol.md §3.2). The ikm, prk and expanded keys are
// cleared before it returns; only the two cipherStates hold the result.
func sessionKeys(th2 *hash, kem, es, ss, ee, se *[32]byte) (cs, sc *cipherState, err error) {
	var ikm [5 * 32]byte
	copy(ikm[0:], kem[:])
	copy(ikm[32:], es[:])
	copy(ikm[64:], ss[:])
	copy(ikm[96:], ee[:])
	copy(ikm[128:], se[:])
	defer clear(ikm[:])
	prk, err := hkdf.Extract(sha256.New, ikm[:], th2[:])
	if err != nil {
		return nil, nil, err
	}
	defer clear(prk)
	cs, sc = new(cipherState), new(cipherState)
	if err := expandKey(&cs.key, prk, labelC2S); err != nil {
		return nil, nil, err
	}
	if err := expandKey(&sc.key, prk, labelS2C); err != nil {
		return nil, nil, err
	}
	return cs, sc, nil
}

// newKEMKey makes the client's ML-KEM-768 decapsulation key for one
// session from 64 bytes of r (the seed d || z of FIPS 203's
// ML-KEM.KeyGen_internal), so a test's Rand fixes it.
func newKEMKey(r io.Reader) (*mlkem.DecapsulationKey768, error) {
	var seed [mlkem.SeedSize]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, fmt.Errorf("coffer: reading randomness: %w", err)
	}
	return mlkem.NewDecapsulationKey768(seed[:])
}

// sessionDecapsulate returns the ML-KEM-768 shared secret of ct under dk.
func sessionDecapsulate(dk *mlkem.DecapsulationKey768, ct []byte) (*[32]byte, error) {
	key, err := dk.Decapsulate(ct)
	if err != nil {
		return nil, err
	}
	out := new([32]byte)
	copy(out[:], key)
	clear(key)
	return out, nil
}

// kemKeyHash is K in Hello's payload: SHA-256 of the outer ek, so the
// box authenticates ek without carrying it twice (docs/protocol.md §4.1).
func kemKeyHash(ek []byte) hash { return sha256.Sum256(ek) }

// sessionEncapsulate runs the server's half of the session's ML-KEM-768
// exchange: it returns the shared secret and the ciphertext for ek. With
// a nil r, crypto/mlkem draws the randomness itself (every real
// server). A server whose Rand a test replaced reads the 32 bytes of
// FIPS 203's ML-KEM.Encaps_internal from r instead, so that its Link is
// the vector's byte for byte (docs/protocol.md §9).
func sessionEncapsulate(ek []byte, r io.Reader) (*[32]byte, []byte, error) {
	k, err := mlkem.NewEncapsulationKey768(ek)
	if err != nil {
		return nil, nil, err
	}
	var key, ct []byte
	if r == nil {
		key, ct = k.Encapsulate()
	} else {
		var m [32]byte
		if _, err := io.ReadFull(r, m[:]); err != nil {
			return nil, nil, err
		}
		if key, ct, err = mlkemtest.Encapsulate768(k, m[:]); err != nil {
			return nil, nil, err
		}
	}
	out := new([32]byte)
	copy(out[:], key)
	clear(key)
	return out, ct, nil
}

// expandKey sets key to HKDF-Expand(prk, label, 32) and clears the copy
// crypto/hkdf returns.
func expandKey(key *[32]byte, prk []byte, label string) error {
	k, err := hkdf.Expand(sha256.New, prk, label, len(key))
	if err != nil {
		return err
	}
	copy(key[:], k)
	clear(k)
	return nil
}

// cipherState is one direction of a session: k_cs or k_sc with its
// frame counter. The counter is the nonce (24 bytes, big-endian), so
// reordered, dropped or duplicated frames fail to open.
type cipherState struct {
	key [32]byte
	n   uint64
}

// errCounter ends a session whose counter would pass the per-direction
// bound.
var errCounter = errors.New("coffer: too many frames in one session")

// counterNonce returns the 24-byte big-endian encoding of n.
func counterNonce(n uint64) nonce {
	var nc nonce
	binary.BigEndian.PutUint64(nc[frame.NonceSize-8:], n)
	return nc
}

// next returns the nonce of the next message sealed in this direction
// and advances the counter.
func (c *cipherState) next() (nonce, error) {
	if c.n >= maxFramesPerDirection {
		return nonce{}, errCounter
	}
	nc := counterNonce(c.n)
	c.n++
	return nc, nil
}

// open opens the next message. The counter advances only on success;
// callers end the session on any failure anyway.
func (c *cipherState) open(out, sealed []byte) ([]byte, error) {
	if c.n >= maxFramesPerDirection {
		return nil, errCounter
	}
	nc := counterNonce(c.n)
	m, err := open(out, sealed, &nc, &c.key)
	if err != nil {
		return nil, err
	}
	c.n++
	return m, nil
}

// clear zeroes the key.
func (c *cipherState) clear() {
	if c != nil {
		clear(c.key[:])
	}
}

// appendSealed appends one whole frame of type t to b: prefix (Hello's
// outer fields, a nonce box's nonce, or nothing), then the deterministic
// encoding of v sealed under key and n. Every sealed frame of coffer/2 is
// built here (docs/protocol.md §3); the plaintext is cleared before it
// returns.
func appendSealed(b []byte, t frame.Type, prefix []byte, v any, n *nonce, key *[32]byte) ([]byte, error) {
	pt, err := frame.Marshal(v)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	start := len(b)
	b = append(frame.AppendHeader(b, t), prefix...)
	return frame.Finish(seal(b, pt, n, key), start)
}
