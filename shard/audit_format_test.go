package shard

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sampleAuditRecord() AuditRecord {
	r := AuditRecord{Name: "client-7", Remote: "127.0.0.1:5555", Serial: 1 << 40, Values: -1, Outcome: "ok"}
	for i := range r.Client {
		r.Client[i] = byte(i)
	}
	return r
}

// TestAuditRecordFormat checks the binary form round trip, that records
// in the JSON form of earlier versions still read, and that every
// truncation or corruption of a record is an error, not a panic.
func TestAuditRecordFormat(t *testing.T) {
	const at = uint64(1_700_000_000_123_456_789)
	r := sampleAuditRecord()
	r.Time = time.Unix(0, int64(at))
	enc := appendAuditRecord(nil, &r)
	got, err := parseAuditRecord(enc, at)
	if err != nil || !got.Time.Equal(r.Time) || got.Client != r.Client || got.Name != r.Name ||
		got.Remote != r.Remote || got.Serial != r.Serial || got.Values != r.Values || got.Outcome != r.Outcome {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, r)
	}
	js, _ := json.Marshal(auditJSON{Client: hex.EncodeToString(r.Client[:]), Name: r.Name, Remote: r.Remote,
		Serial: r.Serial, Values: r.Values, Outcome: r.Outcome})
	if got, err := parseAuditRecord(js, at); err != nil || got.Client != r.Client || got.Name != r.Name || got.Values != r.Values {
		t.Fatalf("JSON record: %+v, %v", got, err)
	}
	if len(enc) >= len(js) {
		t.Errorf("binary record %d bytes, JSON %d: want smaller", len(enc), len(js))
	}

	long := r
	long.Name = strings.Repeat("n", 1000)
	if got, err := parseAuditRecord(appendAuditRecord(nil, &long), at); err != nil || len(got.Name) != maxAuditField {
		t.Fatalf("a long name: %d bytes, %v; want it cut to %d", len(got.Name), err, maxAuditField)
	}

	for n := range len(enc) {
		if _, err := parseAuditRecord(enc[:n], at); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(enc))
		}
	}
	// The name's length follows the format byte, the key and two varints.
	nameAt := 1 + 32 + len(binary.AppendUvarint(nil, r.Serial)) + len(binary.AppendVarint(nil, int64(r.Values)))
	longName := binary.AppendUvarint(bytes.Clone(enc[:nameAt]), maxAuditField+1)
	longName = append(longName, strings.Repeat("n", maxAuditField+1)...)
	longName = append(longName, enc[nameAt+1+len(r.Name):]...)
	for _, bad := range [][]byte{
		append(bytes.Clone(enc), 0),      // trailing byte
		append([]byte{0x02}, enc[1:]...), // unknown format
		append(bytes.Clone(enc[:33]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), // overlong uvarint
		longName, // a 257-byte name, over the bound
		[]byte("{not json"),
	} {
		if _, err := parseAuditRecord(bad, at); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

// FuzzParseAuditRecord checks that no stored bytes make the audit reader
// panic, and that what decodes re-encodes to the same bytes.
func FuzzParseAuditRecord(f *testing.F) {
	r := sampleAuditRecord()
	f.Add(appendAuditRecord(nil, &r))
	f.Add([]byte(`{"c":"00","o":"ok"}`))
	f.Add([]byte{auditFormat})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseAuditRecord(b, 1)
		if err != nil || (len(b) > 0 && b[0] == '{') {
			return
		}
		if again := appendAuditRecord(nil, &got); !bytes.Equal(again, b) {
			// Varints have one shortest form; a longer one decodes too.
			if r2, err := parseAuditRecord(again, 1); err != nil || r2 != got {
				t.Fatalf("%x decodes to %+v, which does not round-trip", b, got)
			}
		}
	})
}

// TestAuditBatchFormat checks a batch entry's round trip (records
// sorted by time, the key's time the newest, sequence numbers from the
// key's), the key's shapes, and that every truncation of a batch is an
// error.
func TestAuditBatchFormat(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	batch := make([]AuditRecord, 5)
	for i := range batch {
		batch[i] = sampleAuditRecord()
		batch[i].Values = i
		batch[i].Time = base.Add(time.Duration(4-i%3) * time.Millisecond) // out of order
	}
	sortAudit(batch)
	v, e := appendAuditBatch(nil, batch, 42)
	if e.seq != 42 || e.n != 5 || e.time != auditTime(base.Add(4*time.Millisecond)) {
		t.Fatalf("entry %+v", e)
	}
	k := e.key()
	if got, ok := parseAuditKey(k); !ok || got != e || len(k) != auditBatchKeyLen {
		t.Fatalf("key %x parses to %+v, %v", k, got, ok)
	}
	recs, offs, err := splitAuditBatch(v, e)
	if err != nil || len(recs) != 5 || len(offs) != 6 || offs[5] != len(v) {
		t.Fatalf("split: %d records, %d offsets, %v", len(recs), len(offs), err)
	}
	for i, r := range recs {
		if !r.Time.Equal(batch[i].Time) || r.Values != batch[i].Values || r.Name != batch[i].Name {
			t.Fatalf("record %d = %+v, want %+v", i, r, batch[i])
		}
		if i > 0 && r.Time.Before(recs[i-1].Time) {
			t.Fatalf("record %d is older than record %d", i, i-1)
		}
	}
	for n := range len(v) {
		if _, _, err := splitAuditBatch(v[:n], e); err == nil {
			t.Fatalf("a batch cut to %d of %d bytes decodes", n, len(v))
		}
	}
	if _, _, err := splitAuditBatch(v, auditEntry{time: e.time, seq: 42, n: 4}); err == nil {
		t.Fatal("a batch with a record more than its key says decodes")
	}
	for _, bad := range [][]byte{k[:auditKeyLen-1], append(k[:auditKeyLen:auditKeyLen], 0, 0, 0, 0)} {
		if _, ok := parseAuditKey(bad); ok {
			t.Fatalf("key %x parses", bad)
		}
	}
}

// FuzzAuditBatch checks that no stored batch makes the audit reader
// panic, and that what decodes re-encodes to a batch of the same
// records.
func FuzzAuditBatch(f *testing.F) {
	r := sampleAuditRecord()
	r.Time = time.Unix(0, 1000)
	v, _ := appendAuditBatch(nil, []AuditRecord{r, r}, 0)
	f.Add(v, uint32(2))
	f.Add([]byte{0, auditFormat}, uint32(1))
	f.Fuzz(func(t *testing.T, v []byte, n uint32) {
		e := auditEntry{time: 1000, n: n}
		recs, offs, err := splitAuditBatch(v, e)
		if err != nil || n == 0 { // parseAuditKey refuses a batch of none
			return
		}
		if len(recs) != int(n) || len(offs) != int(n)+1 || offs[n] != len(v) {
			t.Fatalf("%d records, %d offsets for n %d", len(recs), len(offs), n)
		}
		again, _ := appendAuditBatch(nil, recs, 0)
		if got, _, err := splitAuditBatch(again, e); err != nil || len(got) != len(recs) {
			t.Fatalf("%x decodes to %d records, which do not round-trip: %v", v, len(recs), err)
		}
	})
}
