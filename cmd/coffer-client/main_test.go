package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// canary is planted in every test shard; it must never reach stderr.
const canary = "canary-5b1e-never-on-stderr"

var clientBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coffer-client-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	clientBin = filepath.Join(dir, "coffer-client")
	if out, err := exec.Command("go", "build", "-o", clientBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building coffer-client: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// memShards serves shards from memory, as a store would.
type memShards struct {
	mu sync.Mutex
	m  map[coffer.PublicKey]frame.Shard
}

func (ms *memShards) Shard(client coffer.PublicKey, names []string) ([]byte, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	s := ms.m[client]
	if len(names) > 0 {
		sub := frame.Shard{}
		for _, n := range names {
			if v, ok := s[n]; ok {
				sub[n] = v
			}
		}
		s = sub
	}
	return frame.EncodeShard(s)
}

// fixture is one client key, one server key and the files around them.
type fixture struct {
	t       *testing.T
	dir     string
	client  *coffer.PrivateKey
	keyFile string
	server  *coffer.PrivateKey
	config  string // an empty config file, so /etc/coffer is never read
	shard   frame.Shard
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{t: t, dir: t.TempDir(), shard: testShard()}
	fx.shard["canary"] = str(canary)
	var err error
	if fx.client, err = coffer.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if fx.server, err = coffer.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	fx.keyFile = filepath.Join(fx.dir, "client.key")
	if err := coffer.WriteKeyFile(fx.keyFile, fx.client); err != nil {
		t.Fatal(err)
	}
	fx.config = filepath.Join(fx.dir, "client.toml")
	if err := os.WriteFile(fx.config, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return fx
}

// testServer is a coffer.Server on a loopback listener.
type testServer struct {
	srv  *coffer.Server
	addr string
	fx   *fixture
}

// serve starts a server with the fixture's key and shard at serial on l,
// or on a fresh 127.0.0.1:0 listener when l is nil.
func (fx *fixture) serve(l net.Listener, serial uint64) *testServer {
	fx.t.Helper()
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			fx.t.Fatal(err)
		}
	}
	ts := &testServer{fx: fx, addr: l.Addr().String(), srv: &coffer.Server{
		Key:         fx.server,
		ClientLimit: coffer.Limit{Rate: 1e6, Burst: 1e6},
	}}
	ts.swap(serial, map[coffer.PublicKey]frame.Shard{fx.client.Public(): fx.shard})
	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.srv.Serve(l)
	}()
	fx.t.Cleanup(func() {
		ts.srv.Close()
		<-done
	})
	return ts
}

func (ts *testServer) swap(serial uint64, shards map[coffer.PublicKey]frame.Shard) {
	clients := map[coffer.PublicKey]string{}
	for k := range shards {
		clients[k] = "client-" + k.Fingerprint()
	}
	ts.srv.Swap(&coffer.Snapshot{Version: coffer.Version{Serial: serial, Hash: [32]byte{byte(serial)}},
		Clients: clients, Shards: &memShards{m: shards}})
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// base returns the flags every run needs besides --server.
func (fx *fixture) base(args ...string) []string {
	return append([]string{"--config", fx.config, "--key", fx.keyFile, "--server-key", fx.server.Public().String()}, args...)
}

type result struct {
	stdout, stderr []byte
	code           int
}

// environ is the clean environment of every run.
func environ(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}, extra...)
}

// run runs coffer-client and checks that the canary never reaches stderr.
func (fx *fixture) run(env []string, args ...string) result {
	fx.t.Helper()
	return fx.runCmd(exec.Command(clientBin, args...), env)
}

// runUmask0 runs coffer-client under umask 000.
func (fx *fixture) runUmask0(args ...string) result {
	fx.t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", `umask 000; exec "$0" "$@"`, clientBin}, args...)...)
	return fx.runCmd(cmd, nil)
}

func (fx *fixture) runCmd(cmd *exec.Cmd, env []string) result {
	fx.t.Helper()
	cmd.Env = environ(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		fx.t.Fatalf("running coffer-client: %v", err)
	}
	fx.checkStderr(r.stderr)
	return r
}

func (fx *fixture) checkStderr(stderr []byte) {
	fx.t.Helper()
	for _, secret := range []string{canary, trickyText[:10]} {
		if bytes.Contains(stderr, []byte(secret)) {
			fx.t.Errorf("stderr contains a secret value:\n%s", stderr)
		}
	}
}

func (r result) want(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("got exit status %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
}

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

func TestUsageErrors(t *testing.T) {
	fx := newFixture(t)
	srv := closedAddr(t)
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"fetch"}},
		{"unknown flag", append([]string{"get", "--bogus"}, fx.base("--server", srv)...)},
		{"raw without name", append([]string{"get", "--format", "raw"}, fx.base("--server", srv)...)},
		{"raw with two names", append([]string{"get", "--format", "raw", "a", "b"}, fx.base("--server", srv)...)},
		{"unknown format", append([]string{"get", "--format", "yaml"}, fx.base("--server", srv)...)},
		{"bad prefix", append([]string{"get", "--prefix", "1X"}, fx.base("--server", srv)...)},
		{"prefix with json", append([]string{"get", "--prefix", "X", "--format", "json"}, fx.base("--server", srv)...)},
		{"bad name", append([]string{"get", "a/b"}, fx.base("--server", srv)...)},
		{"world mode", append([]string{"get", "--out", fx.dir, "--mode", "0644"}, fx.base("--server", srv)...)},
		{"mode without out", append([]string{"get", "--mode", "0600"}, fx.base("--server", srv)...)},
		{"out dir missing", append([]string{"get", "--out", filepath.Join(fx.dir, "nope")}, fx.base("--server", srv)...)},
		{"no server", append([]string{"get"}, fx.base()...)},
		{"no server key", []string{"get", "--config", fx.config, "--key", fx.keyFile, "--server", srv}},
		{"bad server key", append([]string{"get", "--server", srv}, fx.base("--server-key", "cofferpk1nope")...)},
		{"missing config", append([]string{"get", "--server", srv}, fx.base("--config", filepath.Join(fx.dir, "nope.toml"))...)},
		{"missing key file", append([]string{"get", "--server", srv}, fx.base("--key", filepath.Join(fx.dir, "nope.key"))...)},
		{"exec without command", append([]string{"exec"}, fx.base("--server", srv)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fx.run(nil, tt.args...)
			r.want(t, exitUsage)
			if len(r.stdout) != 0 {
				t.Errorf("got stdout %q, want none", r.stdout)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{{"-h"}, {"get", "-h"}, {"exec", "-h"}, {"check", "-h"}} {
			r := fx.run(nil, args...)
			r.want(t, exitOK)
			if !bytes.Contains(r.stderr, []byte("Exit status")) {
				t.Errorf("%v: usage does not document the exit status:\n%s", args, r.stderr)
			}
		}
	})
	t.Run("readable key file", func(t *testing.T) {
		if err := os.Chmod(fx.keyFile, 0o640); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(fx.keyFile, 0o600)
		r := fx.run(nil, append([]string{"get"}, fx.base("--server", srv)...)...)
		r.want(t, exitUsage)
	})
}

func TestConfigSources(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	cfg := filepath.Join(fx.dir, "full.toml")
	text := fmt.Sprintf("servers = [%q]\nserver_key = %q\nkey_file = %q\n", ts.addr, fx.server.Public(), fx.keyFile)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("config file", func(t *testing.T) {
		fx.run(nil, "get", "--config", cfg, "--format", "raw", "port").want(t, exitOK)
	})
	t.Run("environment", func(t *testing.T) {
		fx.run([]string{"COFFER_SERVER=" + ts.addr, "COFFER_SERVER_KEY=" + fx.server.Public().String(),
			"COFFER_KEY=" + fx.keyFile, "COFFER_CONFIG=" + fx.config}, "get", "--format", "raw", "port").want(t, exitOK)
	})
	t.Run("flag over environment over file", func(t *testing.T) {
		r := fx.run([]string{"COFFER_SERVER=" + closedAddr(t)}, "get", "--config", cfg, "--server", ts.addr, "--format", "raw", "port")
		r.want(t, exitOK)
		fx.run([]string{"COFFER_SERVER=" + closedAddr(t)}, "get", "--config", cfg, "--format", "raw", "port").want(t, exitUnreachable)
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
	t.Run("replaces a symlink, not its target", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(fx.dir, "target")
		os.WriteFile(target, []byte("keep"), 0o644)
		os.Symlink(target, filepath.Join(dir, "port"))
		fx.runUmask0(append([]string{"get", "--out", dir, "port"}, fx.base("--server", ts.addr)...)...).want(t, exitOK)
		stat(t, filepath.Join(dir, "port"), 0o600)
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

func TestFailover(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	// The order is shuffled; enough runs put the closed port first.
	for i := range 6 {
		r := fx.run(nil, append([]string{"get", "--format", "raw", "port"},
			fx.base("--server", closedAddr(t)+","+ts.addr, "--server", closedAddr(t))...)...)
		r.want(t, exitOK)
		if string(r.stdout) != "-5432" {
			t.Errorf("run %d: got %q, want -5432", i, r.stdout)
		}
	}
}

// TestRetryLateServer starts the server only after the client has logged
// its first retry.
func TestRetryLateServer(t *testing.T) {
	fx := newFixture(t)
	addr := closedAddr(t)
	cmd := exec.Command(clientBin, append([]string{"get", "--format", "raw", "port"},
		fx.base("--server", addr, "--wait", "60s", "--timeout", "2s")...)...)
	cmd.Env = environ()
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	sc := bufio.NewScanner(errPipe)
	started := false
	for sc.Scan() {
		stderr.Write(sc.Bytes())
		stderr.WriteByte('\n')
		if !started && strings.HasPrefix(sc.Text(), "coffer-client: retry 1 ") {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				cmd.Process.Kill()
				t.Fatalf("listening on %s again: %v", addr, err)
			}
			fx.serve(l, 1)
			started = true
		}
	}
	err = cmd.Wait()
	fx.checkStderr(stderr.Bytes())
	if err != nil || !started {
		t.Fatalf("got %v (server started: %v), want success after a retry; stderr:\n%s", err, started, stderr.Bytes())
	}
	if stdout.String() != "-5432" {
		t.Errorf("got %q, want -5432", stdout.String())
	}
}

func TestDeadline(t *testing.T) {
	fx := newFixture(t)
	t.Run("refused", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get"}, fx.base("--server", closedAddr(t), "--wait", "700ms")...)...)
		r.want(t, exitUnreachable)
		if !bytes.Contains(r.stderr, []byte("coffer-client: retry 1 ")) || !bytes.Contains(r.stderr, []byte("no server answered within 700ms")) {
			t.Errorf("stderr lacks the retry or the final line:\n%s", r.stderr)
		}
	})
	t.Run("silent server", func(t *testing.T) {
		// The kernel accepts; nobody ever answers the Hello.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		r := fx.run(nil, append([]string{"get"}, fx.base("--server", l.Addr().String(), "--timeout", "300ms")...)...)
		r.want(t, exitUnreachable)
	})
	t.Run("no wait means one attempt", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get"}, fx.base("--server", closedAddr(t))...)...)
		r.want(t, exitUnreachable)
		if bytes.Contains(r.stderr, []byte("retry")) {
			t.Errorf("retried without --wait:\n%s", r.stderr)
		}
	})
}

func TestAuthFailures(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	other, _ := coffer.GenerateKey(rand.Reader)
	t.Run("wrong pinned key", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get", "--server", ts.addr, "--wait", "60s"},
			fx.base("--server-key", other.Public().String())...)...)
		r.want(t, exitAuth)
		if bytes.Contains(r.stderr, []byte("retry")) {
			t.Errorf("retried an authentication failure:\n%s", r.stderr)
		}
	})
	ts2 := fx.serve(nil, 1)
	ts2.swap(1, map[coffer.PublicKey]frame.Shard{other.Public(): {"x": str("y")}})
	t.Run("unknown client", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get"}, fx.base("--server", ts2.addr, "--wait", "60s")...)...)
		r.want(t, exitAuth)
		if !bytes.Contains(r.stderr, []byte(fx.client.Public().String())) || bytes.Contains(r.stderr, []byte("retry")) {
			t.Errorf("want one failure naming the client key, no retry:\n%s", r.stderr)
		}
	})
	t.Run("no failover after an unknown client", func(t *testing.T) {
		// The order is shuffled: each run either reaches the good server
		// first or stops at the one that does not know this client.
		stopped := 0
		for range 12 {
			r := fx.run(nil, append([]string{"get"}, fx.base("--server", ts2.addr+","+ts.addr)...)...)
			if r.code == exitAuth {
				stopped++
			} else {
				r.want(t, exitOK)
			}
		}
		if stopped == 0 {
			t.Error("every run failed over past the server that does not know this client")
		}
	})
}

func TestFreshness(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 5)
	get := func(args ...string) result {
		return fx.run(nil, append([]string{"get", "--format", "raw", "port"}, fx.base(append([]string{"--server", ts.addr}, args...)...)...)...)
	}
	t.Run("min serial", func(t *testing.T) {
		get("--min-serial", "5").want(t, exitOK)
		r := get("--min-serial", "6")
		r.want(t, exitFailure)
		if len(r.stdout) != 0 {
			t.Errorf("got output %q from a refused server", r.stdout)
		}
	})
	t.Run("state", func(t *testing.T) {
		state := filepath.Join(fx.dir, "state")
		get("--state", state).want(t, exitOK)
		data, err := os.ReadFile(state)
		if err != nil || !bytes.Contains(data, []byte(fx.server.Public().String()+" 5\n")) {
			t.Fatalf("state file: %v\n%s", err, data)
		}
		if fi, _ := os.Stat(state); fi.Mode().Perm() != 0o600 {
			t.Errorf("state mode %v, want 0600", fi.Mode())
		}
		ts.swap(4, map[coffer.PublicKey]frame.Shard{fx.client.Public(): fx.shard}) // rolled back
		r := get("--state", state)
		r.want(t, exitFailure)
		if !bytes.Contains(r.stderr, []byte("older")) {
			t.Errorf("stderr does not explain the rollback:\n%s", r.stderr)
		}
		ts.swap(7, map[coffer.PublicKey]frame.Shard{fx.client.Public(): fx.shard})
		get("--state", state).want(t, exitOK)
		if data, _ := os.ReadFile(state); !bytes.Contains(data, []byte(" 7\n")) {
			t.Errorf("state not raised to 7:\n%s", data)
		}
		os.WriteFile(state, []byte("garbage\n"), 0o600)
		get("--state", state).want(t, exitFailure)
	})
}

func TestCache(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 5)
	cache := filepath.Join(fx.dir, "cache")
	state := filepath.Join(fx.dir, "state")
	down := closedAddr(t)
	get := func(server string, args ...string) result {
		return fx.run(nil, append([]string{"get", "--format", "json"},
			fx.base(append([]string{"--server", server, "--cache", cache, "--state", state}, args...)...)...)...)
	}
	t.Run("absent cache", func(t *testing.T) {
		get(down).want(t, exitUnreachable)
	})
	t.Run("written after a fetch", func(t *testing.T) {
		get(ts.addr).want(t, exitOK)
		fi, err := os.Stat(cache)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("cache: %v, mode %v; want 0600", err, fi)
		}
		if data, _ := os.ReadFile(cache); bytes.Contains(data, []byte(canary)) {
			t.Error("cache holds the plaintext")
		}
	})
	t.Run("used when no server answers", func(t *testing.T) {
		r := get(down)
		r.want(t, exitOK)
		checkJSON(t, r.stdout, fx.shard)
		if !bytes.Contains(r.stderr, []byte("using the cache")) {
			t.Errorf("cache use not reported:\n%s", r.stderr)
		}
	})
	t.Run("names from the cache", func(t *testing.T) {
		r := fx.run(nil, append([]string{"get", "--format", "raw", "port"}, fx.base("--server", down, "--cache", cache)...)...)
		r.want(t, exitOK)
		if string(r.stdout) != "-5432" {
			t.Errorf("got %q, want -5432", r.stdout)
		}
	})
	t.Run("a fetch of some names does not replace it", func(t *testing.T) {
		before, _ := os.ReadFile(cache)
		fx.run(nil, append([]string{"get", "--format", "raw", "port"}, fx.base("--server", ts.addr, "--cache", cache)...)...).want(t, exitOK)
		if after, _ := os.ReadFile(cache); !bytes.Equal(before, after) {
			t.Error("the cache was replaced by a partial shard")
		}
	})
	t.Run("too old", func(t *testing.T) {
		get(down, "--max-age", "1ns").want(t, exitUnreachable)
	})
	t.Run("below the min serial", func(t *testing.T) {
		get(down, "--min-serial", "6").want(t, exitUnreachable)
	})
	t.Run("another client key", func(t *testing.T) {
		other := newFixture(t)
		r := fx.run(nil, append([]string{"get"}, other.base("--server", down, "--cache", cache, "--server-key", fx.server.Public().String())...)...)
		r.want(t, exitUnreachable)
	})
	t.Run("not after an authentication failure", func(t *testing.T) {
		ts.swap(6, map[coffer.PublicKey]frame.Shard{})
		get(ts.addr).want(t, exitAuth)
	})
	t.Run("below the remembered serial", func(t *testing.T) {
		ts.swap(9, map[coffer.PublicKey]frame.Shard{fx.client.Public(): fx.shard})
		get(ts.addr).want(t, exitOK) // state and cache now at 9
		os.WriteFile(state, []byte(fx.server.Public().String()+" 10\n"), 0o600)
		r := get(down)
		r.want(t, exitUnreachable)
		if !bytes.Contains(r.stderr, []byte("below the required 10")) {
			t.Errorf("stderr does not say why the cache was refused:\n%s", r.stderr)
		}
	})
}

func TestCheck(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 3)
	t.Run("ok", func(t *testing.T) {
		r := fx.run(nil, append([]string{"check"}, fx.base("--server", ts.addr)...)...)
		r.want(t, exitOK)
		if bytes.Contains(r.stdout, []byte(canary)) || bytes.Contains(r.stdout, []byte("db.password")) {
			t.Errorf("check printed a secret or a name:\n%s", r.stdout)
		}
		if !bytes.Contains(r.stdout, []byte("serial 3")) {
			t.Errorf("check does not report the serial:\n%s", r.stdout)
		}
	})
	t.Run("one down", func(t *testing.T) {
		fx.run(nil, append([]string{"check"}, fx.base("--server", ts.addr+","+closedAddr(t))...)...).want(t, exitFailure)
	})
	t.Run("all down", func(t *testing.T) {
		fx.run(nil, append([]string{"check"}, fx.base("--server", closedAddr(t))...)...).want(t, exitUnreachable)
	})
	t.Run("unknown client", func(t *testing.T) {
		other := newFixture(t)
		r := fx.run(nil, append([]string{"check"}, other.base("--server", ts.addr, "--server-key", fx.server.Public().String())...)...)
		r.want(t, exitAuth)
	})
}

// TestNoSecretsInErrors drives error paths with secret-bearing values
// and checks stderr (run checks it for the canary every time).
func TestNoSecretsInErrors(t *testing.T) {
	fx := newFixture(t)
	fx.shard["nul"] = str(canary + "\x00")
	fx.shard["DB_PASSWORD"] = str(canary)
	ts := fx.serve(nil, 1)
	for _, args := range [][]string{
		{"get", "--format", "env"},
		{"get", "--format", "dotenv", "--prefix", "X_"},
		{"get", "--format", "raw", "nul", "--out", "/nonexistent/dir/file"},
		{"exec"},
	} {
		args = append(args, fx.base("--server", ts.addr)...)
		if args[0] == "exec" {
			args = append(args, "--", "true")
		}
		r := fx.run(nil, args...)
		if r.code == exitOK {
			t.Errorf("%v: got success, want a failure", args)
		}
	}
}
