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
