package shard

import (
	"encoding/binary"
	"slices"
)

// Audit records are stored several to a Badger entry: one entry per
// batch the writer takes from its queue (at most auditBatchLen records,
// about 36 KiB, below valueThreshold so it stays in the LSM tree). Per
// record that saves Badger's key, version, skiplist node and entry
// header, about half of what a record cost the memtable, its log and
// every table it is compacted into; one Set per batch replaces one per
// record.
//
//	key:   a/ time(8 BE) seq(8 BE) n(4 BE)
//	value: n times: uvarint(time - record's time), then the record
//	       (appendAuditRecord)
//
// The records are sorted by time and the key's time is the newest one,
// so an entry whose key is before a given time holds nothing at or
// after it. Record i has sequence number seq+i. Keys of 16 bytes after
// the prefix are single records that earlier versions wrote (binary or
// JSON), still read, counted and pruned.
const (
	auditKeyLen      = len(prefixAudit) + 16
	auditBatchKeyLen = auditKeyLen + 4
)

// auditEntry is the key of one stored entry.
type auditEntry struct {
	time uint64 // the newest record's
	seq  uint64 // the first record's
	n    uint32 // records it holds
}

// parseAuditKey decodes a stored audit key; ok is false for a key of
// another shape or a batch of no records.
func parseAuditKey(k []byte) (e auditEntry, ok bool) {
	switch len(k) {
	case auditKeyLen:
		e.n = 1
	case auditBatchKeyLen:
		e.n = binary.BigEndian.Uint32(k[auditKeyLen:])
		if e.n == 0 {
			return e, false
		}
	default:
		return e, false
	}
	e.time = binary.BigEndian.Uint64(k[len(prefixAudit):])
	e.seq = binary.BigEndian.Uint64(k[len(prefixAudit)+8:])
	return e, true
}

// key is e's batch key.
func (e auditEntry) key() []byte {
	k := make([]byte, 0, auditBatchKeyLen)
	k = append(k, prefixAudit...)
	k = binary.BigEndian.AppendUint64(k, e.time)
	k = binary.BigEndian.AppendUint64(k, e.seq)
	return binary.BigEndian.AppendUint32(k, e.n)
}

// sortAudit orders records by time, keeping the queue's order among
// equal times.
func sortAudit(batch []AuditRecord) {
	slices.SortStableFunc(batch, func(a, b AuditRecord) int {
		return a.Time.Compare(b.Time)
	})
}

// appendAuditBatch appends the value of a batch entry for records
// sorted by time, and returns it with the entry's key.
func appendAuditBatch(v []byte, batch []AuditRecord, seq uint64) ([]byte, auditEntry) {
	e := auditEntry{time: auditTime(batch[len(batch)-1].Time), seq: seq, n: uint32(len(batch))}
	for i := range batch {
		v = binary.AppendUvarint(v, e.time-min(auditTime(batch[i].Time), e.time))
		v = appendAuditRecord(v, &batch[i])
	}
	return v, e
}

// splitAuditBatch returns the n records of a batch value with their
// offsets in v (offs[i] is where record i starts, offs[n] is len(v)).
func splitAuditBatch(v []byte, e auditEntry) (recs []AuditRecord, offs []int, err error) {
	if uint64(e.n) > uint64(len(v)) { // every record takes at least a byte
		return nil, nil, errAuditRecord
	}
	recs = make([]AuditRecord, 0, e.n)
	offs = make([]int, 0, e.n+1)
	off := 0
	for range e.n {
		offs = append(offs, off)
		d, n := binary.Uvarint(v[off:])
		if n <= 0 || d > e.time {
			return nil, nil, errAuditRecord
		}
		r, rest, err := nextAuditRecord(v[off+n:], e.time-d)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, r)
		off = len(v) - len(rest)
	}
	if off != len(v) {
		return nil, nil, errAuditRecord
	}
	return recs, append(offs, off), nil
}

// auditValue decodes the records of one stored entry, oldest first.
func auditValue(v []byte, e auditEntry, single bool) ([]AuditRecord, error) {
	if single {
		r, err := parseAuditRecord(v, e.time)
		if err != nil {
			return nil, err
		}
		return []AuditRecord{r}, nil
	}
	recs, _, err := splitAuditBatch(v, e)
	return recs, err
}
