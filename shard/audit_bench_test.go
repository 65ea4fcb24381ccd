package shard_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/shard"
)

// cpuTime is the process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAuditSessions is the audit trail's cost per session: records
// of 10,000 clients in random order, as many per batch as a server at
// about 2,000 sessions/s queues in one linger, through a real Store with
// the default retention, so memtable flushes, compactions and pruning
// all happen as they do in the server. cpu-us/op is the whole process's
// CPU per record, the writer goroutine and Badger's included; run it
// with -benchtime=50000x or more so that several memtables flush.
func BenchmarkAuditSessions(b *testing.B) {
	st := open(b, b.TempDir(), shard.Options{})
	const perBatch = 40
	b.ReportAllocs()
	start := cpuTime(b)
	i := 0
	for b.Loop() {
		st.Audit(auditRec(int(uint32(i)*2654435761%10_000), time.Now()))
		if i++; i%perBatch == 0 {
			shard.FlushAudit(st)
		}
	}
	shard.FlushAudit(st)
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e3, "cpu-us/op")
	if s, _ := st.Stats(); s.AuditDropped != 0 {
		b.Fatalf("%d records dropped", s.AuditDropped)
	}
}
