package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
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
	// Every coffer-client these tests start keeps its remembered serial
	// here, never in the real /var/lib/coffer-client or ~/.local/state.
	os.Setenv("XDG_STATE_HOME", filepath.Join(dir, "xdg-state"))

	if clientBin, err = e2e.Build(dir, "coffer-client", "."); err != nil {
		fmt.Fprintln(os.Stderr, err)
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

// environ is the clean environment of a run of fx: the default state
// file goes under fx.dir, never the real home or /var/lib (extra may
// override it, as later entries win).
func (fx *fixture) environ(extra ...string) []string {
	return environ(append([]string{"XDG_STATE_HOME=" + filepath.Join(fx.dir, "xdg-state")}, extra...)...)
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
	cmd.Env = fx.environ(env...)
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
		{"names do not fit one Get", append(append([]string{"get"}, fx.base("--server", srv)...), longNames(31)...)},
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

// longNames returns n distinct secret names of 128 bytes: 30 of them fit a
// Get frame (docs/protocol.md §4.3), 31 do not.
func longNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%03d", i) + strings.Repeat("n", 125)
	}
	return names
}
