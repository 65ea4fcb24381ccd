package main

import (
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
	"github.com/coffer-project/coffer/shard"
)

// storeShards serves one generation of the store to coffer.Server. It
// holds the generation, not "the current one", so a session that started
// before a reload keeps reading the definition it started with.
type storeShards struct {
	st  *shard.Store
	gen uint64
}

// Shard implements coffer.Shards: the values as the store keeps them
// (each already CBOR-encoded), assembled into one encoded shard. The
// store's copies are cleared once assembled.
func (s storeShards) Shard(client coffer.PublicKey, names []string) ([]byte, error) {
	vals, err := s.st.Shard(s.gen, client, names)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, v := range vals {
			clear(v)
		}
	}()
	return frame.AssembleShard(vals)
}

// loader moves definitions from sealed files into the store and the
// store's current generation into the server. One load runs at a time.
type loader struct {
	name    string // the definition's name (config.DefaultDefinitionName for the single form)
	log     *slog.Logger
	key     *coffer.PrivateKey
	trusted []coffer.AuthorPublicKey
	path    string        // the sealed definition file, or its URL
	remote  *remoteSource // when path is a URL (remote.go)
	st      *shard.Store
	srv     *coffer.Server

	mu     sync.Mutex
	served *coffer.Version  // the installed snapshot's version; nil before the first
	snap   *coffer.Snapshot // the installed snapshot, whose K(S,C) a reload reuses
	last   reloadResult     // the outcome of the last load (guarded by lastMu)
	lastMu sync.Mutex
	drops  sync.WaitGroup // generations waiting for their sessions to end
}

// servedVersion returns the version the server serves, or nil.
func (l *loader) servedVersion() *coffer.Version {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served
}

// lastLoad returns the outcome of the definition's last load, zero
// before the first.
func (l *loader) lastLoad() reloadResult {
	l.lastMu.Lock()
	defer l.lastMu.Unlock()
	return l.last
}

func (l *loader) setLastLoad(r reloadResult) {
	l.lastMu.Lock()
	defer l.lastMu.Unlock()
	l.last = r
}

// storeVersion returns the store's current version in coffer's type, or
// nil when the store has nothing to serve.
func storeVersion(st *shard.Store) *coffer.Version {
	v, _, ok := st.Current()
	if !ok {
		return nil
	}
	return &coffer.Version{Serial: v.Serial, Hash: v.Hash}
}

// errWrongDefinition: a sealed file signed for another definition's name.
var errWrongDefinition = errors.New("sealed for another definition")

// errUnchanged reports that the file holds the definition already served.
var errUnchanged = errors.New("the definition is already current")

// loadFile loads the sealed definition file if it is newer than the
// store's, and installs it in the server. On any error the store and the
// server are unchanged (Import is all or nothing) and the error says why,
// without a value. errUnchanged is returned for the same file again.
func (l *loader) loadFile() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer loadMemory()()
	file, err := coffer.ReadSealedFile(l.path)
	if err != nil {
		return err
	}
	return l.importLocked(file, storeVersion(l.st), "load")
}

// importLocked opens file against cur (nil: a first definition), imports
// it and installs it. A rebuild with cur nil imports the file the state
// names, which passed the serial rules when it was accepted. The caller
// holds l.mu.
func (l *loader) importLocked(file []byte, cur *coffer.Version, why string) error {
	boundLoadMemory(len(file))
	var def *coffer.Definition
	var ver coffer.Version
	var err error
	if cur == nil && why == "rebuild" {
		def, ver, err = coffer.OpenStoredDefinition(l.key, l.trusted, file)
	} else {
		def, ver, err = coffer.OpenDefinition(l.key, l.trusted, file, cur)
	}
	if errors.Is(err, coffer.ErrSameDefinition) {
		return errUnchanged
	}
	if err != nil {
		return err
	}
	defer def.Clear()
	if def.Name != l.name {
		return fmt.Errorf("%w: the file was sealed for definition %q, and this is definition %q (seal it with coffer-companion seal --definition %s)",
			errWrongDefinition, def.Name, l.name, l.name)
	}
	binary, err := coffer.SealedBinary(file)
	if err != nil {
		return err
	}
	if coffer.SealedHash(binary) != ver.Hash {
		return errors.New("internal error: the sealed file's hash does not match its version")
	}
	if err := l.checkOwnClients(def); err != nil {
		return err
	}
	l.log.Info("importing definition", "reason", why, "serial", ver.Serial,
		"hash", hashPrefix(ver.Hash), "client_names", len(def.Clients), "client_keys", countKeys(def))
	// The K(S,C) ladders (about 0.4 s of CPU for 10,000 keys) run beside
	// the import, whose fsyncs and flushes leave a core idle at times: the
	// two take about 0.05 s less than one after the other (docs/server.md,
	// "Load time").
	pre := &coffer.Snapshot{Clients: clientNames(def)}
	ladders := make(chan struct{})
	go func() {
		defer close(ladders)
		pre.PrecomputeFrom(l.key, l.snap)
	}()
	prevGen, err := l.st.Import(shard.Version{Serial: ver.Serial, Hash: ver.Hash}, binary, storeClients(def))
	<-ladders
	if err != nil {
		return err
	}
	return l.installLocked(prevGen, pre)
}

// checkOwnClients refuses a definition that holds a client key another
// installed definition serves, before anything is imported: a client
// key is in one definition at most (docs/server.md, "Several
// definitions").
func (l *loader) checkOwnClients(def *coffer.Definition) error {
	for i := range def.Clients {
		for _, k := range def.Clients[i].Keys {
			if other, ok := l.srv.DefinitionOf(k); ok && other != l.name {
				return fmt.Errorf("%w: client %q (key %s) is already in definition %q; remove it there first",
					coffer.ErrClientInTwoDefinitions, def.Clients[i].Name, k.Fingerprint(), other)
			}
		}
	}
	return nil
}

// clientNames maps every client key of def to its client's name, as the
// store lists them after an import.
func clientNames(def *coffer.Definition) map[coffer.PublicKey]string {
	n := 0
	for i := range def.Clients {
		n += len(def.Clients[i].Keys)
	}
	names := make(map[coffer.PublicKey]string, n)
	for i := range def.Clients {
		for _, k := range def.Clients[i].Keys {
			names[k] = def.Clients[i].Name
		}
	}
	return names
}

// storeClients yields one store client per client key; keys of one name
// share its values. Each client's values are encoded as the store keeps
// them when the import reaches it, into one buffer that is cleared and
// reused for the next client, and its parsed values are cleared once
// its keys are written: encoding the whole definition first held a
// second copy of every value, about 22 MiB of a 25,000-client load's
// live heap (docs/benchmarks.md, "Scale"). A value that cannot be
// encoded stops the import, which then changes nothing.
func storeClients(def *coffer.Definition) iter.Seq2[shard.Client, error] {
	return func(yield func(shard.Client, error) bool) {
		var buf []byte
		enc := map[string][]byte{}
		defer func() { clear(buf) }()
		for i := range def.Clients {
			c := &def.Clients[i]
			clear(buf)
			clear(enc)
			// Room for every value, so that appending never moves the
			// buffer and leaves a copy behind that is not cleared.
			need := 0
			for _, v := range c.Values {
				need += maxEncodingExtra + len(v.Text)
			}
			if cap(buf) < need {
				buf = make([]byte, 0, need)
			}
			buf = buf[:0]
			for name, v := range c.Values {
				start := len(buf)
				var err error
				if buf, err = v.AppendCBOR(buf); err != nil {
					yield(shard.Client{}, fmt.Errorf("client %q, value %q: %w", c.Name, name, err))
					return
				}
				enc[name] = buf[start:len(buf):len(buf)]
			}
			for _, k := range c.Keys {
				if !yield(shard.Client{Key: k, Name: c.Name, Values: enc}, nil) {
					return
				}
			}
			for _, v := range c.Values {
				clear(v.Text)
			}
			c.Values = nil // the map too: most of a parsed client's heap
		}
	}
}

// maxEncodingExtra bounds what encoding adds to a value's text: a head of
// at most 9 bytes, or the map {t: kind, v: text} with the kind's name and
// a non-finite float's text (frame.Value.MarshalCBOR).
const maxEncodingExtra = 64

// installLocked makes the store's current generation the server's
// snapshot; prevGen, if not 0, is dropped from the store once the last
// session reading it has ended. pre, if not nil, is a snapshot whose
// K(S,C) table was computed during the import; it is used only if its
// clients are exactly the ones the store lists. The caller holds l.mu.
func (l *loader) installLocked(prevGen uint64, pre *coffer.Snapshot) error {
	v, gen, ok := l.st.Current()
	if !ok {
		return errors.New("internal error: the store has no current definition after an import")
	}
	sn := pre
	if sn != nil {
		// Compared in place: a second map of every client was about 3 MiB
		// of a 25,000-client load's peak heap.
		n, same := 0, true
		if err := l.st.Clients(gen, func(key [32]byte, name string) {
			n++
			if got, ok := pre.Clients[key]; !ok || got != name {
				same = false
			}
		}); err != nil {
			return fmt.Errorf("reading the stored clients: %w", err)
		}
		if !same || n != len(pre.Clients) {
			sn = nil
		}
	}
	if sn == nil {
		clients := make(map[coffer.PublicKey]string)
		if err := l.st.Clients(gen, func(key [32]byte, name string) { clients[key] = name }); err != nil {
			return fmt.Errorf("reading the stored clients: %w", err)
		}
		sn = &coffer.Snapshot{Clients: clients} // Install computes the table
	}
	sn.Name = l.name
	sn.Version = coffer.Version{Serial: v.Serial, Hash: v.Hash}
	sn.Shards = storeShards{st: l.st, gen: gen}
	prev, err := l.srv.Install(sn)
	if err != nil {
		return err
	}
	l.served, l.snap = &sn.Version, sn
	l.log.Info("serving definition", "serial", v.Serial, "hash", hashPrefix(v.Hash), "client_keys", len(sn.Clients), "generation", gen)
	if prevGen == 0 {
		return nil
	}
	l.drops.Add(1)
	go func() {
		defer l.drops.Done()
		if prev != nil {
			<-prev.Released()
		}
		if err := l.st.DropGeneration(prevGen); err != nil && !errors.Is(err, shard.ErrClosed) {
			l.log.Warn("dropping the previous generation", "generation", prevGen, "err", err)
			return
		}
		l.log.Debug("previous generation dropped", "generation", prevGen)
	}()
	return nil
}

// minMemoryLimit is the least soft memory limit (runtime/debug) set for
// serving. It bounds the garbage a boot storm piles up between GC cycles
// (without a limit a storm once took the server from 49 to 86 MiB of
// RSS), and it must stay well above the live heap's transient peaks, or
// the collector runs back to back: a Badger compaction, which the audit
// records' memtable flushes start every few tens of thousands of
// sessions, holds 20-30 MiB of table-builder buffers for seconds. With
// 10,000 x 10 loaded the live heap is 10-15 MiB at rest and reached 40
// MiB during a compaction under load; a 40 or 48 MiB limit then made the
// server collect every few milliseconds (CPU per session 450-610 us
// instead of about 350).
const minMemoryLimit = 64 << 20

// servingGCPercent is the GOGC used while serving: the heap may grow 50%
// over the live heap between cycles instead of 100%. A boot storm's
// garbage then stays within the storm's memory target (peak RSS 53-58
// MiB for 10,000 clients at concurrency 256, against 66-73 MiB at the
// default), for a few microseconds of CPU per session.
const servingGCPercent = 50

// loadGCPercent is the GOGC used during a definition load.
const loadGCPercent = 50

// loadMemory brackets a definition load: it sets loadGCPercent and lifts
// the serving memory limit, and boundLoadMemory, once the file's size is
// known, sets the load's own limit (loadBudget); the returned function,
// called once the caller holds no reference to the file, the definition
// or the encoded values, returns that heap to the OS and sets the
// serving settings: servingGCPercent, and a limit of twice the live
// heap, at least minMemoryLimit. Without it idle RSS stays at the load's
// peak until the scavenger catches up (docs/benchmarks.md, "Memory"). A
// GOMEMLIMIT or GOGC in the environment is the operator's choice and is
// left alone.
//
// The returned function does that work in the background and returns at
// once: returning a load's heap to the OS took about 0.5 s of a
// 25,000-client reload, which the reload's answer need not wait for
// (the definition is already served). Loads of every definition share
// the process's settings, so the next loadMemory waits for it.
func loadMemory() (done func()) {
	memMu.Lock()
	setGC := os.Getenv("GOGC") == ""
	setLimit := os.Getenv("GOMEMLIMIT") == ""
	if setGC {
		debug.SetGCPercent(loadGCPercent)
	}
	curLoad = loadLimit{set: setLimit}
	if setLimit {
		curLoad.base = liveMemory()
		debug.SetMemoryLimit(math.MaxInt64)
	}
	return func() {
		curLoad = loadLimit{}
		go func() {
			defer memMu.Unlock()
			servingMemory(setGC, setLimit)
		}()
	}
}

// memMu is held from loadMemory until its done function has set the
// serving settings.
var memMu sync.Mutex

// loadLimit is the running load's memory limit, guarded by memMu: set
// tells whether loadMemory may set it, base is the Go runtime's memory
// when the load began, counting only the live heap (liveMemory).
type loadLimit struct {
	set  bool
	base int64
}

var curLoad loadLimit

// loadBudgetFactor and minLoadBudget size a load's memory limit: the Go
// runtime's memory when the load began (its live heap) plus
// loadBudgetFactor times the sealed file's size, at least minLoadBudget.
// A load holds the sealed file, its opened payload, the parsed values
// and the import's buffers: about 90 MiB of live heap at its peak for a
// 16 MiB file of 25,000 clients. Without a limit, GOGC let the garbage
// grow the heap half as much again between two cycles, and starting on
// 100,000 clients in four such files peaked at 263-269 MiB of RSS; a
// limit at 200 MiB brought that to 220-225 MiB in the same time to
// ready, and one at 175 MiB made the collector run back to back (ready
// 1.8 s later) (docs/server.md, "Memory"). The limit is soft: a
// definition that needs more than its budget makes the collector work
// harder, which the runtime caps at about half the CPU, and still loads.
const (
	loadBudgetFactor = 10
	minLoadBudget    = 64 << 20
)

// loadBudget is the memory a load of a sealed file of size bytes may add.
func loadBudget(size int) int64 {
	return max(minLoadBudget, loadBudgetFactor*int64(size))
}

// boundLoadMemory sets the running load's memory limit for a sealed file
// of size bytes (loadBudget). The caller is inside loadMemory's bracket.
func boundLoadMemory(size int) {
	if curLoad.set {
		debug.SetMemoryLimit(curLoad.base + loadBudget(size))
	}
}

// liveMemory is the Go runtime's memory as the soft memory limit counts
// it (everything mapped, less what was returned to the OS), as if the
// heap held only what was live at the last collection: a load that follows a boot storm starts
// from the storm's live heap, not from its garbage, which the load's
// limit makes the collector reclaim first.
func liveMemory() int64 {
	m := readMemory()
	nonHeap := m.total - m.released - m.free - m.objects - m.unused
	return max(0, m.live+nonHeap)
}

// memoryFigures are the runtime/metrics figures liveMemory and the
// serving limit read, in bytes.
type memoryFigures struct{ total, released, free, objects, unused, live int64 }

func readMemory() memoryFigures {
	s := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(s)
	var v [6]int64
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = int64(min(s[i].Value.Uint64(), math.MaxInt64/4))
		}
	}
	return memoryFigures{v[0], v[1], v[2], v[3], v[4], v[5]}
}

// servingMemory returns a load's heap to the OS and sets the serving GC
// settings (loadMemory).
func servingMemory(setGC, setLimit bool) {
	debug.FreeOSMemory()
	if setGC {
		debug.SetGCPercent(servingGCPercent)
	}
	if !setLimit {
		return
	}
	debug.SetMemoryLimit(max(minMemoryLimit, 2*readMemory().live))
}

// hashPrefix is the short form of a definition hash for logs.
func hashPrefix(h [32]byte) string { return fmt.Sprintf("%x", h[:8]) }

// countKeys counts the client keys of def; a client name may have several
// (docs/definition.md). Logs say client_names or client_keys, never a
// bare "clients".
func countKeys(def *coffer.Definition) int {
	n := 0
	for _, c := range def.Clients {
		n += len(c.Keys)
	}
	return n
}
