package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// Shard returns the values of client in generation gen, opened and
// verified: all of them when names is empty, else only those of names
// that exist (a missing name is simply absent from the map). It returns
// ErrNotFound for a client the generation does not hold and ErrTampered
// when a value or the client record fails authentication, or when values
// were removed. The returned slices are the caller's; clear them when
// done. Safe for concurrent use; one read transaction, one AEAD open per
// value.
func (st *Store) Shard(gen uint64, client [32]byte, names []string) (map[string][]byte, error) {
	if st.closed.Load() {
		return nil, ErrClosed
	}
	var out map[string][]byte
	err := st.db.View(func(txn *badger.Txn) error {
		want, err := st.clientRecord(txn, gen, &client)
		if err != nil {
			return err
		}
		if len(names) > 0 {
			out, err = st.namedValues(txn, gen, &client, names)
			return err
		}
		out, err = st.allValues(txn, gen, &client, want)
		return err
	})
	if err != nil {
		for _, v := range out {
			clear(v)
		}
		return nil, err
	}
	return out, nil
}

// clientRecord opens the client's record and returns its value count.
func (st *Store) clientRecord(txn *badger.Txn, gen uint64, client *[32]byte) (int, error) {
	var kb [len(prefixClient) + 8 + 32]byte
	item, err := txn.Get(clientKey(kb[:0], gen, client))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("shard: reading client: %w", err)
	}
	var ab [len(aadClient) + 8 + 32]byte
	var count int
	err = item.Value(func(sealed []byte) error {
		rec, err := st.seal.open(sealed, clientAAD(ab[:0], gen, client))
		if err != nil || len(rec) < 4 {
			return ErrTampered
		}
		count = int(binary.BigEndian.Uint32(rec))
		return nil
	})
	return count, err
}

func (st *Store) allValues(txn *badger.Txn, gen uint64, client *[32]byte, want int) (map[string][]byte, error) {
	out := make(map[string][]byte, want)
	var pb [len(prefixValue) + 8 + 32]byte
	prefix := valueKey(pb[:0], gen, client, "")
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchSize: 16})
	defer it.Close()
	var ab [128]byte
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		name := item.Key()[len(prefix):]
		v, err := st.openItem(item, valueAAD(ab[:0], gen, client, name))
		if err != nil {
			return out, err
		}
		out[string(name)] = v
	}
	if len(out) != want {
		return out, fmt.Errorf("%w: client holds %d values, its record says %d", ErrTampered, len(out), want)
	}
	return out, nil
}

func (st *Store) namedValues(txn *badger.Txn, gen uint64, client *[32]byte, names []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(names))
	var kb, ab [128]byte
	for _, name := range names {
		if _, dup := out[name]; dup || len(name) == 0 || len(name) > maxNameBytes {
			continue
		}
		item, err := txn.Get(valueKey(kb[:0], gen, client, name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("shard: reading value: %w", err)
		}
		v, err := st.openItem(item, valueAAD(ab[:0], gen, client, []byte(name)))
		if err != nil {
			return out, err
		}
		out[name] = v
	}
	return out, nil
}

func (st *Store) openItem(item *badger.Item, aad []byte) ([]byte, error) {
	var v []byte
	err := item.Value(func(sealed []byte) error {
		var err error
		v, err = st.seal.open(sealed, aad)
		return err
	})
	if err != nil && !errors.Is(err, ErrTampered) {
		return nil, fmt.Errorf("shard: reading value: %w", err)
	}
	return v, err
}

// Clients calls fn with the key and name of every client of generation
// gen, in key order, after verifying each record. It returns ErrTampered
// if a record fails or, for the current generation, if clients are
// missing; nothing has then been served from a partial table as long as
// the caller discards what fn collected.
func (st *Store) Clients(gen uint64, fn func(key [32]byte, name string)) error {
	if st.closed.Load() {
		return ErrClosed
	}
	var n uint64
	err := st.db.View(func(txn *badger.Txn) error {
		prefix := genPrefix(nil, prefixClient, gen)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		var ab [len(aadClient) + 8 + 32]byte
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var key [32]byte
			if len(item.Key()) != len(prefix)+32 {
				return ErrTampered
			}
			copy(key[:], item.Key()[len(prefix):])
			var name string
			err := item.Value(func(sealed []byte) error {
				rec, err := st.seal.open(sealed, clientAAD(ab[:0], gen, &key))
				if err != nil || len(rec) < 4 {
					return ErrTampered
				}
				name = string(rec[4:])
				return nil
			})
			if err != nil {
				return err
			}
			fn(key, name)
			n++
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrTampered) {
			return err
		}
		return fmt.Errorf("shard: listing clients: %w", err)
	}
	if c := st.cur.Load(); c != nil && c.Gen == gen && c.Clients != n {
		return fmt.Errorf("%w: generation holds %d clients, its pointer says %d", ErrTampered, n, c.Clients)
	}
	return nil
}

// Stats describes the store for coffer-server inspect.
type Stats struct {
	Condition    Condition
	Version      Version // current version, if HasCurrent
	Generation   uint64
	HasCurrent   bool
	Clients      int   // clients of the current generation
	Values       int   // values of the current generation
	ValueBytes   int64 // their sealed size
	DiskBytes    int64 // every file under the data directory
	LSMBytes     int64 // Badger's estimate of its tables
	VLogBytes    int64 // Badger's estimate of its value log
	AuditRecords int
	AuditDropped uint64 // records Audit dropped because its queue was full
}

// Stats counts the current generation's keys (without opening values)
// and the files under the data directory.
func (st *Store) Stats() (Stats, error) {
	if st.closed.Load() {
		return Stats{}, ErrClosed
	}
	s := Stats{Condition: st.Condition()}
	s.LSMBytes, s.VLogBytes = st.db.Size()
	s.AuditRecords = int(st.audit.count.Load())
	s.AuditDropped = st.audit.dropped.Load()
	if c := st.cur.Load(); c != nil {
		s.Version, s.Generation, s.HasCurrent = c.Version, c.Gen, true
		err := st.db.View(func(txn *badger.Txn) error {
			s.Clients = countPrefix(txn, genPrefix(nil, prefixClient, c.Gen), nil)
			s.Values = countPrefix(txn, genPrefix(nil, prefixValue, c.Gen), &s.ValueBytes)
			return nil
		})
		if err != nil {
			return s, fmt.Errorf("shard: counting: %w", err)
		}
	}
	err := filepath.WalkDir(st.dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // files come and go while Badger compacts
		}
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			s.DiskBytes += info.Size()
		}
		return nil
	})
	return s, err
}

func countPrefix(txn *badger.Txn, prefix []byte, size *int64) int {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		n++
		if size != nil {
			*size += it.Item().ValueSize()
		}
	}
	return n
}
