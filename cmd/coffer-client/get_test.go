package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/frame"
)

func TestGetFormats(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 3)
	tests := []struct {
		format string
		check  func(t *testing.T, out []byte)
	}{
		{"env", func(t *testing.T, out []byte) { checkSourced(t, out, fx.shard, "") }},
		{"dotenv", func(t *testing.T, out []byte) { checkDotenv(t, out, fx.shard, "") }},
		{"json", func(t *testing.T, out []byte) { checkJSON(t, out, fx.shard) }},
		{"toml", func(t *testing.T, out []byte) { checkTOML(t, out, fx.shard) }},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			r := fx.run(nil, append([]string{"get", "--format", tt.format}, fx.base("--server", ts.addr)...)...)
			r.want(t, exitOK)
			tt.check(t, r.stdout)
		})
	}
	t.Run("env by default with prefix", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get", "--prefix", "APP_"}, fx.base("--server", ts.addr)...)...)
		r.want(t, exitOK)
		checkSourced(t, r.stdout, fx.shard, "APP_")
	})
	t.Run("names", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get", "port", "--format", "json", "api-key"}, fx.base("--server", ts.addr)...)...)
		r.want(t, exitOK)
		checkJSON(t, r.stdout, frame.Shard{"port": fx.shard["port"], "api-key": fx.shard["api-key"]})
	})
	for _, n := range []string{"db.password", "newlines", "whole", "local.time", "empty"} {
		t.Run("raw "+n, func(t *testing.T) {
			r := fx.run(nil, append([]string{"get", "--format", "raw", n}, fx.base("--server", ts.addr)...)...)
			r.want(t, exitOK)
			if want := textOf(fx.shard[n]); string(r.stdout) != want {
				t.Errorf("got %q, want %q", r.stdout, want)
			}
		})
	}
	t.Run("missing name", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get", "port", "nope"}, fx.base("--server", ts.addr)...)...)
		r.want(t, exitFailure)
		if len(r.stdout) != 0 || !bytes.Contains(r.stderr, []byte(`"nope"`)) {
			t.Errorf("got stdout %q, stderr %q; want no output and the missing name", r.stdout, r.stderr)
		}
	})
}

func TestOut(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	stat := func(t *testing.T, path string, mode os.FileMode) {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != mode {
			t.Errorf("%s: got mode %v, want %v", path, got, mode)
		}
	}
	noTemps := func(t *testing.T, dir string) {
		t.Helper()
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temporary file %s left behind", e.Name())
			}
		}
	}
	t.Run("dir umask 000", func(t *testing.T) {
		dir := t.TempDir()
		r := fx.runUmask0(append([]string{"get", "--out", dir}, fx.base("--server", ts.addr)...)...)
		r.want(t, exitOK)
		if len(r.stdout) != 0 {
			t.Errorf("got stdout %q, want none", r.stdout)
		}
		for n, v := range fx.shard {
			p := filepath.Join(dir, n)
			stat(t, p, 0o600)
			if got, _ := os.ReadFile(p); string(got) != textOf(v) {
				t.Errorf("%s: got %q, want %q", n, got, textOf(v))
			}
		}
		noTemps(t, dir)
	})
	t.Run("dir mode owner group", func(t *testing.T) {
		dir := t.TempDir()
		r := fx.runUmask0(append([]string{"get", "--out", dir, "--mode", "0640", "--owner", strconv.Itoa(os.Getuid()),
			"--group", strconv.Itoa(os.Getgid()), "port", "db.password"}, fx.base("--server", ts.addr)...)...)
		r.want(t, exitOK)
		stat(t, filepath.Join(dir, "port"), 0o640)
		stat(t, filepath.Join(dir, "db.password"), 0o640)
		if _, err := os.Stat(filepath.Join(dir, "api-key")); err == nil {
			t.Error("a value that was not asked for was written")
		}
	})
	t.Run("refuses a symlink and leaves its target", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(fx.dir, "target")
		os.WriteFile(target, []byte("keep"), 0o644)
		os.Symlink(target, filepath.Join(dir, "port"))
		fx.runUmask0(append([]string{"get", "--out", dir, "port"}, fx.base("--server", ts.addr)...)...).want(t, exitFailure)
		stat(t, filepath.Join(dir, "port"), os.ModeSymlink|0o777)
		if got, _ := os.ReadFile(target); string(got) != "keep" {
			t.Errorf("symlink target changed to %q", got)
		}
	})
	t.Run("file with format", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.env")
		r := fx.runUmask0(append([]string{"get", "--out", path, "--format", "env"}, fx.base("--server", ts.addr)...)...)
		r.want(t, exitOK)
		stat(t, path, 0o600)
		data, _ := os.ReadFile(path)
		checkSourced(t, data, fx.shard, "")
		noTemps(t, filepath.Dir(path))
	})
	t.Run("failed fetch writes nothing", func(t *testing.T) {
		dir := t.TempDir()
		r := fx.run(nil, append([]string{"get", "--out", dir}, fx.base("--server", closedAddr(t))...)...)
		r.want(t, exitUnreachable)
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("got %d files after a failed fetch, want none", len(ents))
		}
	})
}

func TestExec(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	t.Run("child sees values and its exit code is kept", func(t *testing.T) {
		r := fx.run([]string{"KEEP=kept"}, append(append([]string{"exec"}, fx.base("--server", ts.addr)...),
			"--", "sh", "-c", `printf '%s|%s|%s' "$DB_PASSWORD" "$_9LIVES" "$KEEP"; exit 7`)...)
		r.want(t, 7)
		if want := trickyText + "|digit|kept"; string(r.stdout) != want {
			t.Errorf("got %q, want %q", r.stdout, want)
		}
	})
	t.Run("pristine", func(t *testing.T) {
		r := fx.run([]string{"LEAK=1"}, append(append([]string{"exec", "--pristine", "--prefix", "S_"},
			fx.base("--server", ts.addr)...), "--", "env", "-0")...)
		r.want(t, exitOK)
		got := map[string]string{}
		for _, kv := range strings.Split(strings.TrimSuffix(string(r.stdout), "\x00"), "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		if len(got) != len(fx.shard) {
			t.Errorf("got %d variables, want only the %d secrets: %q", len(got), len(fx.shard), keys(got))
		}
		for n, v := range fx.shard {
			if g := got[envName("S_", n)]; g != textOf(v) {
				t.Errorf("%s: got %q, want %q", n, g, textOf(v))
			}
		}
	})
	t.Run("command not found", func(t *testing.T) {
		r := fx.run(nil, append(append([]string{"exec"}, fx.base("--server", ts.addr)...), "--", "no-such-command-xyz")...)
		r.want(t, exitFailure)
	})
	t.Run("failed fetch does not exec", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "ran")
		r := fx.run(nil, append(append([]string{"exec"}, fx.base("--server", closedAddr(t))...), "--", "touch", marker)...)
		r.want(t, exitUnreachable)
		if _, err := os.Stat(marker); err == nil {
			t.Error("the command ran after a failed fetch")
		}
	})
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
