package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"testing"
)

// FuzzDefinitionFastPath compares the two routes of ParseDefinition: with
// fastDocument and with the TOML library alone. For every input both give
// the same definition or the same error, and whatever fastDocument
// accepts the library accepts too. Seeds: testdata/fuzz (which include
// examples/secrets.toml) and the benchmark's shape.
func FuzzDefinitionFastPath(f *testing.F) {
	f.Add(benchDefinition(3, 2))
	if src, err := os.ReadFile("../examples/secrets.toml"); err == nil {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		_, fastOK := fastDocument(src)
		oldDef, oldErr := parseDefinition(src, false)
		newDef, newErr := parseDefinition(src, true)
		// The library's syntax errors, and only they, carry a column.
		if de, ok := oldErr.(*DefinitionError); fastOK && ok && (de.Column > 0 || de.Reason == "invalid TOML") {
			t.Fatalf("fastDocument accepted what the library refuses: %v", oldErr)
		}
		if (oldErr == nil) != (newErr == nil) {
			t.Fatalf("library: %v; with fastDocument: %v", oldErr, newErr)
		}
		if oldErr != nil {
			if oldErr.Error() != newErr.Error() {
				t.Fatalf("errors differ:\nlibrary:          %v\nwith fastDocument: %v", oldErr, newErr)
			}
			return
		}
		if !reflect.DeepEqual(oldDef, newDef) {
			t.Fatalf("definitions differ:\nlibrary:           %+v\nwith fastDocument: %+v", oldDef, newDef)
		}
	})
}

// TestFastPathTaken checks that the plain form takes the fast route and
// that other TOML is left to the library.
func TestFastPathTaken(t *testing.T) {
	for src, want := range map[string]bool{
		string(benchDefinition(3, 2)):                        true,
		"[clients]\nw = [\"a\", 'b',]\n[shared.g]\nx = ''\n": true,
		"[clients]\r\nw = \"a\" # c\r\n":                     true,
		"[clients]\nw = \"a\\n\"\n":                          false, // an escape
		"[clients]\nw.x = \"a\"\n":                           false, // a dotted key
		"[shared]\n":                                         false,
		"[clients]\nw = 1\n":                                 false,
		"[clients]\nw = \"a\"\n[clients]\n":                  false, // left to the library's error
		"[clients]\nw = \"\"\"a\"\"\"\n":                     false,
		"w = \"a\"\n":                                        false,
	} {
		if _, ok := fastDocument([]byte(src)); ok != want {
			t.Errorf("fastDocument(%q): %v, want %v", src, ok, want)
		}
	}
}

// TestFastPathNames: value names read on the fast route are interned up
// to maxInternedNames and allocated one by one past it. Either way the
// definition is the library's, and no name points into the source: the
// names are intact after the source is overwritten.
func TestFastPathNames(t *testing.T) {
	var src bytes.Buffer
	src.WriteString("[clients]\n")
	const clients, names = 3, maxInternedNames/2 + 1 // 3 x 2049 distinct names
	for c := range clients {
		fmt.Fprintf(&src, "c%d = \"key %d\"\n", c, c)
	}
	for c := range clients {
		fmt.Fprintf(&src, "[c%d]\nshared = \"s\"\n", c)
		for n := range names {
			fmt.Fprintf(&src, "v_%d_%d = \"x\"\n", c, n)
		}
	}
	b := src.Bytes()
	if _, ok := fastDocument(b); !ok {
		t.Fatal("the fast route did not take the plain form")
	}
	lib, err := parseDefinition(b, false)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := parseDefinition(b, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(lib, fast) {
		t.Fatal("the fast route's definition differs from the library's")
	}
	for i := range b {
		b[i] = 'z'
	}
	for c, dc := range fast.Clients {
		if len(dc.Values) != names+1 {
			t.Fatalf("client %d: %d values, want %d", c, len(dc.Values), names+1)
		}
		if _, ok := dc.Values["shared"]; !ok {
			t.Errorf("client %d: value \"shared\" missing after the source was overwritten", c)
		}
		for n := range names {
			if _, ok := dc.Values[fmt.Sprintf("v_%d_%d", c, n)]; !ok {
				t.Fatalf("client %d: value v_%d_%d missing after the source was overwritten", c, c, n)
			}
		}
	}
}
