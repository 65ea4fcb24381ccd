package main

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// liveStats counts what the running server did since it started, for
// status and /metrics. Counters are keyed by fixed label sets (outcomes,
// buckets), never by a client, so their number does not grow with the
// fleet. It is safe for concurrent use.
type liveStats struct {
	start    time.Time
	sessions [len(sessionOutcomes)]atomic.Uint64
	limits   [len(limitBuckets)]atomic.Uint64
	duration histogram

	auditHanded atomic.Uint64 // records handed to the store; it drops some when its queue is full

	mu        sync.Mutex
	installed time.Time    // when this process installed the served definition
	last      reloadResult // the last load's outcome; zero before the first
	// loads counts load attempts by result: accepted (new definition),
	// unchanged, refused.
	loads map[string]uint64
}

// sessionOutcomes are the audit outcomes, in the order status prints them.
var sessionOutcomes = [...]string{coffer.OutcomeOK, coffer.OutcomeUnknownClient, coffer.OutcomeAuthFailed, coffer.OutcomeError}

// limitBuckets are the rate limits, as the config's [limits] keys.
var limitBuckets = [...]string{coffer.LimitPerClient, coffer.LimitFailedAuthPerAddress, coffer.LimitUnknownClients,
	coffer.LimitUnknownClientsPerAddress, coffer.LimitHandshakesPerAddress}

// Load results counted in liveStats.loads.
const (
	loadAccepted  = "accepted"
	loadUnchanged = "unchanged"
	loadRefused   = "refused"
)

func newLiveStats(now time.Time) *liveStats {
	return &liveStats{start: now, duration: newHistogram(sessionSecondsBuckets),
		loads: map[string]uint64{loadAccepted: 0, loadUnchanged: 0, loadRefused: 0}}
}

// observe counts one connection's end (coffer.Server.Observe).
func (ls *liveStats) observe(e coffer.SessionEnd) {
	for i, o := range sessionOutcomes {
		if o == e.Outcome {
			ls.sessions[i].Add(1)
		}
	}
	for i, b := range limitBuckets {
		if b == e.Limit {
			ls.limits[i].Add(1)
		}
	}
	ls.duration.observe(e.Duration.Seconds())
}

// loaded records a load's outcome.
func (ls *liveStats) loaded(r reloadResult) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.last = r
	if r.Changed {
		ls.installed = r.Time
	}
	switch {
	case !r.Accepted:
		ls.loads[loadRefused]++
	case r.Changed:
		ls.loads[loadAccepted]++
	default:
		ls.loads[loadUnchanged]++
	}
}

// markInstalled records that the served definition was installed at t
// (at start-up, from the store).
func (ls *liveStats) markInstalled(t time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.installed = t
}

// installedAt returns when the served definition was installed, or zero.
func (ls *liveStats) installedAt() time.Time {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.installed
}

// lastLoad returns the last load's outcome and the counts by result.
func (ls *liveStats) lastLoad() (reloadResult, map[string]uint64) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	counts := make(map[string]uint64, len(ls.loads))
	for k, v := range ls.loads {
		counts[k] = v
	}
	return ls.last, counts
}

// sessionSecondsBuckets are the session duration histogram's upper
// bounds: a session on loopback takes about a millisecond; the largest
// bound is the default session timeout.
var sessionSecondsBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// histogram is a fixed-bucket histogram of float64 observations, as
// Prometheus exposes one: counts per upper bound (not cumulative here),
// their sum and count.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1: the last is +Inf
	sumNs  atomic.Uint64   // sum in nanoseconds, so it adds atomically
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(max(v, 0) * 1e9))
}

// snapshot returns cumulative counts per bound (the last is +Inf, the
// total), and the sum in seconds.
func (h *histogram) snapshot() (cum []uint64, sum float64) {
	cum = make([]uint64, len(h.counts))
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
		cum[i] = n
	}
	return cum, float64(h.sumNs.Load()) / 1e9
}
