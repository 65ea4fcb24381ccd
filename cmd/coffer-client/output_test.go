package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOutRefusesNonRegular runs the real client against a server on
// loopback with --out naming what is not a regular file: it must fail
// with status 1 and a clear error, and leave the target and its
// directory as they were (issue 14: --out once replaced a FIFO and, as
// root, /dev/full).
func TestOutRefusesNonRegular(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	mkfifo := func(t *testing.T, path string) {
		t.Helper()
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		make   func(t *testing.T, path string)
		format []string // none: --out DIR, the target one of its files
		want   string
	}{
		{"fifo as --out FILE", mkfifo, []string{"--format", "env"}, "is a named pipe (FIFO)"},
		{"fifo in --out DIR", mkfifo, nil, "is a named pipe (FIFO)"},
		{"symlink as --out FILE", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "target")
			os.WriteFile(target, []byte("keep"), 0o644)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, []string{"--format", "env"}, "is a symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "port")
			tt.make(t, target)
			before, err := os.Lstat(target)
			if err != nil {
				t.Fatal(err)
			}
			out := target
			if tt.format == nil {
				out = dir
			}
			args := append([]string{"get", "--out", out, "port"}, tt.format...)
			r := fx.run(nil, append(args, fx.base("--server", ts.addr)...)...)
			r.want(t, exitFailure)
			if !bytes.Contains(r.stderr, []byte(target+" "+tt.want)) || !bytes.Contains(r.stderr, []byte("not a regular file")) {
				t.Errorf("stderr does not say what %s is:\n%s", target, r.stderr)
			}
			after, err := os.Lstat(target)
			if err != nil {
				t.Fatal(err)
			}
			if after.Mode() != before.Mode() || !os.SameFile(before, after) {
				t.Errorf("target changed: got %v, want %v (the same file)", after.Mode(), before.Mode())
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("got %d entries in %s, want only the target", len(ents), dir)
			}
			if before.Mode()&fs.ModeSymlink != 0 {
				link, _ := os.Readlink(target)
				if got, _ := os.ReadFile(link); string(got) != "keep" {
					t.Errorf("symlink target: got %q, want %q", got, "keep")
				}
			}
		})
	}
}
