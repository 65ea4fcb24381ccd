package coffer

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"io"

	"github.com/coffer-project/coffer/frame"
	"golang.org/x/crypto/nacl/box"
)

// This file is the only importer of nacl/box. It holds the pieces both
// sides share: the transcript hash, the session key schedule, counter
// nonces and the seal/open helpers (docs/protocol.md §3).

// Labels of coffer/1 (docs/protocol.md §3).
const (
	protocolName = "coffer/1"
	labelC2S     = "coffer/1 c2s"
	labelS2C     = "coffer/1 s2c"
)

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

// transcriptStart returns th0 = H("coffer/1" || S_pub), the prologue that
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
// body) exactly as sent or received.
func mixFrame(th *hash, raw []byte) hash {
	h := sha256.New()
	h.Write(th[:])
	h.Write(raw)
	var out hash
	h.Sum(out[:0])
	return out
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

// sessionKeys derives k_cs and k_sc:
//
//	prk  = HKDF-Extract(salt = th2, ikm = es || ss || ee || se)
//	k_cs = HKDF-Expand(prk, "coffer/1 c2s", 32)
//	k_sc = HKDF-Expand(prk, "coffer/1 s2c", 32)
//
// where, seen from the client, es = K(Ce,S), ss = K(C,S), ee = K(Ce,Se)
// and se = K(C,Se). The ikm and prk are cleared before it returns.
func sessionKeys(th2 *hash, es, ss, ee, se *[32]byte) (cs, sc *cipherState, err error) {
	var ikm [4 * 32]byte
	copy(ikm[0:], es[:])
	copy(ikm[32:], ss[:])
	copy(ikm[64:], ee[:])
	copy(ikm[96:], se[:])
	defer clear(ikm[:])
	prk, err := hkdf.Extract(sha256.New, ikm[:], th2[:])
	if err != nil {
		return nil, nil, err
	}
	defer clear(prk)
	cs, sc = new(cipherState), new(cipherState)
	if err := expandInto(&cs.key, prk, labelC2S); err != nil {
		return nil, nil, err
	}
	if err := expandInto(&sc.key, prk, labelS2C); err != nil {
		return nil, nil, err
	}
	return cs, sc, nil
}

func expandInto(dst *[32]byte, prk []byte, label string) error {
	k, err := hkdf.Expand(sha256.New, prk, label, 32)
	if err != nil {
		return err
	}
	copy(dst[:], k)
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

// seal appends the next sealed message to out and advances the counter.
func (c *cipherState) seal(out, msg []byte) ([]byte, error) {
	if c.n >= maxFramesPerDirection {
		return nil, errCounter
	}
	nc := counterNonce(c.n)
	c.n++
	return seal(out, msg, &nc, &c.key), nil
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

// appendHeader appends a frame header with a zero length, to be fixed by
// finishFrame once the body has been appended.
func appendHeader(b []byte, t frame.Type) []byte {
	return append(b, 0, 0, byte(t))
}

// finishFrame writes the body length into the header that starts at
// b[start] and checks the type's limit, so no frame the peer must refuse
// is ever sent.
func finishFrame(b []byte, start int) ([]byte, error) {
	n := len(b) - start - frame.HeaderSize
	t := frame.Type(b[start+2])
	limit, ok := t.Limit()
	if !ok || n > limit {
		return nil, frame.ErrTooLong
	}
	b[start] = byte(n >> 8)
	b[start+1] = byte(n)
	return b, nil
}
