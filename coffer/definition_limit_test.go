package coffer

import (
	"math"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/frame"
)

// TestShardLimit checks the seal-time shard size limit on a parsed
// client at frame.MaxShardBytes and one past. It skips the TOML parser,
// which takes minutes over a 16 MiB source under -race, so it runs in
// make test; ParseDefinition calls convertClient for every client.
func TestShardLimit(t *testing.T) {
	// {"big": text of n bytes}: a 1-byte map header, the 3-byte name
	// with its 1-byte header, and a 5-byte text header.
	const overhead = 1 + 1 + 3 + 5
	for _, tc := range []struct {
		name string
		size int
		ok   bool
	}{
		{"at the limit", frame.MaxShardBytes, true},
		{"one past", frame.MaxShardBytes + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &config.DefinitionClient{Name: "c", Values: map[string]config.Value{
				"big": {Kind: config.KindString, Text: []byte(strings.Repeat("x", tc.size-overhead))},
			}}
			src := []byte("[clients]\nc = []\n[c]\nbig = \"...\"\n")
			c, err := convertClient(src, cc, map[PublicKey]string{})
			switch {
			case tc.ok && err != nil:
				t.Fatalf("got %v, want a shard of %d bytes accepted", err, tc.size)
			case tc.ok:
				enc, err := frame.EncodeShard(c.Values)
				if err != nil || len(enc) != tc.size {
					t.Fatalf("encoded %d bytes (%v), want exactly %d", len(enc), err, tc.size)
				}
			case err == nil || !strings.Contains(err.Error(), "exceeds the limit") || !strings.Contains(err.Error(), `client "c"`):
				t.Fatalf("got %v, want a shard size error naming the client", err)
			}
		})
	}
}

// TestShardBound checks that shardBound never under-counts, for every
// value kind, so that a shard it lets through without encoding is within
// the limit.
func TestShardBound(t *testing.T) {
	long := strings.Repeat("n", frame.MaxNameBytes)
	for _, tc := range []struct {
		name string
		s    frame.Shard
	}{
		{"empty", frame.Shard{}},
		{"string", frame.Shard{"a": {Kind: frame.KindString, Text: []byte("x")}}},
		{"long string", frame.Shard{long: {Kind: frame.KindString, Text: []byte(strings.Repeat("x", 70000))}}},
		{"int", frame.Shard{"a": {Kind: frame.KindInt, Int: -1 << 63}}},
		{"float", frame.Shard{"a": {Kind: frame.KindFloat, Float: 1.0000000000000002}}},
		{"inf", frame.Shard{"a": {Kind: frame.KindFloat, Float: math.Inf(-1)}}},
		{"nan", frame.Shard{"a": {Kind: frame.KindFloat, Float: math.NaN()}}},
		{"bool", frame.Shard{"a": {Kind: frame.KindBool, Bool: true}}},
		{"datetime", frame.Shard{"a": {Kind: frame.KindDateTime, Text: []byte("1979-05-27T07:32:00.999999-07:00")}}},
		{"local kinds", frame.Shard{
			"a": {Kind: frame.KindLocalDateTime, Text: []byte("1979-05-27T07:32:00.999999999")},
			"b": {Kind: frame.KindLocalDate, Text: []byte("1979-05-27")},
			"c": {Kind: frame.KindLocalTime, Text: []byte("07:32:00.999999999")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := frame.EncodeShard(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if got := shardBound(tc.s); got < len(enc) {
				t.Errorf("got bound %d, want at least the encoded %d bytes", got, len(enc))
			}
		})
	}
}
