package hardening_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// allOutputs collects every stdout and stderr line of every process,
// for the suite-wide canary check in TestMain.
var (
	allMu      sync.Mutex
	allOutputs []string
)

func record(s string) {
	allMu.Lock()
	allOutputs = append(allOutputs, s)
	allMu.Unlock()
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coffer-hardening")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := func(name, pkg string) (string, error) {
		bin := filepath.Join(dir, name)
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
		return bin, nil
	}
	var errs []error
	if serverBin, err = build("coffer-server", ".."); err != nil {
		errs = append(errs, err)
	}
	if clientBin, err = build("coffer-client", "../../coffer-client"); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		fmt.Fprintln(os.Stderr, errors.Join(errs...))
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if companionBin, err = build("coffer-companion", "../../coffer-companion"); err != nil {
		companionErr = err.Error()
		companionBin = ""
	}
	code := m.Run()
	allMu.Lock()
	n := 0
	// The canary as text, and hex-encoded (as a debug dump would show it).
	needles := []string{canary, hex.EncodeToString([]byte(canary)), strings.ToUpper(hex.EncodeToString([]byte(canary)))}
	for _, o := range allOutputs {
		n += len(o)
		for _, needle := range needles {
			if strings.Contains(o, needle) {
				fmt.Fprintf(os.Stderr, "FAIL: the canary secret appears in an output:\n%s\n", o)
				code = 1
			}
		}
	}
	allMu.Unlock()
	if code == 0 {
		fmt.Fprintf(os.Stderr, "canary: not found in %d bytes of output from every process of the suite\n", n)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture is one server's keys and files.
type fixture struct {
	dir      string
	server   *coffer.PrivateKey
	author   *coffer.PrivateKey
	stranger *coffer.PrivateKey // an untrusted author
	clients  map[string]*coffer.PrivateKey
	keyFile  string
	dataDir  string
	defPath  string
	conf     string
	last     [32]byte // hash of the last sealed file
	lastSeal uint64
	extra    int      // extra clients in every definition (bigger loads)
	wrap     []string // a command the server is started through (sh -c)
}

// Limits for the tests: per-address failure and per-client limits off
// unless a test turns them on, so a test's own attack does not lock out
// its legitimate client on 127.0.0.1.
const relaxedLimits = `failed_auth_per_address = { rate = 0, burst = 0 }
per_client = { rate = 0, burst = 0 }
`

func newFixture(t *testing.T, limits string, clients ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, server: genKey(t), author: genKey(t), stranger: genKey(t),
		clients: map[string]*coffer.PrivateKey{}, keyFile: filepath.Join(dir, "server.key"),
		dataDir: filepath.Join(dir, "data"), defPath: filepath.Join(dir, "secrets.sealed"),
		conf: filepath.Join(dir, "server.toml")}
	for _, c := range clients {
		f.clients[c] = genKey(t)
	}
	if err := coffer.WriteKeyFile(f.keyFile, f.server); err != nil {
		t.Fatal(err)
	}
	conf := "listen = \"127.0.0.1:1\"\n[limits]\n" + limits
	if err := os.WriteFile(f.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func genKey(t testing.TB) *coffer.PrivateKey {
	t.Helper()
	k, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// defTOML is a definition in which every client has three values tagged
// with tag, one of them the canary, so a fetch can tell whether it saw
// one whole definition.
func (f *fixture) defTOML(tag string) []byte {
	var b strings.Builder
	b.WriteString("[clients]\n")
	for name, k := range f.clients {
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
	for name := range f.clients {
		fmt.Fprintf(&b, "[%s]\na = \"%s-a\"\nb = \"%s-b\"\ncanary = \"%s %s\"\n", name, tag, tag, canary, tag)
	}
	for i := range f.extra {
		fmt.Fprintf(&b, "[extra%d]\nx = \"%s-%d\"\ny = \"%s\"\n", i, tag, i, canary)
	}
	return []byte(b.String())
}

// seal seals src by author to the fixture's server.
func (f *fixture) seal(t testing.TB, author *coffer.PrivateKey, serial uint64, prev [32]byte, src []byte) []byte {
	t.Helper()
	return sealTo(t, author, f.server.Public(), serial, prev, src)
}

func sealTo(t testing.TB, author *coffer.PrivateKey, server coffer.PublicKey, serial uint64, prev [32]byte, src []byte) []byte {
	t.Helper()
	env := &coffer.Envelope{Author: author.Public(), Server: server, Serial: serial,
		Previous: prev, Created: time.Now(), TOML: src}
	sealed, err := coffer.SealDefinition(author, server, env, rand.Reader)
	if err != nil {
		t.Fatalf("sealing serial %d: %v", serial, err)
	}
	return sealed
}

// next seals the next definition of the chain and writes it atomically;
// it returns the sealed bytes.
func (f *fixture) next(t testing.TB, tag string) []byte {
	t.Helper()
	f.lastSeal++
	sealed := f.seal(t, f.author, f.lastSeal, f.last, f.defTOML(tag))
	f.last = sha256.Sum256(sealed)
	f.write(t, sealed)
	return sealed
}

func (f *fixture) write(t testing.TB, sealed []byte) {
	t.Helper()
	tmp := f.defPath + ".tmp"
	if err := os.WriteFile(tmp, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.defPath); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) args() []string {
	return []string{"--key", f.keyFile, "--data", f.dataDir, "--definition", f.defPath,
		"--trusted", f.author.Public().String(), "--log-level", "debug", "--config", f.conf}
}

// proc is a running coffer-server.
type proc struct {
	t      testing.TB
	f      *fixture
	cmd    *exec.Cmd
	logs   *logWatch
	sdMsgs chan string
	addr   string
	fds0   int // open file descriptors once ready
	done   chan struct{}
	err    error
}

// logWatch collects stderr lines and lets tests wait for one.
type logWatch struct {
	mu    sync.Mutex
	cond  *sync.Cond
	lines []string
	eof   bool
}

func newLogWatch(r io.Reader) *logWatch {
	w := &logWatch{}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			record(sc.Text())
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.cond.Broadcast()
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.eof = true
		w.cond.Broadcast()
		w.mu.Unlock()
	}()
	return w
}

// wait returns the first line from index from on that matches re, or
// fails the test when the output ends or 30 s pass.
func (w *logWatch) wait(t testing.TB, from int, re string) (string, int) {
	t.Helper()
	line, next, ok := w.waitFor(from, re, 30*time.Second)
	if !ok {
		t.Fatalf("no log line matching %q; log:\n%s", re, w.all())
	}
	return line, next
}

func (w *logWatch) waitFor(from int, re string, d time.Duration) (string, int, bool) {
	rx := regexp.MustCompile(re)
	expired := false
	timer := time.AfterFunc(d, func() {
		w.mu.Lock()
		expired = true
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := from; ; i++ {
		for i >= len(w.lines) && !w.eof && !expired {
			w.cond.Wait()
		}
		if i >= len(w.lines) {
			return "", i, false
		}
		if rx.MatchString(w.lines[i]) {
			return w.lines[i], i + 1, true
		}
	}
}

// since returns the lines from index from on.
func (w *logWatch) since(from int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string{}, w.lines[min(from, len(w.lines)):]...)
}

func (w *logWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lines)
}

func (w *logWatch) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// notifySocket listens on a fresh unixgram socket standing in for
// systemd's NOTIFY_SOCKET.
func notifySocket(t testing.TB) (string, chan string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan string, 256)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			select {
			case msgs <- string(buf[:n]):
			default: // nobody is listening any more
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return path, msgs
}

// start runs coffer-server serve on 127.0.0.1:0 with extra flags, waits
// for READY=1 and returns it with its address.
func (f *fixture) start(t testing.TB, extra ...string) *proc {
	t.Helper()
	p := f.launch(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, append(f.args(), extra...)...)...)
	p.waitReady()
	line, _ := p.logs.wait(t, 0, `msg=listening .*addr=`)
	p.addr = regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(line)[1]
	p.fds0 = openFDs(p.pid())
	return p
}

// launch starts the server binary without waiting; the process is killed
// at the end of the test.
func (f *fixture) launch(t testing.TB, args ...string) *proc {
	t.Helper()
	sdPath, msgs := notifySocket(t)
	argv := append(append([]string{}, f.wrap...), append([]string{serverBin}, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sdPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	p := &proc{t: t, f: f, cmd: cmd, sdMsgs: msgs, done: make(chan struct{})}
	p.logs = newLogWatch(stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		record(stdout.String())
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// kill sends SIGKILL (if still running) and waits for the exit.
func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitNotify waits for a datagram containing want.
func (p *proc) waitNotify(want string) string {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-p.sdMsgs:
			if !ok {
				p.t.Fatalf("notify socket closed before %q", want)
			}
			if strings.Contains(m, want) {
				return m
			}
		case <-p.done:
			p.t.Fatalf("server exited (%v) before notifying %q; log:\n%s", p.err, want, p.logs.all())
		case <-deadline:
			p.t.Fatalf("no %q notification; log:\n%s", want, p.logs.all())
		}
	}
}

func (p *proc) waitReady() string { return p.waitNotify("READY=1") }

// waitExit waits for the process to exit by itself.
func (p *proc) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if !p.waitExit(30 * time.Second) {
		p.t.Fatal("server did not exit after SIGTERM")
	}
	if p.err != nil {
		p.t.Fatalf("server exited with %v; log:\n%s", p.err, p.logs.all())
	}
}

// reload sends SIGHUP and waits for the outcome line: it returns the
// line, which says serving or refused.
func (p *proc) reload() string {
	p.t.Helper()
	n := p.logs.count()
	p.signal(syscall.SIGHUP)
	line, _ := p.logs.wait(p.t, n, `msg="serving definition"|msg="reload: `)
	return line
}

// fetch fetches client's whole shard from p.
func (p *proc) fetch(client string) (*coffer.Result, error) {
	return fetchFrom(p.addr, p.f.server.Public(), p.f.clients[client], 10*time.Second)
}

func fetchFrom(addr string, server coffer.PublicKey, key *coffer.PrivateKey, d time.Duration) (*coffer.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return coffer.Fetch(ctx, conn, &coffer.ClientConfig{Key: key, Server: server})
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
func wantShard(r *coffer.Result, tag string) error {
	a, b, c := string(r.Shard["a"].Text), string(r.Shard["b"].Text), string(r.Shard["canary"].Text)
	if len(r.Shard) != 3 || a != tag+"-a" || b != tag+"-b" || c != canary+" "+tag {
		return fmt.Errorf("serial %d: got %d values (a=%q b=%q), want definition %q whole", r.Version.Serial, len(r.Shard), a, b, tag)
	}
	return nil
}

// run runs a binary to completion and returns stdout, stderr and the
// exit code; both outputs go to the canary check.
func run(t testing.TB, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %v did not finish in 60 s", filepath.Base(bin), args)
	}
	record(stdout.String())
	record(stderr.String())
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// audit runs coffer-server audit (the server must be stopped), so the
// records go through the canary check too.
func (f *fixture) audit(t testing.TB) string {
	t.Helper()
	out, errOut, code := run(t, serverBin, nil, append([]string{"audit", "--json", "--limit", "0"}, f.args()...)...)
	if code != 0 {
		t.Errorf("audit: exit %d: %s", code, errOut)
	}
	return out
}
