package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/dgraph-io/badger/v4"
)

// Shard returns the values of client in generation gen, opened and
// verified: all of them when names is empty, else only those of names
// that exist (a missing name is simply absent from the map). It returns
// ErrNotFound for a client the generation does not hold and ErrTampered
// when the stored shard fails authentication. The values share one
// buffer, the caller's; clear them when done. Safe for concurrent use:
// one read transaction, one lookup and one AEAD open.
func (st *Store) Shard(gen uint64, client [32]byte, names []string) (map[string][]byte, error) {
	if st.closed.Load() {
		return nil, ErrClosed
	}
	var plain []byte
	err := st.view(func(txn *badger.Txn) error {
		var kb [len(prefixShard) + 8 + 32]byte
		item, err := txn.Get(shardKey(kb[:0], gen, &client))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("shard: reading shard: %w", err)
		}
		var ab [len(aadShard) + 8 + 32]byte
		return item.Value(func(sealed []byte) error {
			plain, err = st.seal.open(sealed, shardAAD(ab[:0], gen, &client))
			return err
		})
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrTampered) {
			return nil, err
		}
		return nil, fmt.Errorf("shard: reading shard: %w", err)
	}
	// A set, not slices.Contains: up to 65,536 entries against up to 256
	// names would be 16 million comparisons per Get.
	var want map[string]struct{}
	if len(names) > 0 {
		want = make(map[string]struct{}, len(names))
		for _, n := range names {
			want[n] = struct{}{}
		}
	}
	out := make(map[string][]byte, max(len(names), 8))
	err = parseBlob(plain, nil, func(name, value []byte) {
		if want != nil {
			if _, ok := want[string(name)]; !ok {
				return
			}
		}
		out[string(name)] = value
	})
	if err != nil {
		clear(plain)
		return nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	return out, nil
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
	err := st.view(func(txn *badger.Txn) error {
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
	ShardBytes   int64 // sealed size of its shards
	DiskBytes    int64 // blocks used by the files under the data directory
	LSMBytes     int64 // Badger's estimate of its tables
	VLogBytes    int64 // Badger's estimate of its value log
	AuditRecords int
	AuditDropped uint64 // records Audit dropped because its queue was full
	AuditLost    uint64 // records Open found lost to damage (see auditmark.go)
	// Kept is the state of the current definition's kept sealed file,
	// the rebuild source (CheckKept): "ok", "missing" or "damaged"; empty
	// when nothing is current.
	Kept string
}

// Stats counts the current generation's keys (without opening values)
// and the files under the data directory.
func (st *Store) Stats() (Stats, error) {
	if st.closed.Load() {
		return Stats{}, ErrClosed
	}
	s := Stats{Condition: st.Condition()}
	st.withDB(func(db *badger.DB) error {
		s.LSMBytes, s.VLogBytes = db.Size()
		return nil
	})
	s.AuditRecords = int(st.audit.count.Load())
	s.AuditDropped = st.audit.dropped.Load()
	s.AuditLost = st.audit.lost
	if c := st.cur.Load(); c != nil {
		s.Version, s.Generation, s.HasCurrent = c.Version, c.Gen, true
		switch err := st.CheckKept(); {
		case err == nil:
			s.Kept = "ok"
		case errors.Is(err, ErrNoKept):
			s.Kept = "missing"
		default:
			s.Kept = "damaged"
		}
		err := st.view(func(txn *badger.Txn) error {
			s.Clients, s.Values = st.countClients(txn, c.Gen)
			s.ShardBytes = sizePrefix(txn, genPrefix(nil, prefixShard, c.Gen))
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
			s.DiskBytes += diskUsage(info)
		}
		return nil
	})
	return s, err
}

// countClients counts the clients of gen and their values, from the
// client records; a record that does not open counts no value.
func (st *Store) countClients(txn *badger.Txn, gen uint64) (clients, values int) {
	prefix := genPrefix(nil, prefixClient, gen)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	var ab [len(aadClient) + 8 + 32]byte
	for it.Rewind(); it.Valid(); it.Next() {
		clients++
		var key [32]byte
		copy(key[:], it.Item().Key()[len(prefix):])
		it.Item().Value(func(sealed []byte) error {
			if rec, err := st.seal.open(sealed, clientAAD(ab[:0], gen, &key)); err == nil && len(rec) >= 4 {
				values += int(binary.BigEndian.Uint32(rec))
			}
			return nil
		})
	}
	return clients, values
}

// sizePrefix sums the stored sizes under prefix.
func sizePrefix(txn *badger.Txn, prefix []byte) int64 {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var n int64
	for it.Rewind(); it.Valid(); it.Next() {
		n += it.Item().ValueSize()
	}
	return n
}

// diskUsage is the space a file takes: Badger's logs are sparse files
// twice the size of what they hold.
func diskUsage(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}
