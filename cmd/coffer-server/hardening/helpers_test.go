package hardening_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// maxRSS is the generous bound on the server's resident memory under
// every attack; the figures seen are logged.
const maxRSS = 150 << 20

// memory returns VmRSS and VmHWM of pid in bytes.
func memory(t testing.TB, pid int) (rss, hwm int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the server's status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm
}

// checkMemory asserts the bound and logs the figures.
func (p *proc) checkMemory(t testing.TB, when string) {
	t.Helper()
	rss, hwm := memory(t, p.Pid())
	t.Logf("server memory %s: VmRSS %.1f MiB, VmHWM %.1f MiB", when, mib(rss), mib(hwm))
	if hwm > maxRSS {
		t.Errorf("server VmHWM %.1f MiB, want < %.0f MiB", mib(hwm), mib(maxRSS))
	}
}

// openFDs counts the server's open file descriptors.
func openFDs(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

// checkNoLeak polls (with a deadline) until the server holds no more
// file descriptors than when it became ready: every attacked connection
// was closed, none leaked.
func (p *proc) checkNoLeak(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	n := openFDs(p.Pid())
	for n > p.fds0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling with a deadline
		n = openFDs(p.Pid())
	}
	t.Logf("server file descriptors: %d when ready, %d after the attack", p.fds0, n)
	if n > p.fds0 {
		t.Errorf("server holds %d file descriptors after the attack, %d when ready: a leak", n, p.fds0)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// cpuTime returns the user plus system CPU time pid has used
// (/proc/PID/stat fields 14 and 15, in clock ticks of 10 ms).
func cpuTime(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading the server's stat: %v", err)
	}
	// The command name may hold spaces; fields start after the last ')'.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// dialFrom connects to addr from the loopback address src ("" for any):
// attacks come from 127.0.0.2 so that per-address limits do not hit the
// legitimate client on 127.0.0.1.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d.Dial("tcp", addr)
}

// reply is what the server sent on one attacked connection before it
// closed it.
type reply struct {
	types  []frame.Type
	codes  []frame.ErrorCode // codes of plain Error frames
	end    error             // io.EOF, a reset, or a timeout (bad)
	closed time.Duration     // from the start of reading to the close
}

func (r reply) String() string {
	return fmt.Sprintf("frames %v codes %v, then %v after %v", r.types, r.codes, r.end, r.closed.Round(time.Millisecond))
}

// has reports whether the server sent a frame of type ty.
func (r reply) has(ty frame.Type) bool {
	for _, x := range r.types {
		if x == ty {
			return true
		}
	}
	return false
}

// closedCleanly: the server ended the connection (EOF or reset) rather
// than leaving it open past the wait.
func (r reply) closedCleanly() bool {
	var ne net.Error
	return r.end != nil && !(errors.As(r.end, &ne) && ne.Timeout())
}

// readReplies reads frames from c until the server closes it or wait
// passes, and closes c.
func readReplies(c net.Conn, wait time.Duration) reply {
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(start.Add(wait))
	var r reply
	for {
		f, err := frame.Read(c)
		if err != nil {
			r.end, r.closed = err, time.Since(start)
			if errors.Is(err, frame.ErrUnknownType) || errors.Is(err, frame.ErrTooLong) {
				// A frame the server must never send; drain to the close.
				_, err = io.Copy(io.Discard, c)
				r.end = fmt.Errorf("server sent a bad frame header (%v), then %v", r.end, err)
			}
			return r
		}
		r.types = append(r.types, f.Type)
		if f.Type == frame.TypeError {
			var b frame.ErrorBody
			if frame.Unmarshal(f.Body(), &b) == nil {
				r.codes = append(r.codes, b.Code)
			}
		}
	}
}

// attack sends b on a new connection from src, half-closes it when
// halfClose, and returns what the server replied.
func attack(src, addr string, b []byte, halfClose bool, wait time.Duration) (reply, error) {
	c, err := dialFrom(src, addr)
	if err != nil {
		return reply{}, err
	}
	if len(b) > 0 {
		if _, err := c.Write(b); err != nil && !isReset(err) {
			c.Close()
			return reply{}, err
		}
	}
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	return readReplies(c, wait), nil
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// parallel runs fn(i) for i in [0, n) on workers goroutines.
func parallel(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// legit fetches as client on a ticker while an attack runs; stop returns
// the number of fetches and the failures.
type legit struct {
	cancel context.CancelFunc
	done   chan struct{}
	ok     atomic.Int64
	mu     sync.Mutex
	errs   []error
}

func (p *proc) legitLoop(client, tag string, every time.Duration) *legit {
	ctx, cancel := context.WithCancel(context.Background())
	l := &legit{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			r, err := p.fetch(client)
			if err == nil {
				err = wantShard(r, tag)
			}
			if err != nil {
				record(err.Error())
				l.mu.Lock()
				l.errs = append(l.errs, err)
				l.mu.Unlock()
			} else {
				l.ok.Add(1)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return l
}

// stop ends the loop and fails t if any fetch failed or none succeeded.
func (l *legit) stop(t testing.TB) {
	t.Helper()
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("legitimate client during the attack: %d fetches ok, %d failed", l.ok.Load(), len(l.errs))
	for i, err := range l.errs {
		if i < 5 {
			t.Errorf("legitimate fetch during the attack: %v", err)
		}
	}
	if l.ok.Load() == 0 {
		t.Error("no legitimate fetch succeeded during the attack")
	}
}

// helloFrom runs Fetch over a pipe whose other end reads one frame and
// closes: it yields a fresh, valid Hello of key without a server.
func helloFrom(t testing.TB, key *coffer.PrivateKey, server coffer.PublicKey) []byte {
	t.Helper()
	a, b := net.Pipe()
	got := make(chan []byte, 1)
	go func() {
		f, err := frame.Read(b)
		b.Close()
		if err != nil {
			got <- nil
			return
		}
		got <- f.Raw
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	coffer.Fetch(ctx, a, &coffer.ClientConfig{Key: key, Server: server})
	a.Close()
	h := <-got
	if h == nil {
		t.Fatal("capturing a Hello failed")
	}
	return h
}

// hdr builds a frame header.
func hdr(n int, ty frame.Type) []byte { return []byte{byte(n >> 8), byte(n), byte(ty)} }
