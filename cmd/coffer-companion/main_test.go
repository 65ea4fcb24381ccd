package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/coffer-project/coffer/coffer"
)

// binary is the coffer-companion built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coffer-companion-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Every coffer-client these tests start keeps its remembered serial
	// here, never in the real /var/lib/coffer-client or ~/.local/state.
	os.Setenv("XDG_STATE_HOME", filepath.Join(dir, "xdg-state"))

	binary = filepath.Join(dir, "coffer-companion")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building coffer-companion: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// canary is a secret value; it must never reach stderr or an error.
const canary = "canary-companion-c4d2a8"

type result struct {
	code           int
	stdout, stderr string
}

// companion runs the binary in dir with a clean environment plus env.
func companion(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o700)
	return companionEnv(t, dir, append(baseEnv(dir), env...), args...)
}

// baseEnv is the clean environment of a run in dir, with TMPDIR=dir/tmp.
func baseEnv(dir string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + filepath.Join(dir, "tmp")}
}

// companionEnv runs the binary in dir with exactly the environment env.
func companionEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = env
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	r := result{code, so.String(), se.String()}
	if strings.Contains(r.stderr, canary) {
		t.Errorf("stderr contains a secret value:\n%s", r.stderr)
	}
	return r
}

func (r result) want(t *testing.T, code int, stderrHas ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("got exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stderrHas {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr %q does not contain %q", r.stderr, s)
		}
	}
}

// setup makes a companion key, a server key and two client keys, and a
// definition, in a fresh directory.
type setup struct {
	dir, server, serverPub, toml string
	env                          []string
}

// sealingLine returns the cofferseal1 line of 'pubkey --sealing' output.
func sealingLine(t *testing.T, out string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "cofferseal1") {
		t.Fatalf("pubkey --sealing printed %q", out)
	}
	return last
}

func newSetup(t *testing.T) *setup {
	dir := t.TempDir()
	s := &setup{dir: dir}
	companion(t, dir, nil, "keygen", "--author", "-o", "companion.key").want(t, 0, "author's signing key")
	r := companion(t, dir, nil, "keygen", "-o", "server.key")
	r.want(t, 0, "X25519")
	s.serverPub = strings.TrimSpace(r.stdout)
	r = companion(t, dir, nil, "pubkey", "--sealing", "server.key")
	r.want(t, 0)
	s.server = sealingLine(t, r.stdout)
	s.write(t, "server.sealing", r.stdout)
	web := strings.TrimSpace(companion(t, dir, nil, "keygen", "-o", "web.key").stdout)
	w1 := strings.TrimSpace(companion(t, dir, nil, "keygen", "-o", "w1.key").stdout)
	s.toml = fmt.Sprintf("[clients]\nweb = %q\nworker = [%q]\n[web]\npassword = %q\nport = 5432\nat = 1979-05-27T07:32:00\n", web, w1, canary)
	s.write(t, "secrets.toml", s.toml)
	s.env = []string{"COFFER_KEY=companion.key", "COFFER_SERVER_KEY=" + s.server}
	return s
}

func (s *setup) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *setup) read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeygenAndPubkey(t *testing.T) {
	dir := t.TempDir()
	r := companion(t, dir, nil, "keygen", "-o", "k")
	r.want(t, 0)
	pub := strings.TrimSpace(r.stdout)
	if _, err := coffer.ParsePublicKey(pub); err != nil || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("keygen printed %q: %v", r.stdout, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "k"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(filepath.Join(dir, "k"))
	if strings.Contains(r.stdout+r.stderr, "coffersk1") {
		t.Error("keygen printed the secret key")
	}
	r = companion(t, dir, nil, "pubkey", "k")
	r.want(t, 0)
	if strings.TrimSpace(r.stdout) != pub {
		t.Errorf("pubkey printed %q, want %q", r.stdout, pub)
	}
	t.Run("never overwrites", func(t *testing.T) {
		companion(t, dir, nil, "keygen", "-o", "k").want(t, 1, "already exists", "hint:")
		if again, _ := os.ReadFile(filepath.Join(dir, "k")); !bytes.Equal(again, data) {
			t.Error("key file changed")
		}
	})
	t.Run("author key", func(t *testing.T) {
		r := companion(t, dir, nil, "keygen", "--author", "-o", "a")
		r.want(t, 0, "wrote an author's signing key (Ed25519)")
		pub := strings.TrimSpace(r.stdout)
		if _, err := coffer.ParseAuthorPublicKey(pub); err != nil {
			t.Fatalf("keygen --author printed %q: %v", r.stdout, err)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "a")); !strings.Contains(string(data), "Ed25519, an author's signing key") {
			t.Errorf("author key file does not name its kind:\n%s", data)
		}
		if r := companion(t, dir, nil, "pubkey", "a"); strings.TrimSpace(r.stdout) != pub {
			t.Errorf("pubkey of the author key printed %q, want %q", r.stdout, pub)
		}
		companion(t, dir, nil, "pubkey", "--sealing", "a").want(t, 1, "X25519", "--sealing needs the server's key file")
	})
	t.Run("sealing key", func(t *testing.T) {
		r := companion(t, dir, nil, "pubkey", "--sealing", "k")
		r.want(t, 0)
		line := sealingLine(t, r.stdout)
		sk, err := coffer.ParseSealingKey(line)
		if err != nil || sk.X25519.String() != pub || !strings.Contains(r.stdout, "# server key (what clients pin): "+pub) {
			t.Fatalf("pubkey --sealing printed %q: %v", r.stdout, err)
		}
		if again := companion(t, dir, nil, "pubkey", "--sealing", "k"); again.stdout != r.stdout {
			t.Error("pubkey --sealing differs between runs")
		}
	})
	t.Run("readable key refused", func(t *testing.T) {
		os.Chmod(filepath.Join(dir, "k"), 0o644)
		defer os.Chmod(filepath.Join(dir, "k"), 0o600)
		r := companion(t, dir, nil, "pubkey", "k")
		r.want(t, 1, "mode 0644", "chmod 600 k")
		if r.stdout != "" {
			t.Errorf("stdout %q, want nothing", r.stdout)
		}
	})
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	for _, cmd := range []string{"keygen", "pubkey", "seal", "open", "edit", "check", "inspect", "set", "unset", "diff"} {
		t.Run(cmd+" -h", func(t *testing.T) {
			r := companion(t, dir, nil, cmd, "-h")
			r.want(t, 0, "usage: coffer-companion "+cmd)
			if r.stdout != "" {
				t.Errorf("help went to stdout")
			}
		})
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage:"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"unknown flag", []string{"seal", "--bogus", "x"}, "bogus"},
		{"keygen without -o", []string{"keygen"}, "-o FILE"},
		{"seal without key", []string{"seal", "--server-key", "x", "s.toml"}, "--key is required"},
		{"seal without server", []string{"seal", "--key", "k", "s.toml"}, "--server-key is required"},
		{"force without serial", []string{"seal", "--force", "s.toml"}, "--force needs --serial"},
		{"force with previous", []string{"seal", "--force", "--serial", "3", "--previous", "p", "s.toml"}, "exclude"},
		{"serial alone", []string{"seal", "--serial", "3", "s.toml"}, "--serial needs"},
		{"two files", []string{"check", "a", "b"}, "one definition file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			companion(t, dir, nil, tc.args...).want(t, 2, tc.want)
		})
	}
	r := companion(t, dir, nil, "-h")
	r.want(t, 0, "COFFER_KEY", "COFFER_SERVER_KEY")
}

// TestSealOpenInspect is the round trip: seal, open, inspect with and
// without keys, armor, and a chain with --previous.
func TestSealOpenInspect(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, s.env, "seal", "-o", "v1.sealed", "secrets.toml").want(t, 0, "serial 1")
	fi, _ := os.Stat(filepath.Join(s.dir, "v1.sealed"))
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("sealed file mode %04o, want 0644", fi.Mode().Perm())
	}
	if bytes.Contains(s.read(t, "v1.sealed"), []byte(canary)) {
		t.Fatal("sealed file contains the plaintext")
	}
	r := companion(t, s.dir, s.env, "open", "v1.sealed")
	r.want(t, 0)
	if r.stdout != s.toml {
		t.Errorf("open printed %q, want the definition", r.stdout)
	}
	// Flags instead of the environment, and flags after the file.
	r = companion(t, s.dir, nil, "open", "v1.sealed", "--key", "companion.key", "--server-key", s.server)
	r.want(t, 0)
	// The file form of the sealing key, and open without --server.
	r = companion(t, s.dir, nil, "open", "v1.sealed", "--key", "companion.key", "--server", "server.sealing")
	r.want(t, 0)
	r = companion(t, s.dir, nil, "open", "v1.sealed", "--key", "companion.key")
	r.want(t, 0)

	r = companion(t, s.dir, nil, "inspect", "v1.sealed")
	r.want(t, 0)
	if !strings.Contains(r.stdout, "UNVERIFIED") || strings.Contains(r.stdout, "serial") {
		t.Errorf("inspect without keys printed:\n%s", r.stdout)
	}
	r = companion(t, s.dir, s.env, "inspect", "v1.sealed")
	r.want(t, 0)
	for _, w := range []string{"(signature verified)", "serial:   1", "previous: none (first definition)", "web (1 public key, 3 values): at, password, port", "worker (1 public key, 0 values)", s.serverPub} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("inspect output lacks %q:\n%s", w, r.stdout)
		}
	}
	if strings.Contains(r.stdout, canary) {
		t.Error("inspect printed a secret value")
	}

	companion(t, s.dir, s.env, "seal", "--previous", "v1.sealed", "--armor", "-o", "v2.sealed", "secrets.toml").want(t, 0, "serial 2")
	v2 := s.read(t, "v2.sealed")
	if !bytes.HasPrefix(v2, []byte("-----BEGIN COFFER DEFINITION-----\n")) {
		t.Errorf("--armor wrote %q...", v2[:20])
	}
	r = companion(t, s.dir, s.env, "inspect", "v2.sealed")
	bin1, _ := coffer.ReadSealedFile(filepath.Join(s.dir, "v1.sealed"))
	h1 := coffer.SealedHash(bin1)
	if !strings.Contains(r.stdout, "serial:   2") || !strings.Contains(r.stdout, fmt.Sprintf("previous: %x", h1)) {
		t.Errorf("inspect of v2:\n%s", r.stdout)
	}
	companion(t, s.dir, s.env, "seal", "--force", "--serial", "7", "-o", "v7.sealed", "secrets.toml").want(t, 0, "warning: --force")
	r = companion(t, s.dir, s.env, "inspect", "v7.sealed")
	if !strings.Contains(r.stdout, "serial:   7") || !strings.Contains(r.stdout, "forced") {
		t.Errorf("inspect of forced:\n%s", r.stdout)
	}
	// The server side accepts the chain v1 -> v2 and refuses v1 again.
	serverKey, err := coffer.LoadKeyFile(filepath.Join(s.dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	companionKey, err := coffer.LoadAuthorKeyFile(filepath.Join(s.dir, "companion.key"))
	if err != nil {
		t.Fatal(err)
	}
	trusted := []coffer.AuthorPublicKey{companionKey.Public()}
	_, cur, err := coffer.OpenDefinition(serverKey, trusted, bin1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, cur, err = coffer.OpenDefinition(serverKey, trusted, v2, &cur); err != nil || cur.Serial != 2 {
		t.Fatalf("v2: %v", err)
	}
	if _, _, err = coffer.OpenDefinition(serverKey, trusted, bin1, &cur); !errors.Is(err, coffer.ErrRollback) {
		t.Errorf("v1 after v2: got %v, want ErrRollback", err)
	}
}

func TestSealErrors(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, s.env, "seal", "-o", "v1.sealed", "secrets.toml").want(t, 0)
	companion(t, s.dir, nil, "keygen", "--author", "-o", "other.key").want(t, 0)
	companion(t, s.dir, nil, "keygen", "-o", "other-server.key").want(t, 0)
	other := sealingLine(t, companion(t, s.dir, nil, "pubkey", "--sealing", "other-server.key").stdout)
	authorPub := strings.TrimSpace(companion(t, s.dir, nil, "pubkey", "companion.key").stdout)
	serverSecret := secretLine(t, s.read(t, "server.key"))
	authorSecret := secretLine(t, s.read(t, "companion.key"))
	typo := []byte(s.server)
	typo[500] = map[bool]byte{true: 'b', false: 'a'}[typo[500] == 'a']
	tests := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"invalid toml", s.env, []string{"seal", "-o", "x", s.write(t, "bad.toml", "[clients]\nweb = [\""+canary+"\"]\n")}, []string{"line 2", "hint:"}},
		{"array value", s.env, []string{"seal", "-o", "x", s.write(t, "arr.toml", s.toml+"list = [\""+canary+"\"]\n")}, []string{"arrays", "line 8"}},
		{"server key typo", []string{"COFFER_KEY=companion.key", "COFFER_SERVER_KEY=" + string(typo)}, []string{"seal", "-o", "x", "secrets.toml"}, []string{"--server"}},
		{"author key as server", []string{"COFFER_KEY=companion.key", "COFFER_SERVER_KEY=" + authorPub}, []string{"seal", "-o", "x", "secrets.toml"}, []string{"this is an author's signing public key", "want a server's sealing key"}},
		{"short server key as server", []string{"COFFER_KEY=companion.key", "COFFER_SERVER_KEY=" + s.serverPub}, []string{"seal", "-o", "x", "secrets.toml"}, []string{"this is an X25519 public key", "pubkey --sealing"}},
		{"server secret key as server", []string{"COFFER_KEY=companion.key"}, []string{"seal", "--server-key", serverSecret, "-o", "x", "secrets.toml"}, []string{"secret key was given", "not printed"}},
		{"author secret key as server", []string{"COFFER_KEY=companion.key", "COFFER_SERVER_KEY=" + authorSecret}, []string{"seal", "-o", "x", "secrets.toml"}, []string{"secret key was given", "not printed"}},
		{"X25519 key file as author key", []string{"COFFER_KEY=server.key", "COFFER_SERVER_KEY=" + s.server}, []string{"seal", "-o", "x", "secrets.toml"}, []string{"this is an X25519 key file", "keygen --author"}},
		{"missing key file", []string{"COFFER_KEY=nope.key", "COFFER_SERVER_KEY=" + s.server}, []string{"seal", "-o", "x", "secrets.toml"}, []string{"nope.key"}},
		{"previous sealed by another key", []string{"COFFER_KEY=other.key", "COFFER_SERVER_KEY=" + s.server}, []string{"seal", "--previous", "v1.sealed", "-o", "x", "secrets.toml"}, []string{"another author key", "--serial"}},
		{"previous for another server", []string{"COFFER_KEY=companion.key", "COFFER_SERVER_KEY=" + other}, []string{"seal", "--previous", "v1.sealed", "-o", "x", "secrets.toml"}, []string{"sealed for server"}},
		{"open with wrong server", []string{"COFFER_KEY=companion.key", "COFFER_SERVER_KEY=" + other}, []string{"open", "v1.sealed"}, []string{"sealed for server", "hint:"}},
		{"open by another author", []string{"COFFER_KEY=other.key"}, []string{"open", "v1.sealed"}, []string{"not sealed by this author key"}},
		{"open not sealed", s.env, []string{"open", "secrets.toml"}, []string{"not a sealed definition"}},
		{"open format 1", s.env, []string{"open", oldFormatFile(t, s)}, []string{"format 1", "reseal"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := companion(t, s.dir, tc.env, tc.args...)
			r.want(t, 1, tc.want...)
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			for _, secret := range []string{serverSecret, authorSecret} {
				if strings.Contains(strings.ToLower(r.stderr), secret[len(secret)-30:]) {
					t.Errorf("stderr prints a secret key: %s", r.stderr)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(s.dir, "x")); err == nil {
		t.Error("a failed seal wrote its output")
	}
	// Another author may extend a chain it cannot open, naming the serial.
	r := companion(t, s.dir, []string{"COFFER_KEY=other.key", "COFFER_SERVER_KEY=" + s.server}, "seal", "--previous", "v1.sealed", "--serial", "2", "-o", "v2.sealed", "secrets.toml")
	r.want(t, 0, "serial 2")
	companion(t, s.dir, s.env, "seal", "--force", "--serial", "18446744073709551615", "-o", "x", "secrets.toml").want(t, 2, "not below")
}

// secretLine returns the key line of a secret key file.
func secretLine(t *testing.T, data []byte) string {
	t.Helper()
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "coffer") {
			return l
		}
	}
	t.Fatal("no key line")
	return ""
}

// oldFormatFile copies a format 1 file, sealed by the companion of
// before signatures, into the setup's directory.
func oldFormatFile(t *testing.T, s *setup) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "coffer", "testdata", "sealed-v1.armored"))
	if err != nil {
		t.Fatal(err)
	}
	return s.write(t, "old.sealed", string(data))
}

func TestCheck(t *testing.T) {
	s := newSetup(t)
	r := companion(t, s.dir, nil, "check", "secrets.toml")
	r.want(t, 0)
	if !strings.Contains(r.stdout, "ok: 2 clients, 2 public keys, 3 values") {
		t.Errorf("check printed %q", r.stdout)
	}
	web := strings.Split(s.toml, "\"")[1]
	for name, src := range map[string]string{
		"duplicate key":  fmt.Sprintf("[clients]\na = %q\nb = %q\n", web, web),
		"unknown client": s.toml + "[nobody]\nx = \"" + canary + "\"\n",
		"bad key":        "[clients]\na = \"cofferpk1" + canary + "\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			companion(t, s.dir, nil, "check", s.write(t, "c.toml", src)).want(t, 1, "line")
		})
	}
	companion(t, s.dir, nil, "check", "examples-do-not-exist.toml").want(t, 1)
}

// giveUp starts an editor script that, shown an error block, exits
// without saving.
const giveUp = `grep -q '^# coffer-companion:' "$1" && exit 0
`

// writeEditor writes a shell script to use as $EDITOR.
func writeEditor(t *testing.T, s *setup, body string) string {
	t.Helper()
	p := filepath.Join(s.dir, "editor.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// tmpEmpty checks no plaintext is left in the test's TMPDIR, at any depth.
func tmpEmpty(t *testing.T, s *setup) {
	t.Helper()
	dirEmpty(t, filepath.Join(s.dir, "tmp"))
}

// dirEmpty checks that nothing is left in root, at any depth.
func dirEmpty(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walking %s: %v", root, err)
		} else if path != root {
			t.Errorf("left behind in %s: %s", root, path)
		}
		return nil
	})
}

func TestEdit(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, s.env, "seal", "-o", "v.sealed", "secrets.toml").want(t, 0)
	orig := s.read(t, "v.sealed")

	t.Run("success", func(t *testing.T) {
		// The editor checks its file is private, then appends a value.
		ed := writeEditor(t, s, `[ "$(stat -c %a "$1")" = 600 ] || exit 3
[ "$(stat -c %a "$(dirname "$1")")" = 700 ] || exit 4
echo 'added = "new"' >> "$1"`)
		companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "v.sealed").want(t, 0, "serial 2")
		tmpEmpty(t, s)
		r := companion(t, s.dir, s.env, "open", "v.sealed")
		if r.stdout != s.toml+"added = \"new\"\n" {
			t.Errorf("after edit open printed %q", r.stdout)
		}
		r = companion(t, s.dir, s.env, "inspect", "v.sealed")
		h := coffer.SealedHash(orig)
		if !strings.Contains(r.stdout, "serial:   2") || !strings.Contains(r.stdout, fmt.Sprintf("previous: %x", h)) {
			t.Errorf("inspect after edit:\n%s", r.stdout)
		}
		if fi, _ := os.Stat(filepath.Join(s.dir, "v.sealed")); fi.Mode().Perm() != 0o644 {
			t.Errorf("mode %04o after edit", fi.Mode().Perm())
		}
	})
	before := s.read(t, "v.sealed")
	tests := []struct {
		name, editor string
		code         int
		want         string
	}{
		// A mistake reopens the editor, which gives up by saving unchanged.
		{"invalid toml", giveUp + `echo 'broken = [' >> "$1"`, 1, "discarded"},
		{"array value", giveUp + `echo 'x = ["` + canary + `"]' >> "$1"`, 1, "arrays"},
		{"editor fails", `exit 7`, 1, "editor"},
		{"editor killed", `kill -KILL $$`, 1, "editor"},
		{"no change", `true`, 0, "no changes"},
		{"sigterm to companion", `kill -TERM $PPID; exec sleep 5`, 1, "interrupted"},
		{"sighup to companion", `kill -HUP $PPID; exec sleep 5`, 1, "interrupted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ed := writeEditor(t, s, tc.editor)
			companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "v.sealed").want(t, tc.code, tc.want)
			tmpEmpty(t, s)
			if !bytes.Equal(s.read(t, "v.sealed"), before) {
				t.Error("the sealed file changed")
			}
		})
	}
	t.Run("armored stays armored", func(t *testing.T) {
		companion(t, s.dir, s.env, "seal", "--armor", "-o", "a.sealed", "secrets.toml").want(t, 0)
		ed := writeEditor(t, s, `echo 'y = 1' >> "$1"`)
		companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "a.sealed").want(t, 0)
		if !bytes.HasPrefix(s.read(t, "a.sealed"), []byte("-----BEGIN")) {
			t.Error("edit of an armored file wrote binary")
		}
		tmpEmpty(t, s)
	})
	t.Run("file changed during edit", func(t *testing.T) {
		ed := writeEditor(t, s, `echo 'z = 1' >> "$1"; cp `+filepath.Join(s.dir, "a.sealed")+` `+filepath.Join(s.dir, "v.sealed"))
		companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "v.sealed").want(t, 1, "changed while you were editing")
		tmpEmpty(t, s)
	})
}

// TestEditAbortWaitsForEditor sends SIGTERM or SIGHUP to the companion
// while the editor runs. The editor saves its buffer on SIGTERM, as nano
// writes NAME.save, and exits 0 after adding a valid line: the companion
// must wait for it, then remove the directory with the save in it, and
// seal nothing. An editor that ignores SIGTERM is killed.
func TestEditAbortWaitsForEditor(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, s.env, "seal", "-o", "v.sealed", "secrets.toml").want(t, 0)
	before := s.read(t, "v.sealed")
	// Each editor writes its pid to $FIFO once it is ready for the signal.
	// This one reports through $RESULT whether its save on SIGTERM found
	// the directory still there.
	saves := `trap 'kill $pid; echo "x = 1" >> "$1"
if cp "$1" "$1.save"; then echo saved > "$RESULT"; else echo "save failed" > "$RESULT"; fi
exit 0' TERM
sleep 1000 </dev/null >/dev/null 2>&1 &
pid=$!
echo $$ > "$FIFO"
wait $pid`
	ignores := `trap '' TERM
echo $$ > "$FIFO"
exec sleep 1000 </dev/null >/dev/null 2>&1`
	tests := []struct {
		name, editor string
		sig          syscall.Signal
		result       string // what the editor wrote to $RESULT
	}{
		{"sigterm, editor saves", saves, syscall.SIGTERM, "saved\n"},
		{"sighup, editor saves", saves, syscall.SIGHUP, "saved\n"},
		{"sigterm, editor ignores it", ignores, syscall.SIGTERM, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(s.dir, fmt.Sprintf("started%d", i))
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			resultFile := filepath.Join(s.dir, fmt.Sprintf("result%d", i))
			cmd := exec.Command(binary, "edit", "v.sealed")
			cmd.Dir = s.dir
			cmd.Env = append(baseEnv(s.dir), s.env...)
			cmd.Env = append(cmd.Env, "EDITOR="+writeEditor(t, s, tc.editor), "FIFO="+fifo, "RESULT="+resultFile)
			// A file, not a pipe, so a leftover editor cannot hold Wait.
			stderr, err := os.CreateTemp(t.TempDir(), "stderr")
			if err != nil {
				t.Fatal(err)
			}
			defer stderr.Close()
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			started := make(chan []byte, 1)
			go func() {
				b, _ := os.ReadFile(fifo) // returns once the editor wrote and closed it
				started <- b
			}()
			var editor int
			select {
			case b := <-started:
				if editor, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
					t.Fatalf("editor wrote %q to the FIFO", b)
				}
			case err := <-exited:
				if f, ferr := os.OpenFile(fifo, os.O_RDWR, 0); ferr == nil {
					f.Close() // lets the reader go
				}
				msg, _ := os.ReadFile(stderr.Name())
				t.Fatalf("coffer-companion exited before the editor started: %v\n%s", err, msg)
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			<-exited
			if syscall.Kill(editor, 0) == nil {
				syscall.Kill(editor, syscall.SIGKILL)
				t.Error("the editor was still running when coffer-companion exited")
			}
			msg, _ := os.ReadFile(stderr.Name())
			if got := cmd.ProcessState.ExitCode(); got != 1 || !bytes.Contains(msg, []byte("interrupted")) {
				t.Errorf("got exit %d, stderr %q; want exit 1, interrupted", got, msg)
			}
			if bytes.Contains(msg, []byte(canary)) {
				t.Errorf("stderr contains a secret value:\n%s", msg)
			}
			if got, _ := os.ReadFile(resultFile); string(got) != tc.result {
				t.Errorf("editor reported %q, want %q", got, tc.result)
			}
			tmpEmpty(t, s)
			if !bytes.Equal(s.read(t, "v.sealed"), before) {
				t.Error("the sealed file changed")
			}
		})
	}
}

// TestEditTempParent checks where the plaintext directory is made:
// $TMPDIR if set, else $XDG_RUNTIME_DIR if it is a directory, else
// /dev/shm if writable, else /tmp.
func TestEditTempParent(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, s.env, "seal", "-o", "v.sealed", "secrets.toml").want(t, 0)
	run := filepath.Join(s.dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	notDir := s.write(t, "not-a-dir", "")
	fallback := "/tmp"
	if d, err := os.MkdirTemp("/dev/shm", "coffer-test-"); err == nil {
		os.Remove(d)
		fallback = "/dev/shm"
	}
	// The editor fails unless its file's grandparent is $WANT.
	ed := writeEditor(t, s, `[ "$(dirname "$(dirname "$1")")" = "$WANT" ] || { echo "parent $(dirname "$(dirname "$1")")" >&2; exit 9; }`)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir, "EDITOR=" + ed}
	env = append(env, s.env...)
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"TMPDIR first", []string{"TMPDIR=" + filepath.Join(s.dir, "tmp"), "XDG_RUNTIME_DIR=" + run}, filepath.Join(s.dir, "tmp")},
		{"XDG_RUNTIME_DIR", []string{"XDG_RUNTIME_DIR=" + run}, run},
		{"XDG_RUNTIME_DIR not a directory", []string{"XDG_RUNTIME_DIR=" + notDir}, fallback},
		{"XDG_RUNTIME_DIR relative", []string{"XDG_RUNTIME_DIR=run"}, fallback},
		{"neither set", nil, fallback},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := append(append(append([]string{}, env...), tc.env...), "WANT="+tc.want)
			companionEnv(t, s.dir, e, "edit", "v.sealed").want(t, 0, "no changes")
			dirEmpty(t, run)
			tmpEmpty(t, s)
		})
	}
}

// typo changes the character at i of a key to another one, always: a
// fixed replacement would leave the key alone when it already held it.
func typo(key string, i int) string {
	c := byte('x')
	if key[i] == c {
		c = 'y'
	}
	return key[:i] + string(c) + key[i+1:]
}

// TestKeygenUpgrade: keygen --upgrade adds the sealing seed to a key file
// written without one, prints the new sealing key (the one pubkey
// --sealing then prints), never prints secrets, and refuses a second
// upgrade leaving the file as it is.
func TestKeygenUpgrade(t *testing.T) {
	dir := t.TempDir()
	companion(t, dir, nil, "keygen", "-o", "k").want(t, 0)
	path := filepath.Join(dir, "k")
	data, _ := os.ReadFile(path)
	var kept []string
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(l, "cofferkemsk1") {
			kept = append(kept, l)
		}
	}
	if len(kept) == strings.Count(string(data), "\n")+1 {
		t.Fatal("keygen wrote no cofferkemsk1 line")
	}
	os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o600)
	companion(t, dir, nil, "pubkey", "--sealing", "k").want(t, 1, "keygen --upgrade")
	r := companion(t, dir, nil, "keygen", "--upgrade", "k")
	r.want(t, 0, "added an ML-KEM-768 sealing seed")
	if !strings.HasPrefix(r.stdout, "cofferseal1") || strings.Contains(r.stdout+r.stderr, "coffersk1") || strings.Contains(r.stdout+r.stderr, "cofferkemsk1") {
		t.Fatalf("upgrade printed %q / %q", r.stdout, r.stderr)
	}
	if p := companion(t, dir, nil, "pubkey", "--sealing", "k"); p.code != 0 || !strings.Contains(p.stdout, "\n"+strings.TrimSpace(r.stdout)+"\n") {
		t.Fatalf("pubkey --sealing after the upgrade: %d %q", p.code, p.stderr)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o after upgrade", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	companion(t, dir, nil, "keygen", "--upgrade", "k").want(t, 1, "already has")
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("a refused upgrade changed the key file")
	}
}
