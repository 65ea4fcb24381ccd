package coffer

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// Waves: N connections from 127.0.0.1, all dialled first, then released
// together by closing one channel, against a real Server with the
// default limits (docs/server.md, "Limits"). Every bucket must charge
// before the work it protects, so the counts below hold whatever the
// concurrency: a bucket that is only checked when a session starts and
// charged when it ends lets a whole wave through on one token.

// wave dials n connections, from 127.0.0.1 or, with sources > 1, from
// 127.0.0.1 to 127.0.0.sources in turn, then runs each through step at
// once. It returns when every step has returned and the server has ended
// every session (and so counted its ladders), with the time from the
// first dial (the server charges a handshake when it accepts) until then.
func wave(t *testing.T, fx *fixture, n, sources int, step func(i int, c net.Conn)) time.Duration {
	t.Helper()
	start := time.Now()
	conns := make([]net.Conn, n)
	for i := range conns {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%max(sources, 1)))}}
		c, err := d.Dial("tcp", fx.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			<-release
			c.SetDeadline(time.Now().Add(time.Minute))
			step(i, c)
			c.Close()
		})
	}
	close(release)
	wg.Wait()
	fx.close(t) // waits for the session goroutines
	return time.Since(start)
}

// patient sets deadlines of a minute: a wave holds its connections until
// all are answered, which under the race detector (ladders about 100
// times slower) takes longer than the default Get deadline. The
// deadlines are not what the waves test.
func patient(s *Server) {
	s.HelloTimeout, s.GetTimeout, s.SessionTimeout = time.Minute, time.Minute, time.Minute
}

// budget is what a token bucket can give over d: its burst and its rate
// times d, rounded up, plus one for the token that refills meanwhile.
func budget(l Limit, d time.Duration) int {
	return l.Burst + int(l.Rate*d.Seconds()) + 1
}

// replyType reads one frame and returns its type, or 0xfe on a read
// error.
func replyType(c net.Conn) frame.Type {
	f, err := frame.Read(c)
	if err != nil {
		return 0xfe
	}
	return f.Type
}

// TestWaveReplayedHello: recorded Hellos replayed n at once from one
// address get at most the documented budget of Links, and each costs at
// most its two ladders (four when a garbage Get follows). One client's
// Hello, replayed n times, is bounded per address and key by the
// failed-authentication bucket; the Hellos of n distinct clients (a
// recorded fleet), each replayed once, by the per-address handshake
// bucket.
func TestWaveReplayedHello(t *testing.T) {
	n := 600
	for _, tt := range []struct {
		name       string
		clients    int
		garbageGet bool
		ladders    int // per Link
		limit      func(s *Server) Limit
	}{
		{"one hello", 1, false, 2, func(s *Server) Limit { return s.FailPerIPLimit.or(defaultFailPerIPLimit) }},
		{"one hello and a garbage get", 1, true, 4, func(s *Server) Limit { return s.FailPerIPLimit.or(defaultFailPerIPLimit) }},
		{"a fleet's hellos", n, false, 2, handshakeBudget},
		{"a fleet's hellos and garbage gets", n, true, 4, handshakeBudget},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, tt.clients, patient)
			hellos := make([][]byte, tt.clients)
			for i := range hellos {
				hellos[i], _ = helloFrame(t, fx.config(i))
			}
			get := append([]byte{0, 60, byte(frame.TypeGet)}, bytes.Repeat([]byte{0x5a}, 60)...)
			var links atomic.Int64
			d := wave(t, fx, n, 1, func(i int, c net.Conn) {
				c.Write(hellos[i%len(hellos)])
				if replyType(c) != frame.TypeLink {
					return
				}
				links.Add(1)
				if tt.garbageGet {
					c.Write(get)
					replyType(c)
				}
			})
			max := budget(tt.limit(fx.srv), d)
			ladders := fx.srv.ladders.Load()
			t.Logf("%d replays at once: %d Links, %d ladders in %v (budget %d Links)", n, links.Load(), ladders, d, max)
			if got := int(links.Load()); got > max {
				t.Errorf("got %d Links, want at most %d", got, max)
			}
			if got := int(ladders); got > tt.ladders*max {
				t.Errorf("got %d ladders, want at most %d", got, tt.ladders*max)
			}
			if links.Load() == 0 {
				t.Errorf("got no Link, want the budget's burst")
			}
		})
	}
}

// handshakeBudget is the per-address budget of handshakes that are not
// served: a burst of MaxHandshakesPerIP, refilled at the
// failed-authentication rate.
func handshakeBudget(s *Server) Limit {
	return Limit{Rate: s.FailPerIPLimit.or(defaultFailPerIPLimit).Rate, Burst: s.MaxHandshakesPerIP}
}

// TestWaveOneClient: one client key, every Hello of the wave sent and
// answered before any Get: whole sessions stay within the client's
// budget. The wave comes from 8 addresses, so that the per-address
// buckets let more Links through than the client's budget allows.
func TestWaveOneClient(t *testing.T) {
	n := 300
	fx := newFixture(t, 1, patient)
	var linked, sessions atomic.Int64
	var answered sync.WaitGroup
	answered.Add(n)
	d := wave(t, fx, n, 8, func(i int, c net.Conn) {
		cl := &clientSession{cfg: fx.config(0), c: c, server: fx.key.Public()}
		cl.ss, _ = cl.cfg.Key.boxKey(&cl.server)
		ok := cl.sealHello() == nil
		var f frame.Frame
		if ok {
			var err error
			f, err = frame.Read(c)
			ok = err == nil && f.Type == frame.TypeLink && cl.openLink(f) == nil
		}
		answered.Done()
		answered.Wait() // every Hello of the wave has its answer
		if !ok {
			return
		}
		linked.Add(1)
		if cl.sealGet() != nil {
			return
		}
		if _, err := cl.readShard(); err == nil {
			sessions.Add(1)
		}
	})
	l := fx.srv.ClientLimit.or(defaultClientLimit)
	max := budget(l, d)
	t.Logf("%d sessions of one key at once: %d Links, %d whole sessions in %v (%.1f/s; budget %d)",
		n, linked.Load(), sessions.Load(), d, float64(sessions.Load())/d.Seconds(), max)
	if got := int(sessions.Load()); got > max {
		t.Errorf("got %d whole sessions, want at most %d (burst %d, %v/s)", got, max, l.Burst, l.Rate)
	}
	if sessions.Load() == 0 {
		t.Errorf("got no whole session, want the client's burst")
	}
}

// TestWaveBadProofs: garbage proofs for a known key, all at once, get at
// most the per-address budget of unverified proofs of Error{auth} and
// ladders.
func TestWaveBadProofs(t *testing.T) {
	n := 600
	fx := newFixture(t, 1, patient)
	bad, _ := helloFrame(t, fx.config(0))
	bad[len(bad)-1] ^= 1
	var auth atomic.Int64
	d := wave(t, fx, n, 1, func(i int, c net.Conn) {
		c.Write(bad)
		if _, code := readReplyCode(c); code == frame.CodeAuth {
			auth.Add(1)
		}
	})
	max := budget(fx.srv.UnknownPerIPLimit.or(defaultUnknownPerIPLimit), d)
	t.Logf("%d bad proofs at once: %d Error{auth}, %d ladders in %v (budget %d)", n, auth.Load(), fx.srv.ladders.Load(), d, max)
	if got := int(auth.Load()); got > max {
		t.Errorf("got %d Error{auth}, want at most %d", got, max)
	}
	if got := int(fx.srv.ladders.Load()); got > max {
		t.Errorf("got %d ladders, want at most %d", got, max)
	}
}

// TestWaveBootStorm: as many distinct clients as the per-address
// handshake cap, all at once from one address (a fleet booting behind
// NAT), are all served.
func TestWaveBootStorm(t *testing.T) {
	n := defaultMaxHandshakesPerIP
	fx := newFixture(t, n, patient)
	var served atomic.Int64
	wave(t, fx, n, 1, func(i int, c net.Conn) {
		cl := &clientSession{cfg: fx.config(i), c: c, server: fx.key.Public()}
		cl.ss, _ = cl.cfg.Key.boxKey(&cl.server)
		if cl.sealHello() != nil {
			return
		}
		f, err := frame.Read(c)
		if err != nil || cl.openLink(f) != nil || cl.sealGet() != nil {
			return
		}
		if _, err := cl.readShard(); err == nil {
			served.Add(1)
		}
	})
	if got := int(served.Load()); got != n {
		t.Errorf("got %d of %d clients served, want all", got, n)
	}
}

// readReplyCode reads one frame: its type, and the code of a plain Error.
func readReplyCode(c net.Conn) (frame.Type, frame.ErrorCode) {
	f, err := frame.Read(c)
	if err != nil {
		return 0xfe, 0
	}
	if f.Type != frame.TypeError {
		return f.Type, 0
	}
	var e frame.ErrorBody
	if frame.Unmarshal(f.Body(), &e) != nil {
		return f.Type, 0
	}
	return f.Type, e.Code
}
