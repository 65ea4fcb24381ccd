package coffer

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sync"
	"testing"

	"github.com/coffer-project/coffer/frame"
)

// budgets is what a session left in the buckets of 127.0.0.1, whole
// tokens only, and the ladders spent so far.
type budgets struct {
	failIP, unknownIP, unknown, handshakes, client int
	ladders                                        uint64
}

func tokens(b *bucket) int {
	if b == nil {
		return -1 // never charged
	}
	return int(math.Floor(b.tokens + 1e-6))
}

func keyedTokens[K comparable](kl *keyedLimiter[K], k K) int {
	kl.mu.Lock()
	defer kl.mu.Unlock()
	return tokens(kl.buckets[k])
}

func readBudgets(fx *fixture) budgets {
	s, local := fx.srv, netip.MustParseAddr("127.0.0.1")
	s.unknown.mu.Lock()
	unknown := tokens(&s.unknown.b)
	s.unknown.mu.Unlock()
	s.handshakes.mu.Lock()
	hs := -1
	if h := s.handshakes.addrs[local]; h != nil {
		hs = tokens(&h.b)
	}
	s.handshakes.mu.Unlock()
	return budgets{
		failIP: keyedTokens(s.failIP, local), unknownIP: keyedTokens(s.unknownIP, local), unknown: unknown,
		handshakes: hs, client: keyedTokens(s.clientLim, fx.clients[0].Public()), ladders: s.ladders.Load(),
	}
}

// TestUnverifiedHelloSame: a garbage proof for a key in the definition
// and one for a key that is not get the same reply bytes and take the
// same tokens, after any number of earlier unknown-key Hellos from the
// same address (issue 12: after 20 of them, the known key got
// Error{auth} and the unknown one Error{busy}). Two servers with the
// same limits (default bursts, rates too slow to refill during the
// test) see the same Hellos but for the last one.
func TestUnverifiedHelloSame(t *testing.T) {
	slow := func(s *Server) {
		s.FailPerIPLimit = Limit{Rate: 1e-9, Burst: defaultFailPerIPLimit.Burst}
		s.UnknownPerIPLimit = Limit{Rate: 1e-9, Burst: defaultUnknownPerIPLimit.Burst}
		s.UnknownLimit = Limit{Rate: 1e-9, Burst: defaultUnknownLimit.Burst}
		s.ClientLimit = Limit{Rate: 1e-9, Burst: defaultClientLimit.Burst}
	}
	garbage := func(t *testing.T, fx *fixture, key *PrivateKey) []byte {
		h, _ := helloFrame(t, &ClientConfig{Key: key, Server: fx.key.Public()})
		h[len(h)-1] ^= 1
		return h
	}
	send := func(t *testing.T, fx *fixture, hello []byte) []byte {
		t.Helper()
		c := fx.dial(t)
		c.Write(hello)
		reply, err := io.ReadAll(c) // the server closes after its reply
		if err != nil {
			t.Fatalf("reading the reply: %v", err)
		}
		return reply
	}
	for _, tt := range []struct {
		before int // unknown-key garbage Hellos sent first
		want   frame.ErrorCode
	}{
		{0, frame.CodeAuth},
		{5, frame.CodeAuth},
		{19, frame.CodeAuth},
		{20, frame.CodeBusy}, // the per-address unknown-key burst is spent
		{25, frame.CodeBusy},
		{60, frame.CodeBusy}, // and the failed-authentication burst
	} {
		t.Run(fmt.Sprint(tt.before, " earlier"), func(t *testing.T) {
			var replies [2][]byte
			var after [2]budgets
			for i, known := range []bool{true, false} {
				fx := newFixture(t, 1, slow)
				for j := range tt.before {
					send(t, fx, garbage(t, fx, testKey(t, byte(150+j%50))))
				}
				key := testKey(t, 149)
				if known {
					key = fx.clients[0]
				}
				replies[i] = send(t, fx, garbage(t, fx, key))
				fx.close(t) // every session has ended and been counted
				after[i] = readBudgets(fx)
			}
			if !bytes.Equal(replies[0], replies[1]) {
				t.Errorf("known key got %x, unknown key got %x; want the same bytes", replies[0], replies[1])
			}
			if want := plainError(tt.want); !bytes.Equal(replies[0], want) {
				t.Errorf("got %x, want %x (Error code %d)", replies[0], want, tt.want)
			}
			if after[0] != after[1] {
				t.Errorf("tokens and ladders after a known key's garbage proof %+v, after an unknown key's %+v; want the same", after[0], after[1])
			}
		})
	}
}

// TestAuditFloodKeepsSessions: the audit sink keeps the newest capacity
// records, as the store does, and a flood of unverified sessions (made-up
// keys, garbage proofs for a real key) never pushes out a served
// session's record; what was not recorded is counted.
func TestAuditFloodKeepsSessions(t *testing.T) {
	const capacity, burst, flood = 300, 100, 400
	var mu sync.Mutex
	var ring []AuditEvent
	fx := newFixture(t, 1, noLimits, func(s *Server) {
		s.UnverifiedAuditLimit = Limit{Rate: 1e-9, Burst: burst}
		s.Audit = func(e AuditEvent) {
			mu.Lock()
			defer mu.Unlock()
			if ring = append(ring, e); len(ring) > capacity {
				ring = ring[1:]
			}
		}
	})
	if _, err := fx.fetch(t, fx.config(0)); err != nil {
		t.Fatal(err)
	}
	bad, _ := helloFrame(t, fx.config(0))
	bad[len(bad)-1] ^= 1
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < flood; i += 4 {
				hello := bad
				if i%2 == 0 { // a made-up key with a valid proof
					hello, _ = helloFrame(t, &ClientConfig{Key: madeUpKey(t, i), Server: fx.key.Public()})
				}
				c := fx.dial(t)
				c.Write(hello)
				io.Copy(io.Discard, c)
				c.Close()
			}
		})
	}
	wg.Wait()
	fx.close(t)
	ok, unverified := 0, 0
	for _, e := range ring {
		if e.Outcome == OutcomeOK {
			ok++
		} else {
			unverified++
		}
	}
	if ok != 1 {
		t.Errorf("got %d records of the served session after the flood, want 1", ok)
	}
	if unverified > 2*burst {
		t.Errorf("got %d records of unverified sessions, want at most %d (two classes of %d)", unverified, 2*burst, burst)
	}
	if got, want := fx.srv.AuditDropped(), uint64(flood-unverified); got != want {
		t.Errorf("AuditDropped = %d, want %d (%d sessions, %d recorded)", got, want, flood, unverified)
	}
}

// madeUpKey returns the i-th of a series of keys no fixture holds.
func madeUpKey(tb testing.TB, i int) *PrivateKey {
	var b [32]byte
	b[0], b[1], b[2] = byte(i), byte(i>>8), 0xa5
	k, err := NewPrivateKey(&b)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
