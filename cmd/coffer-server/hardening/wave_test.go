package hardening_test

import (
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// TestReplayWave runs the real server with the default limits and opens
// 1,000 connections from one address that replay one recorded Hello,
// all released at once and held open until every one has its answer:
// the Links stay within the failed-authentication budget of that
// address and key (burst 50, 10/s), however many arrive together. Then 3,000 sessions with made-up keys from a third address
// flood the audit: the record of the fetch made before both attacks
// survives them (the store keeps 2,500 records here; the attacks make
// 4,000 sessions, of which at most 1,000 of each kind are recorded),
// and the server logs that it dropped the rest.
func TestReplayWave(t *testing.T) {
	f := newFixture(t, "", "web")
	f.next(t, "one")
	p := f.start(t, "--audit-max-records", "2500")
	p.mustServe(t, "web", "one")

	const n = 1000
	hello := helloFrom(t, f.Clients["web"], f.Server.Public())
	start := time.Now()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := dialFrom("127.0.0.2", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	release := make(chan struct{})
	var links, busy atomic.Int64
	var wg, answered sync.WaitGroup
	answered.Add(n)
	for _, c := range conns {
		wg.Go(func() {
			defer c.Close()
			<-release
			c.Write(hello)
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			f, err := frame.Read(c)
			answered.Done()
			// Every replay holds its connection until all have their
			// answer, as an attacker who never sends the Get does: no
			// failure is known while the wave comes in.
			answered.Wait()
			switch {
			case err != nil:
			case f.Type == frame.TypeLink:
				links.Add(1)
			case f.Type == frame.TypeError:
				busy.Add(1)
			default:
				t.Errorf("replayed Hello: got a %v", f.Type)
			}
		})
	}
	close(release)
	wg.Wait()
	d := time.Since(start)
	limit := 50 + int(10*d.Seconds()) + 1
	t.Logf("%d replays of one Hello at once: %d Links, %d Errors in %v (budget %d)", n, links.Load(), busy.Load(), d.Round(time.Millisecond), limit)
	if got := int(links.Load()); got > limit || got == 0 {
		t.Errorf("got %d Links, want 1 to %d (failed_auth_per_address for one address and key)", got, limit)
	}

	parallel(3000, 8, func(i int) {
		h := helloFrom(t, genKey(t), f.Server.Public())
		h[len(h)-1] ^= 1 // a garbage proof
		attack("127.0.0.3", p.Addr, h, false, replyWait)
	})
	if _, _, ok := p.Logs.WaitFor(0, `audit records of unverified sessions dropped`, 10*time.Second); !ok {
		t.Errorf("no log line reports the audit records dropped")
	}
	p.mustServe(t, "web", "one")
	p.checkNoLeak(t)
	p.Stop()

	var ok, other int
	for _, line := range strings.Split(strings.TrimSpace(f.audit(t)), "\n") {
		var rec struct{ Outcome, Name string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if rec.Outcome == "ok" && rec.Name == "web" {
			ok++
		} else {
			other++
		}
	}
	t.Logf("audit after the attacks: %d records of served sessions, %d others", ok, other)
	if ok != 2 {
		t.Errorf("got %d records of served sessions, want 2 (before and after the attacks)", ok)
	}
}
