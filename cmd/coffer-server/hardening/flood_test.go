package hardening_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// TestConnectionFlood opens idle connections far beyond the 16 slots and
// a burst of connect-and-close connections; the server's CPU and memory
// stay bounded and a legitimate client still gets its shard.
func TestConnectionFlood(t *testing.T) {
	f := newFixture(t, relaxedLimits, "web")
	f.next(t, "one")
	p := f.start(t, "--max-connections", "16", "--hello-timeout", "1s", "--handshake-timeout", "2s", "--session-timeout", "3s")
	before := cpuTime(t, p.Pid())
	const idle, churn = 96, 2000
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	parallel(idle, 16, func(int) {
		c, err := dialFrom("127.0.0.2", p.Addr)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
	})
	parallel(churn, 16, func(int) {
		if c, err := dialFrom("127.0.0.2", p.Addr); err == nil {
			c.Close()
		}
	})
	start := time.Now()
	r, err := fetchFrom(p.Addr, f.Server.Public(), f.Clients["web"], 30*time.Second)
	if err != nil {
		t.Fatalf("legitimate client behind the flood: %v", err)
	}
	if err := wantShard(r, "one"); err != nil {
		t.Fatal(err)
	}
	t.Logf("legitimate client served %v after %d idle and %d connect-close connections (16 slots, 1 s Hello deadline)",
		time.Since(start).Round(time.Millisecond), idle, churn)
	// Every idle connection is closed by the server at its deadline.
	for _, c := range held {
		if r := readReplies(c, 30*time.Second); !r.closedCleanly() {
			t.Errorf("idle flood connection: %v", r)
		}
	}
	used := cpuTime(t, p.Pid()) - before
	t.Logf("connection flood: server CPU %v for %d connections (%v each)", used, idle+churn, used/(idle+churn))
	if per := used / (idle + churn); per > 2*time.Millisecond {
		t.Errorf("server CPU %v per flood connection, want < 2ms", per)
	}
	p.mustServe(t, "web", "one")
	p.checkMemory(t, "after the connection flood")
	p.checkNoLeak(t)
	p.Stop()
	f.audit(t)
}

// TestHelloFlood sends Hellos with the known client's public key but bad
// proofs, and Hellos with made-up keys and valid proofs, from 127.0.0.2
// with the default rate limits on. The server refuses all of them with
// bounded CPU per Hello, and the legitimate client on 127.0.0.1 is
// served throughout.
func TestHelloFlood(t *testing.T) {
	f := newFixture(t, "", "web", "db")
	f.next(t, "one")
	p := f.start(t, "--max-connections", "64", "--hello-timeout", "1s", "--handshake-timeout", "2s", "--session-timeout", "3s")
	good := helloFrom(t, f.Clients["web"], f.Server.Public())
	strangers := make([][]byte, 64)
	for i := range strangers {
		strangers[i] = helloFrom(t, genKey(t), f.Server.Public())
	}
	l := p.legitLoop("db", "one", 100*time.Millisecond)

	for _, tc := range []struct {
		name  string
		n     int
		hello func(i int) []byte
	}{
		{"known key, bad proof", 3000, func(i int) []byte {
			b := append([]byte{}, good...)
			b[len(b)-1-i%16] ^= 0x80 // in the box's tag or ciphertext
			return b
		}},
		{"unknown keys, valid proofs", 1500, func(i int) []byte { return strangers[i%len(strangers)] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := cpuTime(t, p.Pid())
			start := time.Now()
			var mu sync.Mutex
			outcomes := map[string]int{}
			parallel(tc.n, 8, func(i int) {
				r, err := attack("127.0.0.2", p.Addr, tc.hello(i), false, replyWait)
				if !checkRefused(t, tc.name, r, err) {
					return
				}
				k := "closed"
				switch {
				case r.has(frame.TypeKeyNotFound):
					k = "KeyNotFound"
				case len(r.codes) > 0:
					k = "Error{" + r.codes[0].String() + "}"
				}
				mu.Lock()
				outcomes[k]++
				mu.Unlock()
			})
			used := cpuTime(t, p.Pid()) - before
			el := time.Since(start)
			t.Logf("%d Hellos in %v (%.0f/s): server CPU %v (%v a Hello); replies %v",
				tc.n, el.Round(time.Millisecond), float64(tc.n)/el.Seconds(), used, used/time.Duration(tc.n), outcomes)
			if per := used / time.Duration(tc.n); per > 2*time.Millisecond {
				t.Errorf("server CPU %v per flood Hello, want < 2ms", per)
			}
			if outcomes["Error{"+frame.CodeBusy.String()+"}"] == 0 {
				t.Errorf("no Error{busy}: the rate limit never applied")
			}
		})
	}
	l.stop(t)
	p.mustServe(t, "web", "one")
	p.checkMemory(t, "after the Hello floods")
	p.checkNoLeak(t)
	p.Stop()
	f.audit(t)
}

// TestReplayedHelloFlood replays one recorded Hello of a known client
// from another address, with the default rate limits. A Hello carries a
// valid proof but no liveness: it must neither lock the real client out
// (the per-client bucket) nor cost the server unbounded work.
func TestReplayedHelloFlood(t *testing.T) {
	f := newFixture(t, "", "web")
	f.next(t, "one")
	p := f.start(t, "--max-connections", "64", "--hello-timeout", "1s", "--handshake-timeout", "2s", "--session-timeout", "3s")
	hello := helloFrom(t, f.Clients["web"], f.Server.Public())
	before := cpuTime(t, p.Pid())
	const n = 1500
	var mu sync.Mutex
	outcomes := map[string]int{}
	l := p.legitLoop("web", "one", 100*time.Millisecond)
	start := time.Now()
	parallel(n, 4, func(i int) {
		// The replayer closes once it has its answer.
		r, err := attack("127.0.0.2", p.Addr, hello, true, replyWait)
		if err != nil {
			t.Error(err)
			return
		}
		if r.has(frame.TypeOkGet) {
			t.Errorf("replayed Hello: %v", r)
		}
		k := "closed"
		switch {
		case r.has(frame.TypeLink):
			k = "Link"
		case len(r.codes) > 0:
			k = "Error{" + r.codes[0].String() + "}"
		}
		mu.Lock()
		outcomes[k]++
		mu.Unlock()
	})
	l.stop(t)
	used := cpuTime(t, p.Pid()) - before
	t.Logf("%d replays of one Hello: server CPU %v (%v each); replies %v", n, used, used/n, outcomes)
	// The real client, from its own address, right after the flood.
	p.mustServe(t, "web", "one")
	// failed_auth_per_address: burst 50, 10/s (and slack for timing).
	if limit := 60 + int(10*time.Since(start).Seconds()); outcomes["Link"] > limit {
		t.Errorf("%d replayed Hellos got a Link (two scalar multiplications each), want at most %d: the per-address failure limit should stop them", outcomes["Link"], limit)
	}
	p.checkMemory(t, "after the replayed Hellos")
	p.checkNoLeak(t)
	p.Stop()
	f.audit(t)
}

// TestStolenKeyLoop: a client key used in a tight loop from another
// address (a stolen or looping client) gets its burst, then Error{busy}
// at no scalar multiplication, while another client is served.
func TestStolenKeyLoop(t *testing.T) {
	f := newFixture(t, "", "web", "db")
	f.next(t, "one")
	p := f.start(t)
	l := p.legitLoop("db", "one", 100*time.Millisecond)
	before := cpuTime(t, p.Pid())
	start := time.Now()
	const n = 400
	var mu sync.Mutex
	outcomes := map[string]int{}
	parallel(n, 4, func(int) {
		c, err := dialFrom("127.0.0.2", p.Addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_, err = coffer.Fetch(context.Background(), c, &coffer.ClientConfig{Key: f.Clients["web"], Server: f.Server.Public()})
		k := "ok"
		if err != nil {
			record(err.Error())
			k = errClass(err)
		}
		mu.Lock()
		outcomes[k]++
		mu.Unlock()
	})
	l.stop(t)
	used := cpuTime(t, p.Pid()) - before
	t.Logf("%d fetches in a loop with one key: %v; server CPU %v (%v a fetch)", n, outcomes, used, used/n)
	// per_client: burst 20, 10/s (and slack for timing).
	if limit := 30 + int(10*time.Since(start).Seconds()); outcomes["ok"] > limit || outcomes["server Error{"+frame.CodeBusy.String()+"}"] == 0 {
		t.Errorf("the per-client limit did not apply: %v", outcomes)
	}
	p.checkMemory(t, "after a looping client")
	p.checkNoLeak(t)
	p.Stop()
	f.audit(t)
}

// TestFDExhaustion runs the server with 40 file descriptors and opens
// 100 idle connections: accept fails with EMFILE until the idle ones are
// cut, the server stays up and a legitimate client gets through.
func TestFDExhaustion(t *testing.T) {
	f := newFixture(t, relaxedLimits, "web")
	f.next(t, "one")
	f.wrap = []string{"sh", "-c", `ulimit -n 40 && exec "$0" "$@"`}
	p := f.start(t, "--hello-timeout", "1s", "--handshake-timeout", "2s", "--session-timeout", "3s")
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for range 100 {
		c, err := dialFrom("127.0.0.2", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	start := time.Now()
	r, err := fetchFrom(p.Addr, f.Server.Public(), f.Clients["web"], 30*time.Second)
	if err != nil {
		t.Fatalf("legitimate client with the server out of file descriptors: %v", err)
	}
	if err := wantShard(r, "one"); err != nil {
		t.Fatal(err)
	}
	t.Logf("legitimate client served after %v; the server's file descriptors: limit 40, %d in use at start", time.Since(start).Round(time.Millisecond), p.fds0)
	for _, c := range held {
		if r := readReplies(c, 30*time.Second); !r.closedCleanly() {
			t.Errorf("idle connection: %v", r)
		}
	}
	if _, _, ok := p.Logs.WaitFor(0, `accept failed`, time.Second); !ok {
		t.Logf("no accept failure logged (the backlog absorbed the connections)")
	}
	p.mustServe(t, "web", "one")
	p.checkMemory(t, "after file descriptor exhaustion")
	p.checkNoLeak(t)
	p.Stop()
}
