package coffer

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// cycleReader returns the same bytes over and over. As a server's Rand
// it gives every session the same Se and n2, so recorded client frames
// replay into new sessions; only fuzzing and benchmarks use it.
type cycleReader struct {
	mu  sync.Mutex
	b   []byte
	off int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range p {
		p[i] = r.b[r.off]
		r.off = (r.off + 1) % len(r.b)
	}
	return len(p), nil
}

func (r *cycleReader) reset() {
	r.mu.Lock()
	r.off = 0
	r.mu.Unlock()
}

// sessionRandBytes is what a server session reads for a known client:
// Se (32 bytes), the ML-KEM encapsulation's m (32 bytes), then n2 (24
// bytes).
const sessionRandBytes = 32 + 32 + 24

// replayServer is a server whose sessions are all alike: fixed key,
// fixed randomness per session, one client (testKey 100) with a small
// shard, no rate limits and short deadlines.
type replayServer struct {
	srv    *Server
	rand   *cycleReader
	client *PrivateKey
	// A recorded session: the client's frames and the server's.
	clientStream, serverStream []byte
	clientFrames, serverFrames []frame.Frame
}

func newReplayServer(tb testing.TB, shard frame.Shard) *replayServer {
	tb.Helper()
	rs := &replayServer{client: testKey(tb, 100)}
	b := make([]byte, sessionRandBytes)
	detRand(9).Read(b)
	rs.rand = &cycleReader{b: b}
	rs.srv = &Server{Key: testKey(tb, 1), Rand: rs.rand,
		HelloTimeout: time.Second, GetTimeout: time.Second, SessionTimeout: time.Second, ByeTimeout: time.Second}
	noLimits(rs.srv)
	ms := &memShards{shards: map[PublicKey]frame.Shard{rs.client.Public(): shard}}
	rs.srv.Swap(&Snapshot{Version: Version{Serial: 3, Hash: [32]byte{3}}, Clients: map[PublicKey]string{rs.client.Public(): "c"}, Shards: ms})

	cc, sc := net.Pipe()
	tc := &tapConn{Conn: cc}
	done := make(chan struct{})
	go func() { rs.srv.ServeConn(sc); close(done) }()
	if _, err := Fetch(context.Background(), tc, rs.clientConfig()); err != nil {
		tb.Fatalf("recording a session: %v", err)
	}
	<-done
	cc.Close()
	rs.clientStream, rs.serverStream = tc.out.Bytes(), tc.in.Bytes()
	rs.clientFrames, rs.serverFrames = splitFrames(tb, rs.clientStream), splitFrames(tb, rs.serverStream)
	return rs
}

// clientConfig is the recorded client, with a fresh copy of its
// deterministic randomness.
func (rs *replayServer) clientConfig() *ClientConfig {
	return &ClientConfig{Key: rs.client, Server: rs.srv.Key.Public(), Rand: detRand(5)}
}

// scriptConn is a peer that sent the bytes in r and then closed its
// side for writing, and reads whatever it is sent: reads return r's
// bytes, then EOF; writes succeed and are dropped. Other methods are the
// embedded connection's. (A net.Pipe end closed after the write would
// also close the way back, so a server that reads ahead in a buffer
// would find it closed before it answered.)
type scriptConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }

// serve runs one server session fed with in, discarding what the server
// writes, and fails if the session does not end.
func (rs *replayServer) serve(tb testing.TB, in []byte) {
	rs.rand.reset()
	c, s := net.Pipe()
	defer c.Close()
	done := make(chan struct{})
	go func() { rs.srv.ServeConn(&scriptConn{Conn: s, r: bytes.NewReader(in)}); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		tb.Fatal("ServeConn did not return")
	}
}

func fuzzShard() frame.Shard {
	return frame.Shard{"a": str("x"), "n": {Kind: frame.KindInt, Int: 1}}
}

func FuzzServerSession(f *testing.F) {
	rs := newReplayServer(f, fuzzShard())
	f.Add(rs.clientStream)
	for i := range rs.clientFrames {
		f.Add(rs.clientFrames[i].Raw)
		f.Add(bytes.Join([][]byte{rs.clientFrames[0].Raw, rs.clientFrames[i].Raw}, nil))
	}
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0})
	// Only the recorded Hello and Get can make a session succeed: every
	// byte of them is sealed or hashed. What follows the Get is the Bye,
	// a courtesy the outcome does not depend on (docs/protocol.md §4.5).
	genuine := bytes.Join([][]byte{rs.clientFrames[0].Raw, rs.clientFrames[1].Raw}, nil)
	var mu sync.Mutex
	var outcomes []string
	rs.srv.Audit = func(e AuditEvent) { mu.Lock(); outcomes = append(outcomes, e.Outcome); mu.Unlock() }
	f.Fuzz(func(t *testing.T, in []byte) {
		mu.Lock()
		outcomes = outcomes[:0]
		mu.Unlock()
		rs.serve(t, in)
		mu.Lock()
		defer mu.Unlock()
		if len(outcomes) > 1 {
			t.Fatalf("one connection gave %d audit events, want at most 1", len(outcomes))
		}
		for _, o := range outcomes {
			if (o == OutcomeOK || o == OutcomeUnknownClient) && !bytes.HasPrefix(in, genuine) {
				t.Fatalf("a stream other than the recorded Hello and Get ended in outcome %q", o)
			}
		}
	})
}

// TestServerReplaysRecordedSession checks that the fuzz harness reaches
// the end of a session with the recorded client frames.
func TestServerReplaysRecordedSession(t *testing.T) {
	rs := newReplayServer(t, fuzzShard())
	before := rs.srv.ladders.Load()
	var mu sync.Mutex
	var outcome string
	rs.srv.Audit = func(e AuditEvent) { mu.Lock(); outcome = e.Outcome; mu.Unlock() }
	rs.serve(t, rs.clientStream)
	if outcome != OutcomeOK {
		t.Errorf("got outcome %q, want %q", outcome, OutcomeOK)
	}
	if got := rs.srv.ladders.Load() - before; got != 4 {
		t.Errorf("got %d ladders, want 4", got)
	}
}

// fetchFrom runs Fetch against a fake server that sends in, whatever the
// client says, and returns the client's result.
func fetchFrom(tb testing.TB, cfg *ClientConfig, in []byte) (*Result, error) {
	cc, sc := net.Pipe()
	go io.Copy(io.Discard, sc)
	go func() {
		sc.Write(in)
		sc.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := Fetch(ctx, cc, cfg)
	cc.Close()
	if ctx.Err() != nil {
		tb.Fatal("Fetch did not return before its deadline")
	}
	return res, err
}

func FuzzClientSession(f *testing.F) {
	rs := newReplayServer(f, fuzzShard())
	f.Add(rs.serverStream)
	for _, fr := range rs.serverFrames {
		f.Add(fr.Raw)
	}
	f.Add(plainError(frame.CodeBusy))
	f.Add([]byte{0, 0, 0xaa})
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := fetchFrom(t, rs.clientConfig(), in)
		if (res == nil) == (err == nil) {
			t.Fatalf("got result %v and error %v, want exactly one", res != nil, err)
		}
		if err == nil && !bytes.HasPrefix(in, rs.serverStream) {
			// Only the genuine stream can succeed: every byte is sealed
			// or hashed.
			t.Fatalf("a stream other than the recorded one succeeded")
		}
	})
}

// TestClientReplaysRecordedSession checks that the fuzz harness reaches
// a complete shard with the recorded server frames.
func TestClientReplaysRecordedSession(t *testing.T) {
	rs := newReplayServer(t, fuzzShard())
	res, err := fetchFrom(t, rs.clientConfig(), rs.serverStream)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got := string(res.Shard["a"].Text); got != "x" || res.Version.Serial != 3 {
		t.Errorf("got a=%q serial %d, want a=x serial 3", got, res.Version.Serial)
	}
}

// TestWriteFuzzSeeds writes the recorded sessions as seed files under
// testdata/fuzz when COFFER_WRITE_SEEDS=1. The recordings are
// deterministic (fixed keys, fixed randomness), so the files are stable.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("COFFER_WRITE_SEEDS") != "1" {
		t.Skip("set COFFER_WRITE_SEEDS=1 to rewrite testdata/fuzz seeds")
	}
	rs := newReplayServer(t, fuzzShard())
	seeds := map[string][]byte{
		"FuzzServerSession/session":   rs.clientStream,
		"FuzzServerSession/hello":     rs.clientFrames[0].Raw,
		"FuzzServerSession/hello-get": bytes.Join([][]byte{rs.clientFrames[0].Raw, rs.clientFrames[1].Raw}, nil),
		"FuzzServerSession/version-1": append([]byte{0, 1, 0}, 1),
		"FuzzClientSession/session":   rs.serverStream,
		"FuzzClientSession/link":      rs.serverFrames[0].Raw,
		"FuzzClientSession/busy":      plainError(frame.CodeBusy),
		"FuzzClientSession/auth":      plainError(frame.CodeAuth),
	}
	// Every vector seeds both targets: its c>s frames the server's, its
	// s>c frames the client's (docs/protocol.md §9).
	vectorSeeds := map[string][]byte{}
	vectors, err := filepath.Glob(filepath.Join("testdata", "vectors", "*.txt"))
	if err != nil || len(vectors) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	for _, p := range vectors {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := "vector-" + strings.TrimSuffix(filepath.Base(p), ".txt")
		var cs, sc []byte
		_, frames, _ := strings.Cut(string(data), "\n\n")
		for _, line := range strings.Split(strings.TrimSpace(frames), "\n") {
			dir, h, _ := strings.Cut(line, ": ")
			b, err := hex.DecodeString(h)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if dir == "c>s" {
				cs = append(cs, b...)
			} else {
				sc = append(sc, b...)
			}
		}
		if len(cs) > 0 {
			vectorSeeds["FuzzServerSession/"+name] = cs
		}
		if len(sc) > 0 {
			vectorSeeds["FuzzClientSession/"+name] = sc
		}
	}
	for name, b := range vectorSeeds {
		if len(b) > maxSeedBytes {
			continue // okget-3-chunks: the fuzzer mutates large inputs poorly
		}
		path := filepath.Join("testdata", "fuzz", name)
		if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(\"%s\")\n", hexEscape(b)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range seeds {
		path := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// maxSeedBytes bounds a vector's stream as a fuzz seed.
const maxSeedBytes = 64 << 10

// hexEscape quotes b for a seed file as the vector seeds were first
// written: printable ASCII as is (with \" and \\), every other byte \xNN.
func hexEscape(b []byte) string {
	var out strings.Builder
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			out.WriteByte('\\')
			out.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			out.WriteByte(c)
		default:
			fmt.Fprintf(&out, "\\x%02x", c)
		}
	}
	return out.String()
}
