package shard

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
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
	// maxAuditInFlight bounds the Audit calls between counting a
	// record and failing to queue it that a kill can catch, beyond which
	// the accepted counter is damaged rather than ahead.
	maxAuditInFlight = 1 << 16
	// maxAuditBuf bounds the batch buffer the writer keeps between
	// batches; a larger one (long names) is let go.
	maxAuditBuf = 64 << 10
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
	r, rest, err := nextAuditRecord(v, t)
	if err == nil && len(rest) != 0 {
		err = errAuditRecord
	}
	return r, err
}

// nextAuditRecord decodes the binary record of time t at the start of v
// and returns what follows it.
func nextAuditRecord(v []byte, t uint64) (AuditRecord, []byte, error) {
	r := AuditRecord{Time: time.Unix(0, int64(t))}
	if len(v) < 1+len(r.Client) || v[0] != auditFormat {
		return AuditRecord{}, nil, errAuditRecord
	}
	v = v[1+copy(r.Client[:], v[1:]):]
	serial, n := binary.Uvarint(v)
	if n <= 0 {
		return AuditRecord{}, nil, errAuditRecord
	}
	r.Serial, v = serial, v[n:]
	values, n := binary.Varint(v)
	if n <= 0 || values < math.MinInt32 || values > math.MaxInt32 {
		return AuditRecord{}, nil, errAuditRecord
	}
	r.Values, v = int(values), v[n:]
	for _, f := range []*string{&r.Name, &r.Remote, &r.Outcome} {
		l, n := binary.Uvarint(v)
		if n <= 0 || l > maxAuditField || l > uint64(len(v)-n) {
			return AuditRecord{}, nil, errAuditRecord
		}
		*f, v = string(v[n:n+int(l)]), v[n+int(l):]
	}
	return r, v, nil
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
// entries, retention after each batch and on a timer.
type auditor struct {
	st       *Store
	q        chan AuditRecord
	flushQ   chan chan struct{}
	quit     chan struct{}
	done     chan struct{}
	seq      uint64 // writer goroutine only
	oldest   uint64 // auditTime of the oldest stored record; writer only
	count    atomic.Int64
	dropped  atomic.Uint64
	logged   uint64           // dropped count last logged; writer only
	lost     uint64           // records found lost to damage or a kill at Open
	mark     *os.File         // audit.mark, nil if it could not be opened; writer only
	accepted *acceptedCounter // records queued, in the sequence's numbering
	once     sync.Once
	buf      []byte // the batch value being built; writer only
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
	a.openAccepted(ms)
	if a.lost > 0 {
		st.log.Error("shard: audit records missing from the store: lost to damage or a kill, or set aside with a quarantined database", "lost", a.lost)
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

// openAccepted maps the accepted counter and counts the records it is
// ahead of what was written (queued when the process was killed); then
// the counter and the sequence agree. Without a readable mark the
// difference cannot be told from records the mark would have covered,
// and more than the queue and a batch cannot have been waiting, so
// neither is counted.
func (a *auditor) openAccepted(ms markState) {
	c, err := openAccepted(a.st.dir)
	if err != nil {
		a.st.log.Warn("shard: opening the audit counter; audit records queued at a kill cannot be counted", "err", err)
		c = &acceptedCounter{w: new(atomic.Uint64)}
	}
	a.accepted = c
	n, ok := c.load()
	switch {
	case err != nil:
	case c.state == markDamaged || (c.state == markOK && (!ok || n > a.seq+auditQueueLen+auditBatchLen+maxAuditInFlight)):
		a.st.log.Warn("shard: the audit counter is damaged; audit records queued at a kill cannot be counted",
			"file", filepath.Join(a.st.dir, auditAcceptedFile))
	case c.state == markOK && ms == markOK && n > a.seq:
		a.lost += n - a.seq
		a.seq = n
	}
	c.store(a.seq)
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
	a := st.audit
	a.accepted.add(1) // before the record can be written: see auditmark.go
	select {
	case a.q <- rec:
	default:
		a.accepted.add(^uint64(0))
		a.dropped.Add(1)
	}
	runtime.KeepAlive(a.accepted)
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
	floor := auditTime(since)
	err := st.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixAudit), Reverse: true, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Seek([]byte(prefixAudit + "\xff")); it.Valid(); it.Next() {
			item := it.Item()
			e, ok := parseAuditKey(item.Key())
			if !ok {
				continue
			}
			if e.time < floor || (limit > 0 && len(out) == limit) {
				break
			}
			var recs []AuditRecord
			err := item.Value(func(v []byte) (err error) {
				recs, err = auditValue(v, e, len(item.Key()) == auditKeyLen)
				return err
			})
			if err != nil {
				return err
			}
			for i := len(recs) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
				if auditTime(recs[i].Time) >= floor {
					out = append(out, recs[i])
				}
			}
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

// write stores a batch as one entry, then applies retention. The
// batch's sequence numbers are used whether or not the write succeeds,
// so the sequence keeps step with the accepted counter.
func (a *auditor) write(batch []AuditRecord) {
	seq := a.seq
	a.seq += uint64(len(batch))
	err := checkSpace(a.st.dir, 0)
	if err == nil {
		sortAudit(batch)
		var e auditEntry
		a.buf, e = appendAuditBatch(a.buf[:0], batch, seq)
		a.st.dropMu.RLock()
		err = a.st.update(func(txn *badger.Txn) error {
			return txn.Set(e.key(), a.buf)
		})
		a.st.dropMu.RUnlock()
		if cap(a.buf) > maxAuditBuf {
			a.buf = nil
		}
	}
	if err != nil {
		a.dropped.Add(uint64(len(batch)))
		a.st.log.Error("shard: writing audit records", "records", len(batch), "err", err)
	} else {
		a.oldest = min(a.oldest, auditTime(batch[0].Time))
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

// scan counts the stored records, continues the sequence after the
// last one and finds the oldest record's time.
func (a *auditor) scan() {
	a.st.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixAudit)})
		defer it.Close()
		var n int64
		for it.Rewind(); it.Valid(); it.Next() {
			e, ok := parseAuditKey(it.Item().Key())
			if !ok {
				n++ // a key of another shape: counted, pruned first
				a.oldest = 0
				continue
			}
			n += int64(e.n)
			a.seq = max(a.seq, e.seq+uint64(e.n))
			if a.oldest == noAudit {
				a.oldest = a.entryOldest(it.Item(), e)
			}
		}
		a.count.Store(n)
		return nil
	})
}

// entryOldest is the time of the oldest record in an entry, the key's
// time if it does not decode.
func (a *auditor) entryOldest(item *badger.Item, e auditEntry) uint64 {
	t := e.time
	if len(item.Key()) == auditBatchKeyLen {
		item.Value(func(v []byte) error {
			if d, n := binary.Uvarint(v); n > 0 && d <= e.time {
				t = e.time - d
			}
			return nil
		})
	}
	return t
}

// noAudit is auditor.oldest when no record is stored.
const noAudit = ^uint64(0)

// prune deletes the oldest records beyond AuditMaxRecords and those
// older than AuditMaxAge. It runs after every batch, so it opens no
// iterator unless a record is due: the oldest record's time is tracked.
// Whole entries are deleted; an entry partly due is replaced by one of
// its newer records, under a key with the same time and their sequence
// numbers. An entry that does not decode is deleted whole when it is
// the oldest.
func (a *auditor) prune() (pruned bool) {
	limit := int64(a.st.opt.AuditMaxRecords)
	need := a.count.Load() - limit
	var floor uint64
	if a.st.opt.AuditMaxAge > 0 {
		floor = auditTime(time.Now().Add(-a.st.opt.AuditMaxAge))
	}
	if need <= 0 && a.oldest >= floor {
		return false
	}
	p := auditPrune{need: need}
	excess := int64(0)
	if need > 0 {
		excess = need + limit/pruneSlack
	}
	oldest := noAudit
	a.st.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixAudit)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if oldest = p.entry(it.Item(), excess, floor); oldest != noAudit {
				break
			}
		}
		return nil
	})
	if p.records == 0 {
		return false
	}
	a.st.dropMu.RLock()
	defer a.st.dropMu.RUnlock()
	if err := a.st.withDB(p.apply); err != nil {
		a.st.log.Error("shard: pruning audit records", "err", err)
		return false
	}
	a.count.Add(-p.records)
	a.oldest = oldest
	return true
}

// pruneSlack: a trail over AuditMaxRecords is pruned down to
// AuditMaxRecords less 1/pruneSlack of it (nothing less below 64
// records), so that pruning runs once per that many records rather than
// after every batch, and mostly deletes whole entries. Pruning a record
// at a time out of the oldest entry rewrote that entry without it: after
// a boot storm (entries of 512 records), every batch of 40 rewrote about
// 470 records, and each record cost 121 us of CPU; now 28
// (BenchmarkAuditSessions/full; 22-24 while the trail fills).
const pruneSlack = 64

// auditPrune collects what prune deletes and the entry it replaces. need
// is how many records must go (the count over the limit); the prune may
// take up to its excess (need plus the slack).
type auditPrune struct {
	need    int64
	del     [][]byte
	records int64
	setK    []byte
	setV    []byte
}

// entry takes what is due of one entry, oldest first, and returns the
// time of its first record kept, or noAudit if it is all due.
func (p *auditPrune) entry(item *badger.Item, excess int64, floor uint64) uint64 {
	due := func(t uint64) bool { return p.records < excess || t < floor }
	e, ok := parseAuditKey(item.Key())
	if !ok || len(item.Key()) == auditKeyLen {
		t := e.time // a key of another shape: 0, due
		if ok && !due(t) {
			return t
		}
		p.del = append(p.del, item.KeyCopy(nil))
		p.records++
		return noAudit
	}
	var kept uint64 = noAudit
	err := item.Value(func(v []byte) error {
		recs, offs, err := splitAuditBatch(v, e)
		if err != nil {
			return err
		}
		before := p.records
		i := 0
		for i < len(recs) && due(auditTime(recs[i].Time)) {
			p.records++
			i++
		}
		if i < len(recs) && i > 0 && before >= p.need && auditTime(recs[0].Time) >= floor {
			// What had to go is gone and none of it is due by age: keep
			// this entry whole rather than rewrite it.
			p.records, i = before, 0
		}
		if i < len(recs) {
			kept = auditTime(recs[i].Time)
			if i > 0 {
				rest := auditEntry{time: e.time, seq: e.seq + uint64(i), n: e.n - uint32(i)}
				p.setK, p.setV = rest.key(), slices.Clone(v[offs[i]:])
			}
		}
		return nil
	})
	if err != nil { // does not decode: delete it and the records it held
		p.records += int64(e.n)
	}
	if err != nil || kept == noAudit || p.setK != nil {
		p.del = append(p.del, item.KeyCopy(nil))
	}
	return kept
}

// apply deletes and replaces in one write batch.
func (p *auditPrune) apply(db *badger.DB) error {
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range p.del {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	if p.setK != nil {
		if err := wb.Set(p.setK, p.setV); err != nil {
			return err
		}
	}
	return wb.Flush()
}
