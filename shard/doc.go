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
//	s/ gen(8 BE) client(32)     -> seal(shard blob,          AAD "coffer/1 shard"  gen client)
//	c/ gen(8 BE) client(32)     -> seal(count(4 BE) name,    AAD "coffer/1 client" gen client)
//	m/cur                       -> seal(gen serial hash clients(8 BE), AAD "coffer/1 cur")
//	a/ time(8 BE ns) seq(8 BE)  -> audit record (binary, see audit.go; JSON from earlier versions), never a value
//	settle/                     -> never written (Import drops it to wait for flushes)
//
// A client's values are one blob (blob.go: count, then sorted name and
// value pairs with their lengths), so a session costs one Badger lookup
// and one AEAD open, and an import of 10,000 clients writes 20,000 keys
// rather than 100,000. The c/ records let a restart rebuild the server's
// client table without opening every shard.
//
// seal is AES-256-GCM with a random 12-byte nonce under a key derived
// from the seal key by HKDF-SHA256 ("coffer/1 shard value key"); the
// stored form is nonce || ciphertext || tag. Badger's own encryption has
// no MAC, so this binding is what stops a disk-level attacker from
// changing, adding or removing a value, or moving a shard to another
// client or generation: Shard and Clients return ErrTampered. The
// pointer's client count makes a removed client record visible to
// Clients. Deleting a client's whole shard is indistinguishable from an
// unknown client (ErrNotFound): a denial of service, which such an
// attacker has anyway.
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
// # Badger 4.9.6 workarounds
//
// Measured by the crash and corruption tests here: a kill -9 between
// Badger creating a value log or memtable file and extending it leaves
// an empty file that fails every later Open, so Open deletes empty .vlog
// and .mem files (they hold nothing). Badger opens tables in goroutines
// of its own, which panic on a zeroed or truncated footer or on tables
// read without their key registry, killing the process; Open checks the
// footer and index checksum of every table the manifest lists, and that
// KEYREGISTRY exists, first, and reports ErrCorrupt instead. Damage
// found later (a data block) still surfaces as Badger's checksum error,
// or at worst its background panic; the next start then reports
// ErrCorrupt. A zeroed KEYREGISTRY reads as ErrWrongKey.
//
// Badger creates its tables and logs 0666 minus the umask: run the
// daemon with umask 077. Open, Import and Close tighten what they find,
// and the 0700 data directory keeps the rest private.
//
// Only one process may open a store (Badger's flock): ErrLocked.
//
// # Concurrency
//
// Shard, Clients, Current, Stats, Audit and AuditRecords are safe for
// concurrent use, also with Import. Import and DropGeneration serialise.
// Close waits for the audit writer and must come after the last read.
package shard
