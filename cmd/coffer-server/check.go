package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/shard"
)

const checkUsage = `Usage: coffer-server check [options]

Check what 'coffer-server serve' would use, without serving: the config,
the trusted keys, the key file and its permissions, the data directory,
the store, and the sealed definition (it opens, comes from a trusted
author and would be accepted after the stored one). Then print what
loading it would change: clients and key fingerprints added or removed,
secret names added, removed or changed (compared by a hash of each value;
values are never printed). While the server runs, the store is locked and
only its serial is compared.

Exit status: 0 ready to serve, 1 not ready, 2 usage error.

` + configUsage

// checkReport collects check's findings, one line each on w.
type checkReport struct {
	w      io.Writer
	failed bool
	prefix string // "definition NAME: " while one of several is checked
}

func (r *checkReport) ok(format string, a ...any) {
	fmt.Fprintf(r.w, "ok    "+r.prefix+format+"\n", a...)
}

func (r *checkReport) note(format string, a ...any) {
	fmt.Fprintf(r.w, "note  "+r.prefix+format+"\n", a...)
}

func (r *checkReport) fail(what string, err error) {
	r.failed = true
	fmt.Fprintf(r.w, "FAIL  %s%s: %v\n", r.prefix, what, err)
	var ce *cliError
	if errors.As(err, &ce) {
		for _, h := range ce.hints {
			fmt.Fprintf(r.w, "      hint: %s\n", h)
		}
	}
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	build := configFlags(fs)
	if err := parseFlags(fs, args, stderr, checkUsage); err != nil {
		return err
	}
	r := &checkReport{w: stdout}
	cfg, err := build(os.Getenv)
	if err != nil {
		r.fail("config", err)
		return exitStatus(1)
	}
	defs := cfg.DefinitionList()
	if len(defs) == 1 {
		r.ok("config: listen %s, data %s, definition %s", cfg.Listen, cfg.DataDir, defs[0].Path)
	} else {
		r.ok("config: listen %s, data %s, %d definitions", cfg.Listen, cfg.DataDir, len(defs))
	}
	key, err := loadKey(cfg.KeyFile)
	if err != nil {
		r.fail("key file", err)
		return exitStatus(1)
	}
	r.ok("key file %s: server public key %s", cfg.KeyFile, key.Public())
	for _, d := range defs {
		if d.Name != config.DefaultDefinitionName {
			r.prefix = "definition " + d.Name + ": "
		}
		trusted, err := parseTrusted(d.Trusted)
		if err != nil {
			r.fail("trusted keys", err)
		} else {
			r.ok("trusted keys: %d", len(trusted))
		}
		dir := definitionDir(cfg.DataDir, d.Name)
		cur, stored, storeOK := checkStore(r, d.Name, dir, cfg.DataDir, func() (*shard.Store, *lockFile, error) {
			return adminStoreAt(cfg, dir, "check", stderr)
		})
		if trusted != nil {
			checkSealed(r, d.Path, key, trusted, cur, stored, storeOK)
		}
	}
	r.prefix = ""
	for _, name := range strayStores(cfg.DataDir, defs) {
		r.note("definition %s: not in the config, stored in %s: %s", name, definitionDir(cfg.DataDir, name), strayHint)
	}
	if r.failed {
		fmt.Fprintln(r.w, "not ready to serve")
		return exitStatus(1)
	}
	fmt.Fprintln(r.w, "ready to serve")
	return nil
}

// checkStore reports on the data directory and the store. It returns
// the current version (nil if none), a digest of the stored definition
// when the store could be read, and whether the store is usable.
func checkStore(r *checkReport, name, dir, dataDir string, open func() (*shard.Store, *lockFile, error)) (*coffer.Version, map[string]*clientDigest, bool) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.note("data directory %s does not exist; serve creates it (0700) on its first run", dir)
		return nil, nil, true
	case err != nil:
		r.fail("data directory", err)
		return nil, nil, false
	case !fi.IsDir():
		r.fail("data directory", fmt.Errorf("%s is not a directory", dir))
		return nil, nil, false
	case fi.Mode().Perm()&0o077 != 0:
		r.note("data directory %s has mode %04o; serve tightens it to 0700", dir, fi.Mode().Perm())
	default:
		r.ok("data directory %s", dir)
	}
	if h, running, err := runningServer(dataDir); err == nil && running && h.role == "serve" {
		// The running server writes the version of every definition it
		// serves into the lock file: a named store's too, so that the
		// sealed file is compared with what is served.
		cur := parseHolderVersion(h.defs[name])
		if h.defs == nil && dir == dataDir { // a server that names no definition there
			cur = parseHolderVersion(h.version)
		}
		if cur == nil {
			r.ok("store: in use by the running server (pid %d), which serves nothing yet", h.pid)
		} else {
			r.ok("store: in use by the running server (pid %d), serving serial %d; contents not compared", h.pid, cur.Serial)
		}
		return cur, nil, true
	}
	st, lock, err := open()
	if err != nil {
		r.fail("store", err)
		return nil, nil, false
	}
	defer lock.release()
	defer st.Close()
	cond := st.Condition()
	v, gen, ok := st.Current()
	switch {
	case cond == shard.NeedsRebuild:
		state, _ := st.State()
		r.note("store: needs a rebuild to serial %d; serve rebuilds it from the kept sealed file", state.Serial)
		return &coffer.Version{Serial: state.Serial, Hash: state.Hash}, nil, true
	case !ok:
		r.note("store: empty (%s); the first valid definition will be trusted as is", cond)
		return nil, nil, true
	}
	stored, err := storedDigest(st, gen)
	if err != nil {
		r.fail("store", err)
		return nil, nil, false
	}
	r.ok("store: serial %d, hash %x, %d clients (%s)", v.Serial, v.Hash[:8], len(stored), cond)
	if err := st.CheckKept(); err != nil {
		r.note("KEPT SEALED FILE: %v; serve keeps the definition file again if it is serial %d, else a damaged store cannot be rebuilt", err, v.Serial)
	}
	return &coffer.Version{Serial: v.Serial, Hash: v.Hash}, stored, true
}

// parseHolderVersion reads the "serial hash" the server writes into its
// lock file (daemon.ready): a decimal serial and 64 hex digits. Anything
// else, including the empty version of a server that serves nothing,
// is nil.
func parseHolderVersion(s string) *coffer.Version {
	f := strings.Fields(s)
	if len(f) != 2 || len(f[1]) != 2*len(coffer.Version{}.Hash) {
		return nil
	}
	serial, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return nil
	}
	v := coffer.Version{Serial: serial}
	if n, err := hex.Decode(v.Hash[:], []byte(f[1])); err != nil || n != len(v.Hash) {
		return nil
	}
	return &v
}

// checkSealed opens the sealed file as serve would and prints the change.
func checkSealed(r *checkReport, path string, key *coffer.PrivateKey, trusted []coffer.AuthorPublicKey,
	cur *coffer.Version, stored map[string]*clientDigest, storeOK bool) {
	file, err := coffer.ReadSealedFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if cur != nil {
			r.note("no sealed definition at %s; the stored definition keeps being served", path)
			return
		}
		r.fail("sealed definition", withHint(err, "nothing to serve: seal one with 'coffer-companion seal'"))
		return
	}
	if err != nil {
		r.fail("sealed definition", err)
		return
	}
	def, ver, err := coffer.OpenDefinition(key, trusted, file, cur)
	if errors.Is(err, coffer.ErrSameDefinition) {
		r.ok("sealed definition %s: serial %d, the one already stored", path, cur.Serial)
		return
	}
	if err != nil {
		r.fail("sealed definition "+path, err)
		return
	}
	defer def.Clear()
	r.ok("sealed definition %s: serial %d, hash %x, %d clients; it would be loaded", path, ver.Serial, ver.Hash[:8], len(def.Clients))
	if !storeOK || stored == nil {
		return
	}
	next, err := definitionDigest(def)
	if err != nil {
		r.fail("sealed definition", err)
		return
	}
	printChanges(r.w, stored, next)
}

// clientDigest is what check compares of one client: its keys and a
// SHA-256 of each encoded value, so no value is kept or printed.
type clientDigest struct {
	keys   map[coffer.PublicKey]bool
	values map[string][32]byte
}

func storedDigest(st *shard.Store, gen uint64) (map[string]*clientDigest, error) {
	out := map[string]*clientDigest{}
	first := map[string][32]byte{}
	err := st.Clients(gen, func(key [32]byte, name string) {
		d := out[name]
		if d == nil {
			d = &clientDigest{keys: map[coffer.PublicKey]bool{}, values: map[string][32]byte{}}
			out[name] = d
			first[name] = key
		}
		d.keys[key] = true
	})
	if err != nil {
		return nil, err
	}
	for name, d := range out {
		vals, err := st.Shard(gen, first[name], nil)
		if err != nil {
			return nil, fmt.Errorf("reading client %q: %w", name, err)
		}
		for n, b := range vals {
			d.values[n] = sha256.Sum256(b)
			clear(b)
		}
	}
	return out, nil
}

func definitionDigest(def *coffer.Definition) (map[string]*clientDigest, error) {
	out := map[string]*clientDigest{}
	for _, c := range def.Clients {
		d := &clientDigest{keys: map[coffer.PublicKey]bool{}, values: map[string][32]byte{}}
		for _, k := range c.Keys {
			d.keys[k] = true
		}
		for n, v := range c.Values {
			b, err := v.MarshalCBOR()
			if err != nil {
				return nil, fmt.Errorf("client %q, value %q: %w", c.Name, n, err)
			}
			d.values[n] = sha256.Sum256(b)
			clear(b)
		}
		out[c.Name] = d
	}
	return out, nil
}

// printChanges prints one line per changed client: + added, - removed,
// ~ changed with its key and name changes.
func printChanges(w io.Writer, old, next map[string]*clientDigest) {
	names := make([]string, 0, len(old)+len(next))
	for n := range old {
		names = append(names, n)
	}
	for n := range next {
		if old[n] == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	changes := 0
	for _, n := range names {
		o, x := old[n], next[n]
		switch {
		case o == nil:
			fmt.Fprintf(w, "      + client %q (%d keys, %d values)\n", n, len(x.keys), len(x.values))
		case x == nil:
			fmt.Fprintf(w, "      - client %q\n", n)
		default:
			diff := clientChanges(o, x)
			if len(diff) == 0 {
				continue
			}
			fmt.Fprintf(w, "      ~ client %q: %s\n", n, strings.Join(diff, ", "))
		}
		changes++
	}
	if changes == 0 {
		fmt.Fprintln(w, "      no change to clients, keys or values")
	}
}

func clientChanges(o, x *clientDigest) []string {
	var out []string
	for k := range x.keys {
		if !o.keys[k] {
			out = append(out, "+ key "+k.Fingerprint())
		}
	}
	for k := range o.keys {
		if !x.keys[k] {
			out = append(out, "- key "+k.Fingerprint())
		}
	}
	var names []string
	for n, h := range x.values {
		oh, had := o.values[n]
		switch {
		case !had:
			names = append(names, "+ "+strconv.Quote(n))
		case oh != h:
			names = append(names, "changed "+strconv.Quote(n))
		}
	}
	for n := range o.values {
		if _, has := x.values[n]; !has {
			names = append(names, "- "+strconv.Quote(n))
		}
	}
	slices.Sort(out)
	slices.Sort(names)
	return append(out, names...)
}
