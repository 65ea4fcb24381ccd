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
//	  audit.mark    next audit sequence number and record count, CRC'd, 0600
//	  audit.accepted  audit records queued, 8 bytes mapped shared, 0600
//
// # Keyspace
//
//	s/ gen(8 BE) client(32)     -> seal(shard blob,          AAD "coffer/1 shard"  gen client)
//	c/ gen(8 BE) client(32)     -> seal(count(4 BE) name,    AAD "coffer/1 client" gen client)
//	m/cur                       -> seal(gen serial hash clients(8 BE), AAD "coffer/1 cur")
//	a/ time(8 BE ns) seq(8 BE) n(4 BE) -> n audit records (auditbatch.go), never a value
//	a/ time(8 BE ns) seq(8 BE)  -> one audit record (earlier versions; binary or JSON), still read
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
// (condition, a pure function of the two): equal is Consistent; a store
// ahead of the state (crash before the state write) is StateUpdated and
// the state is rewritten; no state at all is FirstRun (trust on first
// use) or StateRecreated; a store behind the state, empty, or whose
// pointer does not open is NeedsRebuild: Current reports nothing and the
// caller imports KeptSealed(State().Hash), so older data is never
// served. A state file that does not verify is ErrBadState, left for the
// operator.
//
// # Damage
//
// Open verifies the data directory before it serves from it, so that
// damage to any file ends in one of three outcomes (the corruption sweep
// in cmd/coffer-server/hardening, sweep_test.go, runs the real server on
// each): served correctly, ErrCorrupt (Quarantine moves the database
// aside, the next Open reports NeedsRebuild and the caller rebuilds from
// the kept sealed file), or an error naming what to fix (ErrBadState,
// ErrWrongKey). Before Badger opens (check.go, checkDB): KEYREGISTRY must
// exist and read, and every data block, index and footer of every table
// the manifest lists must match its checksum. After (verify.go,
// verifyGen): every shard and client record of the generation to be
// served is read and opened, and their number matches the pointer's, so
// a damaged or missing value log or a memtable log cut short is found at
// start rather than by one client's fetch. A KEYREGISTRY whose sanity
// text does not decrypt is ErrCorrupt when the state file's MAC (under a
// key from the same server key) verifies, and ErrWrongKey otherwise.
//
// CheckKept verifies the kept sealed file, the rebuild source; the
// server runs it at every start and keeps the definition file again
// (Keep) when the kept one is damaged. Audit records that Badger drops
// with a damaged memtable log are counted against audit.mark, a small
// file outside Badger (auditmark.go), and those queued but not written
// when the process was killed against audit.accepted: Stats.AuditLost
// and an error log.
//
// # Badger 4.9.6 workarounds
//
// Measured by the crash and corruption tests here: a kill -9 between
// Badger creating a value log or memtable file and extending it leaves
// an empty file that fails every later Open, so Open deletes empty .vlog
// and .mem files (they hold nothing). Badger opens tables in goroutines
// of its own, where a panic kills the process: a zeroed or truncated
// footer panics in the index decode (badger #2201; pull request 2333
// fixes it after v4.9.6), a table read without its key registry reads
// garbage, and one damaged data block panics in Table.VerifyChecksum,
// whose error path dereferences the nil block it got back (table.go:711;
// TestBadgerPanicsOnDataBlock keeps the proof, and fails once Badger
// returns an error instead). checkDB is why none of these is reachable
// from Open. Damage that appears while the server runs (after Open
// verified the files) can still reach Badger's background goroutines;
// the next start then finds it.
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
