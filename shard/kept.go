package shard

import (
	"crypto/sha256"
	"fmt"
)

// CheckKept verifies the kept sealed file of the current definition, the
// one a rebuild imports: nil if it is there and matches its hash,
// ErrNoKept if it is missing, ErrTampered if it is damaged, and nil when
// nothing is current. The server runs it at every start, so a damaged
// rebuild source is found before the day it is needed.
func (st *Store) CheckKept() error {
	c := st.cur.Load()
	if c == nil {
		return nil
	}
	_, err := st.KeptSealed(c.Version.Hash)
	return err
}

// Keep writes sealed as the kept file of the current definition,
// replacing a damaged or missing one. It refuses a file whose SHA-256 is
// not the current version's hash, so only the accepted definition is
// kept.
func (st *Store) Keep(sealed []byte) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	c := st.cur.Load()
	if c == nil {
		return fmt.Errorf("shard: nothing is current to keep a sealed file for")
	}
	if len(sealed) > maxSealedBytes || sha256.Sum256(sealed) != c.Version.Hash {
		return fmt.Errorf("shard: the sealed file is not the current definition")
	}
	return writeKept(st.dir, c.Version.Hash, sealed)
}
