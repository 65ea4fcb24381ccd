package coffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-project/coffer/frame"
)

func TestLaddersPerSession(t *testing.T) {
	ended := make(chan AuditEvent, 1)
	fx := newFixture(t, 2, noLimits, func(s *Server) { s.Audit = func(e AuditEvent) { ended <- e } })
	hello, _ := helloFrame(t, fx.config(0))
	bad := bytes.Clone(hello)
	bad[len(bad)-1] ^= 1
	sendHello := func(raw []byte) func(t *testing.T) {
		return func(t *testing.T) {
			c := fx.dial(t)
			c.Write(raw)
			readReply(t, c)
			c.Close()
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
		want uint64
	}{
		{"full session", func(t *testing.T) {
			if _, err := fx.fetch(t, fx.config(1)); err != nil {
				t.Fatal(err)
			}
		}, 4},
		{"replayed hello", sendHello(hello), 2},
		{"bad proof from a known key", sendHello(bad), 1}, // as an unknown key's
		{"unknown client", func(t *testing.T) {
			fx.fetch(t, &ClientConfig{Key: testKey(t, 77), Server: fx.key.Public()})
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fx.srv.ladders.Load()
			tt.run(t)
			<-ended // the session has counted its ladders
			if got := fx.srv.ladders.Load() - before; got != tt.want {
				t.Errorf("got %d scalar multiplications, want %d", got, tt.want)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	const short = 100 * time.Millisecond
	fx := newFixture(t, 1, noLimits, func(s *Server) {
		s.HelloTimeout, s.GetTimeout, s.SessionTimeout, s.ByeTimeout = short, 2*short, 3*short, short
	})
	hello, _ := helloFrame(t, fx.config(0))
	tests := []struct {
		name string
		send []byte
	}{
		{"nothing", nil},
		{"two header bytes", []byte{0, 200}},
		{"body shorter than its length", append([]byte{0, 200, 0}, make([]byte, 50)...)},
		{"hello without a get", hello},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c := fx.dial(t)
			c.Write(tt.send)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, c) // returns when the server closes
			if d := time.Since(start); d < short || d > 5*time.Second {
				t.Errorf("server closed after %v, want between %v and 5s", d, short)
			}
		})
	}
	// After the last OkGet the server closes at once by default, and
	// waits for Bye only with a ByeTimeout. The client here never sends
	// Bye; a server that waited the session deadline (30 s) would trip
	// the 10 s read deadline.
	for _, tt := range []struct {
		name string
		bye  time.Duration
	}{{"no bye, default", 0}, {"no bye, bye timeout", short}} {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, 1, noLimits, func(s *Server) { s.ByeTimeout = tt.bye })
			c := fx.dial(t)
			cl := &clientSession{cfg: fx.config(0), c: c, server: fx.key.Public()}
			cl.ss, _ = cl.cfg.Key.boxKey(&cl.server)
			if err := cl.sealHello(); err != nil {
				t.Fatal(err)
			}
			f, err := frame.Read(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.openLink(f); err != nil {
				t.Fatal(err)
			}
			if err := cl.sealGet(); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.readShard(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := io.Copy(io.Discard, c); n != 0 || err != nil {
				t.Errorf("after the last OkGet: %d more bytes, %v; want EOF", n, err)
			}
			// The server's wait starts a little before ours.
			if d := time.Since(start); d < tt.bye/2 {
				t.Errorf("server closed %v after the last OkGet, want about %v", d, tt.bye)
			}
		})
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("client key", func(t *testing.T) {
		fx := newFixture(t, 1, noLimits, func(s *Server) { s.ClientLimit = Limit{Rate: 1e-9, Burst: 2} })
		for i := range 2 {
			if _, err := fx.fetch(t, fx.config(0)); err != nil {
				t.Fatalf("session %d: %v", i, err)
			}
		}
		_, err := fx.fetch(t, fx.config(0))
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != frame.CodeBusy || !Retryable(err) {
			t.Errorf("got %v, want a retryable Error{busy}", err)
		}
	})
	t.Run("unknown keys", func(t *testing.T) {
		fx := newFixture(t, 1, noLimits, func(s *Server) { s.UnknownLimit = Limit{Rate: 1e-9, Burst: 3} })
		for i := range 3 {
			_, err := fx.fetch(t, &ClientConfig{Key: testKey(t, byte(30+i)), Server: fx.key.Public()})
			if !errors.Is(err, ErrUnknownClient) {
				t.Fatalf("unknown client %d: got %v, want ErrUnknownClient", i, err)
			}
		}
		_, err := fx.fetch(t, &ClientConfig{Key: testKey(t, 40), Server: fx.key.Public()})
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != frame.CodeBusy {
			t.Errorf("got %v, want Error{busy}", err)
		}
		if _, err := fx.fetch(t, fx.config(0)); err != nil {
			t.Errorf("a known client after the unknown budget ran out: %v", err)
		}
	})
	t.Run("one address cannot drain the unknown-key budget", func(t *testing.T) {
		fx := newFixture(t, 1, noLimits, func(s *Server) {
			s.UnknownLimit = Limit{Rate: 1e-9, Burst: 2}
			s.UnknownPerIPLimit = Limit{Rate: 1e-9, Burst: 1}
		})
		fetchFrom := func(src string, key byte) error {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", fx.addr)
			if err != nil {
				t.Fatalf("dialing from %s: %v", src, err)
			}
			defer c.Close()
			_, err = Fetch(context.Background(), c, &ClientConfig{Key: testKey(t, key), Server: fx.key.Public()})
			return err
		}
		if err := fetchFrom("127.0.0.1", 30); !errors.Is(err, ErrUnknownClient) {
			t.Fatalf("first unknown key: got %v, want ErrUnknownClient", err)
		}
		for i := range 3 { // refused by the per-address bucket
			var re *RemoteError
			if err := fetchFrom("127.0.0.1", byte(31+i)); !errors.As(err, &re) || re.Code != frame.CodeBusy {
				t.Fatalf("unknown key %d from the same address: got %v, want Error{busy}", i, err)
			}
		}
		if err := fetchFrom("127.0.0.2", 40); !errors.Is(err, ErrUnknownClient) {
			t.Errorf("unknown key from another address: got %v, want ErrUnknownClient (the global budget has a token left)", err)
		}
	})
	t.Run("failed authentications per address", func(t *testing.T) {
		fx := newFixture(t, 1, noLimits, func(s *Server) { s.FailPerIPLimit = Limit{Rate: 1e-9, Burst: 2} })
		bad, _ := helloFrame(t, fx.config(0))
		bad[len(bad)-1] ^= 1
		unknown, _ := helloFrame(t, &ClientConfig{Key: testKey(t, 61), Server: fx.key.Public()})
		unknown[len(unknown)-1] ^= 1
		for i, want := range []frame.ErrorCode{frame.CodeAuth, frame.CodeAuth, frame.CodeBusy} {
			c := fx.dial(t)
			c.Write(bad)
			if _, code := readReply(t, c); code != want {
				t.Fatalf("bad proof %d: got code %d, want %d", i, code, want)
			}
		}
		c := fx.dial(t)
		c.Write(unknown)
		if _, code := readReply(t, c); code != frame.CodeBusy {
			t.Errorf("bad proof for an unknown key: got code %d, want busy", code)
		}
		// A valid proof is not refused: failures of one host behind a
		// NAT address do not lock the others out.
		if _, err := fx.fetch(t, fx.config(0)); err != nil {
			t.Errorf("a valid client from the same address: %v", err)
		}
	})
	t.Run("handshakes per address", func(t *testing.T) {
		fx := newFixture(t, 1, noLimits, func(s *Server) { s.MaxHandshakesPerIP = 1 })
		hello, _ := helloFrame(t, fx.config(0))
		c := fx.dial(t)
		c.Write(hello)
		if typ, _ := readReply(t, c); typ != frame.TypeLink {
			t.Fatalf("got %s, want Link", typ)
		}
		// c's session is now in its handshake, waiting for a Get.
		_, err := fx.fetch(t, fx.config(0))
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != frame.CodeBusy {
			t.Errorf("got %v, want Error{busy}", err)
		}
		c.Close()
	})
}

func TestUnavailable(t *testing.T) {
	fx := newFixture(t, 1)
	fx.srv.Swap(nil)
	_, err := fx.fetch(t, fx.config(0))
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != frame.CodeUnavailable || !Retryable(err) {
		t.Errorf("got %v, want a retryable Error{unavailable}", err)
	}
}

func TestSealedError(t *testing.T) {
	fx := newFixture(t, 1)
	fx.shards.err = errors.New("store is broken")
	_, err := fx.fetch(t, fx.config(0))
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != frame.CodeInternal || !re.Sealed || !Retryable(err) {
		t.Errorf("got %v, want a retryable sealed Error{internal}", err)
	}
}

// blockingShards blocks each Shard call until release is closed, so a
// test can hold sessions inside a snapshot.
type blockingShards struct {
	inner   Shards
	entered chan struct{}
	release chan struct{}
}

func (b *blockingShards) Shard(c PublicKey, names []string) ([]byte, error) {
	select {
	case b.entered <- struct{}{}:
	case <-b.release: // released: no longer blocks or announces
	}
	<-b.release
	return b.inner.Shard(c, names)
}

func TestSwap(t *testing.T) {
	fx := newFixture(t, 1, noLimits)
	key := fx.clients[0].Public()
	gen := func(serial uint64) (*Snapshot, *memShards) {
		ms := &memShards{shards: map[PublicKey]frame.Shard{key: {"gen": {Kind: frame.KindInt, Int: int64(serial)}}}}
		return &Snapshot{Version: Version{Serial: serial}, Clients: map[PublicKey]string{key: "c"}, Shards: ms}, ms
	}
	a, aShards := gen(10)
	blockA := &blockingShards{inner: aShards, entered: make(chan struct{}), release: make(chan struct{})}
	a.Shards = blockA
	fx.srv.Swap(a)

	type result struct {
		res *Result
		err error
	}
	first := make(chan result)
	go func() {
		r, err := fx.fetch(t, fx.config(0))
		first <- result{r, err}
	}()
	<-blockA.entered // the first session is inside snapshot a
	b, _ := gen(11)
	if prev := fx.srv.Swap(b); prev != a {
		t.Fatalf("Swap returned %p, want snapshot a %p", prev, a)
	}
	select {
	case <-a.Released():
		t.Fatal("a released while a session still uses it")
	default:
	}
	r, err := fx.fetch(t, fx.config(0))
	if err != nil || r.Version.Serial != 11 || r.Shard["gen"].Int != 11 {
		t.Fatalf("second session: got %+v, %v; want serial 11 with gen 11", r, err)
	}
	close(blockA.release)
	got := <-first
	if got.err != nil || got.res.Version.Serial != 10 || got.res.Shard["gen"].Int != 10 {
		t.Fatalf("first session: got %+v, %v; want serial 10 with gen 10", got.res, got.err)
	}
	<-a.Released()
	for _, e := range a.table {
		if e.ss != ([32]byte{}) {
			t.Error("a's K(S,C) table was not cleared on release")
		}
	}

	t.Run("reinstall", func(t *testing.T) {
		cur := (*fx.srv.snaps.Load())[0]
		if got := fx.srv.Swap(cur); got != cur {
			t.Errorf("swapping in the current snapshot returned %p, want it back %p", got, cur)
		}
		fx.srv.Swap(a) // retired and released: installed as a copy
		if r, err := fx.fetch(t, fx.config(0)); err != nil || r.Version.Serial != 10 {
			t.Fatalf("after reinstalling a: got %+v, %v; want serial 10", r, err)
		}
		next, _ := gen(12)
		prev := fx.srv.Swap(next)
		if prev == a || prev.Version.Serial != 10 {
			t.Errorf("got prev %p serial %d, want a copy of a", prev, prev.Version.Serial)
		}
		<-prev.Released()
	})
	t.Run("under load", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 8 {
			wg.Go(func() {
				for range 8 {
					r, err := fx.fetch(t, fx.config(0))
					if err == nil && int64(r.Version.Serial) != r.Shard["gen"].Int {
						err = fmt.Errorf("serial %d with gen %d", r.Version.Serial, r.Shard["gen"].Int)
					}
					if err != nil {
						errs <- err
					}
				}
			})
		}
		var released []<-chan struct{}
		for serial := uint64(12); serial < 20; serial++ {
			next, _ := gen(serial)
			released = append(released, fx.srv.Swap(next).Released())
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, r := range released {
			<-r
		}
	})
}

// goroutines waits until the goroutine count is at most want, or
// reports the count after a generous bound.
func goroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 2000 && n > want; i++ {
		time.Sleep(time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

func TestShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	fx := newFixture(t, 1, noLimits)
	if _, err := fx.fetch(t, fx.config(0)); err != nil {
		t.Fatal(err)
	}
	// Stalled connections: Shutdown must cut them when its context ends.
	var conns []net.Conn
	for range 5 {
		c := fx.dial(t)
		c.Write([]byte{0})
		conns = append(conns, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := fx.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: got %v, want context.DeadlineExceeded", err)
	}
	if err := <-fx.serveCh; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: got %v, want ErrServerClosed", err)
	}
	fx.serveCh = nil
	for _, c := range conns {
		c.Close()
	}
	if got := goroutines(before); got > before {
		t.Errorf("got %d goroutines after Shutdown, want at most %d", got, before)
	}
	if err := fx.srv.Serve(nil); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: got %v, want ErrServerClosed", err)
	}
}

func TestShutdownWaitsForSessions(t *testing.T) {
	fx := newFixture(t, 1, noLimits)
	blocked := &blockingShards{inner: fx.shards, entered: make(chan struct{}), release: make(chan struct{})}
	fx.srv.Swap(&Snapshot{Version: fx.snap.Version, Clients: fx.snap.Clients, Shards: blocked})
	done := make(chan error)
	go func() {
		_, err := fx.fetch(t, fx.config(0))
		done <- err
	}()
	<-blocked.entered
	shut := make(chan error)
	go func() { shut <- fx.srv.Shutdown(context.Background()) }()
	close(blocked.release)
	if err := <-done; err != nil {
		t.Errorf("the session in flight during Shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	<-fx.serveCh
	fx.serveCh = nil
}

func TestAudit(t *testing.T) {
	var mu sync.Mutex
	var events []AuditEvent
	fx := newFixture(t, 1, noLimits, func(s *Server) {
		s.Audit = func(e AuditEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }
	})
	fx.fetch(t, fx.config(0))
	fx.fetch(t, &ClientConfig{Key: testKey(t, 60), Server: fx.key.Public()})
	bad, _ := helloFrame(t, fx.config(0))
	bad[len(bad)-1] ^= 1
	c := fx.dial(t)
	c.Write(bad)
	readReply(t, c)
	c = fx.dial(t)
	c.Write([]byte{0, 0, 0x04}) // no Hello parsed: no audit event
	readReply(t, c)
	fx.close(t)
	// Sessions end (and are audited) in whatever order their goroutines
	// finish: the ok session waits for Bye, so compare as a set.
	want := []string{OutcomeAuthFailed, OutcomeOK, OutcomeUnknownClient}
	got := make([]string, len(events))
	byOutcome := map[string]AuditEvent{}
	for i, e := range events {
		got[i] = e.Outcome
		byOutcome[e.Outcome] = e
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("got outcomes %q, want %q (events %+v)", got, want, events)
	}
	if e := byOutcome[OutcomeOK]; e.Name != "client-0" || e.Serial != 7 || e.Values != 3 || e.Bytes == 0 {
		t.Errorf("got ok event %+v, want name client-0, serial 7, 3 values", e)
	}
}

// TestBootStorm: 10,000 distinct clients, each fetching once, 256 at a
// time from 127.0.0.1, with the default limits: none may be refused.
func TestBootStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("boot storm in -short mode")
	}
	n, opts := 10000, []options{}
	if raceEnabled {
		// The race detector makes each ladder about 100 times slower,
		// and these clients share the server's two CPUs: keep the
		// default rate limits, relax the deadlines.
		n = 1000
		opts = append(opts, func(s *Server) {
			s.HelloTimeout, s.GetTimeout, s.SessionTimeout = time.Minute, time.Minute, time.Minute
		})
	}
	fx := newFixture(t, 0, opts...)
	snap := &Snapshot{Version: Version{Serial: 1}, Clients: map[PublicKey]string{}, Shards: fx.shards}
	keys := make([]*PrivateKey, n)
	for i := range keys {
		var b [32]byte
		b[0], b[1], b[2] = byte(i), byte(i>>8), 0xb0
		keys[i], _ = NewPrivateKey(&b)
		snap.Clients[keys[i].Public()] = fmt.Sprint("c", i)
		fx.shards.shards[keys[i].Public()] = frame.Shard{"k": str("v")}
	}
	fx.srv.Swap(snap)
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range 256 {
		wg.Go(func() {
			for i := range work {
				if _, err := fx.fetch(t, &ClientConfig{Key: keys[i], Server: fx.key.Public()}); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d clients in %v", n, time.Since(start))
}

// TestMaxConns: with every slot taken, a new connection waits in the
// backlog without being served, and is served once a slot frees.
func TestMaxConns(t *testing.T) {
	fx := newFixture(t, 1, noLimits, func(s *Server) { s.MaxConns = 1 })
	hello, _ := helloFrame(t, fx.config(0))
	a := fx.dial(t)
	a.Write(hello)
	if typ, _ := readReply(t, a); typ != frame.TypeLink {
		t.Fatalf("got %s, want Link", typ)
	}
	// a holds the only slot, waiting for its Get.
	b := fx.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Fetch(ctx, b, fx.config(0))
	if !errors.Is(err, context.DeadlineExceeded) || !Retryable(err) {
		t.Errorf("with the slot taken: got %v, want a retryable deadline error", err)
	}
	b.Close()
	a.Close()
	if _, err := fx.fetch(t, fx.config(0)); err != nil {
		t.Errorf("after the slot freed: %v", err)
	}
}

// trickleConn writes each byte in its own Write: over a net.Pipe, each
// becomes its own Read on the other side.
type trickleConn struct{ net.Conn }

func (c trickleConn) Write(b []byte) (int, error) {
	for i := range b {
		if _, err := c.Conn.Write(b[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(b), nil
}

// TestServerReadsFramesInPieces checks the server's read buffer on the
// two paths it has: frames that arrive one byte per read, and a Get
// larger than the buffer (many names), which bypasses it.
func TestServerReadsFramesInPieces(t *testing.T) {
	fx := newFixture(t, 1, noLimits)
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprintf("name-%03d", i))
	}
	names = append(names, "token")
	for _, tt := range []struct {
		name    string
		trickle bool
		names   []string
		want    int
	}{
		{"one byte per read", true, nil, 3},
		{"get larger than the buffer", false, names, 1},
		{"both", true, names, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, s := net.Pipe()
			done := make(chan struct{})
			go func() { fx.srv.ServeConn(s); close(done) }()
			var conn net.Conn = c
			if tt.trickle {
				conn = trickleConn{c}
			}
			cfg := fx.config(0)
			cfg.Names = tt.names
			res, err := Fetch(context.Background(), conn, cfg)
			c.Close()
			<-done
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Shard) != tt.want {
				t.Errorf("got %d values, want %d", len(res.Shard), tt.want)
			}
		})
	}
}
