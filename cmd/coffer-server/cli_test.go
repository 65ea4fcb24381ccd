package main

import (
	"encoding/hex"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUsageAndExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
		inStdout string
	}{
		{"help", []string{"-h"}, 0, "Usage: coffer-server [command]", ""},
		{"serve help", []string{"serve", "-h"}, 0, "--shutdown-timeout", ""},
		{"check help", []string{"check", "-h"}, 0, "Exit status: 0 ready", ""},
		{"audit help", []string{"audit", "-h"}, 0, "--since WHEN", ""},
		{"version flag", []string{"-version"}, 0, "", "coffer-server "},
		{"version command", []string{"version"}, 0, "", "coffer-server "},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`, ""},
		{"unknown flag", []string{"serve", "--nope"}, 2, "coffer-server: error: unknown option --nope\nrun 'coffer-server serve -h' for usage\n", ""},
		{"stray argument", []string{"inspect", "extra"}, 2, `unexpected argument "extra"`, ""},
		{"keygen without -o", []string{"keygen"}, 2, "-o FILE is required", ""},
		{"bad since", []string{"audit", "--since", "yesterday"}, 2, "neither a duration", ""},
		{"missing config", []string{"check", "--config", "/nonexistent/server.toml"}, 1, "", "FAIL  config"},
		{"bad duration flag", []string{"serve", "--config", "/dev/null", "--hello-timeout", "soon"}, 2,
			"coffer-server: error: --hello-timeout", ""},
		{"duration without unit", []string{"serve", "--config", "/dev/null", "--hello-timeout", "10"}, 2,
			"hint: a duration needs a unit: --hello-timeout 10s (or ms, m, h)\nrun 'coffer-server serve -h' for usage\n", ""},
		{"duration flag of reload", []string{"reload", "--timeout", "10"}, 2,
			"coffer-server: error: --timeout \"10\": not a duration\nhint: a duration needs a unit: --timeout 10s (or ms, m, h)\nrun 'coffer-server reload -h' for usage\n", ""},
		{"bad trusted key", []string{"serve", "--config", "/dev/null", "--trusted", "cofferpk1nope", "--key", "/nonexistent"}, 2,
			"coffer-server: error: config: server config: trusted key 1 is an X25519 key", ""},
		{"stray argument of status", []string{"status", "x"}, 2, "coffer-server: error: unexpected argument \"x\"\nrun 'coffer-server status -h' for usage\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := (*fixture)(nil).run(t, nil, tt.args...)
			if code != tt.code {
				t.Errorf("got exit %d, want %d; stderr:\n%s", code, tt.code, errOut)
			}
			if tt.code == 2 && strings.Contains(errOut, "Configuration (flag >") {
				t.Errorf("a usage error printed the whole usage:\n%s", errOut)
			}
			if tt.code == 2 && strings.Count(errOut, "coffer-server: error:") > 1 {
				t.Errorf("the error printed more than once:\n%s", errOut)
			}
			if !strings.Contains(errOut, tt.inStderr) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.inStderr)
			}
			if !strings.Contains(out, tt.inStdout) || (tt.inStdout == "" && out != "") {
				t.Errorf("stdout %q, want it to contain %q", out, tt.inStdout)
			}
		})
	}
}

// TestPrecedence: flag > environment > file > default.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.toml")
	if err := os.WriteFile(path, []byte("listen = \":1\"\ndata_dir = \"/file\"\nkey_file = \"/file.key\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"COFFER_DATA_DIR": "/env", "COFFER_KEY_FILE": "/env.key", "COFFER_TRUSTED": "cofferauthorpk1a, cofferauthorpk1b"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	build := configFlags(fs)
	if err := fs.Parse([]string{"--config", path, "--key", "/flag.key", "--trusted", "cofferauthorpk1c", "--trusted", "cofferauthorpk1d"}); err != nil {
		t.Fatal(err)
	}
	c, err := build(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":1" || c.DataDir != "/env" || c.KeyFile != "/flag.key" || c.Definition != "/etc/coffer/secrets.sealed" {
		t.Errorf("got listen %q data %q key %q definition %q, want :1 (file), /env (env), /flag.key (flag), default",
			c.Listen, c.DataDir, c.KeyFile, c.Definition)
	}
	if got := strings.Join(c.Trusted, ","); got != "cofferauthorpk1c,cofferauthorpk1d" {
		t.Errorf("got trusted %q, want the two flags'", got)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := "@coffer-test-" + filepath.Base(t.TempDir())
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Skipf("no abstract unix sockets here: %v", err)
	}
	defer l.Close()
	n, err := newNotifier(func(string) string { return name })
	if err != nil {
		t.Fatal(err)
	}
	if err := n.notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	l.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, err := l.Read(buf)
	if err != nil || string(buf[:k]) != "READY=1" {
		t.Errorf("got %q, %v, want READY=1", buf[:k], err)
	}
	if _, err := newNotifier(func(string) string { return "relative/path" }); err == nil {
		t.Error("a relative NOTIFY_SOCKET was accepted")
	}
}

// TestAdminCommands: keygen, check before and while serving, inspect and
// audit refused while the server holds the store, reload by pid file.
func TestAdminCommands(t *testing.T) {
	f := newFixture(t, "web", "db")
	kf := filepath.Join(f.Dir, "new.key")
	out, errOut, code := f.run(t, nil, "keygen", "-o", kf)
	if code != 0 || !strings.HasPrefix(out, "cofferpk1") {
		t.Fatalf("keygen: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if fi, err := os.Stat(kf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v, want 0600", fi.Mode(), err)
	}
	if _, _, code := f.run(t, nil, "keygen", "-o", kf); code != 1 {
		t.Errorf("keygen over an existing file: exit %d, want 1", code)
	}

	// Nothing sealed yet and no store: not ready.
	out, _, code = f.run(t, nil, append([]string{"check"}, f.Args()...)...)
	if code != 1 || !strings.Contains(out, "FAIL  sealed definition") || !strings.Contains(out, "not ready to serve") {
		t.Errorf("check without a definition: exit %d, got\n%s", code, out)
	}
	f.next(t, "one", 0)
	out, _, code = f.run(t, nil, append([]string{"check"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, "it would be loaded") || !strings.Contains(out, "ready to serve") {
		t.Errorf("check with a definition: exit %d, got\n%s", code, out)
	}
	// A key file readable by others is refused.
	os.Chmod(f.KeyFile, 0o644)
	out, _, code = f.run(t, nil, append([]string{"check"}, f.Args()...)...)
	if code != 1 || !strings.Contains(out, "FAIL  key file") {
		t.Errorf("check with a 0644 key: exit %d, got\n%s", code, out)
	}
	os.Chmod(f.KeyFile, 0o600)

	p := f.start(t)
	f.next(t, "two", 0)
	delete(f.Clients, "db")
	out, _, code = f.run(t, nil, append([]string{"check"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, "in use by the running server") || !strings.Contains(out, "serial 2") {
		t.Errorf("check while serving: exit %d, got\n%s", code, out)
	}
	// inspect and audit ask the running server through its admin socket.
	for _, cmd := range []string{"inspect", "audit"} {
		_, errOut, code := f.run(t, nil, append([]string{cmd}, f.Args()...)...)
		if code != 0 {
			t.Errorf("%s while serving: exit %d, stderr:\n%s", cmd, code, errOut)
		}
	}
	out, errOut, code = f.run(t, nil, append([]string{"reload"}, f.Args()...)...)
	if code != 0 || out != "loaded: serving serial 2 ("+hex.EncodeToString(f.Last[:])+")\n" {
		t.Fatalf("reload: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	p.stop()
	if _, errOut, code := f.run(t, nil, append([]string{"reload"}, f.Args()...)...); code != 1 || !strings.Contains(errOut, "no coffer-server is running") {
		t.Errorf("reload without a server: exit %d, stderr %s", code, errOut)
	}

	// A newer definition that drops a client and changes values: check
	// prints the change without values.
	f.next(t, "three", 0)
	out, _, code = f.run(t, nil, append([]string{"check"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, `- client "db"`) || !strings.Contains(out, `changed "a"`) {
		t.Errorf("check of a change: exit %d, got\n%s", code, out)
	}
	// An older file is refused by check too.
	f.Write(t, f.Seal(t, f.Author, 1, [32]byte{}, f.defTOML("old", 0)))
	out, _, code = f.run(t, nil, append([]string{"check"}, f.Args()...)...)
	if code != 1 || !strings.Contains(out, "is not above the current serial 2") {
		t.Errorf("check of an older file: exit %d, got\n%s", code, out)
	}
	out, _, code = f.run(t, nil, append([]string{"inspect", "--json"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, `"serial": 2`) {
		t.Errorf("inspect --json: exit %d, got\n%s", code, out)
	}
}

// TestSystemdUnits runs systemd-analyze verify on the example units, with
// ExecStart pointing at the binary just built.
func TestSystemdUnits(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	for _, name := range []string{"coffer-server.service", "coffer-server.socket"} {
		data, err := os.ReadFile(filepath.Join("../../examples/systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		data = []byte(strings.ReplaceAll(string(data), "/usr/local/bin/coffer-server", serverBin))
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(sa, "verify", "--man=no", "coffer-server.socket", "coffer-server.service")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestCompanionSealed seals with the real coffer-companion and serves
// the result.
func TestCompanionSealed(t *testing.T) {
	f := newFixture(t, "web")
	authorKey := filepath.Join(f.Dir, "companion.key")
	out, err := exec.Command(companionBin, "keygen", "--author", "-o", authorKey).Output()
	if err != nil {
		t.Fatalf("coffer-companion keygen: %v", err)
	}
	author := strings.TrimSpace(string(out))
	src := filepath.Join(f.Dir, "secrets.toml")
	if err := os.WriteFile(src, f.defTOML("one", 0), 0o600); err != nil {
		t.Fatal(err)
	}
	sealing, err := f.Server.SealingKey()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(companionBin, "seal", "--key", authorKey, "--server-key", sealing.String(), "-o", f.DefPath, src)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("coffer-companion seal: %v\n%s", err, out)
	}
	args := append(f.Args(), "--trusted", author, "--listen", "127.0.0.1:0")
	p := f.launch(t, nil, nil, args...)
	p.WaitReady()
	line, _ := p.Logs.Wait(t, 0, `msg=listening .*addr=`)
	p.Addr = strings.TrimPrefix(line[strings.Index(line, "addr="):], "addr=")
	r, err := p.fetch("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := wantShard(r, "one"); err != nil {
		t.Error(err)
	}
	p.Signal(syscall.SIGINT)
	<-p.Done()
}
