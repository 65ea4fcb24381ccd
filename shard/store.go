package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Errors callers act on. None of them carries a value or key bytes.
var (
	ErrNotFound   = errors.New("shard: unknown client")
	ErrTampered   = errors.New("shard: stored record fails authentication (damaged or moved)")
	ErrRollback   = errors.New("shard: definition serial does not advance")
	ErrSame       = errors.New("shard: definition already current")
	ErrWrongKey   = errors.New("shard: store encryption key mismatch (wrong server key?)")
	ErrCorrupt    = errors.New("shard: store is corrupt")
	ErrLocked     = errors.New("shard: store is in use by another process")
	ErrBadState   = errors.New("shard: state file is corrupt or was written with another key")
	ErrClosed     = errors.New("shard: store is closed")
	ErrNoKept     = errors.New("shard: no kept sealed file for that hash")
	ErrCurrentGen = errors.New("shard: cannot drop the current generation")
)

// Badger profile for a small daemon (docs: library-pitfalls.md). A
// transaction may hold at most 15% of the memtable (about 310 KB here),
// so an import is written in many batches.
//
// The sizes are most of the server's idle memory after an import of
// 10,000 clients (docs/server.md, "Memory"): a memtable's arena is
// allocated whole; each memtable flush builds its table in buffers that
// start at twice baseTableSize and double until the table fits, which
// Badger keeps for reuse; and a new table is verified block by block
// through the block cache, filling it. With 4 MiB memtables, 2 MiB
// tables and an 8 MiB block cache the three held about 21 MiB of heap at
// idle, against about 11 MiB now. The shards of 10,000 clients take
// about 6 MiB of blocks, so fetches in random order mostly miss the
// cache either way; a miss costs a read about 5 us (BenchmarkShard).
//
// Those buffers come from a pool of up to 8 allocators per Badger
// instance, which frees one every 2 s once idle, and each store of a
// server with several definitions is one instance. Four stores of 25,000
// clients each held 212 MiB of pooled buffers right after their imports
// with 1 MiB tables and 125 MiB with 256 KiB tables (a heap profile of
// four imports in one process), so tables are 256 KiB: more table files,
// the same data. Since then a store's first import ends by closing and
// reopening Badger (reopen), which returns the whole pool: 29 MiB of
// live heap stays after the four imports instead of 91-167
// (BenchmarkImportStores). 1 MiB memtables would shrink the flush
// buffers further (peak heap of that benchmark about 143 MiB against
// 168) but made the imports about 25% slower.
const (
	memTableSize     = 2 << 20
	numMemtables     = 2
	baseTableSize    = 256 << 10
	blockCacheSize   = 2 << 20
	indexCacheSize   = 4 << 20
	valueLogFileSize = 32 << 20
	numCompactors    = 2
	valueThreshold   = 64 << 10 // shards above it go to the value log

	// maxShardBytes bounds one client's stored shard: Badger refuses a
	// value larger than a value log file, and the protocol's shard limit
	// (frame.MaxShardBytes, 16 MiB) must fit.
	maxShardBytes = valueLogFileSize - 1<<20
	// maxVlogGC bounds the value log files rewritten after a drop.
	maxVlogGC = 8
	// maxNameBytes bounds a value name, well below Badger's 65,000-byte key
	// limit; frame.MaxNameBytes is smaller still.
	maxNameBytes = 1024
	// maxSealedBytes bounds a kept sealed file read back from disk, as the
	// server bounds the file it accepts.
	maxSealedBytes = 64 << 20
)

// Defaults of the audit retention.
const (
	defaultAuditMaxRecords = 100_000
)

// Names inside the data directory.
const (
	dbDir     = "db"
	sealedDir = "sealed"
	stateFile = "state"
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// Logger receives the store's and Badger's warnings and errors. Badger
	// only ever sees sealed values, so its messages hold no secret. Nil
	// discards them.
	Logger *slog.Logger
	// AuditMaxRecords bounds the audit log; older records are pruned.
	// Zero or less means 100,000.
	AuditMaxRecords int
	// AuditMaxAge prunes audit records older than this. Zero keeps them
	// until AuditMaxRecords pushes them out.
	AuditMaxAge time.Duration

	noVerify bool // tests of the read path: Open skips verifyGen
}

// Version identifies an accepted definition: its serial and the SHA-256
// of the binary sealed file.
type Version struct {
	Serial uint64
	Hash   [32]byte
}

// Condition is what Open found when it compared the store with the state
// file (docs: definitions-and-store.md, "Restart").
type Condition int

// Conditions.
const (
	// Consistent: the store's current definition is the state file's.
	Consistent Condition = iota
	// FirstRun: neither a state file nor a current definition. The
	// server starts trust-on-first-use; log it loudly.
	FirstRun
	// StateUpdated: the store was ahead of the state file (a crash
	// between the store's commit and the state write); Open rewrote it.
	StateUpdated
	// StateRecreated: the state file was missing while the store holds a
	// definition; Open wrote it from the store. Someone removed it.
	StateRecreated
	// NeedsRebuild: the store is behind the state file, empty or its
	// pointer does not open. Current reports nothing; import the kept
	// sealed file of State().Hash (KeptSealed) before serving.
	NeedsRebuild
)

var conditionNames = [...]string{"consistent", "first-run", "state-updated", "state-recreated", "needs-rebuild"}

// String returns the condition's name for logs.
func (c Condition) String() string {
	if c >= 0 && int(c) < len(conditionNames) {
		return conditionNames[c]
	}
	return fmt.Sprintf("condition(%d)", int(c))
}

// current is the decoded m/cur record.
type current struct {
	Gen     uint64
	Version Version
	Clients uint64 // number of client records in the generation
}

// Store is the encrypted Badger keyspace of one server. Reads (Shard,
// Clients, Current, Stats, AuditRecords) and Audit are safe for
// concurrent use with each other and with Import; Import and
// DropGeneration serialise among themselves.
type Store struct {
	dir    string
	db     *badger.DB
	seal   *sealer
	bkey   []byte // Badger's copy of the encryption key, cleared on Close
	log    *slog.Logger
	opt    Options
	hook   func(step string) // test hook: crash points of Import
	closed atomic.Bool

	cur atomic.Pointer[current] // nil while nothing may be served

	mu       sync.Mutex // Import, DropGeneration, Close; guards fields below
	state    Version
	hasState bool
	cond     Condition
	nextGen  uint64
	staleGen uint64 // the outdated generation a NeedsRebuild store keeps unserved

	// dropMu: Badger refuses writes while DropPrefix runs, so writers hold
	// it shared and DropPrefix holds it exclusively.
	dropMu sync.RWMutex

	// dbMu guards db: every use of Badger holds it shared (view, update,
	// withDB, writeGen) and reopen swaps db holding it exclusively. db is
	// nil when a reopen failed; every use then returns errNoDB.
	dbMu sync.RWMutex

	audit *auditor
}

// errNoDB: Badger was closed to be reopened and did not open again.
var errNoDB = fmt.Errorf("%w: the database did not reopen after an import", ErrClosed)

// view runs fn in a read transaction. view, update and withDB never
// nest: a pending reopen would wait for the outer one forever.
//
// Badger panics on some damage it meets while reading a table (a block
// whose offsets are garbage, before its checksum is checked); view turns
// that into an error wrapping ErrCorrupt, so that a table damaged while
// the server runs costs the sessions that read it an error, not the
// process (TestDamageAfterFirstImport). The next Open verifies every
// table and reports the damage.
//
// It takes dbMu itself rather than through withDB: it is on every
// fetch's path.
func (st *Store) view(fn func(txn *badger.Txn) error) (err error) {
	st.dbMu.RLock()
	defer st.dbMu.RUnlock()
	if st.db == nil {
		return errNoDB
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: badger panicked while reading: %v", ErrCorrupt, r)
		}
	}()
	return st.db.View(fn)
}

// update runs fn in a read-write transaction (see view).
func (st *Store) update(fn func(txn *badger.Txn) error) error {
	return st.withDB(func(db *badger.DB) error { return db.Update(fn) })
}

// withDB calls fn with Badger, which stays open until fn returns (see
// view).
func (st *Store) withDB(fn func(db *badger.DB) error) error {
	st.dbMu.RLock()
	defer st.dbMu.RUnlock()
	if st.db == nil {
		return errNoDB
	}
	return fn(st.db)
}

// reopen closes Badger and opens it again on the same files. Badger keeps
// the buffers its table builders grew during an import's memtable
// flushes and compactions, up to 8 per instance, and frees one every 2 s
// only once idle; closing returns them all at once. After four
// 25,000-client imports they were about 75% of the heap that stayed live
// (BenchmarkImportStores). Import calls it after a store's first import,
// when no session can be reading the store; the audit writer waits for
// it. If Badger does not open again, every later use returns errNoDB.
func (st *Store) reopen() error {
	st.dbMu.Lock()
	defer st.dbMu.Unlock()
	err := st.db.Close()
	st.db = nil
	if err != nil {
		return fmt.Errorf("shard: closing the database to reopen it: %w", err)
	}
	st.step("reopen")
	db, err := openBadger(badgerOptions(filepath.Join(st.dir, dbDir), st.bkey, st.opt.Logger))
	if err != nil {
		return fmt.Errorf("shard: reopening the database: %w", err)
	}
	st.db = db
	return nil
}

// Open opens or creates the store in dir, which is created 0700 (an
// existing directory with group or other bits is tightened to 0700 and a
// warning logged). Open copies both keys; the caller may clear its own.
// badgerKey encrypts Badger's files; sealKey seals every record.
//
// Open recovers the keyspace from a crash at any point of an import (it
// drops partial generations and stale kept files) and compares the store
// with the state file; see Condition. It returns ErrWrongKey for a wrong
// badgerKey, ErrLocked when another process holds the store, ErrBadState
// for a state file that does not verify, and an error wrapping ErrCorrupt
// when the database is damaged: KEYREGISTRY, MANIFEST or a table block
// fails the checks made before Badger opens (checkDB), Badger fails or
// panics while opening, or a record of the generation to be served does
// not read or open (verifyGen). Quarantine then moves the database aside
// so that the next Open rebuilds. Damage that appears after Open can
// still crash the process from Badger's background goroutines; the next
// start then reports ErrCorrupt.
//
// The daemon should run with umask 077: Badger creates its table and
// value log files 0666 minus the umask. Open, Import and Close tighten
// what they find, and the 0700 directory keeps the rest private.
func Open(dir string, badgerKey, sealKey *[32]byte, opt Options) (*Store, error) {
	if badgerKey == nil || sealKey == nil {
		return nil, errors.New("shard: nil key")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.AuditMaxRecords <= 0 {
		opt.AuditMaxRecords = defaultAuditMaxRecords
	}
	if err := prepareDir(dir, log); err != nil {
		return nil, err
	}
	sl, err := newSealer(sealKey)
	if err != nil {
		return nil, err
	}
	st := &Store{dir: dir, seal: sl, log: log, opt: opt}
	st.bkey = append([]byte(nil), badgerKey[:]...)
	if err := removeEmptyLogs(filepath.Join(dir, dbDir)); err != nil {
		sl.clear()
		return nil, err
	}
	if err := checkDB(filepath.Join(dir, dbDir), st.bkey); err != nil {
		err = registryError(dir, sl, err)
		clear(st.bkey)
		sl.clear()
		return nil, err
	}
	if st.db, err = openBadger(badgerOptions(filepath.Join(dir, dbDir), st.bkey, opt.Logger)); err != nil {
		clear(st.bkey)
		sl.clear()
		return nil, err
	}
	if err := st.recover(); err != nil {
		st.db.Close()
		clear(st.bkey)
		sl.clear()
		return nil, err
	}
	// recover read every record of the served generation through
	// Badger's memory maps, which keeps every page of them mapped (about
	// 22 MiB of RSS per 25,000 clients) until Badger closes: reopen it
	// before anything is served (TestOpenLeavesTablesUnmapped).
	if st.cur.Load() != nil {
		if err := st.reopen(); err != nil {
			clear(st.bkey)
			sl.clear()
			return nil, err
		}
	}
	st.audit = newAuditor(st)
	return st, nil
}

// registryError tells a damaged KEYREGISTRY from a wrong key when
// checkDB found that its sanity text does not decrypt. The state file's
// MAC is under a key derived from the same server key: when it verifies,
// the key is right and the registry is damaged (ErrCorrupt, so the store
// is rebuilt); otherwise, or without a state file, it is ErrWrongKey.
func registryError(dir string, sl *sealer, err error) error {
	if !errors.Is(err, errRegistryKey) {
		return err
	}
	if _, ok, serr := readState(dir, sl); serr == nil && ok {
		return fmt.Errorf("%w: %s is damaged (its sanity text does not decrypt, but the state file verifies with this key)",
			ErrCorrupt, badger.KeyRegistryFileName)
	}
	return ErrWrongKey
}

// prepareDir creates dir and its sealed subdirectory 0700.
func prepareDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("shard: creating data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("shard: data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("shard: data directory %q is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("shard: data directory was group or other accessible; set to 0700",
			"dir", dir, "mode", fi.Mode().Perm().String())
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("shard: data directory %q has mode %s and chmod failed: %w", dir, fi.Mode().Perm(), err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, sealedDir), 0o700); err != nil {
		return fmt.Errorf("shard: creating sealed directory: %w", err)
	}
	return nil
}

// badgerOptions returns the daemon profile. Checksums are verified on
// every block and value read: cheap, and Badger's AES-CTR has no MAC.
// Tables are not read whole when Badger opens them (OnBlockRead, not
// OnTableAndBlockRead): checkDB has just verified every block of every
// table with plain reads, and Badger's second pass went through its
// memory maps, which left every page of every table mapped: about 22
// MiB of RSS per 25,000 clients, and about a third of an Open
// (BenchmarkOpen). A table Badger writes while running is verified
// block by block as it is read, and by checkDB at the next start.
func badgerOptions(path string, key []byte, log *slog.Logger) badger.Options {
	o := badger.DefaultOptions(path).
		WithEncryptionKey(key).
		WithMemTableSize(memTableSize).
		WithBaseTableSize(baseTableSize).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(valueLogFileSize).
		WithNumCompactors(numCompactors).
		WithValueThreshold(valueThreshold).
		WithCompression(options.None).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithVerifyValueChecksum(true).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithLogger(nil)
	if log != nil {
		o = o.WithLogger(badgerLogger{log})
	}
	return o
}

// removeEmptyLogs deletes value log and memtable files of length zero.
// Badger 4.9.6 creates such a file and then extends it; a kill -9
// between the two leaves an empty file on which every later Open fails
// ("Open existing file ...: Create a new file", "while opening memtables
// ... Create a new file"), as TestCrashImport found. An empty file holds
// no entry, so removing it loses nothing.
func removeEmptyLogs(path string) error {
	entries, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shard: listing database directory: %w", err)
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); (ext != ".vlog" && ext != ".mem") || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() == 0 {
			if err := os.Remove(filepath.Join(path, e.Name())); err != nil {
				return fmt.Errorf("shard: removing empty log file: %w", err)
			}
		}
	}
	return nil
}

// openBadger opens Badger, turning a panic on a damaged directory into
// ErrCorrupt.
func openBadger(o badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: badger panicked while opening: %v", ErrCorrupt, r)
		}
	}()
	db, err = badger.Open(o)
	if err == nil {
		return db, nil
	}
	var errno syscall.Errno
	switch {
	case errors.Is(err, badger.ErrEncryptionKeyMismatch):
		return nil, ErrWrongKey
	case bytes.Contains([]byte(err.Error()), []byte("Cannot acquire directory lock")):
		return nil, fmt.Errorf("%w: %v", ErrLocked, err)
	case errors.Is(err, fs.ErrPermission),
		errors.As(err, &errno) && (errno == syscall.ENOSPC || errno == syscall.EMFILE || errno == syscall.ENFILE || errno == syscall.ENOMEM):
		return nil, fmt.Errorf("shard: opening badger: %w", err)
	}
	return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// Quarantine renames the Badger directory of a store that fails to open
// with ErrCorrupt to db.corrupt-<unix time>, keeping the state file and
// the kept sealed files, so that the next Open starts an empty database
// and reports NeedsRebuild. It returns the new path. Never call it on an
// open store.
func Quarantine(dir string) (string, error) {
	from := filepath.Join(dir, dbDir)
	to := filepath.Join(dir, fmt.Sprintf("%s.corrupt-%d", dbDir, time.Now().Unix()))
	if err := os.Rename(from, to); err != nil {
		return "", fmt.Errorf("shard: quarantining database: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	return to, nil
}

// recover reads m/cur and the state file, reconciles them, drops
// generations left by an interrupted import and stale kept files.
func (st *Store) recover() error {
	cur, curErr := st.readCur()
	if curErr != nil && !errors.Is(curErr, ErrTampered) {
		return curErr
	}
	state, hasState, err := readState(st.dir, st.seal)
	if err != nil {
		return err
	}
	gens, err := st.generations()
	if err != nil {
		return err
	}
	for _, g := range gens {
		st.nextGen = max(st.nextGen, g+1)
	}
	if cur != nil {
		st.nextGen = max(st.nextGen, cur.Gen+1)
	}
	st.nextGen = max(st.nextGen, 1)
	if curErr != nil {
		st.log.Error("shard: current-definition record does not verify; dropping every generation", "err", curErr)
	}
	st.state, st.hasState = state, hasState
	var curVersion *Version
	if cur != nil {
		curVersion = &cur.Version
	}
	st.cond = condition(curVersion, state, hasState)
	if cur != nil && st.cond != NeedsRebuild && !st.opt.noVerify {
		if err := st.verifyGen(cur); err != nil {
			return err
		}
	}
	if st.cond == StateUpdated || st.cond == StateRecreated {
		if err := writeState(st.dir, st.seal, cur.Version); err != nil {
			return err
		}
		st.state, st.hasState = cur.Version, true
	}
	for _, g := range gens {
		if cur == nil || g != cur.Gen {
			if err := st.dropGen(g); err != nil {
				return err
			}
		}
	}
	keep := [][32]byte{st.state.Hash}
	if cur != nil {
		keep = append(keep, cur.Version.Hash)
	}
	if err := pruneKept(st.dir, keep); err != nil {
		return err
	}
	if cur != nil && st.cond != NeedsRebuild {
		st.cur.Store(cur)
	} else if cur != nil {
		st.staleGen = cur.Gen
	}
	return fixModes(st.dir)
}

// condition decides what Open found from the store's current version
// (nil when it has none, or its pointer does not open) and the state
// file's (docs: definitions-and-store.md, "Restart"). The store is
// served only when it is not behind what the state file says was served.
func condition(cur *Version, state Version, hasState bool) Condition {
	switch {
	case cur == nil && !hasState:
		return FirstRun
	case cur == nil:
		return NeedsRebuild
	case !hasState:
		return StateRecreated
	case *cur == state:
		return Consistent
	case cur.Serial > state.Serial:
		return StateUpdated
	}
	return NeedsRebuild // behind, or the same serial with another hash
}

// readCur returns the current-generation pointer, nil if there is none,
// or an error if it does not open.
func (st *Store) readCur() (*current, error) {
	var sealed []byte
	err := st.view(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyCur))
		if err != nil {
			return err
		}
		sealed, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shard: reading current pointer: %w", err)
	}
	p, err := st.seal.open(sealed, []byte(aadCur))
	if err != nil {
		return nil, err
	}
	if len(p) != 8+8+32+8 {
		return nil, ErrTampered
	}
	c := &current{Gen: binary.BigEndian.Uint64(p), Clients: binary.BigEndian.Uint64(p[48:])}
	c.Version.Serial = binary.BigEndian.Uint64(p[8:])
	copy(c.Version.Hash[:], p[16:48])
	return c, nil
}

// sealCur returns the sealed m/cur record of c.
func (st *Store) sealCur(c *current) []byte {
	p := make([]byte, 0, 56)
	p = binary.BigEndian.AppendUint64(p, c.Gen)
	p = binary.BigEndian.AppendUint64(p, c.Version.Serial)
	p = append(p, c.Version.Hash[:]...)
	p = binary.BigEndian.AppendUint64(p, c.Clients)
	return st.seal.sealRandom(nil, p, []byte(aadCur))
}

// generations lists the generations that have any value or client key,
// seeking from one generation to the next instead of reading every key.
func (st *Store) generations() ([]uint64, error) {
	seen := map[uint64]bool{}
	var gens []uint64
	err := st.view(func(txn *badger.Txn) error {
		for _, prefix := range []string{prefixShard, prefixClient} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
			for it.Seek([]byte(prefix)); it.Valid(); {
				k := it.Item().Key()
				if len(k) < len(prefix)+8 {
					it.Close()
					return fmt.Errorf("%w: short key in the keyspace", ErrCorrupt)
				}
				g := binary.BigEndian.Uint64(k[len(prefix):])
				if !seen[g] {
					seen[g] = true
					gens = append(gens, g)
				}
				if g == ^uint64(0) {
					break
				}
				it.Seek(genPrefix(nil, prefix, g+1))
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shard: listing generations: %w", err)
	}
	return gens, nil
}

// step calls the test hook at a crash point of Import.
func (st *Store) step(name string) {
	if st.hook != nil {
		st.hook(name)
	}
}

// Current returns the version and generation to serve. ok is false when
// nothing may be served: the first run, or a store that NeedsRebuild.
func (st *Store) Current() (v Version, gen uint64, ok bool) {
	c := st.cur.Load()
	if c == nil {
		return Version{}, 0, false
	}
	return c.Version, c.Gen, true
}

// Dir returns the store's directory.
func (st *Store) Dir() string { return st.dir }

// Condition returns what Open found, or Consistent after an import.
func (st *Store) Condition() Condition {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cond
}

// State returns the version recorded in the state file; ok is false when
// there is none (first run).
func (st *Store) State() (v Version, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.state, st.hasState
}

// Close stops the audit writer after writing what it holds, syncs and
// closes Badger, and clears the keys. Readers must be done. Calling
// Close again returns nil.
func (st *Store) Close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed.Swap(true) {
		return nil
	}
	st.audit.stop()
	st.dbMu.Lock()
	var err error
	if st.db != nil {
		err = st.db.Sync()
		if cerr := st.db.Close(); err == nil {
			err = cerr
		}
	}
	st.dbMu.Unlock()
	clear(st.bkey)
	st.seal.clear()
	if ferr := fixModes(st.dir); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("shard: closing: %w", err)
	}
	return nil
}

// fixModes removes group and other bits from everything under dir.
// Badger creates tables and value logs 0666 minus the umask.
func fixModes(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // Badger removed a file while we walked
			}
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if m := info.Mode().Perm(); m&0o077 != 0 {
			if err := os.Chmod(path, m&^0o077); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("shard: tightening file mode: %w", err)
			}
		}
		return nil
	})
}

// badgerLogger routes Badger's log through slog. Badger sees only sealed
// values and key names, never a plaintext value; its info and debug
// chatter goes to the debug level.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) { b.l.Error("badger: " + trimLog(f, a)) }
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + trimLog(f, a))
}
func (b badgerLogger) Infof(f string, a ...any)  { b.l.Debug("badger: " + trimLog(f, a)) }
func (b badgerLogger) Debugf(f string, a ...any) { b.l.Debug("badger: " + trimLog(f, a)) }

// trimLog formats one Badger message on one line of bounded length.
func trimLog(f string, a []any) string {
	s := fmt.Sprintf(f, a...)
	s = string(bytes.TrimSpace([]byte(s)))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return string(bytes.ReplaceAll([]byte(s), []byte("\n"), []byte(" ")))
}
