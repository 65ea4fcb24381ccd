package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// credential does what systemd does for LoadCredential=ID:SOCKET of
// unit: bind a stream socket to the abstract address @RANDOM/unit/UNIT/ID
// (RANDOM is a random 64-bit number in hex), connect, read to EOF.
func credential(socket, unit, id string) ([]byte, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	u := uint64(0)
	for _, b := range rnd {
		u = u<<8 | uint64(b)
	}
	laddr := &net.UnixAddr{Name: "@" + strconv.FormatUint(u, 16) + "/unit/" + unit + "/" + id, Net: "unix"}
	c, err := net.DialUnix("unix", laddr, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(40 * time.Second))
	return io.ReadAll(c)
}

// agentSocket returns a socket path short enough for sun_path (108
// bytes), removed at the end of the test.
func agentSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ca")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "credentials.sock")
}

const agentConfig = `[agent]
socket = %q
[agent.allow]
"app.service" = ["api-key", "db.password", "canary", "missing"]
"worker@*.service" = ["port"]
`

// startAgent writes the [agent] table into the fixture's config file and
// starts coffer-client agent against addr.
func (fx *fixture) startAgent(socket, addr string, args ...string) *e2e.Proc {
	fx.t.Helper()
	if err := os.WriteFile(fx.config, fmt.Appendf(nil, agentConfig, socket), 0o644); err != nil {
		fx.t.Fatal(err)
	}
	return fx.launch(nil, append(append([]string{"agent", "--watch-interval", "100ms"}, args...), fx.base("--server", addr)...)...)
}

// TestAgent emulates systemd against the real agent: allowed units get
// exactly the value, anything else a closed connection and a log line,
// and a new serial is served once the agent has seen it.
func TestAgent(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	socket := agentSocket(t)
	p := fx.startAgent(socket, ts.addr)
	_, at := p.Logs.Wait(t, 0, `agent: serving serial 1: \d+ secrets; checking every 100ms`)

	t.Run("socket is private", func(t *testing.T) {
		fi, err := os.Lstat(socket)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Errorf("got mode %s, want a socket with 0600", fi.Mode())
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() {
			t.Errorf("got owner %d, want %d", st.Uid, os.Geteuid())
		}
	})
	allowed := []struct{ name, unit, id, want string }{
		{"allowed", "app.service", "api-key", "simple"},
		{"allowed, every byte", "app.service", "db.password", trickyText},
		{"allowed by a glob", "worker@3.service", "port", "-5432"},
		{"canary", "app.service", "canary", canary},
	}
	for _, tt := range allowed {
		t.Run(tt.name, func(t *testing.T) {
			got, err := credential(socket, tt.unit, tt.id)
			if err != nil || string(got) != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
			_, at = p.Logs.Wait(t, at, fmt.Sprintf(`served unit %q credential %q \(%d bytes\)`, tt.unit, tt.id, len(tt.want)))
		})
	}
	refused := []struct{ name, unit, id, log string }{
		{"unit not allowed", "other.service", "api-key", `refused unit "other.service" credential "api-key": not in the allow-list`},
		{"name not allowed to the unit", "worker@3.service", "api-key", `refused unit "worker@3.service" credential "api-key": not in the allow-list`},
		{"glob does not match", "worker.service", "port", `refused unit "worker.service" credential "port": not in the allow-list`},
		{"unknown ID", "app.service", "missing", `refused unit "app.service" credential "missing": no such secret`},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			got, err := credential(socket, tt.unit, tt.id)
			if err != nil || len(got) != 0 {
				t.Errorf("got %q, %v; want a closed connection and nothing else", got, err)
			}
			_, at = p.Logs.Wait(t, at, tt.log)
		})
	}
	t.Run("not systemd", func(t *testing.T) {
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || len(got) != 0 {
			t.Errorf("got %q, %v; want a closed connection", got, err)
		}
		_, at = p.Logs.Wait(t, at, `refused a connection from "@?": .*not systemd`)
	})
	t.Run("new serial", func(t *testing.T) {
		s := testShard()
		s["canary"] = str(canary)
		s["api-key"] = str("second")
		ts.swap(2, map[coffer.PublicKey]frame.Shard{fx.client.Public(): s})
		_, at = p.Logs.Wait(t, at, `serial 2 \(was 1\): serving \d+ secrets`)
		if got, err := credential(socket, "app.service", "api-key"); err != nil || string(got) != "second" {
			t.Errorf("got %q, %v; want %q", got, err, "second")
		}
	})
	t.Run("stop", func(t *testing.T) {
		p.Signal(syscall.SIGTERM)
		wantExit(t, p, exitOK)
		if _, err := os.Lstat(socket); !os.IsNotExist(err) {
			t.Errorf("socket left behind: %v", err)
		}
	})
}

// TestAgentBeforeServer starts the agent while no server listens: it
// retries, holds a unit's connection, and answers it once the server is
// up.
func TestAgentBeforeServer(t *testing.T) {
	fx := newFixture(t)
	addr := closedAddr(t)
	socket := agentSocket(t)
	p := fx.startAgent(socket, addr)
	p.Logs.Wait(t, 0, `agent: listening on `)
	p.Logs.Wait(t, 0, `no shard yet; retrying in about .*connection refused`)
	type res struct {
		b   []byte
		err error
	}
	got := make(chan res, 1)
	go func() {
		b, err := credential(socket, "app.service", "api-key")
		got <- res{b, err}
	}()
	// SIGHUP before the first shard retries at once; it does not kill.
	n := p.Logs.Count()
	p.Signal(syscall.SIGHUP)
	p.Logs.Wait(t, n, `no shard yet; retrying in about .*connection refused`)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("could not listen on %s again: %v", addr, err)
	}
	fx.serve(l, 1)
	select {
	case r := <-got:
		if r.err != nil || string(r.b) != "simple" {
			t.Errorf("got %q, %v; want %q", r.b, r.err, "simple")
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("the held connection was not answered; log:\n%s", p.Logs.All())
	}
}

func TestAgentUsage(t *testing.T) {
	fx := newFixture(t)
	srv := closedAddr(t)
	tests := []struct {
		name string
		args []string
	}{
		{"no socket", nil},
		{"bad allow", []string{"--socket", "/tmp/x.sock", "--allow", "app.service"}},
		{"bad allow glob", []string{"--socket", "/tmp/x.sock", "--allow", "app[.service=a"}},
		{"bad secret name", []string{"--socket", "/tmp/x.sock", "--allow", "app.service=a/b"}},
		{"arguments", []string{"--socket", "/tmp/x.sock", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fx.run(nil, append(append([]string{"agent"}, tt.args...), fx.base("--server", srv)...)...)
			r.want(t, exitUsage)
		})
	}
}

func TestAllowList(t *testing.T) {
	a := unitAllowList{"app.service": {"db", "token"}, "worker@*.service": {"queue"}, "*.timer": {"db"}}
	tests := []struct {
		unit, id string
		want     bool
	}{
		{"app.service", "db", true},
		{"app.service", "queue", false},
		{"worker@1.service", "queue", true},
		{"worker@.service", "queue", true},
		{"worker.service", "queue", false},
		{"backup.timer", "db", true},
		{"backup.timer", "token", false},
		{"App.service", "db", false},
	}
	for _, tt := range tests {
		t.Run(tt.unit+"/"+tt.id, func(t *testing.T) {
			if got := a.allowed(tt.unit, tt.id); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParsePeer(t *testing.T) {
	tests := []struct {
		addr, unit, id string
		ok             bool
	}{
		{"@1f3a9c/unit/app.service/db.password", "app.service", "db.password", true},
		{"@0/unit/getty@tty1.service/x", "getty@tty1.service", "x", true},
		{"@ab/unit/a\\x2db.service/x", "a\\x2db.service", "x", true},
		{"/run/x.sock", "", "", false},
		{"", "", "", false},
		{"@", "", "", false},
		{"@/unit/app.service/x", "", "", false},
		{"@1/unit/app.service", "", "", false},
		{"@1/unit/app.service/", "", "", false},
		{"@1/unit//x", "", "", false},
		{"@1/unit/app.service/x/y", "", "", false},
		{"@1/x/unit/app.service/y", "", "", false},
		{"@1/unit/app service/x", "", "", false},
		{"@1/bus/app.service/x", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			unit, id, err := parsePeer(tt.addr)
			if (err == nil) != tt.ok || unit != tt.unit || id != tt.id {
				t.Errorf("got %q, %q, %v; want %q, %q, ok %v", unit, id, err, tt.unit, tt.id, tt.ok)
			}
		})
	}
}

// FuzzParsePeer checks that no address panics, and that an accepted one
// is exactly @RANDOM/unit/UNIT/ID with no '/' in UNIT or ID.
func FuzzParsePeer(f *testing.F) {
	for _, s := range []string{"@1f3a9c/unit/app.service/db.password", "@/unit//", "@1/unit/a/b/c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		unit, id, err := parsePeer(addr)
		if err != nil {
			return
		}
		if len(unit) > maxUnitNameBytes || unit == "" || id == "" {
			t.Fatalf("accepted %q: unit %q, id %q", addr, unit, id)
		}
		suffix := "/unit/" + unit + "/" + id
		if len(addr) <= len(suffix)+1 || addr[0] != '@' || addr[len(addr)-len(suffix):] != suffix {
			t.Fatalf("accepted %q: unit %q, id %q do not rebuild it", addr, unit, id)
		}
	})
}

// TestAgentStopWhileWaiting stops an agent that holds a connection while
// it waits for its first shard: the connection is closed with nothing
// written, and the agent exits at once with status 0.
func TestAgentStopWhileWaiting(t *testing.T) {
	fx := newFixture(t)
	socket := agentSocket(t)
	p := fx.startAgent(socket, closedAddr(t))
	p.Logs.Wait(t, 0, `no shard yet`)
	got := make(chan []byte, 1)
	go func() {
		b, _ := credential(socket, "app.service", "api-key")
		got <- b
	}()
	p.Logs.Wait(t, 0, `unit "app.service" credential "api-key": waiting for the first shard`)
	p.Signal(syscall.SIGTERM)
	wantExit(t, p, exitOK)
	p.Logs.Wait(t, 0, `refused unit "app.service" credential "api-key": stopping before a shard was fetched`)
	select {
	case b := <-got:
		if len(b) != 0 {
			t.Errorf("got %q, want nothing", b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held connection was not closed")
	}
}

// TestAgentAllowFlag runs the agent from flags alone: --socket and
// --allow replace the config file's [agent] table.
func TestAgentAllowFlag(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	socket := agentSocket(t)
	p := fx.launch(nil, append([]string{"agent", "--socket", socket, "--allow", "x-*.service=api-key,port"},
		fx.base("--server", ts.addr)...)...)
	_, at := p.Logs.Wait(t, 0, `agent: serving serial 1`)
	if got, err := credential(socket, "x-1.service", "port"); err != nil || string(got) != "-5432" {
		t.Errorf("got %q, %v; want %q", got, err, "-5432")
	}
	if got, err := credential(socket, "app.service", "api-key"); err != nil || len(got) != 0 {
		t.Errorf("got %q, %v; want nothing", got, err)
	}
	p.Logs.Wait(t, at, `refused unit "app.service" credential "api-key": not in the allow-list`)
}
