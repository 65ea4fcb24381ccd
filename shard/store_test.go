package shard_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/shard"
	"github.com/dgraph-io/badger/v4"
)

var (
	badgerKey = [32]byte{1, 2, 3}
	sealKey   = [32]byte{4, 5, 6}
)

// canary is part of every test value; no error may contain it.
const canary = "CANARY-7f3a"

// def is a test definition: serial s has clientsFor(s) clients of
// valuesPer values each, all naming the serial, so a mix of two
// definitions is visible.
type def struct {
	v       shard.Version
	sealed  []byte
	clients []shard.Client
}

func clientKey(i int) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "client %d", i))
}

func makeDef(serial uint64, nClients, nValues int) *def {
	d := &def{sealed: fmt.Appendf(nil, "sealed definition %d (%d x %d)", serial, nClients, nValues)}
	d.v = shard.Version{Serial: serial, Hash: sha256.Sum256(d.sealed)}
	for i := range nClients {
		c := shard.Client{Key: clientKey(i), Name: fmt.Sprintf("client-%d", i), Values: map[string][]byte{}}
		for j := range nValues {
			c.Values[fmt.Sprintf("VALUE_%d", j)] = fmt.Appendf(nil, "%s s%d c%d v%d", canary, serial, i, j)
		}
		d.clients = append(d.clients, c)
	}
	return d
}

func (d *def) seq() iter.Seq2[shard.Client, error] { return d.seqFailing(-1) }

// seqFailing yields d's clients, and an error in place of client n (none
// when n < 0).
func (d *def) seqFailing(n int) iter.Seq2[shard.Client, error] {
	return func(yield func(shard.Client, error) bool) {
		for i, c := range d.clients {
			if i == n {
				yield(shard.Client{}, errEncode)
				return
			}
			if !yield(c, nil) {
				return
			}
		}
	}
}

// errEncode stands for the caller failing to produce a client mid-import.
var errEncode = errors.New("cannot encode a value")

func open(t testing.TB, dir string, opt shard.Options) *shard.Store {
	t.Helper()
	st, err := shard.Open(dir, &badgerKey, &sealKey, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustImport(t testing.TB, st *shard.Store, d *def) uint64 {
	t.Helper()
	prev, err := st.Import(d.v, d.sealed, d.seq())
	if err != nil {
		t.Fatalf("Import serial %d: %v", d.v.Serial, err)
	}
	return prev
}

// checkServes verifies that st serves d completely and nothing else.
func checkServes(t testing.TB, st *shard.Store, d *def) {
	t.Helper()
	v, gen, ok := st.Current()
	if !ok || v != d.v {
		t.Fatalf("Current = %d, %v; want serial %d", v.Serial, ok, d.v.Serial)
	}
	names := map[[32]byte]string{}
	if err := st.Clients(gen, func(k [32]byte, n string) { names[k] = n }); err != nil {
		t.Fatalf("Clients: %v", err)
	}
	if len(names) != len(d.clients) {
		t.Fatalf("got %d clients, want %d", len(names), len(d.clients))
	}
	for _, c := range d.clients {
		if names[c.Key] != c.Name {
			t.Fatalf("client name %q, want %q", names[c.Key], c.Name)
		}
		got, err := st.Shard(gen, c.Key, nil)
		if err != nil {
			t.Fatalf("Shard(%s): %v", c.Name, err)
		}
		if !maps.EqualFunc(got, c.Values, bytes.Equal) {
			t.Fatalf("Shard(%s) = %d values, want %d (serial %d)", c.Name, len(got), len(c.Values), d.v.Serial)
		}
	}
}

func noCanary(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Fatalf("error quotes a value: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, shard.Options{})
	if got := st.Condition(); got != shard.FirstRun {
		t.Fatalf("Condition = %v, want first-run", got)
	}
	if _, _, ok := st.Current(); ok {
		t.Fatal("Current ok on an empty store")
	}
	d := makeDef(1, 50, 5)
	if prev := mustImport(t, st, d); prev != 0 {
		t.Fatalf("prev = %d, want 0", prev)
	}
	checkServes(t, st, d)
	_, gen, _ := st.Current()

	t.Run("names", func(t *testing.T) {
		got, err := st.Shard(gen, clientKey(3), []string{"VALUE_1", "VALUE_4", "MISSING", "VALUE_1"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]byte{"VALUE_1": d.clients[3].Values["VALUE_1"], "VALUE_4": d.clients[3].Values["VALUE_4"]}
		if !maps.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("unknown client", func(t *testing.T) {
		_, err := st.Shard(gen, clientKey(50), nil)
		if !errors.Is(err, shard.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
		if _, err := st.Shard(gen+1, clientKey(1), nil); !errors.Is(err, shard.ErrNotFound) {
			t.Fatalf("other generation: got %v, want ErrNotFound", err)
		}
	})
	t.Run("empty shard", func(t *testing.T) {
		e := &def{sealed: []byte("empty")}
		e.v = shard.Version{Serial: 2, Hash: sha256.Sum256(e.sealed)}
		e.clients = []shard.Client{{Key: clientKey(0), Name: "nobody", Values: nil}}
		prev := mustImport(t, st, e)
		checkServes(t, st, e)
		if err := st.DropGeneration(prev); err != nil {
			t.Fatal(err)
		}
		d = e
	})
	t.Run("stats", func(t *testing.T) {
		s, err := st.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.Clients != 1 || s.Values != 0 || s.Version != d.v || !s.HasCurrent || s.DiskBytes == 0 || s.ShardBytes == 0 {
			t.Fatalf("Stats = %+v", s)
		}
	})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := st.Shard(gen, clientKey(0), nil); !errors.Is(err, shard.ErrClosed) {
		t.Fatalf("Shard after Close: %v", err)
	}
	st = open(t, dir, shard.Options{})
	if got := st.Condition(); got != shard.Consistent {
		t.Fatalf("reopened Condition = %v, want consistent", got)
	}
	checkServes(t, st, d)
}

func TestImportRefusals(t *testing.T) {
	st := open(t, t.TempDir(), shard.Options{})
	d2 := makeDef(2, 3, 2)
	mustImport(t, st, d2)
	other2 := makeDef(2, 4, 2)
	bad := makeDef(3, 3, 2)
	bad.v.Hash[0] ^= 1
	dup := makeDef(3, 2, 1)
	dup.clients[1].Key = dup.clients[0].Key
	long := makeDef(3, 1, 0)
	long.clients[0].Values = map[string][]byte{strings.Repeat("n", 2000): []byte("x")}
	huge := makeDef(3, 1, 0)
	huge.clients[0].Values = map[string][]byte{"BIG": make([]byte, 32<<20)}
	for _, tc := range []struct {
		name string
		d    *def
		want error
	}{
		{"lower serial", makeDef(1, 3, 2), shard.ErrRollback},
		{"same serial other hash", other2, shard.ErrRollback},
		{"same file", d2, shard.ErrSame},
		{"hash mismatch", bad, nil},
		{"duplicate client", dup, nil},
		{"long name", long, nil},
		{"shard too large", huge, nil},
		{"the caller's error mid-import", makeDef(3, 3000, 4), errEncode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq := tc.d.seq()
			if tc.want == errEncode {
				seq = tc.d.seqFailing(2500) // after Badger has committed some of its batches
			}
			_, err := st.Import(tc.d.v, tc.d.sealed, seq)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "shard: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			noCanary(t, err)
			checkServes(t, st, d2)
		})
	}
	gens, err := shard.Generations(st)
	if err != nil || len(gens) != 1 {
		t.Fatalf("generations after refusals = %v, %v; want one", gens, err)
	}
	mustImport(t, st, makeDef(3, 3, 2))
}

func TestGenerations(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, shard.Options{})
	d1, d2 := makeDef(1, 200, 4), makeDef(2, 150, 3)
	mustImport(t, st, d1)
	_, gen1, _ := st.Current()
	prev := mustImport(t, st, d2)
	if prev != gen1 {
		t.Fatalf("prev = %d, want %d", prev, gen1)
	}
	// Sessions that started on gen1 still read it until it is dropped.
	if got, err := st.Shard(gen1, clientKey(199), nil); err != nil || len(got) != 4 {
		t.Fatalf("old generation before drop: %d values, %v", len(got), err)
	}
	if err := st.DropGeneration(prev); err != nil {
		t.Fatal(err)
	}
	_, gen2, _ := st.Current()
	if err := st.DropGeneration(gen2); !errors.Is(err, shard.ErrCurrentGen) {
		t.Fatalf("dropping current: %v", err)
	}
	if _, err := st.Shard(gen1, clientKey(0), nil); !errors.Is(err, shard.ErrNotFound) {
		t.Fatalf("old generation after drop: %v", err)
	}
	checkServes(t, st, d2)
	st.Close()
	if keys := rawGenerations(t, dir); !slices.Equal(keys, []uint64{gen2}) {
		t.Fatalf("generations on disk = %v, want [%d]", keys, gen2)
	}
	if kept := keptFiles(t, dir); !slices.Equal(kept, []string{fmt.Sprintf("%x.sealed", d2.v.Hash)}) {
		t.Fatalf("kept files = %v", kept)
	}
}

// rawGenerations lists the generation of every s/ and c/ key.
func rawGenerations(t testing.TB, dir string) []uint64 {
	t.Helper()
	db, err := badger.Open(shard.RawOptions(filepath.Join(dir, "db"), &badgerKey))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var gens []uint64
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if bytes.HasPrefix(k, []byte("s/")) || bytes.HasPrefix(k, []byte("c/")) {
				if g := binary.BigEndian.Uint64(k[2:]); !slices.Contains(gens, g) {
					gens = append(gens, g)
				}
			}
		}
		return nil
	})
	return gens
}

func keptFiles(t testing.TB, dir string) []string {
	t.Helper()
	var names []string
	for _, d := range []string{dir, filepath.Join(dir, "sealed")} {
		es, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if n := e.Name(); strings.HasSuffix(n, ".sealed") || strings.HasSuffix(n, ".tmp") {
				names = append(names, n)
			}
		}
	}
	return names
}

// editRaw opens the store's Badger directly and applies fn in one
// transaction, as a disk-level attacker with the Badger key could.
func editRaw(t testing.TB, dir string, fn func(txn *badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(shard.RawOptions(filepath.Join(dir, "db"), &badgerKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func rawKey(prefix string, gen uint64, client [32]byte, name string) []byte {
	k := binary.BigEndian.AppendUint64([]byte(prefix), gen)
	if prefix == "m/cur" {
		return []byte(prefix)
	}
	k = append(k, client[:]...)
	return append(k, name...)
}

func rawGet(txn *badger.Txn, k []byte) []byte {
	item, err := txn.Get(k)
	if err != nil {
		panic(err)
	}
	v, _ := item.ValueCopy(nil)
	return v
}

// TestTamper edits records behind the store's back. Open finds each edit
// in its pass over the current generation (ErrCorrupt); opened without
// that pass, the read path still refuses the record (ErrTampered).
func TestTamper(t *testing.T) {
	d := makeDef(1, 5, 3)
	for _, tc := range []struct {
		name   string
		client int // the client whose shard fails
		edit   func(txn *badger.Txn, gen uint64) error
	}{
		{"flip shard byte", 1, func(txn *badger.Txn, gen uint64) error {
			v := rawGet(txn, rawKey("s/", gen, clientKey(1), ""))
			v[len(v)-20] ^= 0x40
			return txn.Set(rawKey("s/", gen, clientKey(1), ""), v)
		}},
		{"move shard to another client", 2, func(txn *badger.Txn, gen uint64) error {
			v := rawGet(txn, rawKey("s/", gen, clientKey(0), ""))
			return txn.Set(rawKey("s/", gen, clientKey(2), ""), v)
		}},
		{"truncate shard", 0, func(txn *badger.Txn, gen uint64) error {
			v := rawGet(txn, rawKey("s/", gen, clientKey(0), ""))
			return txn.Set(rawKey("s/", gen, clientKey(0), ""), v[:len(v)-1])
		}},
		{"client record as shard", 3, func(txn *badger.Txn, gen uint64) error {
			v := rawGet(txn, rawKey("c/", gen, clientKey(3), ""))
			return txn.Set(rawKey("s/", gen, clientKey(3), ""), v)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st := open(t, dir, shard.Options{})
			mustImport(t, st, d)
			_, gen, _ := st.Current()
			st.Close()
			editRaw(t, dir, func(txn *badger.Txn) error { return tc.edit(txn, gen) })
			wantCorrupt(t, dir)
			st = open(t, dir, shard.NoVerify(shard.Options{}))
			for _, names := range [][]string{nil, {"VALUE_1"}} {
				_, err := st.Shard(gen, clientKey(tc.client), names)
				if !errors.Is(err, shard.ErrTampered) {
					t.Fatalf("Shard(%q): got %v, want ErrTampered", names, err)
				}
				noCanary(t, err)
			}
			if _, err := st.Shard(gen, clientKey(4), nil); err != nil {
				t.Fatalf("untouched client: %v", err)
			}
		})
	}
	t.Run("replay an older generation's shard", func(t *testing.T) {
		dir := t.TempDir()
		st := open(t, dir, shard.Options{})
		mustImport(t, st, d)
		_, gen1, _ := st.Current()
		st.Close()
		var old []byte
		editRaw(t, dir, func(txn *badger.Txn) error {
			old = rawGet(txn, rawKey("s/", gen1, clientKey(0), ""))
			return nil
		})
		st = open(t, dir, shard.Options{})
		d2 := makeDef(2, 5, 3)
		if err := st.DropGeneration(mustImport(t, st, d2)); err != nil {
			t.Fatal(err)
		}
		_, gen2, _ := st.Current()
		st.Close()
		editRaw(t, dir, func(txn *badger.Txn) error { return txn.Set(rawKey("s/", gen2, clientKey(0), ""), old) })
		wantCorrupt(t, dir)
		st = open(t, dir, shard.NoVerify(shard.Options{}))
		if _, err := st.Shard(gen2, clientKey(0), nil); !errors.Is(err, shard.ErrTampered) {
			t.Fatalf("got %v, want ErrTampered", err)
		}
	})
	for name, edit := range map[string]func(txn *badger.Txn, gen uint64) error{
		"swap client records": func(txn *badger.Txn, gen uint64) error {
			v := rawGet(txn, rawKey("c/", gen, clientKey(0), ""))
			return txn.Set(rawKey("c/", gen, clientKey(1), ""), v)
		},
		"delete a client": func(txn *badger.Txn, gen uint64) error {
			return txn.Delete(rawKey("c/", gen, clientKey(2), ""))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			st := open(t, dir, shard.Options{})
			mustImport(t, st, d)
			_, gen, _ := st.Current()
			st.Close()
			editRaw(t, dir, func(txn *badger.Txn) error { return edit(txn, gen) })
			wantCorrupt(t, dir)
			st = open(t, dir, shard.NoVerify(shard.Options{}))
			if err := st.Clients(gen, func([32]byte, string) {}); !errors.Is(err, shard.ErrTampered) {
				t.Fatalf("Clients: got %v, want ErrTampered", err)
			}
		})
	}
	t.Run("current pointer", func(t *testing.T) {
		dir := t.TempDir()
		st := open(t, dir, shard.Options{})
		mustImport(t, st, d)
		st.Close()
		editRaw(t, dir, func(txn *badger.Txn) error {
			v := rawGet(txn, []byte("m/cur"))
			v[20] ^= 1
			return txn.Set([]byte("m/cur"), v)
		})
		st = open(t, dir, shard.Options{})
		if got := st.Condition(); got != shard.NeedsRebuild {
			t.Fatalf("Condition = %v, want needs-rebuild", got)
		}
		if _, _, ok := st.Current(); ok {
			t.Fatal("Current ok with a tampered pointer")
		}
		rebuild(t, st, d)
	})
}

// wantCorrupt checks that Open refuses the store in dir with ErrCorrupt.
func wantCorrupt(t *testing.T, dir string) {
	t.Helper()
	_, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
	if !errors.Is(err, shard.ErrCorrupt) {
		t.Fatalf("Open: got %v, want ErrCorrupt", err)
	}
	noCanary(t, err)
}

// rebuild imports the kept sealed file of the state, as the daemon does
// for NeedsRebuild, and checks that d is served.
func rebuild(t *testing.T, st *shard.Store, d *def) {
	t.Helper()
	sv, ok := st.State()
	if !ok || sv != d.v {
		t.Fatalf("State = %d, %v; want serial %d", sv.Serial, ok, d.v.Serial)
	}
	sealed, err := st.KeptSealed(sv.Hash)
	if err != nil || !bytes.Equal(sealed, d.sealed) {
		t.Fatalf("KeptSealed: %v", err)
	}
	prev, err := st.Import(sv, sealed, d.seq())
	if err != nil {
		t.Fatalf("rebuild Import: %v", err)
	}
	if prev != 0 {
		if err := st.DropGeneration(prev); err != nil {
			t.Fatal(err)
		}
	}
	if got := st.Condition(); got != shard.Consistent {
		t.Fatalf("Condition after rebuild = %v", got)
	}
	checkServes(t, st, d)
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStateFile(t *testing.T) {
	d1, d2 := makeDef(1, 20, 2), makeDef(2, 25, 2)
	// setup leaves a closed store that served d1 then d2, and copies of
	// the state file and Badger directory as they were after d1.
	setup := func(t *testing.T) (dir, state1, db1 string) {
		dir = t.TempDir()
		st := open(t, dir, shard.Options{})
		mustImport(t, st, d1)
		st.Close()
		backup := t.TempDir()
		copyDir(t, filepath.Join(dir, "db"), filepath.Join(backup, "db"))
		b, _ := os.ReadFile(filepath.Join(dir, "state"))
		os.WriteFile(filepath.Join(backup, "state"), b, 0o600)
		st = open(t, dir, shard.Options{})
		prev := mustImport(t, st, d2)
		if err := st.DropGeneration(prev); err != nil {
			t.Fatal(err)
		}
		st.Close()
		return dir, filepath.Join(backup, "state"), filepath.Join(backup, "db")
	}
	t.Run("behind the store", func(t *testing.T) {
		dir, state1, _ := setup(t)
		b, _ := os.ReadFile(state1)
		os.WriteFile(filepath.Join(dir, "state"), b, 0o600)
		st := open(t, dir, shard.Options{})
		if got := st.Condition(); got != shard.StateUpdated {
			t.Fatalf("Condition = %v, want state-updated", got)
		}
		if sv, _ := st.State(); sv != d2.v {
			t.Fatalf("state serial %d, want 2", sv.Serial)
		}
		checkServes(t, st, d2)
		st.Close()
		st = open(t, dir, shard.Options{})
		if got := st.Condition(); got != shard.Consistent {
			t.Fatalf("second open: Condition = %v", got)
		}
	})
	t.Run("ahead of the store", func(t *testing.T) {
		dir, _, db1 := setup(t)
		os.RemoveAll(filepath.Join(dir, "db"))
		copyDir(t, db1, filepath.Join(dir, "db"))
		st := open(t, dir, shard.Options{})
		if got := st.Condition(); got != shard.NeedsRebuild {
			t.Fatalf("Condition = %v, want needs-rebuild", got)
		}
		if _, _, ok := st.Current(); ok {
			t.Fatal("an older definition is served")
		}
		if _, err := st.Import(d1.v, d1.sealed, d1.seq()); !errors.Is(err, shard.ErrRollback) {
			t.Fatalf("importing the older definition: %v", err)
		}
		rebuild(t, st, d2)
		st.Close()
		if gens := rawGenerations(t, dir); len(gens) != 1 {
			t.Fatalf("generations = %v", gens)
		}
	})
	t.Run("store missing", func(t *testing.T) {
		dir, _, _ := setup(t)
		os.RemoveAll(filepath.Join(dir, "db"))
		st := open(t, dir, shard.Options{})
		if got := st.Condition(); got != shard.NeedsRebuild {
			t.Fatalf("Condition = %v, want needs-rebuild", got)
		}
		rebuild(t, st, d2)
	})
	t.Run("missing", func(t *testing.T) {
		dir, _, _ := setup(t)
		os.Remove(filepath.Join(dir, "state"))
		st := open(t, dir, shard.Options{})
		if got := st.Condition(); got != shard.StateRecreated {
			t.Fatalf("Condition = %v, want state-recreated", got)
		}
		checkServes(t, st, d2)
		if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
			t.Fatalf("state not rewritten: %v", err)
		}
	})
	for name, edit := range map[string]func([]byte) []byte{
		"garbage":      func([]byte) []byte { return []byte("hello\n") },
		"empty":        func([]byte) []byte { return nil },
		"serial moved": func(b []byte) []byte { return bytes.Replace(b, []byte("serial 2"), []byte("serial 9"), 1) },
		"hash changed": func(b []byte) []byte { return bytes.Replace(b, []byte("hash "), []byte("hash 0"), 1)[:len(b)] },
		"mac changed":  func(b []byte) []byte { b[len(b)-2] ^= 1; return b },
	} {
		t.Run("corrupt "+name, func(t *testing.T) {
			dir, _, _ := setup(t)
			b, _ := os.ReadFile(filepath.Join(dir, "state"))
			os.WriteFile(filepath.Join(dir, "state"), edit(b), 0o600)
			_, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
			if !errors.Is(err, shard.ErrBadState) {
				t.Fatalf("got %v, want ErrBadState", err)
			}
		})
	}
	t.Run("other seal key", func(t *testing.T) {
		dir, _, _ := setup(t)
		other := [32]byte{9}
		_, err := shard.Open(dir, &badgerKey, &other, shard.Options{})
		if !errors.Is(err, shard.ErrBadState) {
			t.Fatalf("got %v, want ErrBadState", err)
		}
	})
	t.Run("kept file damaged", func(t *testing.T) {
		dir, _, _ := setup(t)
		p := filepath.Join(dir, "sealed", fmt.Sprintf("%x.sealed", d2.v.Hash))
		os.WriteFile(p, []byte("damaged"), 0o600)
		st := open(t, dir, shard.Options{})
		if _, err := st.KeptSealed(d2.v.Hash); !errors.Is(err, shard.ErrTampered) {
			t.Fatalf("got %v, want ErrTampered", err)
		}
		if _, err := st.KeptSealed(d1.v.Hash); !errors.Is(err, shard.ErrNoKept) {
			t.Fatalf("older kept file: got %v, want ErrNoKept", err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, shard.Options{})
	mustImport(t, st, makeDef(1, 10, 2))
	t.Run("locked", func(t *testing.T) {
		_, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
		if !errors.Is(err, shard.ErrLocked) {
			t.Fatalf("got %v, want ErrLocked", err)
		}
	})
	st.Close()
	t.Run("wrong key", func(t *testing.T) {
		// Both keys derive from the server key, so a wrong one is wrong
		// for both (TestKeyRegistry covers a damaged registry).
		other, otherSeal := [32]byte{7}, [32]byte{8}
		_, err := shard.Open(dir, &other, &otherSeal, shard.Options{})
		if !errors.Is(err, shard.ErrWrongKey) {
			t.Fatalf("got %v, want ErrWrongKey", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		if _, err := shard.Open(f, &badgerKey, &sealKey, shard.Options{}); err == nil {
			t.Fatal("opened a file as a directory")
		}
	})
	t.Run("nil key", func(t *testing.T) {
		if _, err := shard.Open(t.TempDir(), nil, &sealKey, shard.Options{}); err == nil {
			t.Fatal("opened with a nil key")
		}
	})
}

// TestLargeShard stores shards above the value threshold, which Badger
// keeps in its value log, across a replace and a drop.
func TestLargeShard(t *testing.T) {
	st := open(t, t.TempDir(), shard.Options{})
	for s := uint64(1); s <= 3; s++ {
		d := makeDef(s, 3, 1)
		d.clients[1].Values["BIG"] = bytes.Repeat([]byte{byte(s)}, 300<<10)
		prev := mustImport(t, st, d)
		if prev != 0 {
			if err := st.DropGeneration(prev); err != nil {
				t.Fatal(err)
			}
		}
		checkServes(t, st, d)
	}
}

// mappedTableBytes sums the resident pages of dir's table files mapped
// into this process (/proc/self/smaps), and their total size.
func mappedTableBytes(t *testing.T, dir string) (resident, total int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	inTable := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			inTable = len(f) == 6 && strings.HasPrefix(f[5], dir) && strings.HasSuffix(f[5], ".sst")
			continue
		}
		if inTable && len(f) == 3 && f[0] == "Rss:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			resident += kb << 10
		}
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "db", "*.sst"))
	for _, p := range tables {
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	return resident, total
}

// TestOpenLeavesTablesUnmapped: Open reads every record of the served
// generation to verify it, and a store's first import writes every
// table; both leave the store with its table pages unmapped (Badger
// reopened), so a server's idle RSS does not carry its whole keyspace.
// The store still serves every client.
func TestOpenLeavesTablesUnmapped(t *testing.T) {
	dir := t.TempDir()
	d := makeDef(1, 4000, 4)
	st := open(t, dir, shard.Options{})
	mustImport(t, st, d)
	check := func(when string) {
		t.Helper()
		res, total := mappedTableBytes(t, dir)
		if total < 256<<10 {
			t.Fatalf("%s: only %d bytes of tables: the test needs more", when, total)
		}
		if res > total/4 {
			t.Fatalf("%s: %d of %d table bytes resident in this process", when, res, total)
		}
		t.Logf("%s: %d of %d table bytes resident", when, res, total)
	}
	check("after the first import")
	st.Close()
	st = open(t, dir, shard.Options{})
	check("after Open")
	checkServes(t, st, d)
}
