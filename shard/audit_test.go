package shard_test

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-project/coffer/shard"
	"github.com/dgraph-io/badger/v4"
)

func auditRec(i int, at time.Time) shard.AuditRecord {
	return shard.AuditRecord{Time: at, Client: clientKey(i), Name: fmt.Sprintf("client-%d", i),
		Remote: "127.0.0.1:5555", Serial: 3, Values: i, Outcome: "ok"}
}

func TestAudit(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, shard.Options{AuditMaxRecords: 10})
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 25 {
		st.Audit(auditRec(i, base.Add(time.Duration(i)*time.Second)))
	}
	got, err := st.AuditRecords(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("got %d records, want 10 (retention by count)", len(got))
	}
	for j, r := range got {
		want := auditRec(15+j, base.Add(time.Duration(15+j)*time.Second))
		if !r.Time.Equal(want.Time) || r.Client != want.Client || r.Name != want.Name ||
			r.Remote != want.Remote || r.Serial != want.Serial || r.Values != want.Values || r.Outcome != want.Outcome {
			t.Fatalf("record %d = %+v, want %+v", j, r, want)
		}
	}
	t.Run("since and limit", func(t *testing.T) {
		got, _ := st.AuditRecords(base.Add(20*time.Second), 0)
		if len(got) != 5 || got[0].Values != 20 {
			t.Fatalf("since: got %d records from %d, want 5 from 20", len(got), got[0].Values)
		}
		got, _ = st.AuditRecords(time.Time{}, 3)
		if len(got) != 3 || got[0].Values != 22 || got[2].Values != 24 {
			t.Fatalf("limit: got %+v, want the newest 3, oldest first", got)
		}
	})
	st.Close()
	st = open(t, dir, shard.Options{AuditMaxRecords: 10})
	t.Run("persists", func(t *testing.T) {
		st.Audit(auditRec(99, base.Add(time.Hour)))
		got, _ := st.AuditRecords(time.Time{}, 0)
		if len(got) != 10 || got[9].Values != 99 || got[0].Values != 16 {
			t.Fatalf("after reopen: %d records, last %d, first %d", len(got), got[len(got)-1].Values, got[0].Values)
		}
	})
	t.Run("stats", func(t *testing.T) {
		s, err := st.Stats()
		if err != nil || s.AuditRecords != 10 || s.AuditDropped != 0 {
			t.Fatalf("Stats = %+v, %v", s, err)
		}
	})
}

func TestAuditRetentionByAge(t *testing.T) {
	st := open(t, t.TempDir(), shard.Options{AuditMaxAge: time.Hour})
	now := time.Now()
	for i := range 5 {
		st.Audit(auditRec(i, now.Add(-2*time.Hour)))
	}
	st.Audit(auditRec(5, now))
	got, err := st.AuditRecords(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Values != 5 {
		t.Fatalf("got %d records, want only the recent one", len(got))
	}
}

func TestAuditQueueFull(t *testing.T) {
	st := open(t, t.TempDir(), shard.Options{})
	unblock := shard.BlockWrites(st)
	// The writer holds at most one batch while blocked; the queue holds
	// the rest; everything beyond is dropped and counted.
	const extra = 10
	n := shard.AuditQueueLen + shard.AuditBatchLen + extra
	for i := range n {
		st.Audit(auditRec(i, time.Now()))
	}
	unblock()
	got, err := st.AuditRecords(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := st.Stats()
	if s.AuditDropped < extra || len(got)+int(s.AuditDropped) != n {
		t.Fatalf("stored %d, dropped %d, sent %d", len(got), s.AuditDropped, n)
	}
	st.Close()
	st.Audit(auditRec(0, time.Now())) // after Close: dropped, no panic
}

// TestAuditLost: records that vanish from the store behind its back (as
// a damaged memtable log drops its tail at replay) are counted at the
// next Open against the audit mark, and numbering continues above it.
func TestAuditLost(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, shard.Options{})
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 30 {
		st.Audit(auditRec(i, base.Add(time.Duration(i)*time.Second)))
		shard.FlushAudit(st) // one record per entry, so 7 entries hold 7
	}
	if got, _ := st.AuditRecords(time.Time{}, 0); len(got) != 30 {
		t.Fatalf("got %d records, want 30", len(got))
	}
	st.Close()
	editRaw(t, dir, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("a/"), Reverse: true})
		defer it.Close()
		var keys [][]byte
		for it.Seek([]byte("a/\xff")); it.Valid() && len(keys) < 7; it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	for _, who := range []string{"a reader", "the writer"} {
		// A reader (check, inspect) reports the loss without consuming
		// the report; the writer's first batch does.
		st = open(t, dir, shard.Options{})
		s, err := st.Stats()
		if err != nil || s.AuditLost != 7 || s.AuditRecords != 23 {
			t.Fatalf("%s: lost %d, records %d (%v); want 7 lost, 23 records", who, s.AuditLost, s.AuditRecords, err)
		}
		if who == "a reader" {
			st.Close()
		}
	}
	st.Audit(auditRec(99, base.Add(time.Hour)))
	st.Close()
	st = open(t, dir, shard.Options{})
	if s, _ := st.Stats(); s.AuditLost != 0 || s.AuditRecords != 24 {
		t.Fatalf("next Open: lost %d, records %d; want 0 and 24 (the loss is reported once)", s.AuditLost, s.AuditRecords)
	}
}

// TestAuditEarlierEntries: records that earlier versions stored one to
// a key are read, counted and pruned with the batches written now.
func TestAuditEarlierEntries(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, shard.Options{}).Close()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	editRaw(t, dir, func(txn *badger.Txn) error {
		for i := range 3 {
			k := binary.BigEndian.AppendUint64([]byte("a/"), uint64(base.Add(time.Duration(i)*time.Second).UnixNano()))
			k = binary.BigEndian.AppendUint64(k, uint64(i))
			v := fmt.Sprintf(`{"c":"%x","n":"old-%d","v":%d,"o":"ok"}`, clientKey(i), i, i)
			if err := txn.Set(k, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	st := open(t, dir, shard.Options{AuditMaxRecords: 4})
	if s, _ := st.Stats(); s.AuditRecords != 3 {
		t.Fatalf("%d records at open, want the 3 stored one to a key", s.AuditRecords)
	}
	for i := 3; i < 6; i++ {
		st.Audit(auditRec(i, base.Add(time.Duration(i)*time.Second)))
	}
	got, err := st.AuditRecords(time.Time{}, 0)
	if err != nil || len(got) != 4 {
		t.Fatalf("got %d records (%v), want 4", len(got), err)
	}
	for j, r := range got {
		if r.Values != 2+j || !r.Time.Equal(base.Add(time.Duration(2+j)*time.Second)) {
			t.Fatalf("record %d = %+v, want the one of %d", j, r, 2+j)
		}
	}
	if got[0].Name != "old-2" || got[1].Name != "client-3" {
		t.Fatalf("names %q, %q", got[0].Name, got[1].Name)
	}
}

// TestAuditDuringFirstImport: a wave of sessions auditing while a
// store's first import has Badger closed to reopen it loses no record
// without counting it: stored plus dropped is what was sent, also after
// the store is opened again.
func TestAuditDuringFirstImport(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, shard.Options{})
	const senders, each = 16, 200
	var sent atomic.Int64
	shard.SetHook(st, func(step string) {
		if step != "reopen" { // Badger closed, not yet opened again
			return
		}
		var wg sync.WaitGroup
		for g := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					st.Audit(auditRec(g*each+i, time.Now()))
					sent.Add(1)
				}
			}()
		}
		wg.Wait()
	})
	mustImport(t, st, makeDef(1, 3000, 4))
	if sent.Load() != senders*each {
		t.Fatalf("%d records sent during the reopen, want %d: the import did not reopen", sent.Load(), senders*each)
	}
	got, err := st.AuditRecords(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := st.Stats()
	if len(got)+int(s.AuditDropped) != senders*each || len(got) == 0 {
		t.Fatalf("stored %d, dropped %d, sent %d", len(got), s.AuditDropped, senders*each)
	}
	checkServes(t, st, makeDef(1, 3000, 4))
	st.Close()
	st = open(t, dir, shard.Options{})
	if s2, _ := st.Stats(); s2.AuditRecords != len(got) {
		t.Fatalf("reopened: %d audit records, want %d", s2.AuditRecords, len(got))
	}
}

// TestAuditPruneSlack: a trail over max_records is pruned to at most
// max_records and at least max_records less 1/64 of it and one entry,
// and always keeps the newest records, in order, with no gap: after
// storm-sized entries of 512 records, then batches of 40 as under load.
func TestAuditPruneSlack(t *testing.T) {
	const max, slack = 6400, 6400 / 64
	st := open(t, t.TempDir(), shard.Options{AuditMaxRecords: max})
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := 0
	write := func(records, batch int) {
		for range records {
			st.Audit(auditRec(n, base.Add(time.Duration(n)*time.Millisecond)))
			if n++; n%batch == 0 {
				shard.FlushAudit(st)
			}
		}
		shard.FlushAudit(st)
	}
	check := func(when string) {
		t.Helper()
		got, err := st.AuditRecords(time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > max || (n > max && len(got) < max-slack-512) {
			t.Fatalf("%s: %d records after %d, want %d at most and %d at least", when, len(got), n, max, max-slack-512)
		}
		for j, r := range got {
			if want := n - len(got) + j; r.Values != want {
				t.Fatalf("%s: record %d of %d is number %d, want %d: the newest, in order", when, j, len(got), r.Values, want)
			}
		}
		if s, err := st.Stats(); err != nil || s.AuditRecords != len(got) {
			t.Fatalf("%s: Stats counts %d records (%v), the trail holds %d", when, s.AuditRecords, err, len(got))
		}
	}
	write(max+1000, 512)
	check("after the storm")
	for i := range 20 {
		write(97, 40)
		check(fmt.Sprintf("after load round %d", i))
	}
}
