package shard

import (
	"sync/atomic"
	"testing"
)

func TestLostAuditRecords(t *testing.T) {
	tests := []struct {
		name   string
		stored int64
		mark   auditMark
		want   uint64
	}{
		{"all there", 30, auditMark{next: 30, count: 30}, 0},
		{"some lost", 23, auditMark{next: 30, count: 30}, 7},
		{"all lost", 0, auditMark{next: 30, count: 30}, 30},
		{"more than the mark (a lost deletion)", 31, auditMark{next: 30, count: 30}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lostAuditRecords(tc.stored, tc.mark); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// TestAcceptedWord: the accepted counter's word checks, and no single
// flipped bit and no zeroed word reads as a count.
func TestAcceptedWord(t *testing.T) {
	var w atomic.Uint64
	c := &acceptedCounter{w: &w}
	for _, n := range []uint64{0, 1, 8191, 1 << 40} {
		c.store(n)
		c.add(1)
		c.add(1)
		c.add(^uint64(0))
		if got, ok := c.load(); !ok || got != n+1 {
			t.Fatalf("count %d + 1 reads %d, %v", n, got, ok)
		}
		good := w.Load()
		for bit := range 64 {
			w.Store(good ^ 1<<bit)
			if _, ok := c.load(); ok {
				t.Fatalf("count %d with bit %d flipped checks", n+1, bit)
			}
		}
	}
	w.Store(0)
	if _, ok := c.load(); ok {
		t.Fatal("a zeroed word checks")
	}
}
