package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

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
	cmd.Env = fx.environ()
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
		r := fx.run(nil, append([]string{"get"}, fx.base("--server", closedAddr(t), "--wait", "1500ms")...)...)
		r.want(t, exitUnreachable)
		if !bytes.Contains(r.stderr, []byte("coffer-client: retry 1 ")) || !bytes.Contains(r.stderr, []byte("no server answered within 1.5s")) {
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

// TestTimeoutBoundsTheAttempt pins docs/client.md: --timeout is one
// deadline for the whole attempt with one server (connect, every read
// and write), not a limit per read. The fake server trickles a Link one
// byte every 20 ms, so no single read waits long; the 122-byte body
// would take about 2.4 s, and the attempt must end at its 300 ms.
func TestTimeoutBoundsTheAttempt(t *testing.T) {
	fx := newFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		trickle := append([]byte{0, 122, byte(frame.TypeLink)}, make([]byte, 122)...)
		for _, b := range trickle {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	r := fx.run(nil, append([]string{"get"}, fx.base("--server", l.Addr().String(), "--timeout", "300ms")...)...)
	r.want(t, exitUnreachable)
	if !bytes.Contains(r.stderr, []byte("deadline exceeded")) {
		t.Errorf("stderr does not report the attempt's deadline:\n%s", r.stderr)
	}
}

func TestAuthFailures(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	other, _ := coffer.GenerateKey(rand.Reader)
	t.Run("wrong pinned key", func(t *testing.T) {
		// The server cannot open the proof and answers a plain
		// Error{auth}, which anyone could forge: the client retries
		// within --wait, then says what it saw, in one error line.
		r := fx.run(nil, append([]string{"get", "--server", ts.addr, "--wait", "700ms"},
			fx.base("--server-key", other.Public().String())...)...)
		r.want(t, exitAuth)
		if !bytes.Contains(r.stderr, []byte("retry 1 ")) || !bytes.Contains(r.stderr, []byte("hint: the pinned server key may be wrong")) ||
			bytes.Count(r.stderr, []byte("coffer-client: error:")) != 1 {
			t.Errorf("want retries, one error line and the pinned-key hint:\n%s", r.stderr)
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
		// Two servers that do not know this client, in whichever order the
		// shuffle picks: the first answer is final, so exactly one of them
		// is ever connected to.
		var ls [2]*countingListener
		addrs := make([]string, len(ls))
		for i := range ls {
			ls[i] = listenCounting(t)
			fx.serve(ls[i], 1).swap(1, map[coffer.PublicKey]frame.Shard{other.Public(): {"x": str("y")}})
			addrs[i] = ls[i].Addr().String()
		}
		for i := range 4 {
			r := fx.run(nil, append([]string{"get"}, fx.base("--server", strings.Join(addrs, ","))...)...)
			r.want(t, exitAuth)
			if got := ls[0].n.Load() + ls[1].n.Load(); got != int64(i+1) {
				t.Fatalf("run %d: %d connections in all, want %d (one a run)", i, got, i+1)
			}
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
	t.Run("not when a server answered stale", func(t *testing.T) {
		// The cache (serial 9) would pass --min-serial 5, but a server
		// answered, so its refusal stands.
		ts.swap(4, map[coffer.PublicKey]frame.Shard{fx.client.Public(): fx.shard})
		r := fx.run(nil, append([]string{"get"}, fx.base("--server", ts.addr, "--cache", cache, "--min-serial", "5")...)...)
		r.want(t, exitFailure)
		if len(r.stdout) != 0 || bytes.Contains(r.stderr, []byte("using the cache")) {
			t.Errorf("the cache was used after a stale answer:\n%s", r.stderr)
		}
	})
	t.Run("nothing recorded when the output fails", func(t *testing.T) {
		ts.swap(11, map[coffer.PublicKey]frame.Shard{fx.client.Public(): fx.shard})
		before, _ := os.ReadFile(cache)
		fx.run(nil, append([]string{"get", "--format", "env", "--out", filepath.Join(fx.dir, "no", "such", "file")},
			fx.base("--server", ts.addr, "--cache", cache, "--state", state)...)...).want(t, exitFailure)
		if after, _ := os.ReadFile(cache); !bytes.Equal(before, after) {
			t.Error("the cache was replaced although the output failed")
		}
		if data, _ := os.ReadFile(state); bytes.Contains(data, []byte(" 11\n")) {
			t.Error("the state was raised although the output failed")
		}
	})
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func listenCounting(t *testing.T) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &countingListener{Listener: l}
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// plainErrorServer answers every Hello with a plain (unsealed) Error of
// code, as anyone on the path could, and counts its connections.
func plainErrorServer(t *testing.T, code frame.ErrorCode) *countingListener {
	t.Helper()
	body, err := frame.Marshal(&frame.ErrorBody{Code: code})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := frame.New(frame.TypeError, body)
	if err != nil {
		t.Fatal(err)
	}
	l := listenCounting(t)
	var wg sync.WaitGroup
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				if _, err := frame.Read(c, frame.TypeHello); err == nil {
					c.Write(reply.Raw)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepting
		wg.Wait()
	})
	return l
}

// TestPlainErrors: an unsealed Error proves nothing about the server, so
// the client moves on to the next one and, with --wait, keeps retrying
// until the deadline; the status then tells what was seen
// (docs/client.md, "Exit status").
func TestPlainErrors(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	t.Run("failover past a plain auth error", func(t *testing.T) {
		forged := plainErrorServer(t, frame.CodeAuth)
		// The order is shuffled: run until the forging server has been
		// tried first, which half the runs do.
		for i := 0; forged.n.Load() == 0; i++ {
			if i == 64 {
				t.Fatal("the forging server was not tried first in 64 runs")
			}
			r := fx.run(nil, append([]string{"get", "--format", "raw", "port"},
				fx.base("--server", forged.Addr().String()+","+ts.addr)...)...)
			r.want(t, exitOK)
			if string(r.stdout) != "-5432" {
				t.Fatalf("run %d: got %q, want -5432", i, r.stdout)
			}
		}
	})
	for _, tt := range []struct {
		name string
		code frame.ErrorCode
		want int
	}{
		{"every server plain auth", frame.CodeAuth, exitAuth},
		{"every server plain version", frame.CodeVersion, exitFailure},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := plainErrorServer(t, tt.code), plainErrorServer(t, tt.code)
			r := fx.run(nil, append([]string{"get"},
				fx.base("--server", a.Addr().String()+","+b.Addr().String(), "--wait", "1s")...)...)
			r.want(t, tt.want)
			if !bytes.Contains(r.stderr, []byte("retry 1 ")) || !bytes.Contains(r.stderr, []byte("every answer was unauthenticated")) {
				t.Errorf("want retries, then an error that says every answer was unauthenticated:\n%s", r.stderr)
			}
			if got := a.n.Load() + b.n.Load(); got <= 2 {
				t.Errorf("got %d connections, want more than one round", got)
			}
		})
	}
}

// TestClassify names every row of fetch's decision on a failed attempt.
func TestClassify(t *testing.T) {
	plain := func(c frame.ErrorCode) error { return &coffer.RemoteError{Code: c} }
	sealed := func(c frame.ErrorCode) error { return &coffer.RemoteError{Code: c, Sealed: true} }
	wrap := func(err error) error { return fmt.Errorf("reading link: %w", err) }
	// What coffer.Fetch returns for answers that did not authenticate:
	// the error and coffer.ErrUnverified both match.
	unverified := func(err error) error { return fmt.Errorf("%w: %w", err, coffer.ErrUnverified) }
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}
	tests := []struct {
		name string
		err  error
		want outcome
	}{
		{"unsealed auth", plain(frame.CodeAuth), nextUnverifiedAuth},
		{"unsealed auth wrapped", wrap(plain(frame.CodeAuth)), nextUnverifiedAuth},
		{"unsealed version", plain(frame.CodeVersion), nextUnverified},
		{"unsealed malformed", plain(frame.CodeMalformed), nextUnverified},
		{"unsealed unknown code", plain(99), nextUnverified},
		{"unsealed busy", plain(frame.CodeBusy), next},
		{"unsealed unavailable", plain(frame.CodeUnavailable), next},
		{"unsealed internal", plain(frame.CodeInternal), next},
		{"link that does not open or is not this session's", wrap(unverified(coffer.ErrServerAuth)), nextUnverifiedAuth},
		{"error body neither sealed nor plain", unverified(errors.New("undecodable")), nextUnverified},
		{"keynotfound that does not open or is replayed", unverified(errors.New("keynotfound")), nextUnverified},
		{"wrong frame type where link belongs", unverified(fmt.Errorf("%w: %w", coffer.ErrProtocol, frame.ErrUnexpected)), nextUnverified},
		{"chunk that does not open", unverified(fmt.Errorf("%w: okget 1 did not open", coffer.ErrProtocol)), nextUnverified},
		{"link of this session with an unusable se", wrap(coffer.ErrServerAuth), stopAuth},
		{"sealed auth", sealed(frame.CodeAuth), stopAuth},
		{"unknown client", wrap(coffer.ErrUnknownClient), stopAuth},
		{"stale server", wrap(coffer.ErrRollback), nextStale},
		{"sealed busy", sealed(frame.CodeBusy), next},
		{"sealed unavailable", sealed(frame.CodeUnavailable), next},
		{"sealed internal", sealed(frame.CodeInternal), next},
		{"sealed version", sealed(frame.CodeVersion), stopFailure},
		{"sealed malformed", sealed(frame.CodeMalformed), stopFailure},
		{"protocol violation inside an opened box", wrap(coffer.ErrProtocol), stopFailure},
		{"connection refused", wrap(syscall.ECONNREFUSED), next},
		{"connection reset", wrap(syscall.ECONNRESET), next},
		{"broken pipe", wrap(syscall.EPIPE), next},
		{"attempt timed out", wrap(context.DeadlineExceeded), next},
		{"truncated session", wrap(io.ErrUnexpectedEOF), next},
		{"closed session", wrap(io.EOF), next},
		{"network error", dialErr, next},
		{"canceled", wrap(context.Canceled), stopFailure},
		{"anything else", errors.New("unknown"), stopFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Errorf("classify(%v): got %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestVerdict names every row of the status of a fetch that ended with
// no final answer: each server's last outcome decides
// (docs/client.md, "Exit status").
func TestVerdict(t *testing.T) {
	u, a := nextUnverified, nextUnverifiedAuth
	tests := []struct {
		name string
		last []outcome
		want int
	}{
		{"one server unreachable", []outcome{next}, exitUnreachable},
		{"every server unreachable", []outcome{next, next}, exitUnreachable},
		{"one server plain auth", []outcome{a}, exitAuth},
		{"every server plain auth or a link that does not open", []outcome{a, a}, exitAuth},
		{"plain auth beside plain version and garbage", []outcome{a, u, u}, exitAuth},
		{"plain auth beside an unreachable server", []outcome{next, a}, exitAuth},
		{"every server plain version, malformed or garbage", []outcome{u, u}, exitFailure},
		{"one server garbage", []outcome{u}, exitFailure},
		{"garbage beside an unreachable server", []outcome{u, next}, exitUnreachable},
		{"no server tried before the deadline", []outcome{next, next, next}, exitUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verdict(tt.last); got != tt.want {
				t.Errorf("verdict(%v): got %d, want %d", tt.last, got, tt.want)
			}
		})
	}
}

// TestCutByDeadline: both errors a dial cut off by the --wait deadline
// can end with count as cut once the deadline has passed, and nothing
// counts before it, without --wait, or for an answer.
func TestCutByDeadline(t *testing.T) {
	past, future := time.Now().Add(-time.Millisecond), time.Now().Add(time.Hour)
	ctxCut := &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}
	sockCut := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	answer := fmt.Errorf("127.0.0.1:1: %w", coffer.ErrUnverified)
	for _, tc := range []struct {
		name     string
		err      error
		wait     time.Duration
		deadline time.Time
		want     bool
	}{
		{"context deadline, past", ctxCut, time.Second, past, true},
		{"socket deadline (i/o timeout), past", sockCut, time.Second, past, true},
		{"socket deadline, before the deadline (--timeout)", sockCut, time.Second, future, false},
		{"no --wait", sockCut, 0, past, false},
		{"an unverified answer after the deadline", answer, time.Second, past, false},
	} {
		if got := cutByDeadline(tc.err, tc.wait, tc.deadline); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if !strings.Contains(sockCut.Error(), "i/o timeout") {
		t.Fatalf("the socket deadline error reads %q, not the i/o timeout the flaky run showed", sockCut.Error())
	}
}
