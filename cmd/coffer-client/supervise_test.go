package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// childEnv makes the test binary act as the program that exec --watch
// supervises (childMain), instead of running the tests.
const childEnv = "COFFER_TEST_WATCH_CHILD"

func init() {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
}

// childMain is a program that reports on stderr, one line each, its
// start (with its pid and $API_KEY), each SIGHUP and SIGUSR1 (with the
// text of the file $WATCH_FILE at that moment), and SIGTERM, after
// which it exits with status 7.
func childMain() int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM)
	fmt.Fprintf(os.Stderr, "child: start pid %d api-key %s\n", os.Getpid(), os.Getenv("API_KEY"))
	for sig := range sigs {
		if sig == syscall.SIGTERM {
			fmt.Fprintln(os.Stderr, "child: term")
			return 7
		}
		text, err := os.ReadFile(os.Getenv("WATCH_FILE"))
		if err != nil {
			text = []byte(err.Error())
		}
		fmt.Fprintf(os.Stderr, "child: %s file %s\n", sig, text)
	}
	return 0
}

var childPidRE = regexp.MustCompile(`child: start pid (\d+)`)

// execWatch starts exec --watch with args before "--" and the test binary
// as the program, which reads $WATCH_FILE (DIR/api-key).
func (fx *fixture) execWatch(dir, addr string, args ...string) *e2e.Proc {
	fx.t.Helper()
	test, err := os.Executable()
	if err != nil {
		fx.t.Fatal(err)
	}
	args = append(append([]string{"exec", "--watch", "--watch-interval", "100ms"}, args...), fx.base("--server", addr)...)
	return fx.launch([]string{childEnv + "=1", "WATCH_FILE=" + filepath.Join(dir, "api-key")},
		append(args, "--", test)...)
}

// swapper publishes definitions with a new api-key value at rising
// serials.
type swapper struct {
	fx     *fixture
	ts     *testServer
	serial uint64
}

func (sw *swapper) next(apiKey string) time.Time {
	sw.serial++
	s := testShard()
	s["canary"] = str(canary)
	s["api-key"] = str(apiKey)
	now := time.Now()
	sw.ts.swap(sw.serial, map[coffer.PublicKey]frame.Shard{sw.fx.client.Public(): s})
	return now
}

// TestExecWatchSignal runs exec --watch --out with the default --signal
// HUP: after each change the program is signalled, and the file it reads
// then holds the new value. It measures the time from publishing a new
// serial to the program's report of the signal (interval 100 ms).
func TestExecWatchSignal(t *testing.T) {
	fx := newFixture(t)
	sw := &swapper{fx: fx, ts: fx.serve(nil, 1), serial: 1}
	dir := filepath.Join(fx.dir, "out")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := fx.execWatch(dir, sw.ts.addr, "--out", dir)
	_, at := p.Logs.Wait(t, 0, `^child: start pid \d+ api-key simple$`)
	var lat []time.Duration
	for i := range 5 {
		v := "value-" + strconv.Itoa(i)
		start := sw.next(v)
		_, at = p.Logs.Wait(t, at, `^child: hangup file `+v+`$`)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("publish to SIGHUP at --watch-interval 100ms: min %s, median %s, max %s", lat[0], lat[len(lat)/2], lat[len(lat)-1])
	t.Run("signals forwarded", func(t *testing.T) {
		p.Signal(syscall.SIGUSR1)
		_, at = p.Logs.Wait(t, at, `^child: user defined signal 1 file value-4$`)
	})
	t.Run("server down keeps the program", func(t *testing.T) {
		sw.ts.srv.Close()
		_, at = p.Logs.Wait(t, at, `check failed; keeping serial 6`)
		_, at = p.Logs.Wait(t, at, `check failed; keeping serial 6`)
		if p.WaitExit(0) {
			t.Fatal("coffer-client exited while the server was down")
		}
	})
	t.Run("exit status is the program's", func(t *testing.T) {
		p.Signal(syscall.SIGTERM)
		p.Logs.Wait(t, at, `^child: term$`)
		wantExit(t, p, 7)
	})
}

// TestExecWatchRestart runs exec --watch --restart: a change stops the
// program and starts it again with the new value in its environment.
func TestExecWatchRestart(t *testing.T) {
	fx := newFixture(t)
	sw := &swapper{fx: fx, ts: fx.serve(nil, 1), serial: 1}
	p := fx.execWatch(fx.dir, sw.ts.addr, "--restart")
	line, at := p.Logs.Wait(t, 0, `^child: start pid \d+ api-key simple$`)
	first := childPidRE.FindStringSubmatch(line)[1]
	sw.next("second")
	_, at = p.Logs.Wait(t, at, `^child: term$`)
	line, _ = p.Logs.Wait(t, at, `^child: start pid \d+ api-key second$`)
	second := childPidRE.FindStringSubmatch(line)[1]
	if first == second {
		t.Fatalf("pid %s was not replaced", first)
	}
	p.Logs.Wait(t, at, `restarted .*: pid `+first+` -> `+second)
	t.Run("ended by a signal", func(t *testing.T) {
		pid, _ := strconv.Atoi(second)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wantExit(t, p, 128+int(syscall.SIGKILL))
	})
}

// TestExecWatchOnChange runs exec --watch --on-change: the command runs
// and the program gets no signal.
func TestExecWatchOnChange(t *testing.T) {
	fx := newFixture(t)
	sw := &swapper{fx: fx, ts: fx.serve(nil, 1), serial: 1}
	p := fx.execWatch(fx.dir, sw.ts.addr, "--on-change", `echo "on-change $COFFER_SERIAL" >&2`)
	_, at := p.Logs.Wait(t, 0, `^child: start`)
	sw.next("second")
	_, at = p.Logs.Wait(t, at, `^on-change 2$`)
	p.Signal(syscall.SIGTERM)
	for _, l := range p.Logs.Since(0) {
		if l == "child: hangup file second" {
			t.Errorf("the program was signalled as well as --on-change run")
		}
	}
	wantExit(t, p, 7)
}

func TestExecWatchUsage(t *testing.T) {
	fx := newFixture(t)
	srv := closedAddr(t)
	tests := []struct {
		name string
		args []string
	}{
		{"signal without watch", []string{"--signal", "USR1"}},
		{"restart without watch", []string{"--restart"}},
		{"out without watch", []string{"--out", fx.dir}},
		{"signal and restart", []string{"--watch", "--signal", "USR1", "--restart"}},
		{"restart and on-change", []string{"--watch", "--restart", "--on-change", "true"}},
		{"unknown signal", []string{"--watch", "--signal", "KILL"}},
		{"format without out", []string{"--watch", "--format", "json"}},
		{"out dir missing", []string{"--watch", "--out", filepath.Join(fx.dir, "nope")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"exec"}, tt.args...), fx.base("--server", srv)...)
			r := fx.run(nil, append(args, "--", "true")...)
			r.want(t, exitUsage)
		})
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		ok   bool
	}{
		{"HUP", syscall.SIGHUP, true}, {"SIGHUP", syscall.SIGHUP, true}, {"usr2", syscall.SIGUSR2, true},
		{"KILL", 0, false}, {"", 0, false}, {"1", 0, false}, {"SIG", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSignal(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("got %v, %v; want %v, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}

// TestExecWatchParentKilled checks that the program is told to stop
// (SIGTERM, by PR_SET_PDEATHSIG) when coffer-client is killed outright.
func TestExecWatchParentKilled(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	p := fx.execWatch(fx.dir, ts.addr)
	_, at := p.Logs.Wait(t, 0, `^child: start`)
	p.Signal(syscall.SIGKILL)
	p.Logs.Wait(t, at, `^child: term$`)
}
