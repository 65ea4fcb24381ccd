package coffer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// failure ends a server session. code is the Error to send (0: none),
// outcome the audit outcome, and reason a fixed debug-only text.
type failure struct {
	code    frame.ErrorCode
	outcome string
	reason  string
	limit   string // the rate-limit bucket that refused the session, if any
}

func (f *failure) Error() string { return "coffer: session failed: " + f.reason }

func fail(code frame.ErrorCode, outcome, reason string) *failure {
	return &failure{code: code, outcome: outcome, reason: reason}
}

// authFailed is the one reply to every failed proof, whatever the cause.
func authFailed(reason string) *failure {
	return fail(frame.CodeAuth, OutcomeAuthFailed, reason)
}

// session is the server's state for one connection, written straight
// down: Hello, Link, Get, OkGet chunks, Bye (docs/protocol.md §4). Any
// failure is terminal.
type session struct {
	s      *Server
	c      net.Conn
	start  time.Time
	remote netip.Addr

	helloSeen  bool // a Hello parsed: the session is audited
	handshake  bool // counted in the per-address handshake limiter
	proven     bool // a KeyNotFound was sealed: the handshake's token comes back
	keyCharged bool // holds a token of failKey until served
	known      bool // the claimed key is in the definition (audit class)
	getOpened  bool // errors from now on are sealed
	snap       *Snapshot
	client     PublicKey
	name       string
	ss         *[32]byte     // K(S,C): the snapshot's row, never cleared here
	ephemeral  PublicKey     // Ce
	se         *ephemeralKey // server ephemeral Se
	es         *[32]byte     // K(S,Ce)
	kemKey     []byte        // ek of the Hello (public; aliases its frame)
	kem        *[32]byte     // the ML-KEM-768 shared secret
	th         hash
	cs, sc     *cipherState
	ladders    uint64
	serial     uint64
	values     int
	shardBytes int

	pt  [256]byte  // plaintext of Hello (its box holds ~156 bytes)
	out []byte     // frame being written
	in  connReader // frames being read
}

// connReader reads a connection through a small buffer, so that a frame
// that arrived whole (a Hello, a Get) costs one read system call rather
// than two (header, then body). Reads as large as the buffer bypass it.
// It holds only bytes as received: public or sealed.
type connReader struct {
	c    net.Conn
	r, w int
	buf  [2048]byte // a whole Hello (1,448 bytes) or Get
}

func (cr *connReader) Read(p []byte) (int, error) {
	if cr.r == cr.w {
		if len(p) >= len(cr.buf) {
			return cr.c.Read(p)
		}
		n, err := cr.c.Read(cr.buf[:])
		cr.r, cr.w = 0, n
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, cr.buf[cr.r:cr.w])
	cr.r += n
	return n, nil
}

// serve runs one session on c and closes it.
func (s *Server) serve(c net.Conn) {
	ss := &session{s: s, c: c, start: time.Now(), remote: sourceAddr(c.RemoteAddr())}
	ss.in.c = c
	err := ss.run()
	ss.finish(err)
}

func (ss *session) run() error {
	s := ss.s
	if !s.handshakes.enter(ss.remote, ss.start) {
		return limited(LimitHandshakesPerAddress, "too many handshakes from this address")
	}
	ss.handshake = true
	ss.c.SetDeadline(ss.start.Add(s.HelloTimeout))
	f, err := frame.Read(&ss.in, frame.TypeHello)
	if err != nil {
		return readFailure(err, "reading hello")
	}
	if err := ss.openHello(f); err != nil {
		return err
	}
	if err := ss.sealLink(); err != nil {
		return err
	}
	ss.c.SetDeadline(ss.start.Add(s.GetTimeout))
	// A Link that no Get follows is most likely a replayed Hello: its
	// handshake keeps its token, which bounds the ladders of replays.
	if f, err = frame.Read(&ss.in, frame.TypeGet); err != nil {
		return readFailure(err, "reading get")
	}
	names, err := ss.openGet(f)
	if err != nil {
		return err
	}
	// The Get opened and the client's token is taken: the session is
	// served, and its handshake tokens come back at once.
	now := time.Now()
	s.handshakes.leave(ss.remote, true, now)
	ss.handshake = false
	s.failKey.refund(addrKey{ss.remote, ss.client}, now)
	ss.keyCharged = false
	ss.c.SetDeadline(ss.start.Add(s.SessionTimeout))
	if err := ss.sendShard(names); err != nil {
		return err
	}
	// The shard is out and Bye is a courtesy: by default the server closes
	// at once, which spares a wake-up per session. With a ByeTimeout it
	// waits that long for the Bye (docs/protocol.md §4.5).
	if s.ByeTimeout > 0 {
		ss.c.SetDeadline(minTime(time.Now().Add(s.ByeTimeout), ss.start.Add(s.SessionTimeout)))
		if f, err = frame.Read(&ss.in, frame.TypeBye); err == nil {
			_ = ss.openBye(f) // a bad Bye changes nothing
		}
	}
	return nil
}

// readFailure classifies a frame read error: a bad header gets
// Error{malformed}, a transport error or timeout just closes.
func readFailure(err error, what string) *failure {
	switch {
	case errors.Is(err, frame.ErrUnknownType), errors.Is(err, frame.ErrUnexpected), errors.Is(err, frame.ErrTooLong):
		return fail(frame.CodeMalformed, OutcomeError, what+": bad frame header")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fail(0, OutcomeError, what+": deadline passed")
	case errors.Is(err, io.EOF):
		return fail(0, OutcomeError, what+": connection closed")
	}
	return fail(0, OutcomeError, what+": transport error")
}

// openHello checks a Hello: version, table lookup, proof, payload
// bindings, rate limits. It costs no ladder for a known key with a valid
// proof. A proof that does not open costs the same whether or not its
// key is in the definition, and gets the same reply (unverified).
func (ss *session) openHello(f frame.Frame) error {
	s := ss.s
	body := f.Body()
	if len(body) > 0 && body[0] != frame.Version {
		return fail(frame.CodeVersion, OutcomeError, "unsupported version")
	}
	h, err := frame.ParseHello(body)
	if err != nil {
		return fail(frame.CodeMalformed, OutcomeError, "short hello")
	}
	ss.helloSeen = true
	ss.client = h.Client
	var e *clientEntry
	if ss.snap, e = s.acquireSnapshot((*PublicKey)(&h.Client)); ss.snap == nil {
		return fail(frame.CodeUnavailable, OutcomeError, "no definition loaded")
	}
	ss.ss = &s.dummy
	if e != nil {
		ss.ss, ss.name, ss.known = &e.ss, e.name, true
	}
	if ss.checkProof(&h) != nil || e == nil {
		ss.ss = nil
		return ss.unverified(&h, f.Raw)
	}
	// A valid proof is no proof of liveness: a replayed Hello has one.
	// Until it is served, the handshake holds a token of its source
	// address and key, taken before the Link's two ladders; replays of
	// one client's Hellos are bounded by it, whatever their concurrency,
	// and a fleet behind one address is not (each key has its own).
	now := time.Now()
	if !s.failKey.take(addrKey{ss.remote, h.Client}, now) {
		return limited(LimitFailedAuthPerAddress, "address and key over the unfinished-handshake limit")
	}
	ss.keyCharged = true
	// A pre-filter: the client's token is taken when the Get opens,
	// which a replayed Hello cannot make happen, so replays cannot lock
	// the real client out.
	if !s.clientLim.allowed(h.Client, now) {
		return limited(LimitPerClient, "client over its rate limit")
	}
	ss.ephemeral = h.Ephemeral
	ss.kemKey = h.KEMKey
	ss.th = mixFrame(&s.th0, f.Raw)
	return nil
}

// checkProof opens the Hello box under ss.ss and checks that the sealed
// payload repeats the outer fields and names this server's key.
func (ss *session) checkProof(h *frame.Hello) error {
	n := nonce(h.Nonce)
	pt, err := open(ss.pt[:0], h.Box, &n, ss.ss)
	if err != nil {
		return authFailed("hello proof did not open")
	}
	defer clear(pt)
	// Strict decoding accepts only plaintexts that re-encode to
	// themselves, and the decoded payload must then equal
	// {hello, 2, C, S, Ce, H(ek)}. So the one acceptable plaintext is the
	// deterministic encoding of those values: comparing with it checks
	// the same thing as decoding, validating and comparing fields, at a
	// fraction of the cost (frame.Marshal, no decode and re-encode). K
	// is the hash of the outer ek, computed for every Hello whose box
	// opened, known key or not.
	k := kemKeyHash(h.KEMKey)
	want, err := frame.Marshal(&frame.HelloPayload{H: frame.PurposeHello, V: frame.Version,
		C: h.Client[:], S: ss.s.pub[:], E: h.Ephemeral[:], K: k[:]})
	if err != nil {
		return fail(frame.CodeInternal, OutcomeError, "encoding the expected hello payload")
	}
	if subtle.ConstantTimeCompare(pt, want) != 1 {
		return authFailed("hello payload is not the encoding of the outer fields")
	}
	e := PublicKey(h.Ephemeral)
	if CheckPublicKey(&e) != nil {
		return authFailed("weak client ephemeral key")
	}
	return nil
}

// unverified answers a Hello whose key is not in the definition, or
// whose proof did not open under the key's row: both take the same
// tokens and cost one ladder for K(S,C), so that neither the reply nor
// its time tells an unauthenticated peer whether a key is in the
// definition. Without a token: Error{busy}. If the proof opens under
// K(S,C), which only a key outside the definition can make happen here,
// a sealed KeyNotFound.
func (ss *session) unverified(h *frame.Hello, raw []byte) error {
	s := ss.s
	now := time.Now()
	// Per-address buckets first: a host past its own budget must not
	// spend a global token it is then refused anyway.
	if !s.failIP.take(ss.remote, now) {
		return limited(LimitFailedAuthPerAddress, "unverified-proof budget exhausted")
	}
	if !s.unknownIP.take(ss.remote, now) {
		return limited(LimitUnknownClientsPerAddress, "unverified-proof budget exhausted")
	}
	if !s.unknown.take(now) {
		return limited(LimitUnknownClients, "unverified-proof budget exhausted")
	}
	c := PublicKey(h.Client)
	if CheckPublicKey(&c) != nil {
		return authFailed("weak client key")
	}
	ss.ladders++
	k, err := s.Key.boxKey(&c)
	if err != nil {
		return authFailed("weak client key")
	}
	defer clear(k[:])
	ss.ss = k
	defer func() { ss.ss = nil }()
	if err := ss.checkProof(h); err != nil {
		return err
	}
	if ss.known {
		// K(S,C) is the row the proof did not open under.
		return authFailed("hello proof opened under a recomputed row")
	}
	// A valid proof is no failed authentication.
	s.failIP.refund(ss.remote, now)
	th1 := mixFrame(&s.th0, raw)
	err = ss.writeSealed(frame.TypeKeyNotFound, &frame.KeyNotFoundPayload{H: frame.PurposeKeyNotFound, TH: th1[:]}, k)
	var fl *failure
	if errors.As(err, &fl) && fl.code != 0 {
		return err // the KeyNotFound could not be built: Error{internal}
	}
	ss.proven = err == nil
	return fail(0, OutcomeUnknownClient, "unknown client")
}

// sealLink makes the server ephemeral Se, encapsulates to the client's
// ML-KEM-768 key, and sends Link under K(S,Ce): two ladders and one
// encapsulation, all after openHello's token charges. Randomness is read
// in a fixed order: Se (32 bytes), the encapsulation's (32 bytes, only
// from a Rand a test set), then n2 (24 bytes).
func (ss *session) sealLink() error {
	s := ss.s
	var err error
	ss.ladders++
	if ss.se, err = newEphemeralKey(s.rand); err != nil {
		return fail(frame.CodeInternal, OutcomeError, "generating the ephemeral key")
	}
	ss.ladders++
	if ss.es, err = s.Key.boxKey(&ss.ephemeral); err != nil {
		return authFailed("weak client ephemeral key")
	}
	// ek was authenticated by the Hello's box (its hash K), so a key that
	// is no valid encoding is the client's own: Error{malformed}.
	var ct []byte
	if ss.kem, ct, err = sessionEncapsulate(ss.kemKey, s.Rand); err != nil {
		return fail(frame.CodeMalformed, OutcomeError, "client ml-kem key is not a valid encoding")
	}
	sePub := ss.se.Public()
	if err := ss.writeSealed(frame.TypeLink, &frame.LinkPayload{H: frame.PurposeLink, SE: sePub[:], TH: ss.th[:], CT: ct}, ss.es); err != nil {
		return err
	}
	ss.th = mixFrame(&ss.th, ss.out)
	return nil
}

// writeSealed sends v as one frame of type t (docs/protocol.md §3). With
// a key, the body is a fresh random nonce and the box under key and that
// nonce (Link, KeyNotFound); with a nil key, the box under k_sc and its
// next counter (an OkGet chunk, a sealed Error). The frame as sent stays
// in ss.out until the next write, for the transcript. Errors are
// failures: Error{internal} when the frame cannot be built, a plain
// close when it cannot be written.
func (ss *session) writeSealed(t frame.Type, v any, key *[32]byte) error {
	var (
		n      nonce
		prefix []byte
		err    error
	)
	if key != nil {
		n, err = readNonce(ss.s.rand)
		prefix = n[:]
	} else {
		n, err = ss.sc.next()
		key = &ss.sc.key
	}
	if err == nil {
		ss.out, err = appendSealed(ss.out[:0], t, prefix, v, &n, key)
	}
	if err != nil {
		return fail(frame.CodeInternal, OutcomeError, "building "+t.String())
	}
	if _, err := ss.c.Write(ss.out); err != nil {
		return fail(0, OutcomeError, "writing "+t.String())
	}
	return nil
}

// openGet computes the session keys (two more ladders, spent only now
// that a Get has come, so a replayed Hello costs two) and opens the Get.
func (ss *session) openGet(f frame.Frame) ([]string, error) {
	ss.ladders += 2
	ee, err := ss.se.boxKey(&ss.ephemeral)
	if err != nil {
		return nil, authFailed("weak client ephemeral key")
	}
	defer clear(ee[:])
	se, err := ss.se.boxKey(&ss.client)
	if err != nil {
		return nil, authFailed("weak client key")
	}
	defer clear(se[:])
	ss.se.clear()
	ss.se = nil
	if ss.cs, ss.sc, err = sessionKeys(&ss.th, ss.kem, ss.es, ss.ss, ee, se); err != nil {
		return nil, fail(frame.CodeInternal, OutcomeError, "deriving session keys")
	}
	clear(ss.es[:])
	clear(ss.kem[:])
	pt, err := ss.cs.open(nil, f.Body())
	if err != nil {
		return nil, authFailed("get did not open")
	}
	defer clear(pt)
	ss.getOpened = true
	// Most Gets ask for the whole shard: {get, th2}, whose one acceptable
	// plaintext is its deterministic encoding (as for Hello). Anything
	// else goes through the strict decoder, which tells a malformed
	// payload from a wrong transcript.
	if want, err := frame.Marshal(&frame.GetPayload{H: frame.PurposeGet, TH: ss.th[:]}); err == nil && bytes.Equal(pt, want) {
		return nil, ss.takeClientToken()
	}
	var p frame.GetPayload
	if err := frame.Unmarshal(pt, &p); err != nil {
		return nil, fail(frame.CodeMalformed, OutcomeError, "get payload did not decode")
	}
	if err := p.Validate(); err != nil {
		return nil, fail(frame.CodeMalformed, OutcomeError, "get payload invalid")
	}
	if !equalHash(p.TH, &ss.th) {
		return nil, authFailed("get transcript hash mismatch")
	}
	return p.Names, ss.takeClientToken()
}

// takeClientToken charges a session to its client key once its Get has
// opened, before the shard is read: the one step only the key's holder
// can reach, whatever the concurrency. Without a token, a sealed
// Error{busy}.
func (ss *session) takeClientToken() error {
	if !ss.s.clientLim.take(ss.client, time.Now()) {
		return limited(LimitPerClient, "client over its rate limit")
	}
	return nil
}

// sendShard reads the client's shard from the snapshot and sends it in
// OkGet chunks of at most frame.MaxChunkBytes, each sealed under k_sc
// with the next counter. The shard is zeroed afterwards.
func (ss *session) sendShard(names []string) error {
	if ss.snap.Shards == nil {
		return fail(frame.CodeInternal, OutcomeError, "snapshot without shards")
	}
	shard, err := ss.snap.Shards.Shard(ss.client, names)
	if err != nil {
		ss.s.log.Warn("reading a shard failed", "client", ss.client.Fingerprint(), "err", err)
		return fail(frame.CodeInternal, OutcomeError, "store read failed")
	}
	defer clear(shard)
	if len(shard) > frame.MaxShardBytes {
		return fail(frame.CodeInternal, OutcomeError, "shard exceeds the size limit")
	}
	ss.serial, ss.values, ss.shardBytes = ss.snap.Version.Serial, shardValues(shard), len(shard)
	sh := sha256.Sum256(shard)
	p := frame.OkGetPayload{H: frame.PurposeOkGet, Serial: ss.serial, DH: ss.snap.Version.Hash[:], Size: uint64(len(shard))}
	if name := ss.snap.nameOr(); name != frame.DefaultDefinition {
		p.Def = name
	}
	for off := 0; ; p.I++ {
		end := min(off+frame.MaxChunkBytes, len(shard))
		p.D, p.Last = shard[off:end], end == len(shard)
		if p.Last {
			p.SH = sh[:]
		}
		if err := ss.writeSealed(frame.TypeOkGet, &p, nil); err != nil {
			return err
		}
		if p.Last {
			return nil
		}
		off = end
	}
}

// openBye checks the client's Bye. The shard is already delivered, so
// the caller closes whatever the result (docs/protocol.md §4.5).
func (ss *session) openBye(f frame.Frame) error {
	pt, err := ss.cs.open(nil, f.Body())
	if err != nil {
		return err
	}
	var p frame.ByePayload
	if err := frame.Unmarshal(pt, &p); err != nil {
		return err
	}
	return p.Validate()
}

// sendError sends Error{code}: sealed under k_sc once a Get has opened,
// plain CBOR before.
func (ss *session) sendError(code frame.ErrorCode) {
	if !ss.getOpened {
		ss.c.Write(plainError(code))
		return
	}
	ss.writeSealed(frame.TypeError, &frame.ErrorPayload{H: frame.PurposeError, Code: code}, nil)
}

// finish sends the Error a failure calls for, closes the connection,
// clears the session's secrets, releases the snapshot, and logs and
// audits the outcome.
func (ss *session) finish(err error) {
	s := ss.s
	outcome, reason := OutcomeOK, ""
	var fl *failure
	if errors.As(err, &fl) {
		outcome, reason = fl.outcome, fl.reason
		if fl.code != 0 {
			ss.sendError(fl.code)
		}
	}
	s.ladders.Add(ss.ladders)
	ss.c.Close()
	// Tokens come back at once for a session that cost no ladder.
	if ss.handshake {
		s.handshakes.leave(ss.remote, ss.proven || ss.ladders == 0, time.Now())
	}
	if ss.keyCharged && ss.ladders == 0 {
		s.failKey.refund(addrKey{ss.remote, ss.client}, time.Now())
	}
	if ss.es != nil {
		clear(ss.es[:])
	}
	if ss.kem != nil {
		clear(ss.kem[:])
	}
	ss.cs.clear()
	ss.sc.clear()
	clear(ss.pt[:])
	ss.se.clear()
	ss.se = nil
	if ss.snap != nil {
		ss.snap.release()
	}
	s.observe(ss, outcome, fl)
	if !ss.helloSeen {
		s.logf(slog.LevelDebug, "connection closed", "remote", ss.remote, "reason", reason)
		return
	}
	s.logSession(ss, outcome, reason, fl.bucket())
	if s.Audit != nil && s.auditAdmits(ss.getOpened, ss.known) {
		s.Audit(AuditEvent{Time: time.Now(), Client: ss.client, Name: ss.name, Remote: ss.c.RemoteAddr().String(),
			Serial: ss.serial, Values: ss.values, Bytes: ss.shardBytes, Outcome: outcome})
	}
}

// auditAdmits decides whether a session's event goes to Audit. A session
// whose Get opened proved its key and is always recorded. Anyone can make
// the others, so each class (claimed key in the definition or not) has
// its own budget: a flood of made-up keys cannot crowd out the records
// of attempts on real ones, and neither can push the records of served
// sessions out of the store. Dropped events are counted, and a warning
// is logged at most once a minute.
func (s *Server) auditAdmits(getOpened, known bool) bool {
	if getOpened {
		return true
	}
	now := time.Now()
	lim := &s.auditUnknown
	if known {
		lim = &s.auditKnown
	}
	if lim.take(now) {
		return true
	}
	n := s.auditDropped.Add(1)
	if last := s.auditWarned.Load(); now.Unix()-last >= 60 && s.auditWarned.CompareAndSwap(last, now.Unix()) {
		s.log.Warn("audit records of unverified sessions dropped", "dropped", n)
	}
	return false
}

func (s *Server) logf(level slog.Level, msg string, args ...any) {
	if s.log.Enabled(context.Background(), level) {
		s.log.Log(context.Background(), level, msg, args...)
	}
}

// logSession logs one line per session. The failure reason appears only
// when debug logging is on; a rate-limit refusal always names its bucket
// (limit), as outcome=rate-limited, so it does not read as an outage.
func (s *Server) logSession(ss *session, outcome, reason, limit string) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	logged := outcome
	if limit != "" {
		logged = "rate-limited"
	}
	attrs := []slog.Attr{
		slog.String("client", ss.client.Fingerprint()),
		slog.String("remote", ss.remote.String()),
		slog.String("outcome", logged),
	}
	if limit != "" {
		attrs = append(attrs, slog.String("limit", limit))
	}
	if ss.name != "" {
		attrs = append(attrs, slog.String("name", ss.name))
	}
	if outcome == OutcomeOK {
		attrs = append(attrs, slog.Uint64("serial", ss.serial), slog.Int("values", ss.values),
			slog.Int("bytes", ss.shardBytes), slog.Duration("duration", time.Since(ss.start)))
	} else if s.log.Enabled(ctx, slog.LevelDebug) {
		attrs = append(attrs, slog.String("reason", reason))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "session", attrs...)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// shardValues returns the number of values in an encoded shard, read
// from its CBOR map header, for logs and audit. It returns -1 when the
// header is not a definite-length map.
func shardValues(b []byte) int {
	if len(b) == 0 || b[0]>>5 != 5 {
		return -1
	}
	info := b[0] & 0x1f
	if info < 24 {
		return int(info)
	}
	n := 1 << (info - 24)
	if info > 27 || len(b) < 1+n {
		return -1
	}
	var v uint64
	for _, c := range b[1 : 1+n] {
		v = v<<8 | uint64(c)
	}
	return int(min(v, 1<<31))
}
