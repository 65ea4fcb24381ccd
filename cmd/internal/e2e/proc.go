package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// procTimeout bounds each wait for a notification or an exit.
const procTimeout = 30 * time.Second

// notifyBacklog bounds the datagrams kept unread; later ones are dropped
// so the reader never blocks after a test stops listening.
const notifyBacklog = 256

// NotifySocket listens on a fresh unixgram socket standing in for
// systemd's NOTIFY_SOCKET, and returns its path and the datagrams it
// receives. Both are closed at the end of the test.
func NotifySocket(t testing.TB) (string, <-chan string) {
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
	msgs := make(chan string, notifyBacklog)
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

// Options are how Launch starts a process.
type Options struct {
	Env        []string     // the environment before NOTIFY_SOCKET; nil means os.Environ()
	ExtraFiles []*os.File   // passed as fds 3 and up
	Record     func(string) // gets each stderr line and the whole stdout; may be nil
}

// Proc is a running coffer-server (or a wrapper that execs it).
type Proc struct {
	Cmd    *exec.Cmd
	Logs   *Logs         // its stderr
	Notify <-chan string // datagrams on its NOTIFY_SOCKET
	Addr   string        // its listening address, set by WaitListening or the test

	t    testing.TB
	done chan struct{}
	err  error
}

// Launch starts argv with a fake NOTIFY_SOCKET, without waiting. The
// process is killed, if still running, at the end of the test.
func Launch(t testing.TB, argv []string, o Options) *Proc {
	t.Helper()
	sdPath, msgs := NotifySocket(t)
	cmd := exec.Command(argv[0], argv[1:]...)
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env[:len(env):len(env)], "NOTIFY_SOCKET="+sdPath)
	cmd.ExtraFiles = o.ExtraFiles
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	p := &Proc{Cmd: cmd, Notify: msgs, t: t, done: make(chan struct{})}
	p.Logs = NewLogs(stderr, o.Record)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		if o.Record != nil {
			o.Record(stdout.String())
		}
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Done is closed when the process has exited; Err is then its exit error.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for exit status 0), valid once
// Done is closed.
func (p *Proc) Err() error { return p.err }

// T is the test that launched the process, which its waits fail.
func (p *Proc) T() testing.TB { return p.t }

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Kill sends SIGKILL, if the process still runs, and waits for the exit.
func (p *Proc) Kill() {
	select {
	case <-p.done:
	default:
		p.Cmd.Process.Kill()
		<-p.done
	}
}

// Signal sends sig, failing the test if it cannot.
func (p *Proc) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// WaitNotify waits for a datagram containing want and returns it.
func (p *Proc) WaitNotify(want string) string {
	p.t.Helper()
	deadline := time.After(procTimeout)
	for {
		select {
		case m, ok := <-p.Notify:
			if !ok {
				p.t.Fatalf("notify socket closed before %q", want)
			}
			if strings.Contains(m, want) {
				return m
			}
		case <-p.done:
			p.t.Fatalf("server exited (%v) before notifying %q; log:\n%s", p.err, want, p.Logs.All())
		case <-deadline:
			p.t.Fatalf("no %q notification; log:\n%s", want, p.Logs.All())
		}
	}
}

// WaitReady waits for READY=1 and returns the datagram.
func (p *Proc) WaitReady() string { return p.WaitNotify("READY=1") }

var addrRE = regexp.MustCompile(`addr=(\S+)`)

// WaitListening waits for the "listening" log line and sets Addr from it.
func (p *Proc) WaitListening() {
	p.t.Helper()
	line, _ := p.Logs.Wait(p.t, 0, `msg=listening .*addr=`)
	p.Addr = addrRE.FindStringSubmatch(line)[1]
}

// WaitExit waits up to d for the process to exit by itself.
func (p *Proc) WaitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// WaitClean waits for the process to exit with status 0.
func (p *Proc) WaitClean() {
	p.t.Helper()
	if !p.WaitExit(procTimeout) {
		p.t.Fatal("server did not exit after SIGTERM")
	}
	if p.err != nil {
		p.t.Fatalf("server exited with %v; log:\n%s", p.err, p.Logs.All())
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *Proc) Stop() {
	p.t.Helper()
	p.Signal(syscall.SIGTERM)
	p.WaitClean()
}

// Fetch fetches key's whole shard from the server at addr, within d.
func Fetch(addr string, server coffer.PublicKey, key *coffer.PrivateKey, d time.Duration) (*coffer.Result, error) {
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
