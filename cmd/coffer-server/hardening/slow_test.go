package hardening_test

import (
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// TestSlowClients fills every connection slot with slow clients: a Hello
// at one byte a second, stalls after two header bytes and in the middle
// of a body. Each must be cut at its deadline (an observed close), and a
// legitimate client that queued behind them must get its shard.
func TestSlowClients(t *testing.T) {
	slowClients(t, 8)
}

// slowClients runs TestSlowClients with slots connection slots, all of
// them taken by slow clients.
func slowClients(t *testing.T, slots int) {
	f := newFixture(t, relaxedLimits, "web")
	f.next(t, "one")
	p := f.start(t, "--max-connections", strconv.Itoa(slots), "--hello-timeout", "2s", "--handshake-timeout", "3s",
		"--session-timeout", "4s", "--bye-timeout", "500ms")
	hello := helloFrom(t, f.Clients["web"], f.Server.Public())

	type slow struct {
		name     string
		prefix   []byte // sent at once
		trickle  []byte // then one byte a second
		deadline time.Duration
	}
	var slows []slow
	for i := range slots {
		switch i % 4 {
		case 0, 1:
			slows = append(slows, slow{"hello at 1 byte/s", nil, hello, 2 * time.Second})
		case 2:
			slows = append(slows, slow{"stalled after 2 header bytes", hello[:2], nil, 2 * time.Second})
		case 3:
			slows = append(slows, slow{"stalled mid-body", hello[:40], nil, 2 * time.Second})
		}
	}
	cut := map[string][]time.Duration{}
	type result struct {
		name string
		took time.Duration
		err  error
	}
	results := make(chan result, len(slows))
	for _, s := range slows {
		c, err := dialFrom("127.0.0.2", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		start := time.Now()
		go func() {
			results <- result{s.name, 0, nil}
			c.Write(s.prefix)
			// The slow client's pace is the attack itself, hence a ticker.
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			closed := make(chan error, 1)
			go func() {
				c.SetReadDeadline(start.Add(15 * time.Second))
				_, err := io.Copy(io.Discard, c)
				closed <- err
			}()
			for i := 0; ; i++ {
				select {
				case err := <-closed:
					results <- result{s.name, time.Since(start), err}
					return
				case <-tick.C:
					if i < len(s.trickle) {
						c.Write(s.trickle[i : i+1])
					}
				}
			}
		}()
	}
	for range slows {
		<-results // every slow client is running
	}
	p.checkMemory(t, "with every slot held by a slow client")
	// All eight slots are taken: a legitimate client waits in the
	// backlog until the slow ones are cut, then gets through.
	start := time.Now()
	r, err := fetchFrom(p.Addr, f.Server.Public(), f.Clients["web"], 15*time.Second)
	if err != nil {
		t.Fatalf("legitimate client behind %d slow clients: %v", len(slows), err)
	}
	if err := wantShard(r, "one"); err != nil {
		t.Fatal(err)
	}
	t.Logf("legitimate client served after %v behind %d slow clients holding every slot", time.Since(start).Round(time.Millisecond), len(slows))
	for range slows {
		res := <-results
		var ne net.Error
		if errors.As(res.err, &ne) && ne.Timeout() {
			t.Errorf("%s: not closed by the server within 15 s", res.name)
			continue
		}
		if res.took < 2*time.Second-100*time.Millisecond || res.took > 2*time.Second+2*time.Second {
			t.Errorf("%s: closed after %v, want about the 2 s Hello deadline", res.name, res.took)
		}
		cut[res.name] = append(cut[res.name], res.took)
	}
	for name, d := range cut {
		slices.Sort(d)
		t.Logf("%d × %s: cut after %v to %v", len(d), name, d[0].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}

	t.Run("slow get", func(t *testing.T) {
		// Past Hello: a valid Hello at once, then a Get header trickled;
		// the 3 s handshake deadline cuts it.
		c, err := dialFrom("127.0.0.2", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.Write(helloFrom(t, f.Clients["web"], f.Server.Public()))
		link, err := frame.Read(c)
		if err != nil || link.Type != frame.TypeLink {
			t.Fatalf("got %v %v, want a Link", link.Type, err)
		}
		closed := make(chan error, 1)
		go func() {
			c.SetReadDeadline(start.Add(15 * time.Second))
			_, err := io.Copy(io.Discard, c)
			closed <- err
		}()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		get := append(hdr(60, frame.TypeGet), make([]byte, 60)...)
		for i := 0; ; i++ {
			select {
			case err := <-closed:
				took := time.Since(start)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() || took < 2900*time.Millisecond || took > 5*time.Second {
					t.Errorf("slow Get: closed after %v (%v), want about the 3 s handshake deadline", took, err)
				}
				t.Logf("slow Get: cut after %v", took.Round(time.Millisecond))
				p.mustServe(t, "web", "one")
				p.checkMemory(t, "after the slow clients")
				p.checkNoLeak(t)
				return
			case <-tick.C:
				c.Write(get[i%len(get) : i%len(get)+1])
			}
		}
	})
	p.Stop()
	f.audit(t)
}
