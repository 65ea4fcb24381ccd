package coffer

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// StoreKeys are the two keys the server's store is given, both derived
// from the server's private key, so a copy of the data directory is
// useless without the key file. The store never sees the private key.
type StoreKeys struct {
	Badger [32]byte // Badger's encryption-at-rest master key (AES-256-CTR)
	Seal   [32]byte // AEAD key binding each stored value to its generation, client and name
}

// Labels of the store key derivations (docs/operation.md, "the store").
const (
	storeBadgerLabel = "coffer/1 store badger"
	storeSealLabel   = "coffer/1 store seal"
)

// DeriveStoreKeys derives the store keys from the server key with
// HKDF-SHA256. The caller should clear the result when the store closes.
func DeriveStoreKeys(server *PrivateKey) (*StoreKeys, error) {
	secret := server.k.Bytes()
	defer clear(secret)
	var sk StoreKeys
	b, err := hkdf.Key(sha256.New, secret, nil, storeBadgerLabel, 32)
	if err != nil {
		return nil, err
	}
	copy(sk.Badger[:], b)
	clear(b)
	if b, err = hkdf.Key(sha256.New, secret, nil, storeSealLabel, 32); err != nil {
		return nil, err
	}
	copy(sk.Seal[:], b)
	clear(b)
	return &sk, nil
}

// Clear zeroes both keys.
func (sk *StoreKeys) Clear() {
	clear(sk.Badger[:])
	clear(sk.Seal[:])
}
