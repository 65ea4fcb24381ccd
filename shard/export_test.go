package shard

import "github.com/dgraph-io/badger/v4"

// Test access to internals.

// SetHook sets the function Import calls at each of its crash points.
func SetHook(st *Store, fn func(step string)) { st.hook = fn }

// Generations lists the generations present in the keyspace.
func Generations(st *Store) ([]uint64, error) { return st.generations() }

// RawOptions are the Badger options Open uses, for tests that edit the
// keyspace behind the store's back.
func RawOptions(path string, key *[32]byte) badger.Options {
	return badgerOptions(path, append([]byte(nil), key[:]...), nil)
}

// BlockWrites holds the lock DropPrefix takes, stalling every writer.
func BlockWrites(st *Store) (unblock func()) {
	st.dropMu.Lock()
	return st.dropMu.Unlock
}

const AuditQueueLen = auditQueueLen
const AuditBatchLen = auditBatchLen

// NoVerify returns o with Open's pass over the current generation off,
// for tests of what the read path does with a record damaged anyway.
func NoVerify(o Options) Options {
	o.noVerify = true
	return o
}

// FlushAudit waits until the audit writer has stored what is queued.
func FlushAudit(st *Store) { st.audit.flush() }
