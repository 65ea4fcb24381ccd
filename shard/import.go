package shard

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	"github.com/dgraph-io/badger/v4"
)

// Client is one client key's part of a definition: the key, the client's
// name, and its values by name. Values are opaque to the store (the
// caller stores frame-encoded values); Import does not keep the map.
type Client struct {
	Key    [32]byte
	Name   string
	Values map[string][]byte
}

// arenaSize is the chunk from which an import carves keys and sealed
// values, so 100,000 entries cost a few hundred allocations. Badger keeps
// the slices until it has written them, so chunks are never reused.
const arenaSize = 256 << 10

type arena struct{ buf []byte }

// take returns a zero-length slice with capacity n from the arena.
func (a *arena) take(n int) []byte {
	if n > arenaSize/4 {
		return make([]byte, 0, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, arenaSize)
	}
	b := a.buf[len(a.buf) : len(a.buf) : len(a.buf)+n]
	a.buf = a.buf[:len(a.buf)+n]
	return b
}

// Import makes a new definition current. v.Hash must be the SHA-256 of
// sealed, the binary sealed file, which is kept next to the store.
//
// v.Serial must be higher than the current serial (ErrRollback); the
// current version again is ErrSame, a no-op. When the store NeedsRebuild
// the state's own version is accepted, so the kept file can be imported.
// The caller checks the chain (the file's previous hash) before calling.
//
// clients yields each client key's part once. Its values are read only
// during the yield (the caller may reuse or clear them afterwards); an
// error it yields stops the import, which then changes nothing.
//
// Import writes generation g+1 in many batches, syncs, flips the current
// pointer in one transaction, syncs, writes the state file and removes
// older kept files. A crash at any point leaves either the old or the
// new definition whole (Open cleans up the rest). Current switches to
// the new generation when Import returns; prev is the generation it
// replaced (0 if none), which the caller drops with DropGeneration once
// no session reads it. Only one Import or DropGeneration runs at a time.
func (st *Store) Import(v Version, sealed []byte, clients iter.Seq2[Client, error]) (prev uint64, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed.Load() {
		return 0, ErrClosed
	}
	if err := st.checkVersion(v, sealed); err != nil {
		return 0, err
	}
	// The kept file, the log and the value log each take about the
	// sealed file's size.
	if err := checkSpace(st.dir, 4*int64(len(sealed))); err != nil {
		return 0, err
	}
	st.step("start")
	if err := writeKept(st.dir, v.Hash, sealed); err != nil {
		return 0, err
	}
	st.step("kept")
	gen := st.nextGen
	st.nextGen++
	n, err := st.writeGen(gen, clients)
	if err != nil {
		if derr := st.dropGen(gen); derr != nil {
			st.log.Error("shard: dropping a failed generation", "gen", gen, "err", derr)
		}
		return 0, err
	}
	st.step("written")
	next := &current{Gen: gen, Version: v, Clients: n}
	if err := st.flip(next); err != nil {
		return 0, err
	}
	old := st.cur.Load()
	first := old == nil
	if !first {
		prev = old.Gen
	} else {
		prev, st.staleGen = st.staleGen, 0
	}
	st.cur.Store(next)
	st.cond = Consistent
	st.step("flipped")
	if err := writeState(st.dir, st.seal, v); err != nil {
		// The store is ahead of the state file; the next Open repairs it.
		st.log.Error("shard: definition imported but the state file was not updated", "err", err)
	} else {
		st.state, st.hasState = v, true
	}
	st.step("state")
	if err := pruneKept(st.dir, [][32]byte{v.Hash}); err != nil {
		st.log.Warn("shard: removing older kept sealed files", "err", err)
	}
	if err := st.settle(); err != nil {
		st.log.Warn("shard: waiting for the import's memtable flushes", "err", err)
	}
	var rerr error
	if first {
		rerr = st.reopen()
	}
	// After the flushes and the reopen, which create files.
	if err := fixModes(st.dir); err != nil {
		st.log.Warn("shard: tightening file modes", "err", err)
	}
	if rerr != nil {
		return prev, rerr
	}
	if first {
		st.step("reopened")
	}
	st.step("done")
	return prev, nil
}

// settle waits for Badger's memtable flushes that the import started. A
// flush still running when Import returns holds its table's buffers and
// the blocks it verifies, up to 25 MiB, which the server would count as
// its live heap when it settles its memory after a load (docs/server.md,
// "Memory"). Badger has no call for this, but DropPrefix drains and
// stops the flusher before it looks for the prefix, and nothing is ever
// written under prefixSettle, so nothing is dropped.
func (st *Store) settle() error {
	st.dropMu.Lock()
	defer st.dropMu.Unlock()
	return st.withDB(func(db *badger.DB) error { return db.DropPrefix([]byte(prefixSettle)) })
}

// checkVersion applies the rollback rules before anything is written.
func (st *Store) checkVersion(v Version, sealed []byte) error {
	if v.Serial == 0 {
		return errors.New("shard: definition serial 0")
	}
	if sha256.Sum256(sealed) != v.Hash {
		return errors.New("shard: sealed file does not match the version's hash")
	}
	ref, ok := Version{}, false
	if c := st.cur.Load(); c != nil {
		ref, ok = c.Version, true
	}
	rebuild := st.cond == NeedsRebuild
	if rebuild && st.hasState {
		ref, ok = st.state, true
	}
	switch {
	case !ok:
		return nil
	case v.Serial < ref.Serial:
		return fmt.Errorf("%w: serial %d is below the current %d", ErrRollback, v.Serial, ref.Serial)
	case v.Serial == ref.Serial && v.Hash != ref.Hash:
		return fmt.Errorf("%w: serial %d is current with a different hash", ErrRollback, v.Serial)
	case v.Serial == ref.Serial && !rebuild:
		return ErrSame
	}
	return nil
}

// writeGen writes every client of gen through a WriteBatch, which
// commits whenever a transaction reaches Badger's size limit, then syncs.
// It returns the number of clients.
func (st *Store) writeGen(gen uint64, clients iter.Seq2[Client, error]) (uint64, error) {
	st.dropMu.RLock()
	defer st.dropMu.RUnlock()
	st.dbMu.RLock()
	defer st.dbMu.RUnlock()
	if st.db == nil {
		return 0, errNoDB
	}
	wb := st.db.NewWriteBatch()
	defer wb.Cancel()
	var (
		a     arena
		ns    nonces
		aad   []byte
		plain []byte
		names []string
		n     uint64
		seen  = map[[32]byte]bool{}
	)
	defer func() { clear(plain) }()
	for c, err := range clients {
		if err != nil {
			return 0, fmt.Errorf("shard: writing generation %d: %w", gen, err)
		}
		if err := checkClient(&c, seen); err != nil {
			return 0, err
		}
		clear(plain)
		plain, names = appendBlob(plain[:0], c.Values, names)
		aad = shardAAD(aad[:0], gen, &c.Key)
		k := shardKey(a.take(len(prefixShard)+8+32), gen, &c.Key)
		v := st.seal.seal(a.take(len(plain)+sealOverhead), ns.next(), plain, aad)
		if err := wb.Set(k, v); err != nil {
			return 0, fmt.Errorf("shard: writing generation %d: %w", gen, err)
		}
		plain = binary.BigEndian.AppendUint32(plain[:0], uint32(len(c.Values)))
		plain = append(plain, c.Name...)
		aad = clientAAD(aad[:0], gen, &c.Key)
		k = clientKey(a.take(len(prefixClient)+8+32), gen, &c.Key)
		if err := wb.Set(k, st.seal.seal(a.take(len(plain)+sealOverhead), ns.next(), plain, aad)); err != nil {
			return 0, fmt.Errorf("shard: writing generation %d: %w", gen, err)
		}
		if n++; n%100 == 0 {
			st.step("batch")
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("shard: writing generation %d: %w", gen, err)
	}
	if err := st.db.Sync(); err != nil {
		return 0, fmt.Errorf("shard: syncing generation %d: %w", gen, err)
	}
	return n, nil
}

// checkClient checks one client's key, names and sizes.
func checkClient(c *Client, seen map[[32]byte]bool) error {
	if seen[c.Key] {
		return fmt.Errorf("shard: client %q: duplicate client key", c.Name)
	}
	seen[c.Key] = true
	if len(c.Name) == 0 || len(c.Name) > maxNameBytes {
		return fmt.Errorf("shard: client name of %d bytes (want 1..%d)", len(c.Name), maxNameBytes)
	}
	for name := range c.Values {
		if len(name) == 0 || len(name) > maxNameBytes {
			return fmt.Errorf("shard: client %q: value name of %d bytes (want 1..%d)", c.Name, len(name), maxNameBytes)
		}
	}
	if size := blobSize(c.Values); size > maxShardBytes {
		return fmt.Errorf("shard: client %q: shard of %d bytes exceeds %d", c.Name, size, maxShardBytes)
	}
	return nil
}

// flip points m/cur at next in one transaction and syncs.
func (st *Store) flip(next *current) error {
	st.dropMu.RLock()
	defer st.dropMu.RUnlock()
	err := st.update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keyCur), st.sealCur(next))
	})
	if err == nil {
		err = st.withDB((*badger.DB).Sync)
	}
	if err != nil {
		return fmt.Errorf("shard: switching to generation %d: %w", next.Gen, err)
	}
	return nil
}

// DropGeneration removes every key of generation g. Call it with the
// generation Import replaced, once no session reads it any more.
// Dropping the current generation is ErrCurrentGen; generation 0 (what
// the first Import returns as prev) is nothing to drop.
func (st *Store) DropGeneration(g uint64) error {
	if g == 0 {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed.Load() {
		return ErrClosed
	}
	if c := st.cur.Load(); c != nil && c.Gen == g {
		return ErrCurrentGen
	}
	if g == st.staleGen {
		st.staleGen = 0
	}
	return st.dropGen(g)
}

// dropGen drops the value and client prefixes of g. Badger refuses
// writes while DropPrefix runs, so it waits for writers.
func (st *Store) dropGen(g uint64) error {
	st.dropMu.Lock()
	defer st.dropMu.Unlock()
	return st.withDB(func(db *badger.DB) error {
		if err := db.DropPrefix(genPrefix(nil, prefixShard, g), genPrefix(nil, prefixClient, g)); err != nil {
			return fmt.Errorf("shard: dropping generation %d: %w", g, err)
		}
		// Shards above the value threshold live in the value log, which
		// DropPrefix does not shrink. Rewrite files that are mostly garbage.
		for range maxVlogGC {
			if err := db.RunValueLogGC(0.5); err != nil {
				break // badger.ErrNoRewrite: nothing (more) worth rewriting
			}
		}
		return nil
	})
}
