package coffer

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limit is a token bucket: Rate tokens per second, holding at most Burst.
// The zero Limit means the field's default; a negative Rate means no
// limit.
type Limit struct {
	Rate  float64
	Burst int
}

func (l Limit) or(def Limit) Limit {
	if l.Rate == 0 {
		return def
	}
	if l.Burst <= 0 {
		l.Burst = max(1, int(l.Rate))
	}
	return l
}

func (l Limit) unlimited() bool { return l.Rate < 0 }

// bucket is one token bucket. Callers hold the owning lock.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b up to now and takes one token if there is one.
func (b *bucket) take(l Limit, now time.Time) bool {
	b.refill(l, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives one token back, up to the burst.
func (b *bucket) refund(l Limit, now time.Time) {
	b.refill(l, now)
	b.tokens = min(float64(l.Burst), b.tokens+1)
}

func (b *bucket) refill(l Limit, now time.Time) {
	if b.last.IsZero() {
		b.tokens = float64(l.Burst)
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(l.Burst), b.tokens+d.Seconds()*l.Rate)
	}
	b.last = now
}

// full reports whether b would be full at now, so forgetting it changes
// nothing.
func (b *bucket) full(l Limit, now time.Time) bool {
	return b.tokens+now.Sub(b.last).Seconds()*l.Rate >= float64(l.Burst)
}

// Bounds of the keyed limiters.
const (
	// maxLimiterKeys bounds the memory an attacker with many source
	// addresses can make a keyed limiter hold; past it, new keys are
	// refused until a sweep frees room.
	maxLimiterKeys = 1 << 16
	// limiterSweepInterval is how often a keyed limiter forgets keys whose
	// buckets have refilled.
	limiterSweepInterval = time.Second
)

// keyedLimiter is a token bucket per key (a source address or a client
// key). It is safe for concurrent use.
type keyedLimiter[K comparable] struct {
	mu        sync.Mutex
	limit     Limit
	buckets   map[K]*bucket
	lastSweep time.Time
}

func newKeyedLimiter[K comparable](l Limit) *keyedLimiter[K] {
	return &keyedLimiter[K]{limit: l, buckets: make(map[K]*bucket)}
}

// take takes one token for k.
func (kl *keyedLimiter[K]) take(k K, now time.Time) bool {
	if kl.limit.unlimited() {
		return true
	}
	kl.mu.Lock()
	defer kl.mu.Unlock()
	b := kl.lookupLocked(k, now)
	return b != nil && b.take(kl.limit, now)
}

// refund gives back a token taken for k, up to the burst: the charge was
// a deposit for work whose outcome proved it was not the abuse the
// bucket bounds.
func (kl *keyedLimiter[K]) refund(k K, now time.Time) {
	if kl.limit.unlimited() {
		return
	}
	kl.mu.Lock()
	defer kl.mu.Unlock()
	if b, ok := kl.buckets[k]; ok {
		b.refund(kl.limit, now)
	}
}

// allowed reports whether k has a token, without taking it.
func (kl *keyedLimiter[K]) allowed(k K, now time.Time) bool {
	if kl.limit.unlimited() {
		return true
	}
	kl.mu.Lock()
	defer kl.mu.Unlock()
	b, ok := kl.buckets[k]
	if !ok {
		return len(kl.buckets) < maxLimiterKeys
	}
	b.refill(kl.limit, now)
	return b.tokens >= 1
}

func (kl *keyedLimiter[K]) lookupLocked(k K, now time.Time) *bucket {
	if now.Sub(kl.lastSweep) >= limiterSweepInterval {
		kl.lastSweep = now
		for key, b := range kl.buckets {
			if b.full(kl.limit, now) {
				delete(kl.buckets, key)
			}
		}
	}
	b, ok := kl.buckets[k]
	if !ok {
		if len(kl.buckets) >= maxLimiterKeys {
			return nil
		}
		b = new(bucket)
		kl.buckets[k] = b
	}
	return b
}

// globalLimiter is a single token bucket, safe for concurrent use.
type globalLimiter struct {
	mu    sync.Mutex
	limit Limit
	b     bucket
}

func (g *globalLimiter) take(now time.Time) bool {
	if g.limit.unlimited() {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.take(g.limit, now)
}

// handshakeLimiter bounds the handshakes of each source address: at most
// max in flight at once, and a bucket of max tokens, refilled at rate,
// from which every handshake takes one when it starts (docs/server.md,
// "Limits"). A handshake that proves itself (its Get opens and is
// served, or its KeyNotFound is sealed) or that cost no scalar
// multiplication gives its token back when it ends; any other keeps it.
// So a wave of replayed Hellos gets at most max Links, and later ones
// only rate a second, however many connections it opens at once, while
// a fleet booting behind one NAT address gets max handshakes at a time
// and its tokens back as each is served. It is safe for concurrent use.
type handshakeLimiter struct {
	mu        sync.Mutex
	max       int     // < 0: no limit
	rate      float64 // tokens a second; < 0: no bucket, only the cap
	addrs     map[netip.Addr]*handshakes
	lastSweep time.Time
	total     atomic.Int64 // handshakes in flight over all addresses
}

// handshakes is one source address's state in a handshakeLimiter.
type handshakes struct {
	n int // in flight
	b bucket
}

func newHandshakeLimiter(max int, rate float64) *handshakeLimiter {
	return &handshakeLimiter{max: max, rate: rate, addrs: make(map[netip.Addr]*handshakes)}
}

func (hl *handshakeLimiter) limit() Limit { return Limit{Rate: max(hl.rate, 0), Burst: hl.max} }

// enter counts a handshake in and takes its token, or reports false when
// the address is at its cap or out of tokens.
func (hl *handshakeLimiter) enter(a netip.Addr, now time.Time) bool {
	if hl.max < 0 {
		hl.total.Add(1)
		return true
	}
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if now.Sub(hl.lastSweep) >= limiterSweepInterval {
		hl.lastSweep = now
		for k, h := range hl.addrs {
			if h.n == 0 && (hl.rate < 0 || h.b.full(hl.limit(), now)) {
				delete(hl.addrs, k)
			}
		}
	}
	h, ok := hl.addrs[a]
	if !ok {
		if len(hl.addrs) >= maxLimiterKeys {
			return false
		}
		h = new(handshakes)
		hl.addrs[a] = h
	}
	if h.n >= hl.max || (hl.rate >= 0 && !h.b.take(hl.limit(), now)) {
		return false
	}
	h.n++
	hl.total.Add(1)
	return true
}

// leave counts a handshake out; refund gives its token back.
func (hl *handshakeLimiter) leave(a netip.Addr, refund bool, now time.Time) {
	hl.total.Add(-1)
	if hl.max < 0 {
		return
	}
	hl.mu.Lock()
	defer hl.mu.Unlock()
	h, ok := hl.addrs[a]
	if !ok {
		return
	}
	h.n--
	if refund && hl.rate >= 0 {
		h.b.refund(hl.limit(), now)
	}
}

// addrKey is a source address and a client key: replays of one
// client's Hellos from one address share its bucket, distinct clients
// behind one NAT address do not.
type addrKey struct {
	addr   netip.Addr
	client PublicKey
}

// sourceAddr returns the address a per-source limit is keyed by: the IP,
// or its /64 for IPv6, where one host commonly holds a whole /64.
func sourceAddr(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if a != nil {
			if ap, err := netip.ParseAddrPort(a.String()); err == nil {
				ip = ap.Addr()
			}
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			ip = p.Addr()
		}
	}
	return ip
}
