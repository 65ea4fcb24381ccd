package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
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
	serverBin = filepath.Join(dir, "coffer-server")
	if out, err := exec.Command("go", "build", "-o", serverBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building coffer-server: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	companionBin = filepath.Join(dir, "coffer-companion")
	if out, err := exec.Command("go", "build", "-o", companionBin, "../coffer-companion").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building coffer-companion: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture is one server's keys and files.
type fixture struct {
	dir       string
	server    *coffer.PrivateKey
	author    *coffer.PrivateKey
	stranger  *coffer.PrivateKey // an untrusted author
	clients   map[string]*coffer.PrivateKey
	keyFile   string
	dataDir   string
	defPath   string
	last      [32]byte // hash of the last sealed file
	lastSeal  uint64
	outputsMu sync.Mutex
	outputs   []string // every output seen, for the canary check
}

func newFixture(t *testing.T, clients ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, server: genKey(t), author: genKey(t), stranger: genKey(t),
		clients: map[string]*coffer.PrivateKey{}, keyFile: filepath.Join(dir, "server.key"),
		dataDir: filepath.Join(dir, "data"), defPath: filepath.Join(dir, "secrets.sealed")}
	for _, c := range clients {
		f.clients[c] = genKey(t)
	}
	if err := coffer.WriteKeyFile(f.keyFile, f.server); err != nil {
		t.Fatal(err)
	}
	// A config file, so that the machine's /etc/coffer/server.toml is
	// never read; flags override its listen and log level. The per-client
	// rate limit is off: the load test fetches as fast as it can.
	conf := "listen = \"127.0.0.1:1\"\n[log]\nlevel = \"warn\"\n[limits]\nper_client = { rate = 0, burst = 0 }\n"
	if err := os.WriteFile(filepath.Join(dir, "server.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.checkCanary(t) })
	return f
}

func genKey(t *testing.T) *coffer.PrivateKey {
	t.Helper()
	k, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// record keeps an output for the canary check.
func (f *fixture) record(s string) {
	f.outputsMu.Lock()
	f.outputs = append(f.outputs, s)
	f.outputsMu.Unlock()
}

func (f *fixture) checkCanary(t *testing.T) {
	f.outputsMu.Lock()
	defer f.outputsMu.Unlock()
	for _, o := range f.outputs {
		if strings.Contains(o, canary) {
			t.Errorf("the canary secret appears in an output:\n%s", o)
		}
	}
}

// defTOML returns a definition in which every client has three values
// tagged with tag, one of them the canary, so a fetch can tell whether
// it saw one whole definition.
func (f *fixture) defTOML(tag string, extra int) []byte {
	var b strings.Builder
	b.WriteString("[clients]\n")
	for name, k := range f.clients {
		fmt.Fprintf(&b, "%s = %q\n", name, k.Public().String())
	}
	for i := range extra {
		fmt.Fprintf(&b, "extra%d = %q\n", i, mustKey().Public().String())
	}
	for name := range f.clients {
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

// seal seals src by author with the given serial and previous hash.
func (f *fixture) seal(t *testing.T, author *coffer.PrivateKey, serial uint64, prev [32]byte, src []byte) []byte {
	t.Helper()
	env := &coffer.Envelope{Author: author.Public(), Server: f.server.Public(), Serial: serial,
		Previous: prev, Created: time.Now(), TOML: src}
	sealed, err := coffer.SealDefinition(author, f.server.Public(), env, rand.Reader)
	if err != nil {
		t.Fatalf("sealing serial %d: %v", serial, err)
	}
	return sealed
}

// next seals the next definition in the chain by the trusted author and
// writes it to the definition path atomically.
func (f *fixture) next(t *testing.T, tag string, extra int) {
	t.Helper()
	f.lastSeal++
	sealed := f.seal(t, f.author, f.lastSeal, f.last, f.defTOML(tag, extra))
	f.last = sha256.Sum256(sealed)
	f.write(t, sealed)
}

// write puts a sealed file at the definition path by rename.
func (f *fixture) write(t *testing.T, sealed []byte) {
	t.Helper()
	tmp := f.defPath + ".tmp"
	if err := os.WriteFile(tmp, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.defPath); err != nil {
		t.Fatal(err)
	}
}

// args are the serve flags for this fixture.
func (f *fixture) args() []string {
	return []string{"--key", f.keyFile, "--data", f.dataDir, "--definition", f.defPath,
		"--trusted", f.author.Public().String(), "--log-level", "debug", "--config", filepath.Join(f.dir, "server.toml")}
}

// proc is a running coffer-server.
type proc struct {
	t      *testing.T
	f      *fixture
	cmd    *exec.Cmd
	logs   *logWatch
	sd     *net.UnixConn
	sdMsgs chan string
	addr   string
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

func newLogWatch(r io.Reader, f *fixture) *logWatch {
	w := &logWatch{}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			f.record(sc.Text())
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
// fails the test when the output ends or the deadline passes.
func (w *logWatch) wait(t *testing.T, from int, re string) (string, int) {
	t.Helper()
	rx := regexp.MustCompile(re)
	timer := time.AfterFunc(30*time.Second, func() {
		w.mu.Lock()
		w.eof = true
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := from; ; i++ {
		for i >= len(w.lines) && !w.eof {
			w.cond.Wait()
		}
		if i >= len(w.lines) {
			t.Fatalf("no log line matching %q; log:\n%s", re, strings.Join(w.lines, "\n"))
		}
		if rx.MatchString(w.lines[i]) {
			return w.lines[i], i + 1
		}
	}
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

// notifySocket listens on a fresh unixgram socket and returns its path
// and a channel of the datagrams received.
func notifySocket(t *testing.T) (string, *net.UnixConn, chan string) {
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
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return path, c, msgs
}

// start runs coffer-server with the fixture's flags plus extra, waits for
// READY=1 and returns it with its address.
func (f *fixture) start(t *testing.T, extra ...string) *proc {
	t.Helper()
	p := f.launch(t, nil, nil, append(f.args(), append([]string{"--listen", "127.0.0.1:0"}, extra...)...)...)
	p.waitReady()
	line, _ := p.logs.wait(t, 0, `msg=listening .*addr=`)
	p.addr = regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(line)[1]
	return p
}

// launch starts the binary (through wrap, if given, as in sh -c) with a
// fake NOTIFY_SOCKET, without waiting.
func (f *fixture) launch(t *testing.T, wrap []string, extraFiles []*os.File, args ...string) *proc {
	t.Helper()
	sdPath, sd, msgs := notifySocket(t)
	argv := append(append([]string{}, wrap...), append([]string{serverBin}, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sdPath)
	cmd.ExtraFiles = extraFiles
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	p := &proc{t: t, f: f, cmd: cmd, sd: sd, sdMsgs: msgs, done: make(chan struct{})}
	p.logs = newLogWatch(stderr, f)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		f.record(stdout.String())
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

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
	p.waitNotify("STOPPING=1")
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatal("server did not exit after SIGTERM")
	}
	if p.err != nil {
		p.t.Fatalf("server exited with %v; log:\n%s", p.err, p.logs.all())
	}
}

// fetch fetches client's whole shard.
func (p *proc) fetch(client string) (*coffer.Result, error) {
	return fetchFrom(p.addr, p.f.server.Public(), p.f.clients[client])
}

func fetchFrom(addr string, server coffer.PublicKey, key *coffer.PrivateKey) (*coffer.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return coffer.Fetch(ctx, conn, &coffer.ClientConfig{Key: key, Server: server})
}

// wantShard checks that a fetched shard is the whole definition tagged
// tag, and returns a description of what it saw otherwise.
func wantShard(r *coffer.Result, tag string) error {
	a, b, c := string(r.Shard["a"].Text), string(r.Shard["b"].Text), string(r.Shard["canary"].Text)
	if len(r.Shard) != 3 || a != tag+"-a" || b != tag+"-b" || c != canary+" "+tag {
		return fmt.Errorf("serial %d: got %d values (a=%q b=%q), want definition %q whole", r.Version.Serial, len(r.Shard), a, b, tag)
	}
	return nil
}

// run runs the binary to completion and returns stdout, stderr and the
// exit code.
func (f *fixture) run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(serverBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if f != nil {
		f.record(stdout.String())
		f.record(stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}
