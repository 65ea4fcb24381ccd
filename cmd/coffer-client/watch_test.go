package main

import (
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

func TestWatchDelay(t *testing.T) {
	const m = time.Minute
	tests := []struct {
		name     string
		interval time.Duration
		fails    int
		u        float64
		want     time.Duration
	}{
		{"success, lowest", m, 0, 0, 30 * time.Second},
		{"success, middle", m, 0, 0.5, m},
		{"success, near highest", m, 0, 0.999, 89940 * time.Millisecond},
		{"first failure", m, 1, 0.5, time.Second},
		{"second failure", m, 2, 0.5, 2 * time.Second},
		{"sixth failure", m, 6, 0.5, 32 * time.Second},
		{"seventh failure: capped at the interval", m, 7, 0.5, m},
		{"many failures: no overflow", m, 1000, 0.5, m},
		{"short interval caps the first retry", 200 * time.Millisecond, 1, 0, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := watchDelay(tt.interval, tt.fails, tt.u); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSameShard(t *testing.T) {
	base := func() frame.Shard {
		return frame.Shard{"a": str("x"), "n": {Kind: frame.KindFloat, Float: math.NaN()}, "i": {Kind: frame.KindInt, Int: 1}}
	}
	tests := []struct {
		name   string
		change func(frame.Shard)
		same   bool
	}{
		{"identical, NaN included", func(frame.Shard) {}, true},
		{"text changed", func(s frame.Shard) { s["a"] = str("y") }, false},
		{"kind changed", func(s frame.Shard) { s["i"] = frame.Value{Kind: frame.KindFloat, Float: 1} }, false},
		{"int changed", func(s frame.Shard) { s["i"] = frame.Value{Kind: frame.KindInt, Int: 2} }, false},
		{"name added", func(s frame.Shard) { s["b"] = str("x") }, false},
		{"name removed", func(s frame.Shard) { delete(s, "a") }, false},
		{"name renamed", func(s frame.Shard) { s["b"] = s["a"]; delete(s, "a") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base()
			tt.change(b)
			if got := sameShard(base(), b); got != tt.same {
				t.Errorf("got %v, want %v", got, tt.same)
			}
		})
	}
}

// launch starts a long-running coffer-client (watch or agent) with the
// clean environment; its stderr lines are in p.Logs and are checked for
// the canary at the end of the test.
func (fx *fixture) launch(env []string, args ...string) *e2e.Proc {
	fx.t.Helper()
	var out e2e.Outputs
	p := e2e.Launch(fx.t, append([]string{clientBin}, args...), e2e.Options{Env: environ(env...), Record: out.Record})
	fx.t.Cleanup(func() {
		if leaks := out.Containing(canary, trickyText[:10]); len(leaks) > 0 {
			fx.t.Errorf("a secret value reached coffer-client's output: %q", leaks)
		}
	})
	return p
}

// wantExit waits for the process to exit with status code.
func wantExit(t *testing.T, p *e2e.Proc, code int) {
	t.Helper()
	if !p.WaitExit(30 * time.Second) {
		t.Fatalf("coffer-client did not exit; log:\n%s", p.Logs.All())
	}
	if got := p.Cmd.ProcessState.ExitCode(); got != code {
		t.Fatalf("got exit status %d, want %d; log:\n%s", got, code, p.Logs.All())
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGetWatch runs get --watch --out DIR against a server whose
// definition changes: new values are written and --on-change runs, a
// new serial with the same values writes nothing, an older serial and a
// server that is down change nothing, and the watch goes on through all
// of it until SIGTERM.
func TestGetWatch(t *testing.T) {
	fx := newFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := fx.serve(l, 1)
	out := filepath.Join(fx.dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(fx.dir, "state")
	p := fx.launch(nil, append([]string{"get", "--out", out, "--watch", "--watch-interval", "100ms", "--state", state,
		"--on-change", `echo "on-change serial $COFFER_SERIAL: $(cat ` + out + `/api-key)" >&2`}, fx.base("--server", ts.addr)...)...)
	_, at := p.Logs.Wait(t, 0, `serial 1 written to .*; checking every 100ms`)
	if got := readFile(t, filepath.Join(out, "api-key")); got != "simple" {
		t.Fatalf("api-key: got %q, want %q", got, "simple")
	}
	shards := func(v string) map[coffer.PublicKey]frame.Shard {
		s := testShard()
		s["canary"] = str(canary)
		s["api-key"] = str(v)
		return map[coffer.PublicKey]frame.Shard{fx.client.Public(): s}
	}

	t.Run("new values", func(t *testing.T) {
		ts.swap(2, shards("second"))
		_, at = p.Logs.Wait(t, at, `serial 2 \(was 1\): wrote `)
		_, at = p.Logs.Wait(t, at, `^on-change serial 2: second$`) // the file was written before the command ran
	})
	t.Run("same values", func(t *testing.T) {
		ts.swap(3, shards("second"))
		_, at = p.Logs.Wait(t, at, `serial 3 \(was 2\): no value of this client changed`)
		// Serial 2 was committed before serial 3 was fetched.
		if got := readFile(t, state); !strings.Contains(got, fx.server.Public().String()+" 2\n") &&
			!strings.Contains(got, fx.server.Public().String()+" 3\n") {
			t.Errorf("state file: got %q, want serial 2 or 3 remembered", got)
		}
	})
	t.Run("older serial refused", func(t *testing.T) {
		ts.swap(2, shards("rolled-back"))
		_, at = p.Logs.Wait(t, at, `check failed; keeping serial 3, retrying .*older|check failed; keeping serial 3, retrying .*serial 2`)
		if got := readFile(t, filepath.Join(out, "api-key")); got != "second" {
			t.Errorf("api-key: got %q after a rollback, want %q kept", got, "second")
		}
	})
	t.Run("server down, then back", func(t *testing.T) {
		ts.srv.Close()
		// The retries start at 1s, but never wait longer than the interval.
		_, at = p.Logs.Wait(t, at, `check failed; keeping serial 3, retrying in about 100ms: .*connection refused`)
		_, at = p.Logs.Wait(t, at, `check failed; keeping serial 3, retrying in about 100ms: .*connection refused`)
		l2, err := net.Listen("tcp", ts.addr)
		if err != nil {
			t.Skipf("could not listen again on %s: %v", ts.addr, err)
		}
		ts2 := fx.serve(l2, 4)
		ts2.swap(4, shards("fourth"))
		_, at = p.Logs.Wait(t, at, `serial 4 \(was 3\): wrote `)
		if got := readFile(t, filepath.Join(out, "api-key")); got != "fourth" {
			t.Errorf("api-key: got %q, want %q", got, "fourth")
		}
	})
	p.Signal(syscall.SIGTERM)
	wantExit(t, p, exitOK)
}

// TestGetWatchUsage checks the watch options' usage errors, made before
// anything is fetched.
func TestGetWatchUsage(t *testing.T) {
	fx := newFixture(t)
	srv := closedAddr(t)
	tests := []struct {
		name string
		args []string
	}{
		{"watch without out", []string{"get", "--watch"}},
		{"interval without watch", []string{"get", "--out", fx.dir, "--watch-interval", "1s"}},
		{"on-change without watch", []string{"get", "--out", fx.dir, "--on-change", "true"}},
		{"interval too short", []string{"get", "--out", fx.dir, "--watch", "--watch-interval", "1ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fx.run(nil, append(tt.args, fx.base("--server", srv)...)...)
			r.want(t, exitUsage)
		})
	}
}

// TestGetWatchHUP checks that SIGHUP makes get --watch check at once:
// with an interval of an hour, the next check would otherwise come in
// 30 to 90 minutes.
func TestGetWatchHUP(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	out := filepath.Join(fx.dir, "out.json")
	p := fx.launch(nil, append([]string{"get", "--format", "json", "--out", out, "--watch", "--watch-interval", "1h"},
		fx.base("--server", ts.addr)...)...)
	_, at := p.Logs.Wait(t, 0, `serial 1 written to .*; checking every 1h0m0s`)
	s := testShard()
	s["api-key"] = str("after-hup")
	ts.swap(2, map[coffer.PublicKey]frame.Shard{fx.client.Public(): s})
	p.Signal(syscall.SIGHUP)
	p.Logs.Wait(t, at, `serial 2 \(was 1\): wrote `)
	if got := readFile(t, out); !strings.Contains(got, `"after-hup"`) {
		t.Errorf("got %s, want the new value", got)
	}
	p.Signal(syscall.SIGTERM)
	wantExit(t, p, exitOK)
}
