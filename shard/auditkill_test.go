package shard_test

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/shard"
)

// envAuditKillDir is the store directory of TestAuditKilledChild.
const envAuditKillDir = "SHARD_AUDIT_KILL_DIR"

// Records of TestAuditKilled: written before the kill, and queued but
// not written when it lands.
const (
	auditKillStored = 20
	auditKillQueued = 30
)

// TestAuditKilledChild is TestAuditKilled's subprocess: it stores
// auditKillStored records, stalls the writer, queues auditKillQueued
// more and kills itself with SIGKILL.
func TestAuditKilledChild(t *testing.T) {
	dir := os.Getenv(envAuditKillDir)
	if dir == "" {
		t.Skip("only run as TestAuditKilled's subprocess")
	}
	st, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range auditKillStored {
		st.Audit(auditRec(i, base.Add(time.Duration(i)*time.Second)))
	}
	shard.FlushAudit(st)
	shard.BlockWrites(st)
	for i := range auditKillQueued {
		st.Audit(auditRec(100+i, base.Add(time.Hour)))
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	t.Fatal("not killed")
}

// TestAuditKilled: records a session handed to the audit trail that the
// writer had not stored when the process was killed are counted as lost
// at the next start (Stats.AuditLost), once, and their numbers are not
// reused.
func TestAuditKilled(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAuditKilledChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envAuditKillDir+"="+dir)
	out, err := cmd.CombinedOutput()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	for _, who := range []string{"a reader", "the writer"} {
		st := open(t, dir, shard.Options{})
		s, err := st.Stats()
		if err != nil || s.AuditLost != auditKillQueued || s.AuditRecords != auditKillStored {
			t.Fatalf("%s: lost %d, records %d (%v); want %d lost, %d records",
				who, s.AuditLost, s.AuditRecords, err, auditKillQueued, auditKillStored)
		}
		if who == "the writer" {
			st.Audit(auditRec(99, time.Now()))
		}
		st.Close()
	}
	st := open(t, dir, shard.Options{})
	if s, _ := st.Stats(); s.AuditLost != 0 || s.AuditRecords != auditKillStored+1 {
		t.Fatalf("next Open: lost %d, records %d; want 0 and %d", s.AuditLost, s.AuditRecords, auditKillStored+1)
	}
}
