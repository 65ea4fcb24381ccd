package hardening_test

import (
	"crypto/rand"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// quickLimits are short deadlines so that stalled connections end fast.
var quickLimits = []string{"--hello-timeout", "1s", "--handshake-timeout", "2s",
	"--session-timeout", "3s", "--bye-timeout", "500ms", "--max-connections", "64"}

// replyWait is how long a test waits for the server to close an attacked
// connection: well past the 3 s session deadline.
const replyWait = 8 * time.Second

// checkRefused fails t unless the server answered at most with Error or
// KeyNotFound frames and closed the connection.
func checkRefused(t *testing.T, what string, r reply, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return false
	}
	if r.has(frame.TypeLink) || r.has(frame.TypeOkGet) || !r.closedCleanly() {
		t.Errorf("%s: %v; want at most an Error and a close", what, r)
		return false
	}
	return true
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestHostileBytes throws random bytes, every message type with bodies of
// every length around its limit, truncated frames, frames out of order
// and a valid Hello followed by garbage at the real server, while a
// legitimate client keeps fetching.
func TestHostileBytes(t *testing.T) {
	hostileBytes(t, 1)
}

// hostileBytes runs TestHostileBytes with scale times as many random
// connections.
func hostileBytes(t *testing.T, scale int) {
	f := newFixture(t, relaxedLimits, "web")
	f.next(t, "one")
	p := f.start(t, quickLimits...)
	before := cpuTime(t, p.Pid())
	l := p.legitLoop("web", "one", 100*time.Millisecond)
	conns := 0

	t.Run("random bytes", func(t *testing.T) {
		n := 300 * scale
		parallel(n, 16, func(i int) {
			b := randBytes(mrand.IntN(2048))
			if i%3 == 0 && len(b) > 0 {
				b[0] = 0 // a Hello-sized length more often
			}
			r, err := attack("127.0.0.2", p.Addr, b, i%2 == 0, replyWait)
			checkRefused(t, "random bytes", r, err)
		})
		conns += n
	})

	t.Run("every type and length", func(t *testing.T) {
		types := []frame.Type{frame.TypeHello, frame.TypeLink, frame.TypeGet, frame.TypeOkGet,
			frame.TypeBye, frame.TypeKeyNotFound, frame.TypeError, 0x04, 0x98, 0xfe}
		type probe struct {
			ty frame.Type
			n  int
		}
		var probes []probe
		for _, ty := range types {
			limit, ok := ty.Limit()
			if !ok {
				limit = 64
			}
			for n := 0; n <= limit+1 && n <= frame.MaxBody; n++ {
				// OkGet's limit is the whole u16 range: sample it.
				if ty == frame.TypeOkGet && n > 300 && n%997 != 0 && n < frame.MaxBody-2 {
					continue
				}
				probes = append(probes, probe{ty, n})
			}
		}
		parallel(len(probes), 16, func(i int) {
			pr := probes[i]
			b := append(hdr(pr.n, pr.ty), randBytes(pr.n)...)
			r, err := attack("127.0.0.2", p.Addr, b, i%2 == 0, replyWait)
			if !checkRefused(t, pr.ty.String()+" body", r, err) {
				t.Logf("probe %s len %d", pr.ty, pr.n)
			}
		})
		t.Logf("%d frames of %d types, bodies 0..limit+1", len(probes), len(types))
		conns += len(probes)
	})

	t.Run("truncated", func(t *testing.T) {
		hello := helloFrom(t, f.Clients["web"], f.Server.Public())
		var cuts [][]byte
		for n := 0; n < len(hello); n++ {
			cuts = append(cuts, hello[:n])
		}
		// A header that declares more than the body that follows.
		cuts = append(cuts, append(hdr(200, frame.TypeHello), randBytes(100)...))
		// Every cut with a half-close; a stall (cut at the deadline) at
		// the interesting points only, since each costs a second.
		type cutCase struct {
			cut   []byte
			stall bool
		}
		var cc []cutCase
		for i, c := range cuts {
			cc = append(cc, cutCase{c, false})
			if i <= 4 || i == len(hello)/2 || i == len(hello)-1 || i == len(cuts)-1 {
				cc = append(cc, cutCase{c, true})
			}
		}
		parallel(len(cc), 16, func(i int) {
			cut, stall := cc[i].cut, cc[i].stall
			start := time.Now()
			r, err := attack("127.0.0.2", p.Addr, cut, !stall, replyWait)
			if !checkRefused(t, "truncated hello", r, err) {
				t.Logf("cut at %d bytes, stall %v", len(cut), stall)
			}
			// A stalled one is cut at the 1 s Hello deadline, not before.
			if el := time.Since(start); stall && err == nil && el < 900*time.Millisecond {
				t.Errorf("stalled at %d bytes: closed after %v, before the Hello deadline", len(cut), el)
			}
		})
		conns += len(cc)
	})

	t.Run("out of order", func(t *testing.T) {
		s := recordSession(t, p, "web")
		hello, get, bye := s.client[0], s.client[1], s.client[2]
		link, okget := s.server[0], s.server[1]
		fresh := func() []byte { return helloFrom(t, f.Clients["web"], f.Server.Public()) }
		cases := []struct {
			name string
			b    []byte
			link bool // the server answers the Hello with a Link first
		}{
			{"get first", get, false},
			{"bye first", bye, false},
			{"link from a client", link, false},
			{"okget from a client", okget, false},
			{"error from a client", []byte{0, 9, 0xff, 0xa1, 0x64, 'c', 'o', 'd', 'e', 0x01, 0, 0}, false},
			{"hello twice", append(fresh(), fresh()...), true},
			{"hello then bye", append(fresh(), bye...), true},
			{"hello then link", append(fresh(), link...), true},
			{"hello then old get", append(fresh(), get...), true},
			{"hello then okget", append(fresh(), okget...), true},
			{"bytes after bye", append(append(append([]byte{}, hello...), get...), append(bye, randBytes(64)...)...), true},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for _, half := range []bool{false, true} {
					r, err := attack("127.0.0.2", p.Addr, tc.b, half, replyWait)
					if err != nil {
						t.Fatal(err)
					}
					if r.has(frame.TypeOkGet) || !r.closedCleanly() || r.has(frame.TypeLink) != tc.link {
						t.Errorf("half-close %v: %v; want no OkGet, Link %v, and a close", half, r, tc.link)
					}
				}
			})
		}
		conns += 2 * len(cases)
	})

	t.Run("hello then garbage", func(t *testing.T) {
		n := 200 * scale
		parallel(n, 8, func(i int) {
			g := randBytes(1 + mrand.IntN(5000))
			if i%2 == 0 {
				// A Get header with garbage inside, the likeliest to be read.
				g = append(hdr(len(g)%4096, frame.TypeGet), g[:len(g)%4096]...)
			}
			b := append(helloFrom(t, f.Clients["web"], f.Server.Public()), g...)
			r, err := attack("127.0.0.2", p.Addr, b, i%3 == 0, replyWait)
			if err != nil {
				t.Error(err)
				return
			}
			if r.has(frame.TypeOkGet) || !r.closedCleanly() || len(r.types) == 0 || r.types[0] != frame.TypeLink {
				t.Errorf("hello then %d garbage bytes: %v; want a Link, no OkGet, a close", len(g), r)
			}
		})
		conns += n
	})

	l.stop(t)
	used := cpuTime(t, p.Pid()) - before
	t.Logf("%d hostile connections: server CPU %v in all (%v each, legitimate fetches included)", conns, used, used/time.Duration(max(conns, 1)))
	p.mustServe(t, "web", "one")
	p.checkMemory(t, "after hostile bytes")
	p.checkNoLeak(t)
	p.Stop()
	f.audit(t)
}
