package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
)

// The tests run the real binary, built once in TestMain, against real
// Badger directories and TCP on 127.0.0.1. Nothing sleeps to synchronise:
// they wait for READY=1 on a fake NOTIFY_SOCKET, for log lines, or poll
// with a deadline.

var (
	serverBin    string // the coffer-server binary
	companionBin string // coffer-companion, for TestCompanionSealed
)

// canary is planted in every definition; it must appear in no output.
const canary = "CANARY-c0ffee-5ecret-9d41"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coffer-server-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Every coffer-client these tests start keeps its remembered serial
	// here, never in the real /var/lib/coffer-client or ~/.local/state.
	os.Setenv("XDG_STATE_HOME", filepath.Join(dir, "xdg-state"))

	if serverBin, err = e2e.Build(dir, "coffer-server", "."); err == nil {
		companionBin, err = e2e.Build(dir, "coffer-companion", "../coffer-companion")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture is one server's keys and files, and every output of its
// processes for the canary check.
type fixture struct {
	*e2e.Fixture
	outputs e2e.Outputs
}

// A config file, so that the machine's /etc/coffer/server.toml is never
// read; flags override its listen and log level. The per-client rate
// limit is off: the load test fetches as fast as it can.
const testConf = "listen = \"127.0.0.1:1\"\n[log]\nlevel = \"warn\"\n[limits]\nper_client = { rate = 0, burst = 0 }\n"

func newFixture(t *testing.T, clients ...string) *fixture {
	t.Helper()
	f := &fixture{Fixture: e2e.NewFixture(t, testConf, clients...)}
	t.Cleanup(func() {
		for _, o := range f.outputs.Containing(canary) {
			t.Errorf("the canary secret appears in an output:\n%s", o)
		}
	})
	return f
}

func genKey(t *testing.T) *coffer.PrivateKey { return e2e.GenKey(t) }

// defTOML returns a definition in which every client has three values
// tagged with tag, one of them the canary, so a fetch can tell whether
// it saw one whole definition.
func (f *fixture) defTOML(tag string, extra int) []byte {
	var b strings.Builder
	b.WriteString("[clients]\n")
	for name, k := range f.Clients {
		fmt.Fprintf(&b, "%s = %q\n", name, k.Public().String())
	}
	for i := range extra {
		fmt.Fprintf(&b, "extra%d = %q\n", i, mustKey().Public().String())
	}
	for name := range f.Clients {
		fmt.Fprintf(&b, "[%s]\na = \"%s-a\"\nb = \"%s-b\"\ncanary = \"%s %s\"\n", name, tag, tag, canary, tag)
	}
	for i := range extra {
		fmt.Fprintf(&b, "[extra%d]\nx = \"%s-%d\"\ny = %d\n", i, tag, i, i)
	}
	return []byte(b.String())
}

func mustKey() *coffer.PrivateKey {
	k, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// next seals the next definition in the chain by the trusted author and
// writes it to the definition path atomically.
func (f *fixture) next(t *testing.T, tag string, extra int) {
	t.Helper()
	f.Next(t, f.defTOML(tag, extra))
}

// proc is a running coffer-server.
type proc struct {
	*e2e.Proc
	f *fixture
}

// start runs coffer-server with the fixture's flags plus extra, waits for
// READY=1 and returns it with its address.
func (f *fixture) start(t *testing.T, extra ...string) *proc {
	t.Helper()
	p := f.launch(t, nil, nil, append(f.Args(), append([]string{"--listen", "127.0.0.1:0"}, extra...)...)...)
	p.WaitReady()
	p.WaitListening()
	return p
}

// launch starts the binary (through wrap, if given, as in sh -c) with a
// fake NOTIFY_SOCKET, without waiting.
func (f *fixture) launch(t *testing.T, wrap []string, extraFiles []*os.File, args ...string) *proc {
	t.Helper()
	argv := append(append([]string{}, wrap...), append([]string{serverBin}, args...)...)
	return &proc{Proc: e2e.Launch(t, argv, e2e.Options{ExtraFiles: extraFiles, Record: f.outputs.Record}), f: f}
}

// stop sends SIGTERM and waits for STOPPING=1 and a clean exit.
func (p *proc) stop() {
	p.Signal(syscall.SIGTERM)
	p.WaitNotify("STOPPING=1")
	p.WaitClean()
}

// fetch fetches client's whole shard.
func (p *proc) fetch(client string) (*coffer.Result, error) {
	return fetchFrom(p.Addr, p.f.Server.Public(), p.f.Clients[client])
}

func fetchFrom(addr string, server coffer.PublicKey, key *coffer.PrivateKey) (*coffer.Result, error) {
	return e2e.Fetch(addr, server, key, 10*time.Second)
}

// wantShard checks that a fetched shard is the whole definition tagged
// tag, and returns a description of what it saw otherwise.
func wantShard(r *coffer.Result, tag string) error {
	return e2e.WantShard(r, tag, canary)
}

// run runs the binary to completion and returns stdout, stderr and the
// exit code; with a fixture, both outputs go to its canary check.
func (f *fixture) run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	var record func(string)
	if f != nil {
		record = f.outputs.Record
	}
	return e2e.Run(t, serverBin, env, record, args...)
}
