// Package coffer implements coffer/2, the protocol by which a client
// fetches its secrets from a coffer server, and the keys and sealed files
// around it. Both sides live here, so they share the labels, the
// transcript and the key types, and the tests run each against the
// other. docs/protocol.md is the specification; the bytes of every frame
// are package frame's.
//
// A session is one TCP connection: Hello, Link, Get, one or more OkGet
// chunks, Bye. Each side holds a static X25519 key and knows the other's
// public key in advance. Past Hello's outer fields every message but a
// plain Error is a NaCl box (XSalsa20-Poly1305), and the session keys are
// derived from four Diffie-Hellman results, the shared secret of an
// ephemeral ML-KEM-768 exchange (the client's key in Hello, the server's
// ciphertext in Link) and a hash of the transcript, so each side is
// authenticated only by proving it holds its private key, and a session
// stays confidential while either X25519 or ML-KEM-768 holds.
//
// # Keys
//
// A PrivateKey is an X25519 key: GenerateKey makes one, WriteKeyFile
// writes it to a new 0600 file, and LoadKeyFile refuses a key file that
// group or others can read. A PublicKey is its 32 bytes; its text form
// (String, ParsePublicKey) carries a checksum, and CheckPublicKey refuses
// the low-order and non-canonical points that would make a shared key
// predictable.
//
// # Serving
//
// A Server answers sessions with its Key. What it serves is a Snapshot:
// the Version of one definition, the client keys it names, and a Shards
// implementation that returns a client's encoded shard. The server's main
// fills Shards from its store (package shard, keyed by DeriveStoreKeys);
// tests use a map. Swap installs a snapshot, precomputing the
// static-static key of every client, and a later Swap replaces it while
// running sessions finish on the one they started with. Serve accepts on
// a net.Listener; Shutdown and Close end it. Audit and Logger see each
// session's outcome, with clients as fingerprints and never a value.
//
// Definitions reach the server sealed: the companion parses one with
// ParseDefinition and seals it to the server's key with SealDefinition,
// under a serial and the hash of the definition it replaces; the server
// opens it with OpenDefinition, which refuses an untrusted author, a
// serial that goes back and a replacement of another definition than the
// current one.
//
// # Fetching
//
// Fetch runs one session on a connection the caller dialled, with a
// ClientConfig that names the client's key, the pinned server key and
// optionally the names wanted and the lowest serial acceptable. It
// returns the whole shard or an error, never part of one; Retryable says
// which errors another attempt or another server may cure. SealCache and
// OpenCache keep a fetched shard on disk, sealed to the client's key.
//
// # Secrets in memory
//
// Keys are passed as pointers and never copied into strings; a
// PrivateKey formats as coffer.PrivateKey(redacted). When a session ends, on either side
// and whatever its outcome, its ephemeral keys, the shared keys derived
// from them, the session keys and the plaintext buffers are zeroed. The
// server zeroes each shard Shards returns once it is sent, and each
// snapshot's precomputed keys once the snapshot is released (see
// Snapshot.Released). The client returns values as byte slices
// (frame.Value), so they stay out of immutable strings until the caller's
// output; Definition.Clear zeroes a parsed definition's values. Go cannot
// promise erasure (the runtime may have copied a buffer), so this keeps
// secrets from lingering, not from a reader of the process's memory.
package coffer
