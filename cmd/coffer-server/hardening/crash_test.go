package hardening_test

import (
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killDuringLoads kills the server with SIGKILL at random points of
// definition loads, alternately of the load at start and of a SIGHUP
// reload, and after each kill restarts it on the store alone (no sealed
// file): it must open and serve exactly one whole definition, the
// previous or the new one, to every client.
func killDuringLoads(t *testing.T, iterations, clients int) {
	f := newFixture(t, relaxedLimits, "web", "db")
	f.extra = clients // a load big enough to be hit in the middle
	f.next(t, "gen1")
	start := time.Now()
	p := f.start(t)
	startLoad := time.Since(start)
	p.mustServe(t, "web", "gen1")
	f.next(t, "gen2")
	n := p.Logs.Count()
	start = time.Now()
	p.Signal(syscall.SIGHUP)
	_, n = p.Logs.Wait(t, n, `msg="importing definition"`)
	importing := time.Now()
	p.Logs.Wait(t, n, `msg="serving definition" serial=2`)
	reloadLoad, importLoad := time.Since(start), time.Since(importing)
	p.checkMemory(t, "after a load of "+strconv.Itoa(clients)+" clients")
	p.Kill()
	t.Logf("load at start: ready after %v; reload: %v, of which the import %v",
		startLoad.Round(time.Millisecond), reloadLoad.Round(time.Millisecond), importLoad.Round(time.Millisecond))

	served := map[string]int{}
	phase := map[string]int{} // where the kill landed, from the log
	for i := range iterations {
		cur := f.LastSeal
		prevSealed := mustReadFile(t, f.DefPath)
		nextSealed := f.next(t, fmt.Sprintf("gen%d", cur+1))
		var delay time.Duration
		n := 0
		if i%2 == 0 {
			// Kill during the load at start.
			delay = time.Duration(mrand.Int64N(int64(startLoad) * 6 / 5))
			p = f.launch(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, f.Args()...)...)
		} else {
			// Kill during a SIGHUP reload.
			f.Write(t, prevSealed)
			p = f.start(t)
			f.Write(t, nextSealed)
			delay = time.Duration(mrand.Int64N(int64(reloadLoad) * 6 / 5))
			n = p.Logs.Count()
			p.Signal(syscall.SIGHUP)
		}
		if i%4 >= 2 {
			// Every other time aim inside the import itself: from its
			// first log line to a little past its usual length.
			delay = time.Duration(mrand.Int64N(int64(importLoad) * 6 / 5))
			if _, _, ok := p.Logs.WaitFor(n, `msg="importing definition"`, 30*time.Second); !ok {
				t.Fatalf("iteration %d: no import started; log:\n%s", i, p.Logs.All())
			}
		}
		// The random point in the load is the attack, hence a timer.
		time.Sleep(delay)
		p.Kill()
		phase[killPhase(p.Logs.Since(n), cur+1)]++

		got := verifyStore(t, f)
		switch got {
		case cur, cur + 1:
			served[map[bool]string{true: "new", false: "old"}[got == cur+1]]++
		default:
			t.Fatalf("iteration %d (kill after %v): restart serves serial %d, want %d or %d", i, delay, got, cur, cur+1)
		}
		if got == cur {
			// Complete the interrupted load so the chain continues.
			p = f.start(t)
			p.mustServe(t, "web", fmt.Sprintf("gen%d", cur+1))
			p.Kill()
		}
	}
	t.Logf("%d kills during loads: every restart served one whole definition (old %d times, new %d times); kills by phase: %v",
		iterations, served["old"], served["new"], phase)
}

// verifyStore starts the server on its store alone and returns the
// serial it serves, after checking that every client gets that whole
// definition.
func verifyStore(t *testing.T, f *fixture) uint64 {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0"}, f.Args()...)
	for i, a := range args {
		if a == "--definition" {
			args[i+1] = filepath.Join(f.Dir, "absent.sealed")
		}
	}
	p := f.launch(t, args...)
	p.WaitReady()
	p.WaitListening()
	var serial uint64
	for _, c := range []string{"web", "db"} {
		r, err := p.fetch(c)
		if err != nil {
			t.Fatalf("after a kill -9 the restarted server does not serve %s: %v\nlog:\n%s", c, err, p.Logs.All())
		}
		if err := wantShard(r, "gen"+strconv.FormatUint(r.Version.Serial, 10)); err != nil {
			t.Fatalf("after a kill -9: %s got a mixed definition: %v", c, err)
		}
		if serial != 0 && r.Version.Serial != serial {
			t.Fatalf("after a kill -9: clients see serials %d and %d", serial, r.Version.Serial)
		}
		serial = r.Version.Serial
	}
	p.Kill()
	return serial
}

// TestKillDuringLoads is the quick run; make stress runs 60 iterations.
func TestKillDuringLoads(t *testing.T) {
	killDuringLoads(t, 3, 400)
}

func mustReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// killPhase tells from the log lines of a killed server where in the
// load of serial the kill landed.
func killPhase(lines []string, serial uint64) string {
	tag := "serial=" + strconv.FormatUint(serial, 10) + " "
	imported := false
	for _, l := range lines {
		switch {
		case strings.Contains(l, `msg="importing definition"`) && strings.Contains(l, tag):
			imported = true
		case imported && strings.Contains(l, `msg="serving definition"`):
			return "after the import"
		}
	}
	if imported {
		return "inside the import"
	}
	return "before the import"
}
