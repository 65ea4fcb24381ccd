package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
)

var (
	serverBinOnce sync.Once
	serverBin     string
	serverBinErr  error
)

// buildServer builds the real coffer-server once, on first use, so the
// tests that do not need it do not wait for Badger to compile.
func buildServer(t *testing.T) string {
	t.Helper()
	serverBinOnce.Do(func() {
		serverBin, serverBinErr = e2e.Build(filepath.Dir(clientBin), "coffer-server", "../coffer-server")
	})
	if serverBinErr != nil {
		t.Fatal(serverBinErr)
	}
	return serverBin
}

const realDefinition = `
[clients]
app = "CLIENT"

[app]
password = "` + canary + ` it's \"q\" $HOME"
port = 5432
ratio = 0.25
whole = 2.0
debug = false
cutoff = 2026-12-31
nightly = 02:30:00
local = 2026-01-02T03:04:05
not_after = 2027-01-31T23:59:59Z
pem = """
-----BEGIN-----
abc
-----END-----
"""

[app.db]
password = "db-` + canary + `"
`

// TestRealServer runs the client against the real coffer-server binary
// serving a sealed definition: the TOML values must come back as the
// same kinds and values.
func TestRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer-server")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	client, _ := coffer.GenerateKey(rand.Reader)
	server, _ := coffer.GenerateKey(rand.Reader)
	author, _ := coffer.GenerateAuthorKey(rand.Reader)
	clientKey, serverKey := filepath.Join(dir, "client.key"), filepath.Join(dir, "server.key")
	for path, k := range map[string]*coffer.PrivateKey{clientKey: client, serverKey: server} {
		if err := coffer.WriteKeyFile(path, k); err != nil {
			t.Fatal(err)
		}
	}
	def := []byte(strings.Replace(realDefinition, "CLIENT", client.Public().String(), 1))
	sealing, err := server.SealingKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := coffer.SealDefinition(author, sealing, &coffer.Envelope{Serial: 1, Created: time.Now(), TOML: def}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	defPath := filepath.Join(dir, "secrets.sealed")
	if err := os.WriteFile(defPath, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startRealServer(t, bin, "serve", "--key", serverKey, "--data-dir", filepath.Join(dir, "data"),
		"--definition", defPath, "--trusted", author.Public().String(), "--listen", "127.0.0.1:0")

	var want map[string]any // the definition's [app] table, flattened
	if _, err := toml.Decode(string(def), &want); err != nil {
		t.Fatal(err)
	}
	flat := want["app"].(map[string]any)
	flat["db.password"] = flat["db"].(map[string]any)["password"]
	delete(flat, "db")

	fx := &fixture{t: t, dir: dir, client: client, keyFile: clientKey, server: server, config: filepath.Join(dir, "empty.toml")}
	os.WriteFile(fx.config, nil, 0o644)
	t.Run("toml", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get", "--format", "toml"}, fx.base("--server", addr)...)...)
		r.want(t, exitOK)
		var got map[string]any
		if _, err := toml.Decode(string(r.stdout), &got); err != nil {
			t.Fatalf("toml: %v\n%s", err, r.stdout)
		}
		if len(got) != len(flat) {
			t.Errorf("got %d values, want %d", len(got), len(flat))
		}
		for k, w := range flat {
			g := got[k]
			if gt, ok := g.(time.Time); ok {
				wt := w.(time.Time)
				if !gt.Equal(wt) || gt.Location().String() != wt.Location().String() {
					t.Errorf("%s: got %v, want %v", k, gt, wt)
				}
			} else if g != w {
				t.Errorf("%s: got %#v, want %#v", k, g, w)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get", "--format", "json", "port", "whole", "nightly"}, fx.base("--server", addr)...)...)
		r.want(t, exitOK)
		var got map[string]any
		if err := json.Unmarshal(r.stdout, &got); err != nil {
			t.Fatal(err)
		}
		if got["port"] != 5432.0 || got["whole"] != 2.0 || got["nightly"] != "02:30:00" || !bytes.Contains(r.stdout, []byte("2.0")) {
			t.Errorf("got %s", r.stdout)
		}
	})
	t.Run("exec", func(t *testing.T) {
		r := fx.run(nil, append(append([]string{"exec", "--pristine"}, fx.base("--server", addr)...),
			"--", "sh", "-c", `printf '%s|%s' "$DB_PASSWORD" "$PEM"`)...)
		r.want(t, exitOK)
		if want := "db-" + canary + "|" + flat["pem"].(string); string(r.stdout) != want {
			t.Errorf("got %q, want %q", r.stdout, want)
		}
	})
}

// startRealServer starts coffer-server and returns its address, read from
// its "listening" log line. The server is stopped with SIGTERM at cleanup.
func startRealServer(t *testing.T, bin string, args ...string) string {
	t.Helper()
	p := e2e.Launch(t, append([]string{bin}, args...), e2e.Options{Env: environ()})
	t.Cleanup(func() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		<-p.Done()
	})
	line, _, ok := p.Logs.WaitFor(0, `msg=listening addr=[0-9.:]+`, 30*time.Second)
	if !ok {
		t.Fatalf("coffer-server did not start:\n%s", p.Logs.All())
	}
	return listeningRE.FindStringSubmatch(line)[1]
}

var listeningRE = regexp.MustCompile(`msg=listening addr=([0-9.:]+)`)

// TestRealServerNamedDefinition (issue 19): against the real coffer-server
// serving the client from a definition named team-a, the client's floor
// is the serial it remembers for team-a: a higher serial remembered for
// the server's default definition does not refuse team-a's serial 5, the
// state file gains a `KEY 5 team-a` line, and a team-a serial remembered
// above 5 refuses the server as rolled back.
func TestRealServerNamedDefinition(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer-server")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	client, _ := coffer.GenerateKey(rand.Reader)
	server, _ := coffer.GenerateKey(rand.Reader)
	author, _ := coffer.GenerateAuthorKey(rand.Reader)
	clientKey, serverKey := filepath.Join(dir, "client.key"), filepath.Join(dir, "server.key")
	for path, k := range map[string]*coffer.PrivateKey{clientKey: client, serverKey: server} {
		if err := coffer.WriteKeyFile(path, k); err != nil {
			t.Fatal(err)
		}
	}
	def := []byte(strings.Replace(realDefinition, "CLIENT", client.Public().String(), 1))
	sealing, err := server.SealingKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := coffer.SealDefinition(author, sealing, &coffer.Envelope{Serial: 5, Force: true, Created: time.Now(), TOML: def, Name: "team-a"}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	defPath, conf := filepath.Join(dir, "team-a.sealed"), filepath.Join(dir, "server.toml")
	if err := os.WriteFile(defPath, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	table := fmt.Sprintf("[[definitions]]\nname = \"team-a\"\npath = %q\ntrusted = [%q]\n", defPath, author.Public().String())
	if err := os.WriteFile(conf, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startRealServer(t, bin, "serve", "--key", serverKey, "--data-dir", filepath.Join(dir, "data"),
		"--config", conf, "--listen", "127.0.0.1:0")

	fx := &fixture{t: t, dir: dir, client: client, keyFile: clientKey, server: server, config: filepath.Join(dir, "empty.toml")}
	os.WriteFile(fx.config, nil, 0o644)
	state := filepath.Join(dir, "state")
	pk := server.Public().String()
	os.WriteFile(state, []byte(pk+" 9\n"), 0o600) // the default definition's serial
	get := func() result {
		return fx.run(nil, append([]string{"get", "--format", "json", "port"}, fx.base("--server", addr, "--state", state)...)...)
	}
	get().want(t, exitOK)
	data, err := os.ReadFile(state)
	if err != nil || !bytes.Contains(data, []byte(pk+" 9\n")) || !bytes.Contains(data, []byte(pk+" 5 team-a\n")) {
		t.Fatalf("state file after a team-a fetch: %v\n%s", err, data)
	}
	os.WriteFile(state, []byte(pk+" 6 team-a\n"), 0o600)
	r := get()
	r.want(t, exitFailure)
	if len(r.stdout) != 0 || !bytes.Contains(r.stderr, []byte("older")) {
		t.Errorf("a team-a serial below the remembered one: stdout %q, stderr:\n%s", r.stdout, r.stderr)
	}
}
