package hardening_test

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// TestBitFlips relays sessions of the real client with the real server
// and flips one bit in every byte of every frame of the good session:
// no flipped session may be accepted. A flip in a client frame (Hello,
// Get) must get no OkGet from the server; a flip in a server frame
// (Link, OkGet) must make the client fail. Bye comes after the shard,
// so a flipped Bye only has to leave the server standing.
func TestBitFlips(t *testing.T) {
	f := newFixture(t, relaxedLimits, "web")
	f.next(t, "one")
	p := f.start(t, quickLimits...)
	good := recordSession(t, p, "web")
	before := cpuTime(t, p.Pid())
	l := p.legitLoop("web", "one", 200*time.Millisecond)

	type flip struct {
		dir   direction
		frame int
		off   int
	}
	var flips []flip
	for k, raw := range good.client {
		for off := range raw {
			flips = append(flips, flip{toServer, k, off})
		}
	}
	for k, raw := range good.server {
		for off := range raw {
			flips = append(flips, flip{toClient, k, off})
		}
	}
	names := map[direction][]string{toServer: {"Hello", "Get", "Bye"}, toClient: {"Link", "OkGet"}}
	var mu sync.Mutex
	failures := map[string]int{}
	var accepted atomic.Int64
	parallel(len(flips), 8, func(i int) {
		fl := flips[i]
		m := func(dir direction, k int, raw []byte) []byte {
			if dir != fl.dir || k != fl.frame {
				return nil
			}
			b := append([]byte{}, raw...)
			b[fl.off] ^= 1 << (fl.off % 8)
			return b
		}
		s, res, err := relayOnce(t, p.Addr, f.Server.Public(), f.Clients["web"], m)
		if err != nil {
			record(err.Error()) // errors go through the canary check too
		}
		name := names[fl.dir][fl.frame]
		switch {
		case name == "Bye":
			if err != nil {
				t.Errorf("flip in Bye at %d: the fetch failed: %v", fl.off, err)
			}
			return
		case fl.dir == toServer && sentOkGet(s):
			t.Errorf("flip in %s at byte %d: the server sent an OkGet", name, fl.off)
		}
		if err == nil {
			accepted.Add(1)
			t.Errorf("flip in %s at byte %d: the client accepted a shard of %d values", name, fl.off, len(res.Shard))
			return
		}
		mu.Lock()
		failures[name+": "+errClass(err)]++
		mu.Unlock()
	})
	l.stop(t)
	used := cpuTime(t, p.Pid()) - before
	t.Logf("%d flipped sessions, %d accepted; server CPU %v (%v a session)", len(flips), accepted.Load(), used, used/time.Duration(len(flips)))
	for k, n := range failures {
		t.Logf("  %4d  %s", n, k)
	}
	p.mustServe(t, "web", "one")
	p.checkMemory(t, "after the bit flips")
	p.checkNoLeak(t)
	p.Stop()
	f.audit(t)
}

// sentOkGet reports whether the server sent an OkGet in s.
func sentOkGet(s *session) bool {
	for _, raw := range s.server {
		if frame.Type(raw[2]) == frame.TypeOkGet {
			return true
		}
	}
	return false
}

// errClass names the class of a Fetch error for the summary.
func errClass(err error) string {
	var re *coffer.RemoteError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return "server Error{" + re.Code.String() + "}"
	case errors.Is(err, coffer.ErrServerAuth):
		return "server authentication failed"
	case errors.Is(err, coffer.ErrUnknownClient):
		return "unknown client"
	case errors.Is(err, coffer.ErrProtocol):
		return "protocol violation"
	case errors.Is(err, frame.ErrUnknownType), errors.Is(err, frame.ErrUnexpected), errors.Is(err, frame.ErrTooLong):
		return "bad frame header"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "transport: " + err.Error()
}

// TestReplays replays every recorded client frame of a good session into
// new sessions with the real server (no OkGet may come back), and feeds
// the recorded Link and OkGet to new client sessions (the client must
// fail).
func TestReplays(t *testing.T) {
	f := newFixture(t, relaxedLimits, "web", "db")
	f.next(t, "one")
	p := f.start(t, quickLimits...)
	good := recordSession(t, p, "web")
	l := p.legitLoop("db", "one", 100*time.Millisecond)

	t.Run("client frames into new sessions", func(t *testing.T) {
		hello, get, bye := good.client[0], good.client[1], good.client[2]
		cases := []struct {
			name string
			b    []byte
			link bool
		}{
			{"hello", hello, true},
			{"get", get, false},
			{"bye", bye, false},
			{"hello get", append(append([]byte{}, hello...), get...), true},
			{"hello get bye", append(append(append([]byte{}, hello...), get...), bye...), true},
			{"get bye", append(append([]byte{}, get...), bye...), false},
		}
		for _, tc := range cases {
			for round := range 5 {
				r, err := attack("127.0.0.2", p.Addr, tc.b, round%2 == 0, replyWait)
				if err != nil {
					t.Fatal(err)
				}
				if r.has(frame.TypeOkGet) || !r.closedCleanly() || r.has(frame.TypeLink) != tc.link {
					t.Errorf("replayed %s: %v; want Link %v, no OkGet, a close", tc.name, r, tc.link)
				}
			}
		}
	})

	t.Run("recorded okget to a new session", func(t *testing.T) {
		// A live session with the real server whose OkGet is swapped for
		// the recorded one: the client must refuse it.
		_, res, err := relayOnce(t, p.Addr, f.Server.Public(), f.Clients["web"], func(dir direction, k int, raw []byte) []byte {
			if dir == toClient && k == 1 {
				return good.server[1]
			}
			return nil
		})
		if err == nil || !errors.Is(err, coffer.ErrProtocol) {
			t.Errorf("recorded OkGet in a live session: got %v (result %v), want a protocol violation", err, res != nil)
		}
		// A fake server that answers any Hello with the recorded Link
		// and OkGet: the client must refuse the Link.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					frame.Read(c)
					c.Write(append(append([]byte{}, good.server[0]...), good.server[1]...))
					frame.Read(c)
				}()
			}
		}()
		for range 3 {
			r, err := fetchFrom(ln.Addr().String(), f.Server.Public(), f.Clients["web"], 5*time.Second)
			if !errors.Is(err, coffer.ErrServerAuth) {
				t.Errorf("recorded Link and OkGet from a fake server: got %v (result %v), want server authentication failed", err, r != nil)
			}
		}
	})
	l.stop(t)
	p.mustServe(t, "web", "one")
	p.checkMemory(t, "after the replays")
	p.checkNoLeak(t)
	p.Stop()
	f.audit(t)
}
