package shard

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The audit mark counts audit records lost to damage. Badger replays a
// damaged memtable log only up to the first bad entry and drops the rest
// without an error, so records vanish silently (issue 13: 306 records
// became 298 and 291). The auditor therefore writes, after each batch
// and each pruning, the next sequence number and the number of stored
// records to a small file outside Badger: seq (8 BE) || count (8 BE) ||
// CRC-32 (4 BE) of both. It is not fsynced (the page cache survives
// kill -9, as Badger's memory-mapped log does); a reboot may lose it
// along with the records. At the next start, stored records fewer than
// the mark's count were lost, wherever they were in the sequence.
const (
	auditMarkFile = "audit.mark"
	auditMarkLen  = 20
)

// auditMark is the content of the mark.
type auditMark struct {
	next  uint64 // the next sequence number
	count uint64 // records stored
}

// markState is what readAuditMark found.
type markState int

const (
	markNone    markState = iota // no file: a first start
	markOK                       // a mark that checks
	markDamaged                  // a file of the wrong size or CRC
)

// readAuditMark reads dir/audit.mark.
func readAuditMark(dir string) (auditMark, markState) {
	b, err := os.ReadFile(filepath.Join(dir, auditMarkFile))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(b) == 0) {
		return auditMark{}, markNone // an empty file: created, never written
	}
	if err != nil || len(b) != auditMarkLen ||
		crc32.ChecksumIEEE(b[:16]) != binary.BigEndian.Uint32(b[16:]) {
		return auditMark{}, markDamaged
	}
	return auditMark{next: binary.BigEndian.Uint64(b), count: binary.BigEndian.Uint64(b[8:])}, markOK
}

// openAuditMark opens dir/audit.mark for writing, creating it 0600.
func openAuditMark(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, auditMarkFile), os.O_RDWR|os.O_CREATE, 0o600)
}

// writeAuditMark overwrites the mark in place.
func writeAuditMark(f io.WriterAt, m auditMark) error {
	var b [auditMarkLen]byte
	binary.BigEndian.PutUint64(b[:], m.next)
	binary.BigEndian.PutUint64(b[8:], m.count)
	binary.BigEndian.PutUint32(b[16:], crc32.ChecksumIEEE(b[:16]))
	_, err := f.WriteAt(b[:], 0)
	return err
}

// lostAuditRecords is how many of the mark's records the store no longer
// holds: stored records are only removed by pruning, which updates the
// mark.
func lostAuditRecords(stored int64, m auditMark) uint64 {
	if stored < 0 || uint64(stored) >= m.count {
		return 0
	}
	return m.count - uint64(stored)
}
