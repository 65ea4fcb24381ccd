package shard_test

import (
	"errors"
	"testing"
	"time"

	"github.com/coffer-project/coffer/shard"
)

// TestLive: Live reports the audit counters Stats reports, without a
// scan, and ErrClosed after Close.
func TestLive(t *testing.T) {
	st := open(t, t.TempDir(), shard.Options{AuditMaxRecords: 100})
	mustImport(t, st, makeDef(1, 3, 2))
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 7 {
		st.Audit(auditRec(i, base.Add(time.Duration(i)*time.Second)))
	}
	if _, err := st.AuditRecords(time.Time{}, 0); err != nil { // flushes the queue
		t.Fatal(err)
	}
	live, err := st.Live()
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if live.AuditRecords != 7 || live.AuditRecords != stats.AuditRecords || live.AuditDropped != stats.AuditDropped {
		t.Errorf("Live: got %+v, want 7 records and the counters of Stats %+v", live, stats)
	}
	st.Close()
	if _, err := st.Live(); !errors.Is(err, shard.ErrClosed) {
		t.Errorf("Live after Close: got %v, want ErrClosed", err)
	}
}
