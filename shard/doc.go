// Package shard is coffer-server's store: an encrypted Badger keyspace
// holding each client's values by client public key, replaced a whole
// definition at a time, with a fetch audit log.
//
// The package imports only Badger and the standard library. It never
// sees a private key: the caller derives two keys from the server key
// (coffer.DeriveStoreKeys) and passes them to Open.
//
// # Data directory
//
//	dir/            0700
//	  db/           Badger, encrypted with the Badger key (AES-256-CTR, no MAC)
//	  sealed/<hex sha-256>.sealed   the last accepted sealed definition, 0600
//	  state         serial and hash of the current definition, HMAC'd, 0600
//
// # Keyspace
//
//	s/ gen(8 BE) client(32) name   -> seal(value,            AAD "coffer/1 value"  gen client name)
//	c/ gen(8 BE) client(32)        -> seal(count(4 BE) name, AAD "coffer/1 client" gen client)
//	m/cur                          -> seal(gen serial hash clients(8 BE), AAD "coffer/1 cur")
//	a/ time(8 BE ns) seq(8 BE)     -> audit record, JSON, never a value
//
// seal is AES-256-GCM with a random 12-byte nonce under a key derived
// from the seal key by HKDF-SHA256 ("coffer/1 shard value key"); the
// stored form is nonce || ciphertext || tag. Badger's own encryption has
// no MAC, so this binding is what stops a disk-level attacker from
// changing a value or moving it to another client, name or generation:
// Shard and Clients return ErrTampered. The client record's count makes
// a removed value detectable too, and the pointer's client count a
// removed client.
//
// # Generations and crashes
//
// Import writes generation g+1 in many Badger transactions (one is
// limited to 15% of the memtable), syncs, flips m/cur in one
// transaction, syncs, then writes the state file (temp, fsync, rename,
// fsync dir) and removes older kept files. The sealed file was kept
// first. Sessions read through an explicit generation, so one sees the
// old definition or the new one, never a mix; the caller drops the old
// generation with DropGeneration after its sessions end.
//
// After kill -9 at any point, Open finds exactly one complete definition:
// it drops every generation but m/cur's (a partial import), removes
// temporary and stale kept files, and compares m/cur with the state file
// (Condition): equal is Consistent; a store ahead of the state (crash
// before the state write) is StateUpdated and the state is rewritten; no
// state at all is FirstRun (trust on first use) or StateRecreated; a
// store behind the state, empty, or whose pointer does not open is
// NeedsRebuild: Current reports nothing and the caller imports
// KeptSealed(State().Hash), so older data is never served. Badger that
// fails to open or panics while opening is ErrCorrupt; Quarantine moves
// it aside and the next Open reports NeedsRebuild. A state file that
// does not verify is ErrBadState, left for the operator.
//
// # Concurrency
//
// Shard, Clients, Current, Stats, Audit and AuditRecords are safe for
// concurrent use, also with Import. Import and DropGeneration serialise.
// Close waits for the audit writer and must come after the last read.
package shard
