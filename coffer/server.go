package coffer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// Defaults of the Server's limits (docs/protocol.md §7).
const (
	// defaultMaxConns bounds concurrent sessions; past it, connections
	// wait in the kernel's listen backlog.
	defaultMaxConns = 1024
	// defaultHelloTimeout bounds a connection that never sends its Hello
	// (slowloris before any work is done).
	defaultHelloTimeout = 5 * time.Second
	// defaultGetTimeout bounds a session whose Get never comes, such as a
	// replayed Hello: counted from accept.
	defaultGetTimeout = 10 * time.Second
	// defaultSessionTimeout bounds a whole session, counted from accept.
	defaultSessionTimeout = 30 * time.Second
	// defaultMaxHandshakesPerIP bounds the handshakes one source address
	// has in flight, and the burst of those that never open a Get
	// (replayed Hellos): a quarter of the default slots, so one address
	// cannot hold them all. A fleet booting behind one NAT address needs
	// far fewer at once: a handshake takes about two round trips, so 256
	// at a time is 2,560 sessions a second at 100 ms each, and 25,600 at
	// 10 ms, more than the 2-core server does (docs/server.md, "Limits").
	defaultMaxHandshakesPerIP = 256
)

// Default rate limits (docs/protocol.md §7).
var (
	// Unverified proofs (a key not in the definition, or a proof that
	// does not open under its row) each cost one ladder: a global budget
	// bounds the CPU a flood of made-up keys can burn.
	defaultUnknownLimit = Limit{Rate: 100, Burst: 100}
	// The same per source address, so one host cannot use up the global
	// budget alone.
	defaultUnknownPerIPLimit = Limit{Rate: 10, Burst: 20}
	// Served sessions per client key: a stolen or looping client cannot
	// hog the server. Distinct clients booting at once are not affected.
	defaultClientLimit = Limit{Rate: 10, Burst: 20}
	// Failed authentications per source address: a host that keeps
	// failing gets Error{busy} before the ladder an unverified proof
	// costs. Its rate is also the rate at which a source address gets
	// back the handshakes it left unfinished.
	defaultFailPerIPLimit = Limit{Rate: 10, Burst: 50}
	// Audit records of sessions that opened no Get, for each of two
	// classes (claimed key in the definition or not): anyone can make
	// these, so they get a budget that cannot push the records of
	// served sessions out of the store's retention (100,000 records,
	// 90 days): 1,000 + 10 an hour is 22,600 per class in 90 days, at
	// most 45,200 of the 100,000.
	defaultUnverifiedAuditLimit = Limit{Rate: 10.0 / 3600, Burst: 1000}
)

// AuditDropped returns how many audit events of sessions that opened no
// Get the server has not handed to Audit since it started, because they
// were over UnverifiedAuditLimit (what the sink itself drops is not
// counted here). It is safe to call at any time, before or after Serve.
func (s *Server) AuditDropped() uint64 { return s.auditDropped.Load() }

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("coffer: server closed")

// Session outcomes reported in AuditEvent.Outcome.
const (
	OutcomeOK            = "ok"
	OutcomeUnknownClient = "unknown-client"
	OutcomeAuthFailed    = "auth-failed"
	OutcomeError         = "error"
)

// AuditEvent describes one session that got as far as a parsed Hello.
// It holds counts and sizes, never keys or values. Events of sessions
// that opened no Get (anyone can make those) are handed to Server.Audit
// only within Server.UnverifiedAuditLimit; Server.AuditDropped counts
// the rest.
type AuditEvent struct {
	Time    time.Time // when the session ended
	Client  PublicKey // the key the client claimed (proven unless auth-failed)
	Name    string    // the client's name in the definition, if known
	Remote  string    // the peer's address
	Serial  uint64    // serial of the definition served, if any
	Values  int       // values in the shard served
	Bytes   int       // encoded size of the shard served
	Outcome string    // OutcomeOK, OutcomeUnknownClient, OutcomeAuthFailed or OutcomeError
}

// Server answers coffer/2 sessions. Set its fields before the first call
// to Swap, Serve or ServeConn and do not change them afterwards; the
// methods are then safe for concurrent use. The zero value of each limit
// field means its default.
type Server struct {
	Key    *PrivateKey  // the server's static key; required
	Rand   io.Reader    // randomness; nil means crypto/rand. Must be safe for concurrent use.
	Logger *slog.Logger // nil discards. Clients appear as fingerprints only.
	// Audit, when set, is called once per session that got past Hello
	// parsing, from the session's goroutine, after the session ended:
	// always for a session whose Get opened, and within
	// UnverifiedAuditLimit for the others (AuditDropped counts those
	// left out).
	Audit func(AuditEvent)
	// Observe, when set, is called once per accepted connection, from its
	// goroutine, after it closed (metrics; SessionEnd holds no identity).
	Observe func(SessionEnd)

	MaxConns       int           // concurrent sessions accepted by Serve (default 1024)
	HelloTimeout   time.Duration // Hello must arrive this long after accept (5 s)
	GetTimeout     time.Duration // Get must arrive this long after accept (10 s)
	SessionTimeout time.Duration // whole session, from accept (30 s)
	ByeTimeout     time.Duration // wait for Bye after the last OkGet (0: close at once)

	UnknownLimit      Limit // unverified proofs (unknown keys; any key's that do not open), all sources (100/s, burst 100)
	UnknownPerIPLimit Limit // the same per source address (10/s, burst 20)
	ClientLimit       Limit // served sessions per client key, taken when the Get opens (10/s, burst 20)
	// FailPerIPLimit bounds failed authentications per source address
	// (10/s, burst 50): proofs that do not open, taken before their
	// ladder; and, per source address and client key, handshakes with a
	// valid proof that are not served (replayed Hellos), taken before
	// the Link and given back when the session is served.
	FailPerIPLimit Limit
	// MaxHandshakesPerIP caps the sessions in their handshake per source
	// address (default 256, a quarter of the default MaxConns; negative:
	// no cap). Each takes a token from a bucket of this size when it
	// starts; a session that is served, gets a KeyNotFound or cost no
	// scalar multiplication gives it back, and others come back at
	// FailPerIPLimit's rate.
	MaxHandshakesPerIP int
	// UnverifiedAuditLimit bounds the audit records of sessions that
	// opened no Get, for each of two classes: the claimed key is in the
	// definition, or not (10 an hour, burst 1,000 each).
	UnverifiedAuditLimit Limit

	once    sync.Once
	th0     hash
	pub     PublicKey
	log     *slog.Logger
	rand    io.Reader
	snaps   atomic.Pointer[snapSet]
	swapMu  sync.Mutex    // Swap, Install, Remove
	ladders atomic.Uint64 // scalar multiplications spent in sessions
	// dummy stands in for K(S,C) when a Hello's key is not in the
	// definition, so that its proof costs what a known key's does. It
	// comes from crypto/rand, never Rand, whose stream the vectors fix.
	dummy [32]byte

	unknown    globalLimiter
	unknownIP  *keyedLimiter[netip.Addr]
	clientLim  *keyedLimiter[PublicKey]
	failIP     *keyedLimiter[netip.Addr]
	failKey    *keyedLimiter[addrKey]
	handshakes *handshakeLimiter

	auditKnown, auditUnknown globalLimiter
	auditDropped             atomic.Uint64
	auditWarned              atomic.Int64 // unix seconds of the last drop warning

	sem       chan struct{}
	mu        sync.Mutex
	closing   bool
	done      chan struct{}
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.Key == nil {
			panic("coffer: Server.Key is not set")
		}
		s.pub = s.Key.Public()
		s.th0 = transcriptStart(&s.pub)
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		s.rand = s.Rand
		if s.rand == nil {
			s.rand = rand.Reader
		}
		if s.MaxConns <= 0 {
			s.MaxConns = defaultMaxConns
		}
		setDefault(&s.HelloTimeout, defaultHelloTimeout)
		setDefault(&s.GetTimeout, defaultGetTimeout)
		setDefault(&s.SessionTimeout, defaultSessionTimeout)
		s.unknown.limit = s.UnknownLimit.or(defaultUnknownLimit)
		s.unknownIP = newKeyedLimiter[netip.Addr](s.UnknownPerIPLimit.or(defaultUnknownPerIPLimit))
		s.clientLim = newKeyedLimiter[PublicKey](s.ClientLimit.or(defaultClientLimit))
		s.failIP = newKeyedLimiter[netip.Addr](s.FailPerIPLimit.or(defaultFailPerIPLimit))
		s.failKey = newKeyedLimiter[addrKey](s.failIP.limit)
		if s.MaxHandshakesPerIP == 0 {
			s.MaxHandshakesPerIP = defaultMaxHandshakesPerIP
		}
		s.handshakes = newHandshakeLimiter(s.MaxHandshakesPerIP, s.failIP.limit.Rate)
		s.auditKnown.limit = s.UnverifiedAuditLimit.or(defaultUnverifiedAuditLimit)
		s.auditUnknown.limit = s.auditKnown.limit
		rand.Read(s.dummy[:]) // never fails (crypto/rand)
		s.sem = make(chan struct{}, s.MaxConns)
		s.done = make(chan struct{})
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
	})
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// snapSet is the installed definitions, one snapshot each, sorted by
// name. It is replaced whole, never changed in place.
type snapSet []*Snapshot

// Swap installs next as the one definition to serve, in place of every
// installed one, and returns the one it replaces (nil at first, or when
// several were installed with Install: those are retired too). It first
// computes K(S,C) for every client of next (about 37 µs each, spread
// over all CPUs), leaving out and logging clients with weak keys.
// Sessions already running keep the snapshot they started with;
// prev.Released() is closed when the last of them ends. A nil next makes
// the server answer Error{unavailable}. Swapping in the snapshot already
// installed does nothing; a snapshot installed before (here or on
// another Server) is installed as a fresh copy, which is what a later
// Swap returns.
func (s *Server) Swap(next *Snapshot) (prev *Snapshot) {
	s.init()
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	old := s.snaps.Load()
	if next != nil {
		if old != nil && len(*old) == 1 && (*old)[0] == next {
			return next
		}
		next = s.prepare(next)
	}
	var set snapSet
	if next != nil {
		set = snapSet{next}
	}
	s.snaps.Store(&set)
	if old == nil {
		return nil
	}
	for _, sn := range *old {
		sn.retire()
		if prev == nil || sn.nameOr() == next.nameOr() {
			prev = sn
		}
	}
	return prev
}

// nameOr returns the snapshot's definition name, "" for a nil one.
func (sn *Snapshot) nameOr() string {
	if sn == nil {
		return ""
	}
	return definitionName(sn.Name)
}

// definitionName folds "" into frame.DefaultDefinition.
func definitionName(name string) string {
	if name == "" {
		return frame.DefaultDefinition
	}
	return name
}

// ErrClientInTwoDefinitions is returned by Install when a client key of
// the new snapshot is already served by another installed definition.
var ErrClientInTwoDefinitions = errors.New("coffer: a client key would be in two definitions")

// Install installs next as the definition named next.Name, beside the
// other installed definitions, and returns the snapshot of that name it
// replaces (nil if there was none). The other definitions keep serving
// untouched; sessions of next's clients that already run keep the
// snapshot they started with, as with Swap. A client key may be in one
// installed definition only: if one of next's is in another's, Install
// installs nothing and returns an error wrapping
// ErrClientInTwoDefinitions that names both definitions and the key's
// fingerprint. The name must be a valid definition name
// (frame.ValidDefinitionName) or "".
func (s *Server) Install(next *Snapshot) (prev *Snapshot, err error) {
	s.init()
	name := definitionName(next.Name)
	if !frame.ValidDefinitionName(name) {
		return nil, fmt.Errorf("coffer: %q is not a definition name", name)
	}
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	var set snapSet
	if old := s.snaps.Load(); old != nil {
		set = *old
	}
	i, found := slices.BinarySearchFunc(set, name, func(sn *Snapshot, n string) int { return strings.Compare(sn.nameOr(), n) })
	if found && set[i] == next {
		return next, nil
	}
	for _, other := range set {
		if other.nameOr() == name {
			continue
		}
		for k := range next.Clients {
			if _, ok := other.Clients[k]; ok {
				return nil, fmt.Errorf("%w: client key %s (%q) is in definition %q and in definition %q; remove it from one first",
					ErrClientInTwoDefinitions, k.Fingerprint(), next.Clients[k], other.nameOr(), name)
			}
		}
	}
	next = s.prepare(next)
	ns := make(snapSet, 0, len(set)+1)
	ns = append(ns, set[:i]...)
	ns = append(ns, next)
	if found {
		prev = set[i]
		i++
	}
	ns = append(ns, set[i:]...)
	s.snaps.Store(&ns)
	if prev != nil {
		prev.retire()
	}
	return prev, nil
}

// Remove stops serving the definition named name and returns its
// snapshot (nil if none was installed). Its clients get KeyNotFound from
// then on; running sessions finish on it.
func (s *Server) Remove(name string) (prev *Snapshot) {
	s.init()
	name = definitionName(name)
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	old := s.snaps.Load()
	if old == nil {
		return nil
	}
	ns := make(snapSet, 0, len(*old))
	for _, sn := range *old {
		if sn.nameOr() == name {
			prev = sn
			continue
		}
		ns = append(ns, sn)
	}
	if prev == nil {
		return nil
	}
	s.snaps.Store(&ns)
	prev.retire()
	return prev
}

// Installed returns the name and version of every installed definition,
// sorted by name.
func (s *Server) Installed() []InstalledDefinition {
	s.init()
	set := s.snaps.Load()
	if set == nil {
		return nil
	}
	out := make([]InstalledDefinition, 0, len(*set))
	for _, sn := range *set {
		out = append(out, InstalledDefinition{Name: sn.nameOr(), Version: sn.Version, ClientKeys: len(sn.table)})
	}
	return out
}

// DefinitionOf returns the name of the installed definition that holds
// client, if any: a loader checks a new definition's keys with it before
// it imports anything, so that a file that would put a client in two
// definitions is refused before it changes the store.
func (s *Server) DefinitionOf(client PublicKey) (name string, ok bool) {
	s.init()
	set := s.snaps.Load()
	if set == nil {
		return "", false
	}
	for _, sn := range *set {
		if _, ok := sn.Clients[client]; ok {
			return sn.nameOr(), true
		}
	}
	return "", false
}

// InstalledDefinition describes one definition the server serves.
type InstalledDefinition struct {
	Name       string
	Version    Version
	ClientKeys int
}

// prepare claims next (or a fresh copy of it) and computes its table.
// The caller holds swapMu.
func (s *Server) prepare(next *Snapshot) *Snapshot {
	if !next.claim() {
		next = &Snapshot{Name: next.Name, Version: next.Version, Clients: next.Clients, Shards: next.Shards}
		next.claim()
	}
	for _, k := range next.precompute(s.Key, nil) {
		s.log.Warn("skipping client with a weak key", "client", k.Fingerprint(), "name", next.Clients[k])
	}
	s.log.Info("definition installed", "definition", next.nameOr(), "serial", next.Version.Serial, "client_keys", len(next.table))
	return next
}

// acquireSnapshot returns the installed snapshot that holds client,
// counted in, with its table entry; or, when no definition holds it,
// any installed snapshot (so an unknown key's session costs what a known
// one's does) and a nil entry. It returns nil when nothing is installed.
func (s *Server) acquireSnapshot(client *PublicKey) (*Snapshot, *clientEntry) {
	for {
		set := s.snaps.Load()
		if set == nil || len(*set) == 0 {
			return nil, nil
		}
		sn, e := (*set)[0], (*clientEntry)(nil)
		for _, c := range *set {
			if ce := c.table[*client]; ce != nil {
				sn, e = c, ce
				break
			}
		}
		if sn.acquire() {
			return sn, e
		}
		// Retired between Load and acquire: its successor is already
		// stored, so the next Load sees it.
	}
}

// Serve accepts connections on l and serves each in its own goroutine.
// It accepts only while fewer than MaxConns sessions run, so excess
// connections wait in the kernel's backlog. It returns ErrServerClosed
// after Shutdown or Close, which also close l; otherwise the accept error.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		select {
		case s.sem <- struct{}{}:
		case <-s.done:
			return ErrServerClosed
		}
		c, err := l.Accept()
		if err != nil {
			<-s.sem
			if s.isClosing() {
				return ErrServerClosed
			}
			if !temporary(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-s.done:
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		if !s.track(c) {
			<-s.sem
			c.Close()
			return ErrServerClosed
		}
		go func() {
			defer func() { <-s.sem }()
			defer s.untrack(c)
			s.serve(c)
		}()
	}
}

// temporary reports accept errors that go away: out of file descriptors
// or buffers, a timeout.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// ServeConn serves one session on c in the caller's goroutine and closes
// c. It is not counted against MaxConns. After Shutdown it closes c at
// once.
func (s *Server) ServeConn(c net.Conn) {
	s.init()
	if !s.track(c) {
		c.Close()
		return
	}
	defer s.untrack(c)
	s.serve(c)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting (closing the listeners given to Serve) and
// waits for running sessions to end, each within its own deadlines. If
// ctx ends first, it closes the remaining connections, waits for their
// goroutines to return and reports ctx.Err(). No session goroutine
// outlives Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	<-finished
	return ctx.Err()
}

// Close stops accepting, closes every connection and waits for the
// session goroutines to return.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && err != context.Canceled {
		return err
	}
	return nil
}

// plainError returns an unsealed Error frame. Its body is the fixed CBOR
// map {"code": code}.
func plainError(code frame.ErrorCode) []byte {
	body, err := frame.Marshal(&frame.ErrorBody{Code: code})
	if err != nil {
		panic("coffer: encoding a fixed error body: " + err.Error())
	}
	f, err := frame.New(frame.TypeError, body)
	if err != nil {
		panic("coffer: building a fixed error frame: " + err.Error())
	}
	return f.Raw
}
