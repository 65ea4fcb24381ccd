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

// spend takes one token for k even when there is none, down to a debt of
// one burst. It is for a cost known only after the check (allowed): the
// sessions in flight at once cannot then all pass the check on the same
// token, so a key's rate stays its Rate whatever its concurrency.
func (kl *keyedLimiter[K]) spend(k K, now time.Time) {
	if kl.limit.unlimited() {
		return
	}
	kl.mu.Lock()
	defer kl.mu.Unlock()
	if b := kl.lookupLocked(k, now); b != nil {
		b.refill(kl.limit, now)
		b.tokens = max(b.tokens-1, -float64(kl.limit.Burst))
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

// inflight counts open handshakes per source address, up to a cap.
type inflight struct {
	mu    sync.Mutex
	max   int // 0: no cap
	n     map[netip.Addr]int
	total atomic.Int64 // handshakes in flight over all addresses
}

// enter counts a handshake in, or reports false when the address is at
// its cap.
func (f *inflight) enter(a netip.Addr) bool {
	if f.max <= 0 {
		f.total.Add(1)
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[a] >= f.max {
		return false
	}
	f.n[a]++
	f.total.Add(1)
	return true
}

func (f *inflight) leave(a netip.Addr) {
	f.total.Add(-1)
	if f.max <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[a]--; f.n[a] <= 0 {
		delete(f.n, a)
	}
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
