package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSealMode: a sealed file is public; -o writes 0644 for a new file,
// keeps an existing file's mode, and --mode sets it. edit keeps the mode.
func TestSealMode(t *testing.T) {
	s := newSetup(t)
	mode := func(name string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(filepath.Join(s.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	companion(t, s.dir, s.env, "seal", "-o", "v.sealed", "secrets.toml").want(t, 0)
	if got := mode("v.sealed"); got != 0o644 {
		t.Errorf("new file: got mode %04o, want 0644", got)
	}
	os.Chmod(filepath.Join(s.dir, "v.sealed"), 0o640)
	companion(t, s.dir, s.env, "seal", "-o", "v.sealed", "secrets.toml").want(t, 0, "serial 2")
	if got := mode("v.sealed"); got != 0o640 {
		t.Errorf("reseal: got mode %04o, want the existing 0640", got)
	}
	ed := writeEditor(t, s, `echo 'y = 1' >> "$1"`)
	companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "v.sealed").want(t, 0, "serial 3")
	if got := mode("v.sealed"); got != 0o640 {
		t.Errorf("edit: got mode %04o, want the existing 0640", got)
	}
	companion(t, s.dir, s.env, "seal", "--mode", "0600", "-o", "v.sealed", "secrets.toml").want(t, 0, "serial 4")
	if got := mode("v.sealed"); got != 0o600 {
		t.Errorf("--mode 0600: got mode %04o", got)
	}
	companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "--mode", "644", "v.sealed").want(t, 0, "serial 5")
	if got := mode("v.sealed"); got != 0o644 {
		t.Errorf("edit --mode 644: got mode %04o", got)
	}
	for _, bad := range []string{"999", "1644", "0200", "x"} {
		companion(t, s.dir, s.env, "seal", "--mode", bad, "-o", "v.sealed", "secrets.toml").want(t, 2, "--mode")
	}
}
