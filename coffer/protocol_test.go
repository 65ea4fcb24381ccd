package coffer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// Test helpers shared by the protocol, server, client, fuzz and
// benchmark tests. Everything runs over real TCP on 127.0.0.1:0 or over
// net.Pipe, with deterministic keys.

// raceEnabled reports whether the test binary was built with -race.
var raceEnabled = func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}()

// testKey returns a fixed private key made of seed.
func testKey(tb testing.TB, seed byte) *PrivateKey {
	tb.Helper()
	var b [32]byte
	for i := range b {
		b[i] = seed + byte(i)
	}
	k, err := NewPrivateKey(&b)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// detRand returns a deterministic randomness source.
func detRand(seed byte) io.Reader {
	return mrand.NewChaCha8([32]byte{seed, 'c', 'o', 'f', 'f', 'e', 'r'})
}

// memShards serves shards from memory, filtering by names.
type memShards struct {
	mu     sync.Mutex
	shards map[PublicKey]frame.Shard
	raw    map[PublicKey][]byte // served as is, when set
	err    error
	calls  int
}

func (m *memShards) Shard(c PublicKey, names []string) ([]byte, error) {
	m.mu.Lock()
	m.calls++
	m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	if raw, ok := m.raw[c]; ok {
		return bytes.Clone(raw), nil
	}
	sh := m.shards[c]
	if len(names) > 0 {
		sub := frame.Shard{}
		for _, n := range names {
			if v, ok := sh[n]; ok {
				sub[n] = v
			}
		}
		sh = sub
	}
	return frame.EncodeShard(sh)
}

func str(s string) frame.Value { return frame.Value{Kind: frame.KindString, Text: []byte(s)} }

// fixture is a server with one snapshot and some client keys.
type fixture struct {
	srv     *Server
	addr    string
	key     *PrivateKey // server key
	clients []*PrivateKey
	shards  *memShards
	snap    *Snapshot
	serveCh chan error
}

// options adjusts a fixture's server before it starts.
type options func(*Server)

func noLimits(s *Server) {
	s.ClientLimit = Limit{Rate: -1}
	s.UnknownLimit = Limit{Rate: -1}
	s.UnknownPerIPLimit = Limit{Rate: -1}
	s.FailPerIPLimit = Limit{Rate: -1}
	s.UnverifiedAuditLimit = Limit{Rate: -1}
}

// newFixture starts a server on 127.0.0.1:0 with n clients, client i
// holding {"name": "client-i", "token": "secret-i"}.
func newFixture(tb testing.TB, n int, opts ...options) *fixture {
	tb.Helper()
	fx := &fixture{key: testKey(tb, 1), shards: &memShards{shards: map[PublicKey]frame.Shard{}}}
	fx.snap = &Snapshot{Version: Version{Serial: 7, Hash: [32]byte{7}}, Clients: map[PublicKey]string{}, Shards: fx.shards}
	for i := range n {
		k := testKey(tb, byte(100+i))
		fx.clients = append(fx.clients, k)
		fx.snap.Clients[k.Public()] = fmt.Sprintf("client-%d", i)
		fx.shards.shards[k.Public()] = frame.Shard{
			"name":  str(fmt.Sprintf("client-%d", i)),
			"token": str(fmt.Sprintf("secret-%d", i)),
			"port":  {Kind: frame.KindInt, Int: 5432},
		}
	}
	fx.srv = &Server{Key: fx.key}
	for _, o := range opts {
		o(fx.srv)
	}
	fx.srv.Swap(fx.snap)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	fx.addr = l.Addr().String()
	fx.serveCh = make(chan error, 1)
	go func() { fx.serveCh <- fx.srv.Serve(l) }()
	tb.Cleanup(func() { fx.close(tb) })
	return fx
}

func (fx *fixture) close(tb testing.TB) {
	if fx.serveCh == nil {
		return
	}
	if err := fx.srv.Close(); err != nil {
		tb.Errorf("Close: %v", err)
	}
	if err := <-fx.serveCh; !errors.Is(err, ErrServerClosed) {
		tb.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	fx.serveCh = nil
}

func (fx *fixture) config(i int) *ClientConfig {
	return &ClientConfig{Key: fx.clients[i], Server: fx.key.Public()}
}

func (fx *fixture) dial(tb testing.TB) net.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", fx.addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// fetch runs one session over a fresh TCP connection.
func (fx *fixture) fetch(tb testing.TB, cfg *ClientConfig) (*Result, error) {
	c, err := net.Dial("tcp", fx.addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return Fetch(ctx, c, cfg)
}

// recConn records what is written to it and reads from an optional
// reader; it stands in for a connection where only writes matter.
type recConn struct {
	net.Conn
	w bytes.Buffer
	r io.Reader
}

func (c *recConn) Write(b []byte) (int, error) { return c.w.Write(b) }
func (c *recConn) Read(b []byte) (int, error) {
	if c.r == nil {
		return 0, io.EOF
	}
	return c.r.Read(b)
}

// tapConn records every byte written to and read from a connection.
type tapConn struct {
	net.Conn
	mu      sync.Mutex
	out, in bytes.Buffer
}

func (c *tapConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.in.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

// splitFrames splits a byte stream into whole frames.
func splitFrames(tb testing.TB, b []byte) []frame.Frame {
	tb.Helper()
	var fs []frame.Frame
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		f, err := frame.Read(r)
		if err != nil {
			tb.Fatalf("splitting frames: %v", err)
		}
		fs = append(fs, f)
	}
	return fs
}

// recordSession runs a full session through a tap and returns the client
// frames (Hello, Get, Bye) and the server frames (Link, OkGet...).
func (fx *fixture) recordSession(tb testing.TB, cfg *ClientConfig) (client, server []frame.Frame) {
	tb.Helper()
	tc := &tapConn{Conn: fx.dial(tb)}
	if _, err := Fetch(context.Background(), tc, cfg); err != nil {
		tb.Fatalf("recording a session: %v", err)
	}
	// The server closes after Bye; reading to EOF makes sure every byte
	// it sent is in the tap.
	io.Copy(io.Discard, tc)
	return splitFrames(tb, tc.out.Bytes()), splitFrames(tb, tc.in.Bytes())
}

// readReply reads one frame from c and decodes a plain Error, or returns
// the frame type.
func readReply(tb testing.TB, c net.Conn) (frame.Type, frame.ErrorCode) {
	tb.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := frame.Read(c)
	if err != nil {
		tb.Fatalf("reading a reply: %v", err)
	}
	if f.Type != frame.TypeError {
		return f.Type, 0
	}
	var e frame.ErrorBody
	if err := frame.Unmarshal(f.Body(), &e); err != nil {
		tb.Fatalf("decoding a plain error: %v", err)
	}
	return f.Type, e.Code
}

func TestFullSession(t *testing.T) {
	fx := newFixture(t, 3, noLimits)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	bigKey := testKey(t, 200)
	fx.snap.Clients[bigKey.Public()] = "big"
	fx.shards.shards[bigKey.Public()] = frame.Shard{"blob": {Kind: frame.KindString, Text: big}, "n": {Kind: frame.KindInt, Int: -3}}
	fx.srv.Swap(&Snapshot{Version: fx.snap.Version, Clients: fx.snap.Clients, Shards: fx.shards})

	tests := []struct {
		name  string
		key   *PrivateKey
		names []string
		want  frame.Shard
	}{
		{"all values", fx.clients[0], nil, fx.shards.shards[fx.clients[0].Public()]},
		{"other client", fx.clients[2], nil, fx.shards.shards[fx.clients[2].Public()]},
		{"names filter", fx.clients[1], []string{"token", "missing"}, frame.Shard{"token": str("secret-1")}},
		{"one MiB shard", bigKey, nil, fx.shards.shards[bigKey.Public()]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := fx.fetch(t, &ClientConfig{Key: tt.key, Server: fx.key.Public(), Names: tt.names, MinSerial: 7})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got, want := res.Version, fx.snap.Version; got != want {
				t.Errorf("got version %+v, want %+v", got, want)
			}
			if got, want := len(res.Shard), len(tt.want); got != want {
				t.Fatalf("got %d values, want %d", got, want)
			}
			for n, v := range tt.want {
				if got := res.Shard[n]; got.Kind != v.Kind || !bytes.Equal(got.Text, v.Text) || got.Int != v.Int {
					t.Errorf("value %q: got kind %s len %d, want kind %s len %d", n, got.Kind, len(got.Text), v.Kind, len(v.Text))
				}
			}
		})
	}
}

func TestMultiChunkFrames(t *testing.T) {
	fx := newFixture(t, 1, noLimits)
	big := make([]byte, 1<<20)
	fx.shards.shards[fx.clients[0].Public()] = frame.Shard{"blob": {Kind: frame.KindString, Text: big}}
	_, server := fx.recordSession(t, fx.config(0))
	if got, want := server[0].Type, frame.TypeLink; got != want {
		t.Fatalf("got first server frame %s, want %s", got, want)
	}
	chunks := server[1:]
	if got, want := len(chunks), (1<<20+10)/frame.MaxChunkBytes+1; got != want {
		t.Errorf("got %d OkGet frames, want %d", got, want)
	}
	for i, f := range chunks {
		if f.Type != frame.TypeOkGet || len(f.Raw) > frame.HeaderSize+frame.MaxBody {
			t.Errorf("chunk %d: got type %s, %d bytes", i, f.Type, len(f.Raw))
		}
	}
}

func TestUnknownClient(t *testing.T) {
	var events []AuditEvent
	var mu sync.Mutex
	fx := newFixture(t, 1, func(s *Server) {
		s.Audit = func(e AuditEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }
	})
	stranger := testKey(t, 42)
	_, err := fx.fetch(t, &ClientConfig{Key: stranger, Server: fx.key.Public()})
	if !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("got %v, want ErrUnknownClient", err)
	}
	if Retryable(err) {
		t.Errorf("Retryable(%v) = true, want false", err)
	}
	fx.close(t)
	if len(events) != 1 || events[0].Outcome != OutcomeUnknownClient || events[0].Client != stranger.Public() {
		t.Errorf("got audit events %+v, want one unknown-client event", events)
	}
}

func TestWrongPinnedServerKey(t *testing.T) {
	fx := newFixture(t, 1)
	cfg := fx.config(0)
	cfg.Server = testKey(t, 9).Public()
	_, err := fx.fetch(t, cfg)
	// The real server cannot open the proof and answers a plain
	// Error{auth}, which anyone on the path could forge: an unsealed
	// RemoteError, not ErrServerAuth (docs/protocol.md §4.7).
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != frame.CodeAuth || re.Sealed || errors.Is(err, ErrServerAuth) {
		t.Fatalf("got %v, want an unsealed Error{auth}", err)
	}
}

// An impostor that stole the client's key can open the Hello but cannot
// seal a Link the client opens: key-compromise impersonation fails.
func TestKCIImpostor(t *testing.T) {
	client := testKey(t, 100)
	server := testKey(t, 1)
	cc, sc := net.Pipe()
	defer cc.Close()
	go func() {
		defer sc.Close()
		f, err := frame.Read(sc, frame.TypeHello)
		if err != nil {
			return
		}
		h, _ := frame.ParseHello(f.Body())
		ce := PublicKey(h.Ephemeral)
		k, _ := client.boxKey(&ce) // the best key the thief has
		n := nonce{1}
		b, _ := appendSealed(nil, frame.TypeLink, n[:], &frame.LinkPayload{H: frame.PurposeLink, SE: make([]byte, 32), TH: make([]byte, 32), CT: make([]byte, frame.KEMCiphertextSize)}, &n, k)
		sc.Write(b)
	}()
	_, err := Fetch(context.Background(), cc, &ClientConfig{Key: client, Server: server.Public()})
	if !errors.Is(err, ErrServerAuth) {
		t.Fatalf("got %v, want ErrServerAuth", err)
	}
}

// helloFrame builds a genuine Hello for cfg and returns it with the
// client session that made it.
func helloFrame(tb testing.TB, cfg *ClientConfig) ([]byte, *clientSession) {
	tb.Helper()
	ss, err := cfg.Key.boxKey(&cfg.Server)
	if err != nil {
		tb.Fatal(err)
	}
	rc := &recConn{}
	cl := &clientSession{cfg: cfg, c: rc, server: cfg.Server, ss: ss}
	if err := cl.sealHello(); err != nil {
		tb.Fatal(err)
	}
	return bytes.Clone(rc.w.Bytes()), cl
}

// v1Hello builds the Hello a coffer/1 client sends: version byte 1, C,
// Ce, n1 and a box under K(C,S) of {hello, 1, C, S, Ce}, 228 bytes in
// all (docs/protocol.md §4.1 of coffer/1).
func v1Hello(tb testing.TB, cfg *ClientConfig) []byte {
	tb.Helper()
	ss, err := cfg.Key.boxKey(&cfg.Server)
	if err != nil {
		tb.Fatal(err)
	}
	c, ce := cfg.Key.Public(), PublicKey{9}
	pt, err := frame.Marshal(&struct {
		H string `cbor:"h"`
		V uint64 `cbor:"v"`
		C []byte `cbor:"c"`
		S []byte `cbor:"s"`
		E []byte `cbor:"e"`
	}{"hello", 1, c[:], cfg.Server[:], ce[:]})
	if err != nil {
		tb.Fatal(err)
	}
	n := nonce{3}
	body := append(append(append([]byte{1}, c[:]...), ce[:]...), n[:]...)
	body = seal(body, pt, &n, ss)
	return append([]byte{byte(len(body) >> 8), byte(len(body)), byte(frame.TypeHello)}, body...)
}

func TestHelloRejected(t *testing.T) {
	fx := newFixture(t, 1, noLimits)
	good, _ := helloFrame(t, fx.config(0))
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	set := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	tests := []struct {
		name    string
		frame   []byte
		want    frame.ErrorCode
		ladders uint64 // an unverified proof costs one, whatever its key
	}{
		{"version 1", set(frame.HeaderSize, 1), frame.CodeVersion, 0},
		{"version 3", set(frame.HeaderSize, 3), frame.CodeVersion, 0},
		{"version 0", set(frame.HeaderSize, 0), frame.CodeVersion, 0},
		{"coffer/1 hello", v1Hello(t, fx.config(0)), frame.CodeVersion, 0},
		{"flipped ml-kem key", flip(frame.HeaderSize + 89 + 500), frame.CodeAuth, 1},
		{"flipped nonce", flip(frame.HeaderSize + 1 + 64), frame.CodeAuth, 1},
		{"flipped tag", flip(frame.HeaderSize + 89 + frame.KEMKeySize), frame.CodeAuth, 1},
		{"flipped ciphertext", flip(len(good) - 1), frame.CodeAuth, 1},
		{"flipped ephemeral", flip(frame.HeaderSize + 40), frame.CodeAuth, 1},
		{"short hello", []byte{0, 2, 0, 2, 0}, frame.CodeMalformed, 0},
		{"empty hello", []byte{0, 0, 0}, frame.CodeMalformed, 0},
		{"hello over its limit", []byte{0xff, 0xff, 0}, frame.CodeMalformed, 0},
		{"get first", []byte{0, 0, byte(frame.TypeGet)}, frame.CodeMalformed, 0},
		{"link from a client", []byte{0, 0, byte(frame.TypeLink)}, frame.CodeMalformed, 0},
		{"unknown type", []byte{0, 0, 0x04}, frame.CodeMalformed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fx.srv.ladders.Load()
			c := fx.dial(t)
			c.Write(tt.frame)
			typ, code := readReply(t, c)
			if typ != frame.TypeError || code != tt.want {
				t.Errorf("got %s code %d, want Error code %d", typ, code, tt.want)
			}
			// The server counts ladders before it closes.
			if n, err := io.Copy(io.Discard, c); n != 0 || err != nil {
				t.Errorf("after the error: got %d more bytes, err %v; want 0, nil", n, err)
			}
			if got := fx.srv.ladders.Load() - before; got != tt.ladders {
				t.Errorf("got %d ladders for a refused Hello, want %d", got, tt.ladders)
			}
		})
	}
}

// TestHelloPayloadChecked seals Hellos whose proof opens but whose
// payload is not exactly the encoding of {hello, 2, C, S, Ce, H(ek)}: each gets
// Error{auth} and costs the one ladder of any unverified proof; the exact
// encoding gets a Link.
func TestHelloPayloadChecked(t *testing.T) {
	fx := newFixture(t, 1, noLimits)
	cfg := fx.config(0)
	c, s := cfg.Key.Public(), cfg.Server
	ce := PublicKey{9}
	ek := bytes.Repeat([]byte{0x5a}, frame.KEMKeySize)
	kh := kemKeyHash(ek)
	good := frame.HelloPayload{H: frame.PurposeHello, V: frame.Version, C: c[:], S: s[:], E: ce[:], K: kh[:]}
	enc := func(p frame.HelloPayload) []byte {
		b, err := frame.Marshal(&p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	with := func(f func(p *frame.HelloPayload)) []byte { p := good; f(&p); return enc(p) }
	goodEnc := enc(good)
	other := PublicKey{7}
	tests := []struct {
		name string
		pt   []byte
	}{
		{"wrong kind", with(func(p *frame.HelloPayload) { p.H = frame.PurposeGet })},
		{"version 1 inside", with(func(p *frame.HelloPayload) { p.V = 1 })},
		{"other ml-kem key hash", with(func(p *frame.HelloPayload) { p.K = other[:] })},
		{"no ml-kem key hash", with(func(p *frame.HelloPayload) { p.K = nil })},
		{"other client", with(func(p *frame.HelloPayload) { p.C = other[:] })},
		{"other server", with(func(p *frame.HelloPayload) { p.S = other[:] })},
		{"other ephemeral", with(func(p *frame.HelloPayload) { p.E = other[:] })},
		{"short key", with(func(p *frame.HelloPayload) { p.E = ce[:31] })},
		{"extra field", append(append([]byte{0xa6}, goodEnc[1:]...), 0x61, 'x', 0x00)},
		{"version in two bytes", append(bytes.Clone(goodEnc[:len(goodEnc)-1]), 0x18, 0x01)},
		{"truncated", goodEnc[:len(goodEnc)-1]},
		{"empty", []byte{}},
	}
	send := func(t *testing.T, pt []byte) (frame.Type, frame.ErrorCode, uint64) {
		ss, err := cfg.Key.boxKey(&s)
		if err != nil {
			t.Fatal(err)
		}
		n, err := readNonce(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		h := frame.Hello{Version: frame.Version, Client: c, Ephemeral: ce, Nonce: n, KEMKey: ek}
		b := seal(h.Append(frame.AppendHeader(nil, frame.TypeHello)), pt, &n, ss)
		if b, err = frame.Finish(b, 0); err != nil {
			t.Fatal(err)
		}
		before := fx.srv.ladders.Load()
		conn := fx.dial(t)
		conn.Write(b)
		typ, code := readReply(t, conn)
		if typ == frame.TypeError {
			io.Copy(io.Discard, conn) // the server counts ladders before it closes
		}
		conn.Close()
		return typ, code, fx.srv.ladders.Load() - before
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, code, ladders := send(t, tt.pt)
			if typ != frame.TypeError || code != frame.CodeAuth {
				t.Errorf("got %s code %d, want Error{auth}", typ, code)
			}
			// One ladder: what a key outside the definition costs, so
			// that the two look the same (TestUnverifiedHelloSame).
			if ladders != 1 {
				t.Errorf("got %d ladders, want 1", ladders)
			}
		})
	}
	t.Run("exact encoding", func(t *testing.T) {
		if typ, _, _ := send(t, goodEnc); typ != frame.TypeLink {
			t.Errorf("got %s, want Link", typ)
		}
	})
}

func TestReplays(t *testing.T) {
	fx := newFixture(t, 1, noLimits)
	client, _ := fx.recordSession(t, fx.config(0))
	hello, get := client[0], client[1]

	t.Run("replayed hello gets a link, then its get fails", func(t *testing.T) {
		c := fx.dial(t)
		c.Write(hello.Raw)
		if typ, _ := readReply(t, c); typ != frame.TypeLink {
			t.Fatalf("got %s, want Link", typ)
		}
		c.Write(get.Raw)
		if typ, code := readReply(t, c); typ != frame.TypeError || code != frame.CodeAuth {
			t.Errorf("got %s code %d, want Error{auth}", typ, code)
		}
	})
	t.Run("get replayed into a fresh session", func(t *testing.T) {
		raw, _ := helloFrame(t, fx.config(0))
		c := fx.dial(t)
		c.Write(raw)
		if typ, _ := readReply(t, c); typ != frame.TypeLink {
			t.Fatalf("got %s, want Link", typ)
		}
		c.Write(get.Raw)
		if typ, code := readReply(t, c); typ != frame.TypeError || code != frame.CodeAuth {
			t.Errorf("got %s code %d, want Error{auth}", typ, code)
		}
	})
	t.Run("hello sent twice", func(t *testing.T) {
		c := fx.dial(t)
		c.Write(hello.Raw)
		readReply(t, c)
		c.Write(hello.Raw)
		if typ, code := readReply(t, c); typ != frame.TypeError || code != frame.CodeMalformed {
			t.Errorf("got %s code %d, want Error{malformed}", typ, code)
		}
	})
}

// TestCanary plants a secret, drives the error paths with debug logging
// on and checks the secret appears in no log line and no error.
func TestCanary(t *testing.T) {
	const canary = "CANARY-7f3a9c"
	var logBuf syncBuffer
	fx := newFixture(t, 2, func(s *Server) {
		s.Logger = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s.ClientLimit = Limit{Rate: 1e-9, Burst: 2}
	})
	fx.shards.shards[fx.clients[0].Public()]["canary"] = str(canary)
	var errs []error
	for range 3 { // the third is over the client limit
		_, err := fx.fetch(t, fx.config(0))
		errs = append(errs, err)
	}
	cfg := fx.config(1)
	cfg.MinSerial = 100
	_, err := fx.fetch(t, cfg)
	errs = append(errs, err)
	_, err = fx.fetch(t, &ClientConfig{Key: testKey(t, 50), Server: fx.key.Public()})
	errs = append(errs, err)
	fx.close(t)
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), canary) {
			t.Errorf("error %q contains the canary", err)
		}
	}
	logs := logBuf.String()
	for _, secret := range []string{canary, "secret-0", "secret-1", fmt.Sprintf("%x", fx.key.k.Bytes())} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a secret: %q", secret)
		}
	}
	if !strings.Contains(logs, fx.clients[0].Public().Fingerprint()) {
		t.Errorf("log does not name the client by fingerprint:\n%s", logs)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
