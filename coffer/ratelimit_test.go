package coffer

import (
	"net/netip"
	"testing"
	"time"
)

// TestHandshakeLimiter drives one address's handshakes through a
// limiter of 3 (refilled at 1/s) with a fixed clock: at the cap and one
// past it, with tokens given back or kept.
func TestHandshakeLimiter(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	t0 := time.Unix(1e9, 0)
	type step struct {
		enter  bool // else leave
		addr   netip.Addr
		refund bool
		at     time.Duration
		want   bool // enter's result
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"at the cap, and one past it", []step{
			{enter: true, addr: a, want: true}, {enter: true, addr: a, want: true}, {enter: true, addr: a, want: true},
			{enter: true, addr: a, want: false},
			{enter: true, addr: b, want: true}, // another address has its own
		}},
		{"a served handshake gives its token back at once", []step{
			{enter: true, addr: a, want: true}, {enter: true, addr: a, want: true}, {enter: true, addr: a, want: true},
			{addr: a, refund: true},
			{enter: true, addr: a, want: true},
			{enter: true, addr: a, want: false},
		}},
		{"a failed one frees its place but not its token", []step{
			{enter: true, addr: a, want: true}, {enter: true, addr: a, want: true}, {enter: true, addr: a, want: true},
			{addr: a}, {addr: a}, {addr: a},
			{enter: true, addr: a, want: false}, // no token, though none is in flight
			{enter: true, addr: a, at: time.Second, want: true},
			{enter: true, addr: a, at: time.Second, want: false},
		}},
		{"in flight stays capped while tokens refill", []step{
			{enter: true, addr: a, want: true}, {enter: true, addr: a, want: true}, {enter: true, addr: a, want: true},
			{enter: true, addr: a, at: time.Hour, want: false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hl := newHandshakeLimiter(3, 1)
			for i, st := range tt.steps {
				if !st.enter {
					hl.leave(st.addr, st.refund, t0.Add(st.at))
					continue
				}
				if got := hl.enter(st.addr, t0.Add(st.at)); got != st.want {
					t.Fatalf("step %d: enter(%v) = %v, want %v", i, st.addr, got, st.want)
				}
			}
		})
	}
	t.Run("negative cap: no limit", func(t *testing.T) {
		hl := newHandshakeLimiter(-1, 1)
		for i := range 1000 {
			if !hl.enter(a, t0) {
				t.Fatalf("enter %d refused, want no limit", i)
			}
		}
	})
}

// TestKeyedLimiterRefund: a refund gives back one token, never more than
// the burst.
func TestKeyedLimiterRefund(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	kl := newKeyedLimiter[int](Limit{Rate: 1e-9, Burst: 2})
	if !kl.take(1, t0) || !kl.take(1, t0) || kl.take(1, t0) {
		t.Fatal("want two tokens, then none")
	}
	kl.refund(1, t0)
	if !kl.take(1, t0) {
		t.Error("after a refund: no token, want one")
	}
	kl.refund(1, t0)
	kl.refund(1, t0)
	kl.refund(1, t0) // past the burst
	if !kl.take(1, t0) || !kl.take(1, t0) || kl.take(1, t0) {
		t.Error("after refunds past the burst: want two tokens, then none")
	}
}
