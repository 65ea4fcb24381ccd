package hardening_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
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

// Every test runs the real binaries, built once in TestMain, against
// real Badger directories and TCP on 127.0.0.1. Nothing sleeps to
// synchronise: tests wait for READY=1 on a fake NOTIFY_SOCKET, for log
// lines, or for an observed EOF with a deadline.

var (
	serverBin    string
	clientBin    string
	companionBin string // empty when cmd/coffer-companion does not build
	companionErr string
)

// canary is planted in every definition; it must appear in no output of
// any process the suite runs.
const canary = "CANARY-h4rden-5ecret-77e1"

// outputs collects every stdout and stderr line of every process, for
// the suite-wide canary check in TestMain.
var outputs e2e.Outputs

func record(s string) { outputs.Record(s) }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coffer-hardening")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Every coffer-client these tests start keeps its remembered serial
	// here, never in the real /var/lib/coffer-client or ~/.local/state.
	os.Setenv("XDG_STATE_HOME", filepath.Join(dir, "xdg-state"))

	var errs []error
	if serverBin, err = e2e.Build(dir, "coffer-server", ".."); err != nil {
		errs = append(errs, err)
	}
	if clientBin, err = e2e.Build(dir, "coffer-client", "../../coffer-client"); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		fmt.Fprintln(os.Stderr, errors.Join(errs...))
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if companionBin, err = e2e.Build(dir, "coffer-companion", "../../coffer-companion"); err != nil {
		companionErr = err.Error()
		companionBin = ""
	}
	code := m.Run()
	// The canary as text, and hex-encoded (as a debug dump would show it).
	needles := []string{canary, hex.EncodeToString([]byte(canary)), strings.ToUpper(hex.EncodeToString([]byte(canary)))}
	for _, o := range outputs.Containing(needles...) {
		fmt.Fprintf(os.Stderr, "FAIL: the canary secret appears in an output:\n%s\n", o)
		code = 1
	}
	n := outputs.Size()
	if code == 0 {
		fmt.Fprintf(os.Stderr, "canary: not found in %d bytes of output from every process of the suite\n", n)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture is one server's keys and files.
type fixture struct {
	*e2e.Fixture
	extra int      // extra clients in every definition (bigger loads)
	wrap  []string // a command the server is started through (sh -c)
}

// Limits for the tests: per-address failure and per-client limits off
// unless a test turns them on, so a test's own attack does not lock out
// its legitimate client on 127.0.0.1.
const relaxedLimits = `failed_auth_per_address = { rate = 0, burst = 0 }
per_client = { rate = 0, burst = 0 }
`

func newFixture(t *testing.T, limits string, clients ...string) *fixture {
	t.Helper()
	return &fixture{Fixture: e2e.NewFixture(t, "listen = \"127.0.0.1:1\"\n[limits]\n"+limits, clients...)}
}

func genKey(t testing.TB) *coffer.PrivateKey { return e2e.GenKey(t) }

// defTOML is a definition in which every client has three values tagged
// with tag, one of them the canary, so a fetch can tell whether it saw
// one whole definition.
func (f *fixture) defTOML(tag string) []byte {
	var b strings.Builder
	b.WriteString("[clients]\n")
	for name, k := range f.Clients {
		fmt.Fprintf(&b, "%s = %q\n", name, k.Public().String())
	}
	extraKeys := make([]string, f.extra)
	for i := range f.extra {
		k, err := coffer.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		extraKeys[i] = k.Public().String()
		fmt.Fprintf(&b, "extra%d = %q\n", i, extraKeys[i])
	}
	for name := range f.Clients {
		fmt.Fprintf(&b, "[%s]\na = \"%s-a\"\nb = \"%s-b\"\ncanary = \"%s %s\"\n", name, tag, tag, canary, tag)
	}
	for i := range f.extra {
		fmt.Fprintf(&b, "[extra%d]\nx = \"%s-%d\"\ny = \"%s\"\n", i, tag, i, canary)
	}
	return []byte(b.String())
}

// next seals the next definition of the chain and writes it atomically;
// it returns the sealed bytes.
func (f *fixture) next(t testing.TB, tag string) []byte {
	t.Helper()
	return f.Next(t, f.defTOML(tag))
}

// proc is a running coffer-server.
type proc struct {
	*e2e.Proc
	f    *fixture
	fds0 int // open file descriptors once ready
}

// start runs coffer-server serve on 127.0.0.1:0 with extra flags, waits
// for READY=1 and returns it with its address.
func (f *fixture) start(t testing.TB, extra ...string) *proc {
	t.Helper()
	p := f.launch(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, append(f.Args(), extra...)...)...)
	p.WaitReady()
	p.WaitListening()
	p.fds0 = openFDs(p.Pid())
	return p
}

// launch starts the server binary without waiting; the process is killed
// at the end of the test.
func (f *fixture) launch(t testing.TB, args ...string) *proc {
	t.Helper()
	argv := append(append([]string{}, f.wrap...), append([]string{serverBin}, args...)...)
	return &proc{Proc: e2e.Launch(t, argv, e2e.Options{Record: outputs.Record}), f: f}
}

// reload sends SIGHUP and waits for the outcome line: it returns the
// line, which says serving or refused.
func (p *proc) reload() string {
	p.T().Helper()
	n := p.Logs.Count()
	p.Signal(syscall.SIGHUP)
	line, _ := p.Logs.Wait(p.T(), n, `msg="serving definition"|msg="reload: `)
	return line
}

// fetch fetches client's whole shard from p.
func (p *proc) fetch(client string) (*coffer.Result, error) {
	return fetchFrom(p.Addr, p.f.Server.Public(), p.f.Clients[client], 10*time.Second)
}

func fetchFrom(addr string, server coffer.PublicKey, key *coffer.PrivateKey, d time.Duration) (*coffer.Result, error) {
	return e2e.Fetch(addr, server, key, d)
}

// mustServe checks that a legitimate client gets the whole definition
// tagged tag.
func (p *proc) mustServe(t testing.TB, client, tag string) {
	t.Helper()
	r, err := p.fetch(client)
	if err != nil {
		t.Fatalf("legitimate client %s: %v", client, err)
	}
	if err := wantShard(r, tag); err != nil {
		t.Fatalf("legitimate client %s: %v", client, err)
	}
}

// wantShard checks that a fetched shard is the whole definition tagged
// tag.
func wantShard(r *coffer.Result, tag string) error { return e2e.WantShard(r, tag, canary) }

// run runs a binary to completion and returns stdout, stderr and the
// exit code; both outputs go to the canary check.
func run(t testing.TB, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	return e2e.Run(t, bin, env, outputs.Record, args...)
}

// audit runs coffer-server audit (the server must be stopped), so the
// records go through the canary check too.
func (f *fixture) audit(t testing.TB) string {
	t.Helper()
	out, errOut, code := run(t, serverBin, nil, append([]string{"audit", "--json", "--limit", "0"}, f.Args()...)...)
	if code != 0 {
		t.Errorf("audit: exit %d: %s", code, errOut)
	}
	return out
}
