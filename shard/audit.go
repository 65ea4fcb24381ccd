package shard

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Audit queue and writer limits.
const (
	// auditQueueLen bounds the records waiting for the writer; a burst
	// beyond it (10,000 clients booting at once against a slow disk) is
	// dropped and counted rather than slowing sessions or growing memory.
	auditQueueLen = 8192
	// auditBatchLen bounds the records written in one transaction, well
	// below Badger's per-transaction count limit.
	auditBatchLen = 512
	// auditLinger is how long the writer waits after the first record of
	// a batch for more: under load one Badger transaction then carries
	// tens of records instead of one per session. It bounds how late a
	// record is written (and Close's and AuditRecords' wait for it).
	auditLinger = 20 * time.Millisecond
	// auditPruneEvery is how often age retention runs when nothing is
	// written.
	auditPruneEvery = time.Minute
	// maxAuditField bounds the name, remote and outcome strings stored.
	maxAuditField = 256
)

// AuditRecord is one fetch: who asked, from where, which serial was
// served, how many values, and the outcome. Never a value.
type AuditRecord struct {
	Time    time.Time
	Client  [32]byte
	Name    string // client name, empty if unknown
	Remote  string // remote address
	Serial  uint64
	Values  int
	Outcome string
}

// Stored form of a record (the key carries the time): auditFormat, the
// client key (32 bytes), the serial (uvarint), the value count (varint),
// then the name, the remote address and the outcome, each a uvarint
// length and its bytes. About 65 bytes against about 125 for the JSON
// that earlier versions wrote, so fewer memtable flushes and compactions
// per session; encoding it allocates nothing but the value. Records in
// JSON (first byte '{') are still read.
const auditFormat = 0x01

// appendAuditRecord appends r's stored form to b.
func appendAuditRecord(b []byte, r *AuditRecord) []byte {
	b = append(b, auditFormat)
	b = append(b, r.Client[:]...)
	b = binary.AppendUvarint(b, r.Serial)
	b = binary.AppendVarint(b, int64(r.Values))
	for _, f := range []string{r.Name, r.Remote, r.Outcome} {
		f = truncField(f)
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// errAuditRecord reports a stored record that does not decode.
var errAuditRecord = errors.New("shard: audit record does not decode")

// parseAuditRecord decodes a stored record of time t, in either form.
func parseAuditRecord(v []byte, t uint64) (AuditRecord, error) {
	if len(v) > 0 && v[0] == '{' {
		var j auditJSON
		if err := json.Unmarshal(v, &j); err != nil {
			return AuditRecord{}, errAuditRecord
		}
		return j.record(t), nil
	}
	r := AuditRecord{Time: time.Unix(0, int64(t))}
	if len(v) < 1+len(r.Client) || v[0] != auditFormat {
		return AuditRecord{}, errAuditRecord
	}
	v = v[1+copy(r.Client[:], v[1:]):]
	serial, n := binary.Uvarint(v)
	if n <= 0 {
		return AuditRecord{}, errAuditRecord
	}
	r.Serial, v = serial, v[n:]
	values, n := binary.Varint(v)
	if n <= 0 || values < math.MinInt32 || values > math.MaxInt32 {
		return AuditRecord{}, errAuditRecord
	}
	r.Values, v = int(values), v[n:]
	for _, f := range []*string{&r.Name, &r.Remote, &r.Outcome} {
		l, n := binary.Uvarint(v)
		if n <= 0 || l > maxAuditField || l > uint64(len(v)-n) {
			return AuditRecord{}, errAuditRecord
		}
		*f, v = string(v[n:n+int(l)]), v[n+int(l):]
	}
	if len(v) != 0 {
		return AuditRecord{}, errAuditRecord
	}
	return r, nil
}

// auditJSON is the form of a record that earlier versions stored.
type auditJSON struct {
	Client  string `json:"c"`
	Name    string `json:"n,omitempty"`
	Remote  string `json:"r,omitempty"`
	Serial  uint64 `json:"s,omitempty"`
	Values  int    `json:"v,omitempty"`
	Outcome string `json:"o"`
}

// auditor writes records in the background: a bounded queue, batched
// transactions, retention after each batch and on a timer.
type auditor struct {
	st      *Store
	q       chan AuditRecord
	flushQ  chan chan struct{}
	quit    chan struct{}
	done    chan struct{}
	seq     uint64 // writer goroutine only
	oldest  uint64 // auditTime of the oldest stored record; writer only
	count   atomic.Int64
	dropped atomic.Uint64
	logged  uint64   // dropped count last logged; writer only
	lost    uint64   // records found lost to damage at Open
	mark    *os.File // audit.mark, nil if it could not be opened; writer only
	once    sync.Once
}

func newAuditor(st *Store) *auditor {
	a := &auditor{
		st:     st,
		oldest: noAudit,
		q:      make(chan AuditRecord, auditQueueLen),
		flushQ: make(chan chan struct{}),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	mark, ms := readAuditMark(st.dir)
	a.scan()
	switch {
	case ms == markOK:
		a.lost = lostAuditRecords(a.count.Load(), mark)
		a.seq = max(a.seq, mark.next) // never reuse a lost record's number
	case ms == markDamaged:
		st.log.Warn("shard: the audit mark is damaged; audit records lost before this start cannot be counted",
			"file", filepath.Join(st.dir, auditMarkFile))
	case a.count.Load() > 0:
		st.log.Warn("shard: the audit mark is missing; audit records lost before this start cannot be counted",
			"file", filepath.Join(st.dir, auditMarkFile))
	}
	if a.lost > 0 {
		st.log.Error("shard: audit records missing from the store: lost to damage, or set aside with a quarantined database", "lost", a.lost)
	}
	var err error
	if a.mark, err = openAuditMark(st.dir); err != nil {
		st.log.Warn("shard: opening the audit mark", "err", err)
	}
	// The mark is rewritten only when the count changes here, so a
	// reader (check, inspect, audit) reports a loss without consuming
	// the report: the server's first audit batch does.
	if a.prune() {
		a.writeMark()
	}
	go a.run()
	return a
}

// writeMark records the next sequence number in the audit mark.
func (a *auditor) writeMark() {
	if a.mark == nil {
		return
	}
	m := auditMark{next: a.seq, count: uint64(max(a.count.Load(), 0))}
	if err := writeAuditMark(a.mark, m); err != nil {
		a.st.log.Warn("shard: writing the audit mark", "err", err)
		a.mark.Close()
		a.mark = nil
	}
}

// Audit queues rec for the audit log without blocking. When the queue is
// full or the store is closed the record is dropped and counted
// (Stats.AuditDropped, and a warning in the log).
func (st *Store) Audit(rec AuditRecord) {
	if st.closed.Load() {
		st.audit.dropped.Add(1)
		return
	}
	select {
	case st.audit.q <- rec:
	default:
		st.audit.dropped.Add(1)
	}
}

// AuditRecords returns the newest records at or after since, at most
// limit of them (all if limit ≤ 0), oldest first. Records queued by this
// process are written first.
func (st *Store) AuditRecords(since time.Time, limit int) ([]AuditRecord, error) {
	if st.closed.Load() {
		return nil, ErrClosed
	}
	st.audit.flush()
	var out []AuditRecord
	err := st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixAudit), Reverse: true, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		floor := auditTime(since)
		for it.Seek([]byte(prefixAudit + "\xff")); it.Valid(); it.Next() {
			if limit > 0 && len(out) == limit {
				break
			}
			item := it.Item()
			k := item.Key()
			if len(k) != len(prefixAudit)+16 {
				continue
			}
			t := binary.BigEndian.Uint64(k[len(prefixAudit):])
			if t < floor {
				break
			}
			var rec AuditRecord
			err := item.Value(func(v []byte) (err error) {
				rec, err = parseAuditRecord(v, t)
				return err
			})
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

func (j *auditJSON) record(t uint64) AuditRecord {
	r := AuditRecord{Time: time.Unix(0, int64(t)), Name: j.Name, Remote: j.Remote,
		Serial: j.Serial, Values: j.Values, Outcome: j.Outcome}
	hex.Decode(r.Client[:], []byte(j.Client))
	return r
}

// auditTime is the key's time: Unix nanoseconds, 0 before 1970.
func auditTime(t time.Time) uint64 {
	if t.IsZero() || t.UnixNano() < 0 {
		return 0
	}
	return uint64(t.UnixNano())
}

func truncField(s string) string {
	if len(s) > maxAuditField {
		return s[:maxAuditField]
	}
	return s
}

func (a *auditor) run() {
	defer close(a.done)
	tick := time.NewTicker(auditPruneEvery)
	defer tick.Stop()
	batch := make([]AuditRecord, 0, auditBatchLen)
	for {
		select {
		case rec := <-a.q:
			time.Sleep(auditLinger)
			batch = a.drain(append(batch[:0], rec))
			a.write(batch)
		case ack := <-a.flushQ:
			a.drainAll(batch)
			close(ack)
		case <-tick.C:
			if a.prune() {
				a.writeMark()
			}
		case <-a.quit:
			a.drainAll(batch)
			return
		}
	}
}

// drain adds what is queued, up to a batch.
func (a *auditor) drain(batch []AuditRecord) []AuditRecord {
	for len(batch) < auditBatchLen {
		select {
		case rec := <-a.q:
			batch = append(batch, rec)
		default:
			return batch
		}
	}
	return batch
}

func (a *auditor) drainAll(batch []AuditRecord) {
	for {
		batch = a.drain(batch[:0])
		if len(batch) == 0 {
			return
		}
		a.write(batch)
	}
}

// write stores a batch in one transaction, then applies retention.
func (a *auditor) write(batch []AuditRecord) {
	if err := checkSpace(a.st.dir, 0); err != nil {
		a.dropped.Add(uint64(len(batch)))
		a.st.log.Error("shard: writing audit records", "records", len(batch), "err", err)
		return
	}
	a.st.dropMu.RLock()
	err := a.st.db.Update(func(txn *badger.Txn) error {
		for i := range batch {
			r := &batch[i]
			v := appendAuditRecord(nil, r)
			k := make([]byte, 0, len(prefixAudit)+16)
			k = append(k, prefixAudit...)
			t := auditTime(r.Time)
			a.oldest = min(a.oldest, t)
			k = binary.BigEndian.AppendUint64(k, t)
			k = binary.BigEndian.AppendUint64(k, a.seq)
			a.seq++
			if err := txn.Set(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	a.st.dropMu.RUnlock()
	if err != nil {
		a.dropped.Add(uint64(len(batch)))
		a.st.log.Error("shard: writing audit records", "records", len(batch), "err", err)
	} else {
		a.count.Add(int64(len(batch)))
	}
	if d := a.dropped.Load(); d != a.logged {
		a.st.log.Warn("shard: audit records dropped", "total", d)
		a.logged = d
	}
	a.prune()
	a.writeMark()
}

// flush waits until the writer has stored everything queued before it.
func (a *auditor) flush() {
	ack := make(chan struct{})
	select {
	case a.flushQ <- ack:
		<-ack
	case <-a.done:
	}
}

func (a *auditor) stop() {
	a.once.Do(func() { close(a.quit) })
	<-a.done
	if a.mark != nil {
		a.mark.Close()
		a.mark = nil
	}
}

// scan counts the stored records and continues the sequence after the
// last one.
func (a *auditor) scan() {
	a.st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixAudit)})
		defer it.Close()
		var n int64
		for it.Rewind(); it.Valid(); it.Next() {
			n++
			if k := it.Item().Key(); len(k) == len(prefixAudit)+16 {
				a.seq = max(a.seq, binary.BigEndian.Uint64(k[len(prefixAudit)+8:])+1)
				a.oldest = min(a.oldest, binary.BigEndian.Uint64(k[len(prefixAudit):]))
			}
		}
		a.count.Store(n)
		return nil
	})
}

// noAudit is auditor.oldest when no record is stored.
const noAudit = ^uint64(0)

// prune deletes the oldest records beyond AuditMaxRecords and those
// older than AuditMaxAge. It runs after every batch, so it opens no
// iterator unless a record is due: the oldest record's time is tracked.
func (a *auditor) prune() (pruned bool) {
	excess := a.count.Load() - int64(a.st.opt.AuditMaxRecords)
	var floor uint64
	if a.st.opt.AuditMaxAge > 0 {
		floor = auditTime(time.Now().Add(-a.st.opt.AuditMaxAge))
	}
	if excess <= 0 && a.oldest >= floor {
		return false
	}
	var keys [][]byte
	oldest := noAudit
	a.st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixAudit)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			var t uint64
			if len(k) >= len(prefixAudit)+8 {
				t = binary.BigEndian.Uint64(k[len(prefixAudit):])
			}
			if int64(len(keys)) >= excess && t >= floor {
				oldest = t
				break
			}
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if len(keys) == 0 {
		return false
	}
	a.st.dropMu.RLock()
	defer a.st.dropMu.RUnlock()
	wb := a.st.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			a.st.log.Error("shard: pruning audit records", "err", err)
			return false
		}
	}
	if err := wb.Flush(); err != nil {
		a.st.log.Error("shard: pruning audit records", "err", err)
		return false
	}
	a.count.Add(-int64(len(keys)))
	a.oldest = oldest
	return true
}
