package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// TestStoreClients: the import's client sequence yields one client per
// key with exactly the values' encodings (keys of one name share them),
// clears each client's parsed values once its keys are written, and
// stops with an error, naming the client and value but not the value's
// text, on a value that cannot be encoded.
func TestStoreClients(t *testing.T) {
	key := func(b byte) coffer.PublicKey { return coffer.PublicKey{b} }
	long := strings.Repeat("L", 70000) // a 5-byte CBOR head
	def := &coffer.Definition{Clients: []coffer.DefinitionClient{
		{Name: "web", Keys: []coffer.PublicKey{key(1), key(2)}, Values: frame.Shard{
			"A": {Kind: frame.KindString, Text: []byte("secret-a")},
			"B": {Kind: frame.KindInt, Int: -7},
			"C": {Kind: frame.KindDateTime, Text: []byte("1979-05-27T07:32:00Z")},
		}},
		{Name: "db", Keys: []coffer.PublicKey{key(3)}, Values: frame.Shard{
			"LONG": {Kind: frame.KindString, Text: []byte(long)},
		}},
	}}
	want := map[coffer.PublicKey]map[string][]byte{}
	var texts [][]byte
	for _, c := range def.Clients {
		m := map[string][]byte{}
		for n, v := range c.Values {
			b, err := v.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			m[n] = b
			if v.Text != nil {
				texts = append(texts, v.Text)
			}
		}
		for _, k := range c.Keys {
			want[k] = m
		}
	}
	seen := 0
	for c, err := range storeClients(def) {
		if err != nil {
			t.Fatal(err)
		}
		w := want[c.Key]
		if len(c.Values) != len(w) {
			t.Fatalf("client %q: %d values, want %d", c.Name, len(c.Values), len(w))
		}
		for n, b := range w {
			if !bytes.Equal(c.Values[n], b) {
				t.Fatalf("client %q, value %q: %x, want %x", c.Name, n, c.Values[n], b)
			}
		}
		seen++
	}
	if seen != 3 {
		t.Fatalf("%d clients yielded, want 3 (one per key)", seen)
	}
	for _, c := range def.Clients {
		if c.Values != nil {
			t.Fatalf("client %q keeps its parsed values (%d) after the import", c.Name, len(c.Values))
		}
	}
	for _, b := range texts {
		if bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) {
			t.Fatalf("a parsed value's text was not cleared: %.12q", b)
		}
	}

	bad := &coffer.Definition{Clients: []coffer.DefinitionClient{
		{Name: "ok", Keys: []coffer.PublicKey{key(4)}, Values: frame.Shard{"A": {Kind: frame.KindString, Text: []byte("fine")}}},
		{Name: "broken", Keys: []coffer.PublicKey{key(5)}, Values: frame.Shard{"X": {Kind: frame.KindInvalid, Text: []byte("secret-x")}}},
	}}
	var errs []error
	n := 0
	for _, err := range storeClients(bad) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if n != 1 || len(errs) != 1 {
		t.Fatalf("%d clients and %d errors, want 1 and 1", n, len(errs))
	}
	if msg := errs[0].Error(); !strings.Contains(msg, `client "broken", value "X"`) || strings.Contains(msg, "secret-x") {
		t.Fatalf("error %q: want the client and value named, the text not", msg)
	}
}
