package shard

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
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

// The accepted counter counts audit records lost to a kill. Audit adds
// one to it for each record it queues, before the record is written; the
// writer numbers the records it writes, or fails to write, in the same
// sequence. A kill -9 with records queued therefore leaves the counter
// above the mark's next sequence number and the stored records', and the
// next start counts the difference as lost (Stats.AuditLost), whatever
// the writer's batching delayed. The counter is 8 bytes in the
// machine's byte order in dir/audit.accepted, mapped shared: Audit's increment is one atomic add in the page cache,
// no system call, and survives the process's death as the mark does. A
// reboot may lose it along with the records.
const (
	auditAcceptedFile = "audit.accepted"
	auditAcceptedLen  = 8
)

// acceptedCounter is the mapped counter and its state when opened. The
// word holds the count in its low 48 bits and a 16-bit check of it in
// the high ones, updated together by compare-and-swap, so a damaged
// word (a flipped bit, zeros) reads as damaged rather than as records
// lost.
type acceptedCounter struct {
	w     *atomic.Uint64
	state markState
}

const acceptedMask = 1<<48 - 1

// acceptedWord is the stored form of count n.
func acceptedWord(n uint64) uint64 {
	n &= acceptedMask
	return n | ((n+1)*0x9e3779b97f4a7c15)>>48<<48
}

// load returns the count; ok is false if the word does not check.
func (c *acceptedCounter) load() (n uint64, ok bool) {
	w := c.w.Load()
	return w & acceptedMask, acceptedWord(w) == w
}

func (c *acceptedCounter) store(n uint64) { c.w.Store(acceptedWord(n)) }

// add adds d (^uint64(0) subtracts one) to the count.
func (c *acceptedCounter) add(d uint64) {
	for {
		w := c.w.Load()
		if c.w.CompareAndSwap(w, acceptedWord(w+d)) {
			return
		}
	}
}

// openAccepted maps dir/audit.accepted, creating it 0600. A file of the
// wrong size is markDamaged and reset to zero. The mapping is released
// when the returned counter is no longer reachable, so an Audit racing
// with Close never touches unmapped memory.
func openAccepted(dir string) (*acceptedCounter, error) {
	f, err := os.OpenFile(filepath.Join(dir, auditAcceptedFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	c := &acceptedCounter{state: markOK}
	switch info.Size() {
	case auditAcceptedLen:
	case 0:
		c.state = markNone
	default:
		c.state = markDamaged
	}
	if c.state != markOK {
		if err := f.Truncate(0); err != nil {
			return nil, err
		}
		if err := f.Truncate(auditAcceptedLen); err != nil {
			return nil, err
		}
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, auditAcceptedLen, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	c.w = (*atomic.Uint64)(unsafe.Pointer(&mem[0])) // page-aligned
	runtime.AddCleanup(c, func(mem []byte) { syscall.Munmap(mem) }, mem)
	return c, nil
}
