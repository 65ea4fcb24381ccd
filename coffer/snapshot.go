package coffer

import (
	"runtime"
	"sync"
)

// Version names a definition: its serial and the SHA-256 of its sealed
// file. OkGet carries both so a client can refuse a server that went
// back in time.
type Version struct {
	Serial uint64
	Hash   [32]byte
}

// Shards looks up a client's shard. Implementations must be safe for
// concurrent use.
type Shards interface {
	// Shard returns the client's encoded shard (the frame.AssembleShard
	// form), restricted to names when names is not empty; names the
	// client does not have are left out. The server zeroes the returned
	// slice when the session ends, so it must not be shared.
	Shard(client PublicKey, names []string) ([]byte, error)
}

// Snapshot is one loaded definition as the server serves it: which client
// keys exist and where their shards are. A Snapshot is installed with
// Server.Swap, at most once, and must not be changed afterwards.
// Sessions take the current snapshot when their Hello arrives and keep it
// to the end, so each session sees one whole definition.
type Snapshot struct {
	// Name is the definition's name when the server loads several
	// (Server.Install); "" and frame.DefaultDefinition both mean the
	// default one, whose OkGet carries no name.
	Name    string
	Version Version
	Clients map[PublicKey]string // client key -> client name
	Shards  Shards

	// table holds K(S,C) for every client, computed by Precompute or
	// Swap, so a session spends no ladder on the static-static key.
	// tableFor is the server key it was computed with, and skipped the
	// clients left out of it.
	table    map[PublicKey]*clientEntry
	tableFor PublicKey
	skipped  []PublicKey

	mu       sync.Mutex
	claimed  bool          // installed by a Swap
	refs     int           // sessions using this snapshot
	retired  bool          // swapped out
	released chan struct{} // closed when retired and refs == 0
}

// clientEntry is one row of the precomputed table.
type clientEntry struct {
	ss   [32]byte // K(S,C)
	name string
}

// Released returns a channel that is closed once the snapshot has been
// swapped out and the last session using it has ended; the caller may
// then drop what the snapshot's Shards reads from. The precomputed keys
// are zeroed at that point.
func (sn *Snapshot) Released() <-chan struct{} {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.initLocked()
	return sn.released
}

func (sn *Snapshot) initLocked() {
	if sn.released == nil {
		sn.released = make(chan struct{})
	}
}

// claim marks the snapshot as installed, once: its table belongs to one
// Server key and one installation.
func (sn *Snapshot) claim() bool {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.claimed {
		return false
	}
	sn.claimed = true
	sn.initLocked()
	return true
}

// acquire counts a session in, unless the snapshot is already retired.
func (sn *Snapshot) acquire() bool {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.retired {
		return false
	}
	sn.refs++
	return true
}

// release counts a session out.
func (sn *Snapshot) release() {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.refs--
	sn.releaseLocked()
}

// retire marks the snapshot swapped out.
func (sn *Snapshot) retire() {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.retired = true
	sn.releaseLocked()
}

func (sn *Snapshot) releaseLocked() {
	if !sn.retired || sn.refs > 0 {
		return
	}
	sn.initLocked()
	select {
	case <-sn.released:
		return
	default:
	}
	for _, e := range sn.table {
		clear(e.ss[:])
	}
	close(sn.released)
}

// Precompute computes the K(S,C) table for the server key ahead of Swap,
// so that a loader can run it beside other work: it is one ladder per
// client, about 0.4 s of CPU for 10,000 (docs/server.md, "Load time").
// Swap on a Server with the same key then installs the table as is;
// with another key it computes a new one. Precompute must return before
// the snapshot is passed to Swap, and must not be called after.
func (sn *Snapshot) Precompute(key *PrivateKey) {
	sn.precompute(key, nil)
}

// PrecomputeFrom is Precompute that copies K(S,C) for every client key
// that prev's table holds for the same server key, and computes only the
// others: a reload that changes values but few keys then spends almost
// no ladders (BenchmarkPrecomputeFrom). prev must be installed and stay
// installed until PrecomputeFrom returns (its table is cleared once it
// is released); nil prev is Precompute.
func (sn *Snapshot) PrecomputeFrom(key *PrivateKey, prev *Snapshot) {
	sn.precompute(key, prev)
}

// precompute fills the K(S,C) table with every client key, in parallel,
// unless Precompute already did for key. Clients with weak keys are left
// out and returned as skipped.
func (sn *Snapshot) precompute(key *PrivateKey, from *Snapshot) (skipped []PublicKey) {
	if sn.table != nil && sn.tableFor == key.Public() {
		return sn.skipped
	}
	var known map[PublicKey]*clientEntry
	if from != nil && from.acquire() {
		// Counted in like a session, so its table is not cleared
		// while it is read; a retired one is not read at all.
		defer from.release()
		if from.table != nil && from.tableFor == key.Public() {
			known = from.table
		}
	}
	keys := make([]PublicKey, 0, len(sn.Clients))
	for k := range sn.Clients {
		keys = append(keys, k)
	}
	entries := make([]*clientEntry, len(keys))
	workers := min(runtime.GOMAXPROCS(0), len(keys))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(keys); i += workers {
				if e := known[keys[i]]; e != nil {
					entries[i] = &clientEntry{ss: e.ss, name: sn.Clients[keys[i]]}
					continue
				}
				if CheckPublicKey(&keys[i]) != nil {
					continue
				}
				ss, err := key.boxKey(&keys[i])
				if err != nil {
					continue
				}
				entries[i] = &clientEntry{ss: *ss, name: sn.Clients[keys[i]]}
				clear(ss[:])
			}
		})
	}
	wg.Wait()
	sn.table = make(map[PublicKey]*clientEntry, len(keys))
	for i, e := range entries {
		if e == nil {
			skipped = append(skipped, keys[i])
			continue
		}
		sn.table[keys[i]] = e
	}
	sn.tableFor, sn.skipped = key.Public(), skipped
	return skipped
}
