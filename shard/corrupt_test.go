package shard_test

import (
	"bytes"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coffer-project/coffer/shard"
)

func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022) // Badger's files then come out 0644
	defer syscall.Umask(old)
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	os.Mkdir(dir, 0o755)
	st := open(t, dir, shard.Options{})
	mustImport(t, st, makeDef(1, 2000, 5))
	check := func(when string) {
		t.Helper()
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, err := d.Info()
			if err == nil && info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: %s has mode %v", when, p, info.Mode().Perm())
			}
			return nil
		})
	}
	check("after import")
	st.Close()
	check("after close")
}

// TestCorruptStore damages each Badger file in turn. Open must not panic
// and must not serve wrong data: it fails, or the store opens and every
// shard it returns is the one imported.
func TestCorruptStore(t *testing.T) {
	src := t.TempDir()
	d := makeDef(1, 300, 4)
	st := open(t, src, shard.Options{})
	mustImport(t, st, d)
	st.Close()
	var files []string
	entries, _ := os.ReadDir(filepath.Join(src, "db"))
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "LOCK" {
			files = append(files, e.Name())
		}
	}
	damage := map[string]func(string) error{
		"zero": func(p string) error {
			fi, _ := os.Stat(p)
			return os.WriteFile(p, make([]byte, fi.Size()), 0o600)
		},
		"truncate": func(p string) error {
			fi, _ := os.Stat(p)
			return os.Truncate(p, fi.Size()/2)
		},
		"flip": func(p string) error {
			b, _ := os.ReadFile(p)
			if len(b) > 0 {
				for i := len(b) / 3; i < len(b); i += 97 {
					b[i] ^= 0x55
				}
			}
			return os.WriteFile(p, b, 0o600)
		},
		"delete": os.Remove,
	}
	for _, f := range files {
		for how, fn := range damage {
			t.Run(how+" "+strings.TrimPrefix(filepath.Ext(f), ".")+" "+f, func(t *testing.T) {
				dir := t.TempDir()
				copyDir(t, src, dir)
				if err := fn(filepath.Join(dir, "db", f)); err != nil {
					t.Fatal(err)
				}
				st, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
				if err != nil {
					noCanary(t, err)
					t.Logf("Open: %v", err)
					if errors.Is(err, shard.ErrCorrupt) {
						if _, err := shard.Quarantine(dir); err != nil {
							t.Fatal(err)
						}
						st, err = shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
						if err != nil || st.Condition() != shard.NeedsRebuild {
							t.Fatalf("after Quarantine: %v", err)
						}
						rebuild(t, st, d)
						st.Close()
					}
					return
				}
				defer st.Close()
				t.Logf("opened: %v", st.Condition())
				v, gen, ok := st.Current()
				if !ok {
					return
				}
				if v != d.v {
					t.Fatalf("serving serial %d", v.Serial)
				}
				for _, c := range d.clients {
					got, err := st.Shard(gen, c.Key, nil)
					if err != nil {
						noCanary(t, err)
						continue
					}
					if !maps.EqualFunc(got, c.Values, bytes.Equal) {
						t.Fatalf("client %s: wrong values served", c.Name)
					}
				}
			})
		}
	}
}

// TestDamageAfterFirstImport: the reopen after a store's first import
// does not read its tables whole again, so every read must still check
// its block. With bytes of every table flipped behind the store's back,
// each read returns the client's exact values or an error, never other
// values; and the next Open, which verifies every table, refuses the
// database.
func TestDamageAfterFirstImport(t *testing.T) {
	dir := t.TempDir()
	d := makeDef(1, 2000, 4)
	st := open(t, dir, shard.Options{})
	mustImport(t, st, d)
	tables, _ := filepath.Glob(filepath.Join(dir, "db", "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table files after the import")
	}
	for _, p := range tables {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		b := make([]byte, fi.Size())
		f.ReadAt(b, 0)
		for off := int64(100); off < fi.Size()*3/4; off += 1500 { // in the blocks, before the index
			b[off] ^= 0x55
		}
		f.WriteAt(b, 0)
		f.Close()
	}
	_, gen, _ := st.Current()
	failed := 0
	for _, c := range d.clients {
		got, err := st.Shard(gen, c.Key, nil)
		if err != nil {
			failed++
			noCanary(t, err)
			continue
		}
		if !maps.EqualFunc(got, c.Values, bytes.Equal) {
			t.Fatalf("client %s: a damaged table gave other values", c.Name)
		}
	}
	if failed == 0 {
		t.Fatal("every read succeeded on damaged tables: the damage missed the blocks")
	}
	st.Close()
	if _, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{}); !errors.Is(err, shard.ErrCorrupt) {
		t.Fatalf("Open after the damage: %v, want ErrCorrupt", err)
	}
	t.Logf("%d of %d reads refused", failed, len(d.clients))
}
