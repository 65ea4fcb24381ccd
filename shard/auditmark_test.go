package shard

import "testing"

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
