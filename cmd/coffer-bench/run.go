package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Timeouts of the orchestration; each bounds a step that could hang.
const (
	readyTimeout     = 60 * time.Second // coffer-server start to READY=1
	loadgenPrepare   = 2 * time.Minute  // loadgen reading keys
	stormBound       = 5 * time.Minute  // a boot storm that takes longer is stopped
	settleMax        = time.Second      // waiting for the server's CPU counter to settle
	settleStep       = 30 * time.Millisecond
	idleSettle       = time.Second // after READY=1, before the idle RSS sample
	coldStartTimeout = 10 * time.Second
)

// targets are the servers under load, in the order each round runs them:
// coffer-server, the TLS 1.3 baseline with Go's default hybrid
// X25519MLKEM768 and with X25519 alone, mutual TLS 1.3 (hybrid), and the
// bare TCP accept-and-close server (the floor).
var targets = []string{"coffer", "tls", "tls-x25519", "mtls", "tcp"}

// stormTargets are the servers that run the boot storm.
var stormTargets = []string{"coffer", "tls", "mtls"}

// bench is one run of the benchmark.
type bench struct {
	opt     *options
	stdout  io.Writer
	stderr  io.Writer
	exe     string
	fx      *fixture
	kids    children
	servers map[string]*server
}

// server is a running server under test.
type server struct {
	c    *child
	addr string
}

func newBench(opt *options, stdout, stderr io.Writer) *bench {
	return &bench{opt: opt, stdout: stdout, stderr: stderr, servers: map[string]*server{}}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "coffer-bench: "+format+"\n", args...)
}

// run runs every step and returns the figures. Every child is stopped
// before it returns.
func (b *bench) run(ctx context.Context) (*figures, error) {
	var err error
	if b.exe, err = os.Executable(); err != nil {
		return nil, err
	}
	for _, bin := range []string{b.opt.serverBin, b.opt.clientBin, b.opt.companionBin} {
		if bin == "" {
			continue
		}
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%v (run make build first)", err)
		}
	}
	dir, err := os.MkdirTemp("", "coffer-bench-")
	if err != nil {
		return nil, err
	}
	if b.opt.keep {
		b.logf("work directory %s (kept)", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	stopWatch := context.AfterFunc(ctx, b.kids.stopAll)
	defer stopWatch()
	defer b.kids.stopAll()

	f := newFigures(b.opt)
	b.logf("X25519 with a cached crypto/ecdh key, and a fixed-base multiplication...")
	var ft floorTimer
	if err = ft.measure(); err != nil {
		return nil, err
	}

	b.logf("generating %d clients x %d secrets...", b.opt.clients, b.opt.secrets)
	if b.fx, err = newFixture(dir, b.opt); err != nil {
		return nil, fmt.Errorf("generating the fixture: %w", err)
	}
	f.DefinitionBytes, f.ShardBytes = b.fx.defBytes, b.fx.shardBytes
	if err := b.load(ctx, f); err != nil {
		return nil, err
	}
	if err := b.startBaselines(ctx); err != nil {
		return nil, err
	}
	if err := b.storms(ctx, f); err != nil {
		return nil, err
	}
	if err := b.loadPhases(ctx, f); err != nil {
		return nil, err
	}
	if err := b.coldStarts(ctx, f); err != nil {
		return nil, err
	}
	if m, err := procMem(b.servers["coffer"].c.pid()); err == nil {
		f.FinalRSSMiB, f.FinalHWMMiB = mib(m.RSS), mib(m.HWM)
	}
	if err := b.servers["coffer"].c.stop(); err != nil {
		return nil, fmt.Errorf("stopping coffer-server: %w", err)
	}
	b.logf("X25519 and the fixed-base multiplication again...")
	if err := ft.measure(); err != nil {
		return nil, err
	}
	f.X25519Us, f.FixedBaseUs = us(medianDuration(ft.ladder)), us(medianDuration(ft.fixedBase))
	if b.opt.cpuprofile != "" && f.CPUProfile == "" {
		f.Notes = append(f.Notes, "-cpuprofile: coffer-server has no --cpuprofile flag; profile the in-process server with go test -bench (docs/benchmarks.md)")
	}
	f.finish()
	return f, nil
}

// load seals the definition and starts coffer-server on it, timing both.
func (b *bench) load(ctx context.Context, f *figures) error {
	b.logf("sealing...")
	d, how, err := b.fx.seal(b.opt.companionBin)
	if err != nil {
		return fmt.Errorf("sealing: %w", err)
	}
	f.SealMs, f.SealMethod = ms(d), how
	b.logf("starting coffer-server...")
	d, how, err = b.startCoffer(ctx, f)
	if err != nil {
		return err
	}
	f.ReadyMs, f.ReadyMethod = ms(d), how
	f.LoadTotalMs = f.SealMs + f.ReadyMs
	pid := b.servers["coffer"].c.pid()
	if m, err := procMem(pid); err == nil {
		f.ReadyRSSMiB = mib(m.RSS)
	}
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		return ctx.Err()
	}
	m, err := procMem(pid)
	if err != nil {
		return err
	}
	f.IdleRSSMiB, f.LoadHWMMiB = mib(m.RSS), mib(m.HWM)
	return nil
}

// startCoffer starts the real coffer-server on a free port of 127.0.0.1
// with a fresh data directory and waits until it is ready: READY=1 on a
// NOTIFY_SOCKET we listen on, or, if the server never sends one, the
// first accepted TCP connection.
func (b *bench) startCoffer(ctx context.Context, f *figures) (time.Duration, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, "", err
	}
	sock := filepath.Join(b.fx.dir, "notify.sock")
	uc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return 0, "", err
	}
	defer uc.Close()
	ready := make(chan time.Time, 1)
	go waitReady(uc, ready)

	args := b.serverArgs(addr, f)
	env := append(os.Environ(), "NOTIFY_SOCKET="+sock)
	start := time.Now()
	c, err := b.kids.start("coffer-server", filepath.Join(b.fx.dir, "coffer-server.log"), env, b.opt.serverBin, args...)
	if err != nil {
		return 0, "", err
	}
	b.servers["coffer"] = &server{c: c, addr: addr}
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	var tcpAt time.Time
	for {
		select {
		case at := <-ready:
			return at.Sub(start), "READY=1 on NOTIFY_SOCKET", nil
		case <-c.done:
			return 0, "", fmt.Errorf("coffer-server exited (%v) before it was ready: %s", c.err, b.logTail("coffer-server.log"))
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-deadline.C:
			// A server without READY=1 (an old one): its first
			// accepted connection. coffer-server binds before it loads,
			// so this is only a fallback: a large fleet takes longer to
			// load than any grace after the first connect.
			if !tcpAt.IsZero() {
				return tcpAt.Sub(start), "first TCP connect (no READY=1)", nil
			}
			return 0, "", fmt.Errorf("coffer-server not ready after %v: %s", readyTimeout, b.logTail("coffer-server.log"))
		case now := <-poll.C:
			if tcpAt.IsZero() {
				if conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
					conn.Close()
					tcpAt = now
				}
			}
		}
	}
}

// serverArgs are coffer-server's arguments: the flags of `coffer-server
// serve -h`, and --cpuprofile if asked for and the server has it.
func (b *bench) serverArgs(addr string, f *figures) []string {
	args := []string{"serve",
		"--listen", addr,
		"--key", b.fx.serverKey,
		"--data-dir", b.fx.data,
	}
	if b.fx.config != "" {
		args = append(args, "--config", b.fx.config)
	} else {
		args = append(args, "--definition", b.fx.sealed, "--trusted", b.fx.companionPub.String())
	}
	args = append(args, b.opt.serverFlags...)
	if b.opt.cpuprofile != "" && serverHasFlag(b.opt.serverBin, "cpuprofile") {
		p, err := filepath.Abs(b.opt.cpuprofile)
		if err == nil {
			args = append(args, "--cpuprofile", p)
			f.CPUProfile = p
		}
	}
	return args
}

// serverHasFlag reports whether `coffer-server serve -h` lists --name.
func serverHasFlag(bin, name string) bool {
	out, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	return bytes.Contains(out, []byte("-"+name))
}

// waitReady reads sd_notify datagrams until one has a READY=1 line.
func waitReady(uc *net.UnixConn, ready chan<- time.Time) {
	buf := make([]byte, 4096)
	for {
		n, err := uc.Read(buf)
		if err != nil {
			return
		}
		for line := range strings.SplitSeq(string(buf[:n]), "\n") {
			if line == "READY=1" {
				ready <- time.Now()
				return
			}
		}
	}
}

func (b *bench) logTail(name string) string {
	data, err := os.ReadFile(filepath.Join(b.fx.dir, name))
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-3):], " | ")
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago. (coffer-server is given a fixed --listen address.)
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startBaselines starts the TLS, mutual TLS and TCP floor servers, each
// in its own process, and waits for their addresses.
func (b *bench) startBaselines(ctx context.Context) error {
	cf := b.fx.certs
	tlsArgs := []string{"-shards", b.fx.shards, "-ca", cf.CA, "-cert", cf.ServerCert, "-key", cf.ServerKey}
	for _, t := range []struct {
		name string
		args []string
	}{
		{"tls", append([]string{"tlsserver"}, tlsArgs...)},
		{"tls-x25519", append([]string{"tlsserver", "-x25519-only"}, tlsArgs...)},
		{"mtls", append([]string{"tlsserver", "-mutual"}, tlsArgs...)},
		{"tcp", []string{"tcpserver"}},
	} {
		c, err := b.kids.start(t.name+" server", filepath.Join(b.fx.dir, t.name+"-server.log"), os.Environ(), b.exe, t.args...)
		if err != nil {
			return err
		}
		line, err := c.readLine(ctx, time.Minute)
		if err != nil {
			return err
		}
		addr, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			return fmt.Errorf("%s server: unexpected %q", t.name, line)
		}
		b.servers[t.name] = &server{c: c, addr: addr}
	}
	return nil
}

// phase runs one load phase against target in a new loadgen process and
// measures the server's CPU and memory around it. With count > 0 every
// client fetches once (a boot storm) instead.
func (b *bench) phase(ctx context.Context, target string, conc, count int, dur time.Duration) (*phaseOut, error) {
	return b.phaseKeysWith(ctx, target, b.fx.clientKeys, conc, count, dur, nil)
}

// phaseKeys is phase with the coffer clients of the keys file keys.
func (b *bench) phaseKeys(ctx context.Context, target, keys string, conc, count int, dur time.Duration) (*phaseOut, error) {
	return b.phaseKeysWith(ctx, target, keys, conc, count, dur, nil)
}

// phaseKeysWith is phaseKeys that calls started, if not nil, right after
// the phase has started.
func (b *bench) phaseKeysWith(ctx context.Context, target, keys string, conc, count int, dur time.Duration, started func()) (*phaseOut, error) {
	srv := b.servers[target]
	args := []string{"loadgen", "-target", target, "-addr", srv.addr,
		"-c", strconv.Itoa(conc), "-duration", dur.String(), "-clients", strconv.Itoa(b.opt.clients)}
	if count > 0 {
		args = append(args, "-count", strconv.Itoa(count))
	}
	cf := b.fx.certs
	switch target {
	case "coffer":
		args = append(args, "-keys", keys, "-server-key", b.fx.serverPub.String())
	case "tls", "tls-x25519":
		args = append(args, "-ca", cf.CA)
	case "mtls":
		args = append(args, "-ca", cf.CA, "-cert", cf.ClientCert, "-key", cf.ClientKey)
	}
	lg, err := b.kids.start("loadgen", filepath.Join(b.fx.dir, "loadgen.log"), os.Environ(), b.exe, args...)
	if err != nil {
		return nil, err
	}
	defer lg.stop()
	if line, err := lg.readLine(ctx, loadgenPrepare); err != nil {
		return nil, err
	} else if line != "ready" {
		return nil, fmt.Errorf("loadgen: unexpected %q", line)
	}
	pid := srv.c.pid()
	cpu0, err := procCPU(pid)
	if err != nil {
		return nil, fmt.Errorf("%s server: %w", target, err)
	}
	if _, err := io.WriteString(lg.stdin, "go\n"); err != nil {
		return nil, err
	}
	if started != nil {
		started()
	}
	line, err := lg.readLine(ctx, dur+2*sessionTimeout+time.Minute)
	if err != nil {
		return nil, fmt.Errorf("loadgen %s: %w: %s", target, err, b.logTail("loadgen.log"))
	}
	var res phaseResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return nil, fmt.Errorf("loadgen %s: %w", target, err)
	}
	cpu1 := settleCPU(pid)
	if srv.c.exited() {
		return nil, fmt.Errorf("%s server exited during the load (%v)", target, srv.c.err)
	}
	m, err := procMem(pid)
	if err != nil {
		return nil, err
	}
	return &phaseOut{res: res, cpu: cpu1 - cpu0, mem: m}, nil
}

// phaseOut is a phase's loadgen result and the server's counters.
type phaseOut struct {
	res phaseResult
	cpu time.Duration
	mem memStat
}

// settleCPU samples the server's CPU time until it stops moving (sessions
// that ended on the client side may still be closing on the server's), for
// at most settleMax.
func settleCPU(pid int) time.Duration {
	last, _ := procCPU(pid)
	for deadline := time.Now().Add(settleMax); time.Now().Before(deadline); {
		time.Sleep(settleStep)
		cur, _ := procCPU(pid)
		if cur == last {
			break
		}
		last = cur
	}
	return last
}

// storms runs the boot storm (every client once at -storm-conc) against
// coffer, then TLS and mutual TLS, with the server's peak RSS reset just
// before where the kernel permits it.
func (b *bench) storms(ctx context.Context, f *figures) error {
	for _, t := range stormTargets {
		b.logf("boot storm: %s, %d clients at concurrency %d...", t, b.opt.clients, b.opt.stormConc)
		pid := b.servers[t].c.pid()
		before, err := procMem(pid)
		if err != nil {
			return err
		}
		reset := resetPeakRSS(pid)
		out, err := b.phase(ctx, t, b.opt.stormConc, b.opt.clients, stormBound)
		if err != nil {
			return err
		}
		f.Storm[t] = newStormFig(out, before, reset)
	}
	return nil
}

// loadPhases runs every concurrency, rounds times, with the targets
// interleaved within each round so that noise from other processes on the
// machine falls on all of them alike.
func (b *bench) loadPhases(ctx context.Context, f *figures) error {
	for _, conc := range b.opt.conc {
		outs := map[string][]*phaseOut{}
		for r := range b.opt.rounds {
			for _, t := range targets {
				b.logf("load: %s at concurrency %d for %v (round %d/%d)...", t, conc, b.opt.duration, r+1, b.opt.rounds)
				out, err := b.phase(ctx, t, conc, 0, b.opt.duration)
				if err != nil {
					return err
				}
				outs[t] = append(outs[t], out)
			}
		}
		for _, t := range targets {
			f.Load[t][concKey(conc)] = newLoadFig(outs[t])
		}
	}
	return nil
}

func concKey(c int) string { return "c" + strconv.Itoa(c) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(n int64) float64        { return float64(n) / (1 << 20) }
