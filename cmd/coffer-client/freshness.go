package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// maxStateBytes bounds the state file: one short line per server key.
const maxStateBytes = 64 << 10

// cacheClockSkew is how far in the future a cache's fetch time may lie
// before the cache is refused: a clock that went back (no RTC at boot)
// must not make an old cache look fresh.
const cacheClockSkew = time.Minute

const stateHeader = "# coffer-client state: the highest definition serial seen from each pinned server key (and definition, when not the default one)\n"

// stateKey is a pinned server key and a definition name: a server that
// loads several definitions numbers each on its own.
type stateKey struct {
	server coffer.PublicKey
	def    string // frame.DefaultDefinition for the default one
}

// state maps a pinned server key and definition to the highest serial
// seen from it.
type state map[stateKey]uint64

// readState reads the state file; an absent file is an empty state.
func readState(path string) (state, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return state{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, bareErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	st, err := parseState(data)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return st, nil
}

// parseState parses `cofferpk1... SERIAL` lines, and `cofferpk1... SERIAL
// DEFINITION` lines for a definition other than the default one; '#'
// lines and blank lines are ignored. A key and definition given twice is
// an error.
func parseState(data []byte) (state, error) {
	if len(data) > maxStateBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxStateBytes)
	}
	st := state{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 && len(fields) != 3 {
			return nil, fmt.Errorf("line %d: want `SERVER-KEY SERIAL [DEFINITION]`", line)
		}
		def := frame.DefaultDefinition
		if len(fields) == 3 {
			if def = fields[2]; def == frame.DefaultDefinition || !frame.ValidDefinitionName(def) {
				return nil, fmt.Errorf("line %d: bad definition name (a-z, 0-9, '_' and '-'; the default one is written without a name)", line)
			}
		}
		k, err := coffer.ParsePublicKey(fields[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		serial, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: bad serial %q", line, fields[1])
		}
		sk := stateKey{k, def}
		if _, dup := st[sk]; dup {
			return nil, fmt.Errorf("line %d: server key and definition given twice", line)
		}
		st[sk] = serial
	}
	return st, sc.Err()
}

// encode writes the state sorted by key text, so equal states are equal
// files.
func (st state) encode() []byte {
	lines := make([]string, 0, len(st))
	for k, serial := range st {
		line := k.server.String() + " " + strconv.FormatUint(serial, 10)
		if k.def != frame.DefaultDefinition {
			line += " " + k.def
		}
		lines = append(lines, line+"\n")
	}
	slices.Sort(lines)
	return []byte(stateHeader + strings.Join(lines, ""))
}

// recordSerial raises the serial remembered for server and definition def to serial,
// rereading the file first so a concurrent run's higher serial is kept.
// It never lowers a serial: the read, compare and write happen under an
// exclusive lock on path+".lock", so two units sharing one state file
// cannot write a lower serial over a higher one.
func recordSerial(path string, server coffer.PublicKey, def string, serial uint64) error {
	unlock, err := lockState(path)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(path)
	if err != nil {
		return err
	}
	k := stateKey{server, def}
	if prev, ok := st[k]; ok && prev >= serial {
		return nil
	}
	st[k] = serial
	return writeFileAtomic(path, st.encode(), privateFile)
}

// lockState takes an exclusive flock on path+".lock", created 0600 and
// left in place (removing it would let a third run lock a new file while
// a second holds the old one). Closing the file releases the lock.
func lockState(path string) (unlock func(), err error) {
	lp := path + ".lock"
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state lock %s: %w", lp, bareErr(err))
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("state lock %s: %w", lp, err)
	}
	return func() { f.Close() }, nil
}

// writeCache seals a fetched shard to the client's key and replaces the
// cache file with it.
func writeCache(path string, key *coffer.PrivateKey, server coffer.PublicKey, res *coffer.Result, fetched time.Time) error {
	e := &coffer.CacheEntry{Server: server, Version: res.Version, Definition: res.Definition, Fetched: fetched, Shard: res.Shard}
	file, err := coffer.SealCache(key, e, rand.Reader)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, file, privateFile)
}

// cachePolicy is what a cache must satisfy to be used.
type cachePolicy struct {
	server   coffer.PublicKey
	floorFor func(def string) uint64 // the least serial of a definition: --min-serial or the remembered one
	maxAge   time.Duration
	names    []string
	now      time.Time
}

// readCache opens the cache and checks it against p. The error says why
// a cache was not used, never what it holds.
func readCache(path string, key *coffer.PrivateKey, p cachePolicy) (*coffer.CacheEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", path, bareErr(err))
	}
	data, err := io.ReadAll(io.LimitReader(f, coffer.MaxCacheBytes+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
	e, err := coffer.OpenCache(key, data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
	age := p.now.Sub(e.Fetched)
	switch {
	case e.Server != p.server:
		err = fmt.Errorf("it was fetched from another server key (%s)", e.Server.Fingerprint())
	case e.Version.Serial < p.floorFor(e.Definition):
		err = fmt.Errorf("its serial %d is below the required %d", e.Version.Serial, p.floorFor(e.Definition))
	case age > p.maxAge:
		err = fmt.Errorf("it is %s old, more than --max-age %s", age.Round(time.Second), p.maxAge)
	case age < -cacheClockSkew:
		err = fmt.Errorf("its fetch time is %s in the future (is the clock set?)", (-age).Round(time.Second))
	default:
		err = checkNames(e.Shard, p.names)
	}
	if err != nil {
		return nil, fmt.Errorf("cache %s not used: %w", path, err)
	}
	e.Shard = selectNames(e.Shard, p.names)
	return e, nil
}

// checkNames checks that every requested name is in the shard; a server
// leaves out the names a client does not have.
func checkNames(s frame.Shard, names []string) error {
	for _, n := range names {
		if _, ok := s[n]; !ok {
			return fmt.Errorf("secret %q is not in this client's shard", n)
		}
	}
	return nil
}

// selectNames keeps only the requested names; no names keeps all.
func selectNames(s frame.Shard, names []string) frame.Shard {
	if len(names) == 0 {
		return s
	}
	out := make(frame.Shard, len(names))
	for _, n := range names {
		out[n] = s[n]
	}
	return out
}
