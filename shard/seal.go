package shard

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Labels of the subkeys derived from the seal key, and the AAD prefixes
// that keep one kind of record from being accepted as another.
const (
	valueKeyLabel = "coffer/1 shard value key"
	stateKeyLabel = "coffer/1 shard state key"

	aadShard  = "coffer/1 shard"
	aadClient = "coffer/1 client"
	aadCur    = "coffer/1 cur"
)

// AES-GCM framing of every sealed record: a random nonce, then the
// ciphertext and its tag.
const (
	nonceSize    = 12
	tagSize      = 16
	sealOverhead = nonceSize + tagSize
)

// nonceBatch is how many nonces one crypto/rand read fills during an
// import, so 10,000 clients cost a few dozen reads, not 20,000.
const nonceBatch = 1024

// sealer binds stored records to their place in the keyspace. Shards,
// client records and the current-generation pointer are AES-256-GCM
// sealed with a random 96-bit nonce; the state file carries an
// HMAC-SHA256. The nonce space allows about 2^32 seals per key, some
// 400,000 imports of 10,000 clients.
type sealer struct {
	aead     cipher.AEAD
	stateKey [32]byte
}

func newSealer(key *[32]byte) (*sealer, error) {
	vk, err := hkdf.Key(sha256.New, key[:], nil, valueKeyLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("shard: deriving value key: %w", err)
	}
	defer clear(vk)
	sk, err := hkdf.Key(sha256.New, key[:], nil, stateKeyLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("shard: deriving state key: %w", err)
	}
	defer clear(sk)
	block, err := aes.NewCipher(vk)
	if err != nil {
		return nil, fmt.Errorf("shard: value cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("shard: value cipher: %w", err)
	}
	s := &sealer{aead: aead}
	copy(s.stateKey[:], sk)
	return s, nil
}

// seal appends nonce || AES-GCM(plaintext, aad) to dst. nonce must be
// nonceSize fresh random bytes.
func (s *sealer) seal(dst, nonce, plaintext, aad []byte) []byte {
	dst = append(dst, nonce...)
	return s.aead.Seal(dst, nonce, plaintext, aad)
}

// sealRandom is seal with a nonce read from crypto/rand.
func (s *sealer) sealRandom(dst, plaintext, aad []byte) []byte {
	var n [nonceSize]byte
	rand.Read(n[:])
	return s.seal(dst, n[:], plaintext, aad)
}

// open verifies and decrypts a sealed record into a new buffer. Any
// failure is ErrTampered: a record that does not open is either damaged
// or was moved, and the two look the same.
func (s *sealer) open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, ErrTampered
	}
	out := make([]byte, 0, len(sealed)-sealOverhead)
	out, err := s.aead.Open(out, sealed[:nonceSize], sealed[nonceSize:], aad)
	if err != nil {
		return nil, ErrTampered
	}
	return out, nil
}

// stateMAC returns HMAC-SHA256 of the state file's body.
func (s *sealer) stateMAC(body []byte) []byte {
	m := hmac.New(sha256.New, s.stateKey[:])
	m.Write(body)
	return m.Sum(nil)
}

func (s *sealer) clear() { clear(s.stateKey[:]) }

// nonces hands out random nonces read from crypto/rand in batches.
type nonces struct {
	buf []byte
}

func (n *nonces) next() []byte {
	if len(n.buf) < nonceSize {
		n.buf = make([]byte, nonceSize*nonceBatch)
		rand.Read(n.buf)
	}
	b := n.buf[:nonceSize:nonceSize]
	n.buf = n.buf[nonceSize:]
	return b
}

// Keyspace prefixes (doc.go).
const (
	prefixShard  = "s/"
	prefixClient = "c/"
	prefixAudit  = "a/"
	keyCur       = "m/cur"
	prefixSettle = "settle/" // never written; see settle
)

// shardKey appends s/ gen client to dst.
func shardKey(dst []byte, gen uint64, client *[32]byte) []byte {
	dst = append(dst, prefixShard...)
	dst = binary.BigEndian.AppendUint64(dst, gen)
	return append(dst, client[:]...)
}

// clientKey appends c/ gen client to dst.
func clientKey(dst []byte, gen uint64, client *[32]byte) []byte {
	dst = append(dst, prefixClient...)
	dst = binary.BigEndian.AppendUint64(dst, gen)
	return append(dst, client[:]...)
}

// genPrefix appends prefix gen to dst.
func genPrefix(dst []byte, prefix string, gen uint64) []byte {
	dst = append(dst, prefix...)
	return binary.BigEndian.AppendUint64(dst, gen)
}

// shardAAD appends the associated data of a shard: its label, generation
// and client, so that a shard opens only where it was written. The names
// are inside the sealed blob.
func shardAAD(dst []byte, gen uint64, client *[32]byte) []byte {
	dst = append(dst, aadShard...)
	dst = binary.BigEndian.AppendUint64(dst, gen)
	return append(dst, client[:]...)
}

// clientAAD appends the associated data of a client record.
func clientAAD(dst []byte, gen uint64, client *[32]byte) []byte {
	dst = append(dst, aadClient...)
	dst = binary.BigEndian.AppendUint64(dst, gen)
	return append(dst, client[:]...)
}
