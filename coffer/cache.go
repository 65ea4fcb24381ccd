package coffer

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// cacheMagic opens every cache file, so a stray file is told apart from
// a damaged cache. The "1" is the format version.
const cacheMagic = "coffer-cache1\n"

// cacheKeyLabel is the HKDF info of the key that seals the client's
// cache (docs/client.md, "The sealed cache").
const cacheKeyLabel = "coffer/1 client cache"

// MaxCacheBytes bounds a cache file: one whole shard plus a small
// envelope. It bounds what a planted file can make the client allocate.
const MaxCacheBytes = frame.MaxShardBytes + 4096

// ErrCacheOpen is returned for every cache file that does not open: a
// damaged file, one sealed to another client key, or one edited by hand.
var ErrCacheOpen = errors.New("coffer: cache file does not open with this client key (damaged or sealed to another key)")

// CacheEntry is the last good shard as the client keeps it. The sealed
// form binds all fields together, so a cache cannot be moved between
// servers, definitions or clients.
type CacheEntry struct {
	Server  PublicKey // the pinned server key the shard was fetched from
	Version Version   // the definition the shard came from
	// Definition names it (Result.Definition); "" and
	// frame.DefaultDefinition are the default one, which a cache written
	// before several definitions per server leaves out.
	Definition string
	Fetched    time.Time // when the shard was fetched, to the second
	Shard      frame.Shard
}

// cacheBody is the CBOR plaintext inside the box. Client repeats the
// owner's public key, so a box opened by a key derived elsewhere with the
// same bytes still names the wrong owner.
type cacheBody struct {
	Client  []byte `cbor:"client"`
	Server  []byte `cbor:"server"`
	Serial  uint64 `cbor:"serial"`
	Hash    []byte `cbor:"hash"`
	Fetched int64  `cbor:"fetched"`
	Shard   []byte `cbor:"shard"`
	Def     string `cbor:"def,omitempty"` // absent for the default definition
}

// cacheKey derives the box key from the client's private key.
func cacheKey(k *PrivateKey) (*[32]byte, error) {
	secret := k.k.Bytes()
	defer clear(secret)
	b, err := hkdf.Key(sha256.New, secret, nil, cacheKeyLabel, 32)
	if err != nil {
		return nil, err
	}
	key := new([32]byte)
	copy(key[:], b)
	clear(b)
	return key, nil
}

// SealCache seals e to the client key k with a fresh nonce from rand and
// returns the file contents: cacheMagic, the nonce, then the box made by
// seal (seal.go), the same bytes as NaCl secretbox. Only k can open it.
// The plaintext buffers are cleared before return.
func SealCache(k *PrivateKey, e *CacheEntry, rand io.Reader) ([]byte, error) {
	shard, err := frame.EncodeShard(e.Shard)
	if err != nil {
		return nil, fmt.Errorf("coffer: cache: %w", err)
	}
	defer clear(shard)
	pub := k.Public()
	body := cacheBody{Client: pub[:], Server: e.Server[:], Serial: e.Version.Serial, Hash: e.Version.Hash[:],
		Fetched: e.Fetched.Unix(), Shard: shard}
	if e.Definition != frame.DefaultDefinition {
		body.Def = e.Definition
	}
	plain, err := frame.Marshal(&body)
	if err != nil {
		return nil, fmt.Errorf("coffer: cache: %w", err)
	}
	defer clear(plain)
	key, err := cacheKey(k)
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	n, err := readNonce(rand)
	if err != nil {
		return nil, fmt.Errorf("coffer: reading randomness: %w", err)
	}
	out := make([]byte, 0, len(cacheMagic)+len(n)+len(plain)+frame.Overhead)
	out = append(out, cacheMagic...)
	out = append(out, n[:]...)
	return seal(out, plain, &n, key), nil
}

// OpenCache opens a cache file sealed to k. It checks the magic, the
// box, the owner, the exact field lengths and the shard with the strict
// decoder. Errors never quote the file.
func OpenCache(k *PrivateKey, file []byte) (*CacheEntry, error) {
	if len(file) > MaxCacheBytes {
		return nil, fmt.Errorf("coffer: cache file of %d bytes exceeds limit %d", len(file), MaxCacheBytes)
	}
	if !bytes.HasPrefix(file, []byte(cacheMagic)) {
		return nil, errors.New("coffer: not a coffer cache file")
	}
	rest := file[len(cacheMagic):]
	var n nonce
	if len(rest) < len(n)+frame.Overhead {
		return nil, ErrCacheOpen
	}
	copy(n[:], rest)
	key, err := cacheKey(k)
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	plain, err := open(nil, rest[len(n):], &n, key)
	if err != nil {
		return nil, ErrCacheOpen
	}
	defer clear(plain)
	var body cacheBody
	if err := frame.Unmarshal(plain, &body); err != nil {
		return nil, fmt.Errorf("coffer: cache: %w", err)
	}
	defer clear(body.Shard)
	pub := k.Public()
	if len(body.Client) != KeySize || len(body.Server) != KeySize || len(body.Hash) != 32 ||
		subtle.ConstantTimeCompare(body.Client, pub[:]) != 1 {
		return nil, ErrCacheOpen
	}
	shard, err := frame.DecodeShard(body.Shard)
	if err != nil {
		return nil, fmt.Errorf("coffer: cache: %w", err)
	}
	if body.Def == frame.DefaultDefinition || (body.Def != "" && !frame.ValidDefinitionName(body.Def)) {
		return nil, errors.New("coffer: cache: bad definition name")
	}
	e := &CacheEntry{Version: Version{Serial: body.Serial}, Definition: body.Def, Fetched: time.Unix(body.Fetched, 0), Shard: shard}
	if e.Definition == "" {
		e.Definition = frame.DefaultDefinition
	}
	copy(e.Server[:], body.Server)
	copy(e.Version.Hash[:], body.Hash)
	return e, nil
}
