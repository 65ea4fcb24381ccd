package coffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/coffer-project/coffer/frame"
)

// proxySession runs a client against the real server through a proxy
// that passes the Link and hands the server's OkGet frames (n of them)
// to mutate before forwarding what it returns.
func proxySession(t *testing.T, fx *fixture, cfg *ClientConfig, n int, mutate func([][]byte) [][]byte) (*Result, error) {
	t.Helper()
	cc, pc := net.Pipe() // client, proxy's client side
	ps, sc := net.Pipe() // proxy's server side, server
	served := make(chan struct{})
	go func() { fx.srv.ServeConn(sc); close(served) }()
	go io.Copy(ps, pc)
	go func() {
		f, err := frame.Read(ps)
		if err != nil {
			return
		}
		pc.Write(f.Raw)
		var chunks [][]byte
		for len(chunks) < n {
			f, err := frame.Read(ps)
			if err != nil {
				break
			}
			chunks = append(chunks, f.Raw)
		}
		for _, c := range mutate(chunks) {
			if _, err := pc.Write(c); err != nil {
				return
			}
		}
		pc.Close()
	}()
	res, err := Fetch(context.Background(), cc, cfg)
	cc.Close()
	pc.Close()
	ps.Close()
	<-served
	return res, err
}

func TestChunkTampering(t *testing.T) {
	fx := newFixture(t, 1, noLimits)
	blob := bytes.Repeat([]byte{'x'}, 3*frame.MaxChunkBytes)
	fx.shards.shards[fx.clients[0].Public()] = frame.Shard{"blob": {Kind: frame.KindString, Text: blob}}
	const n = 4
	_, recorded := fx.recordSession(t, fx.config(0))
	if len(recorded) != 1+n {
		t.Fatalf("got %d server frames, want a Link and %d OkGet", len(recorded), n)
	}
	foreign := recorded[2].Raw // chunk 1 of another session

	tests := []struct {
		name    string
		mutate  func(c [][]byte) [][]byte
		wantErr error // nil: any error
	}{
		{"reordered", func(c [][]byte) [][]byte { return [][]byte{c[0], c[2], c[1], c[3]} }, ErrProtocol},
		{"dropped", func(c [][]byte) [][]byte { return [][]byte{c[0], c[2], c[3]} }, ErrProtocol},
		{"duplicated", func(c [][]byte) [][]byte { return [][]byte{c[0], c[0], c[1], c[2], c[3]} }, ErrProtocol},
		{"from another session", func(c [][]byte) [][]byte { return [][]byte{c[0], foreign, c[2], c[3]} }, ErrProtocol},
		{"flipped byte", func(c [][]byte) [][]byte {
			c[2] = bytes.Clone(c[2])
			c[2][100] ^= 1
			return c
		}, ErrProtocol},
		{"last missing", func(c [][]byte) [][]byte { return c[:3] }, io.EOF},
		{"last truncated", func(c [][]byte) [][]byte { c[3] = c[3][:len(c[3])-1]; return c }, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := proxySession(t, fx, fx.config(0), n, tt.mutate)
			if err == nil || res != nil {
				t.Fatalf("got %v, %v; want no result and an error", res, err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			// A chunk that does not open proves nothing: not final.
			if !Retryable(err) {
				t.Errorf("Retryable(%v) = false, want true", err)
			}
		})
	}
	t.Run("untouched", func(t *testing.T) {
		res, err := proxySession(t, fx, fx.config(0), n, func(c [][]byte) [][]byte { return c })
		if err != nil || !bytes.Equal(res.Shard["blob"].Text, blob) {
			t.Errorf("got error %v, want the whole blob", err)
		}
	})
}

func TestRollback(t *testing.T) {
	fx := newFixture(t, 1, noLimits)
	// Garbage that would fail to decode: a refusal for rollback must come
	// first, before the shard is buffered or decoded.
	fx.shards.raw = map[PublicKey][]byte{fx.clients[0].Public(): {0xff, 0xfe}}
	tests := []struct {
		name      string
		minSerial uint64
		want      error
	}{
		{"older than the minimum", 8, ErrRollback},
		{"equal to the minimum reaches decoding", 7, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fx.config(0)
			cfg.MinSerial = tt.minSerial
			_, err := fx.fetch(t, cfg)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrRollback) && Retryable(err) {
				t.Errorf("Retryable(%v) = true, want false", err)
			}
		})
	}
}

// fakeServer answers a client's Hello with the given bytes, then closes.
func fakeServer(t *testing.T, reply []byte) error {
	t.Helper()
	cc, sc := net.Pipe()
	defer cc.Close()
	go func() {
		defer sc.Close()
		if _, err := frame.Read(sc); err != nil {
			return
		}
		sc.Write(reply)
	}()
	_, err := Fetch(context.Background(), cc, &ClientConfig{Key: testKey(t, 100), Server: testKey(t, 1).Public()})
	return err
}

func TestClientRefusesBadReplies(t *testing.T) {
	plain := func(code frame.ErrorCode) []byte { return plainError(code) }
	tests := []struct {
		name      string
		reply     []byte
		want      error
		retryable bool
	}{
		{"plain busy", plain(frame.CodeBusy), &RemoteError{Code: frame.CodeBusy}, true},
		{"plain auth proves nothing", plain(frame.CodeAuth), &RemoteError{Code: frame.CodeAuth}, true},
		{"plain version proves nothing", plain(frame.CodeVersion), &RemoteError{Code: frame.CodeVersion}, true},
		{"plain malformed proves nothing", plain(frame.CodeMalformed), &RemoteError{Code: frame.CodeMalformed}, true},
		{"garbage error body", []byte{0, 1, 0xff, 0xff}, ErrUnverified, true},
		{"keynotfound that does not open", append([]byte{0, 60, 0xaa}, make([]byte, 60)...), ErrUnverified, true},
		{"link that does not open", append([]byte{0, 100, 0x01}, make([]byte, 100)...), ErrServerAuth, true},
		{"short link", []byte{0, 1, 0x01, 0}, ErrServerAuth, true},
		{"okget before link", []byte{0, 0, 0x03}, frame.ErrUnexpected, true},
		{"unknown type", []byte{0, 0, 0x04}, frame.ErrUnknownType, true},
		{"oversized link", []byte{0xff, 0xff, 0x01}, frame.ErrTooLong, true},
		{"nothing", nil, io.EOF, true},
		{"truncated", []byte{0, 10, 0x01, 1}, io.ErrUnexpectedEOF, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fakeServer(t, tt.reply)
			var want *RemoteError
			if errors.As(tt.want, &want) {
				var got *RemoteError
				if !errors.As(err, &got) || *got != *want {
					t.Fatalf("got %v, want %v", err, want)
				}
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if got := Retryable(err); got != tt.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tt.retryable)
			}
			// Nothing here authenticated: every answer is unverified,
			// every transport error is not (docs/protocol.md §4.7).
			transport := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
			if got := errors.Is(err, ErrUnverified); got == transport {
				t.Errorf("errors.Is(%v, ErrUnverified) = %v, want %v", err, got, !transport)
			}
			if want != nil && (errors.Is(err, ErrServerAuth) || errors.Is(err, ErrAuth)) {
				t.Errorf("an unsealed %v matches ErrServerAuth or ErrAuth: final on a forgeable frame", err)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{ErrUnknownClient, false},
		{ErrServerAuth, false}, // a Link that opened for this session, with an unusable Se
		{errLinkUnverified, true},
		{errKeyNotFoundUnverified, true},
		{errErrorUnverified, true},
		{unverified(fmt.Errorf("%w: okget 1 did not open", ErrProtocol)), true},
		{ErrRollback, false},
		{context.Canceled, false},
		{&RemoteError{Code: frame.CodeBusy, Sealed: true}, true},
		{&RemoteError{Code: frame.CodeUnavailable}, true},
		{&RemoteError{Code: frame.CodeInternal, Sealed: true}, true},
		{&RemoteError{Code: frame.CodeAuth}, true},
		{&RemoteError{Code: frame.CodeVersion}, true},
		{&RemoteError{Code: frame.CodeMalformed}, true},
		{&RemoteError{Code: 99}, true},
		{&RemoteError{Code: frame.CodeAuth, Sealed: true}, false},
		{&RemoteError{Code: frame.CodeVersion, Sealed: true}, false},
		{&RemoteError{Code: frame.CodeMalformed, Sealed: true}, false},
		{&RemoteError{Code: 99, Sealed: true}, false},
		{fmt.Errorf("dialing: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), true},
		{context.DeadlineExceeded, true},
		{&net.OpError{Op: "dial", Err: errors.New("no route")}, true},
		{fmt.Errorf("%w: okget 1", ErrProtocol), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			if got := Retryable(tt.err); got != tt.want {
				t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if !errors.Is(&RemoteError{Code: frame.CodeAuth, Sealed: true}, ErrAuth) {
		t.Error("a sealed RemoteError with code auth does not match ErrAuth")
	}
	if errors.Is(&RemoteError{Code: frame.CodeAuth}, ErrAuth) {
		t.Error("an unsealed RemoteError with code auth matches ErrAuth")
	}
}

func TestFetchContext(t *testing.T) {
	cc, sc := net.Pipe()
	defer sc.Close()
	go io.Copy(io.Discard, sc) // a server that never answers
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := Fetch(ctx, cc, &ClientConfig{Key: testKey(t, 100), Server: testKey(t, 1).Public()})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestGetTooLarge checks the names rule a client knows before connecting
// (docs/protocol.md §4.3): a Get whose sealed body would pass the Get
// frame limit, or that asks for too many names or a bad one, is refused
// before Fetch writes a byte, so the server sees no Hello and audits
// nothing; a Get exactly at the limit is served.
func TestGetTooLarge(t *testing.T) {
	names := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%0*d", size, i)
		}
		return out
	}
	// 30 names of 128 bytes make a Get body of 3,968 bytes (each name is
	// 130 bytes of CBOR); a 31st of 126 bytes brings it to 4,096.
	tests := []struct {
		name    string
		names   []string
		wantErr error // nil: served
	}{
		{"at the limit", append(names(30, 128), strings.Repeat("x", 126)), nil},
		{"one byte past", append(names(30, 128), strings.Repeat("x", 127)), ErrGetTooLarge},
		{"256 names of 128 bytes", names(256, 128), ErrGetTooLarge},
		{"257 short names", names(257, 3), frame.ErrInvalid},
		{"a bad name", []string{"db password"}, frame.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var events []AuditEvent // appended by the session goroutine, read after Close
			fx := newFixture(t, 1, noLimits, func(s *Server) { s.Audit = func(e AuditEvent) { events = append(events, e) } })
			cfg := fx.config(0)
			cfg.Names = tc.names
			_, err := fx.fetch(t, cfg)
			fx.close(t) // waits for the session, so events is complete
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("got %v, want the shard", err)
				}
				if len(events) != 1 || events[0].Outcome != OutcomeOK {
					t.Errorf("got audit events %+v, want one %q", events, OutcomeOK)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if len(events) != 0 {
				t.Errorf("got audit events %+v, want none: nothing may be sent", events)
			}
			if Retryable(err) {
				t.Errorf("Retryable(%v) = true, want false", err)
			}
		})
	}
}

// TestGetSizeRule checks the size rule CheckNames documents against the
// Get body Fetch builds: 66 bytes, plus the names array's header (1 byte
// below 24 names, 2 below 256, 3 from 256), plus each name's length and 1
// (2 from 24 bytes).
func TestGetSizeRule(t *testing.T) {
	rule := func(names []string) int {
		n := 66 + 1
		if len(names) >= 24 {
			n++
		}
		if len(names) >= 256 {
			n++
		}
		for _, s := range names {
			n += len(s) + 1
			if len(s) >= 24 {
				n++
			}
		}
		return n
	}
	for _, count := range []int{1, 23, 24, 255, 256} {
		for _, size := range []int{3, 23, 24, 128} {
			t.Run(fmt.Sprintf("%d names of %d bytes", count, size), func(t *testing.T) {
				names := make([]string, count)
				for i := range names {
					names[i] = fmt.Sprintf("%0*d", size, i)
				}
				// Built as an OkGet, whose limit (65,535) holds even
				// 256 names of 128 bytes, to measure past Get's limit.
				var key [32]byte
				var n nonce
				b, err := appendSealed(nil, frame.TypeOkGet, nil, &frame.GetPayload{H: frame.PurposeGet, TH: make([]byte, 32), Names: names}, &n, &key)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := len(b)-frame.HeaderSize, rule(names); got != want {
					t.Errorf("Get body of %d bytes, rule says %d", got, want)
				}
			})
		}
	}
}

// TestClientOldServer runs the client against a coffer/1 server's
// answers to a coffer/2 Hello: the Hello passes coffer/1's 256-byte
// Hello limit, so such a server answers Error{malformed} after the
// header; one that read the version byte would answer Error{version}.
// Either way the client says to upgrade the server, and the error stays
// an unsealed, retryable *RemoteError (the next server may be current).
func TestClientOldServer(t *testing.T) {
	tests := []struct {
		name string
		v1   func(hdr [3]byte) frame.ErrorCode
		code frame.ErrorCode
		hint string
	}{
		{"hello over the coffer/1 limit", func(hdr [3]byte) frame.ErrorCode {
			if int(hdr[0])<<8|int(hdr[1]) > 256 {
				return frame.CodeMalformed
			}
			return 0
		}, frame.CodeMalformed, "if it runs coffer/1, upgrade the server"},
		{"version byte", func([3]byte) frame.ErrorCode { return frame.CodeVersion }, frame.CodeVersion, "does not speak coffer/2: upgrade the server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, sc := net.Pipe()
			defer cc.Close()
			go func() {
				defer sc.Close()
				var hdr [3]byte
				if _, err := io.ReadFull(sc, hdr[:]); err != nil {
					return
				}
				// net.Pipe has no buffer: take the body, then answer.
				io.CopyN(io.Discard, sc, int64(hdr[0])<<8|int64(hdr[1]))
				sc.Write(plainError(tt.v1(hdr)))
			}()
			_, err := Fetch(context.Background(), cc, &ClientConfig{Key: testKey(t, 100), Server: testKey(t, 1).Public()})
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tt.code || re.Sealed {
				t.Fatalf("got %v, want an unsealed Error code %d", err, tt.code)
			}
			if !strings.Contains(err.Error(), tt.hint) {
				t.Errorf("got %q, want the hint %q", err, tt.hint)
			}
			if !Retryable(err) || !errors.Is(err, ErrUnverified) {
				t.Errorf("Retryable = %v, ErrUnverified = %v; want both true", Retryable(err), errors.Is(err, ErrUnverified))
			}
		})
	}
}
