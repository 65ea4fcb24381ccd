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
// about 2,000 sessions/s queues in one linger, through a real Store, so
// memtable flushes, compactions and pruning all happen as they do in the
// server. cpu-us/op is the whole process's CPU per record, the writer
// goroutine and Badger's included; run it with -benchtime=50000x or more
// so that several memtables flush. "filling" has the default retention
// (100,000 records), which the run does not reach; "full" keeps 10,000
// and starts with the trail full, as a server's is once it has served
// max_records sessions: every record then also retires an old one. The
// prefill is written in batches of 512, the most one entry holds, as a
// boot storm writes them.
func BenchmarkAuditSessions(b *testing.B) {
	b.Run("filling", func(b *testing.B) { benchAudit(b, shard.Options{}, 0) })
	b.Run("full", func(b *testing.B) { benchAudit(b, shard.Options{AuditMaxRecords: 10_000}, 12_000) })
}

func benchAudit(b *testing.B, opt shard.Options, prefill int) {
	st := open(b, b.TempDir(), opt)
	const perBatch = 40
	for i := range prefill {
		st.Audit(auditRec(i%10_000, time.Now()))
		if i%512 == 511 {
			shard.FlushAudit(st)
		}
	}
	shard.FlushAudit(st)
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
