package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/coffer"
)

// TestParseHolderVersion: the "serial hash" a running server writes into
// its lock file reads back exactly, and anything else reads as nothing.
func TestParseHolderVersion(t *testing.T) {
	h := [32]byte{0xab, 1, 2, 0xff}
	hexH := fmt.Sprintf("%x", h)
	tests := []struct {
		name string
		in   string
		want *coffer.Version
	}{
		{"serial and hash", "2 " + hexH, &coffer.Version{Serial: 2, Hash: h}},
		{"upper-case hash", "2 " + strings.ToUpper(hexH), &coffer.Version{Serial: 2, Hash: h}},
		{"nothing served", "", nil},
		{"short hash", "2 " + hexH[:62], nil},
		{"long hash", "2 " + hexH + "00", nil},
		{"not hex", "2 " + strings.Repeat("zz", 32), nil},
		{"bad serial", "x " + hexH, nil},
		{"three fields", "2 " + hexH + " 3", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseHolderVersion(tc.in)
			switch {
			case got == nil && tc.want == nil:
			case got == nil || tc.want == nil || *got != *tc.want:
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestCheckWhileServing: with the server running at serial 2, check
// reports that serial and refuses a serial-1 file at the definition
// path, which the running server would refuse too.
func TestCheckWhileServing(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	first, err := os.ReadFile(f.DefPath)
	if err != nil {
		t.Fatal(err)
	}
	f.next(t, "two", 0)
	p := f.start(t)
	f.Write(t, first)
	out, _, code := f.run(t, nil, append([]string{"check"}, f.Args()...)...)
	if !strings.Contains(out, "serving serial 2") {
		t.Errorf("check does not see the served serial:\n%s", out)
	}
	if code != 1 || !strings.Contains(out, "FAIL  sealed definition") {
		t.Errorf("check: exit %d, want 1 and the serial-1 file refused:\n%s", code, out)
	}
	p.stop()
}

// TestRebuildWithoutSource: a damaged store whose kept sealed file is
// gone too, with no definition file, is refused with the serial it needs;
// nothing older is served. check and inspect report the damage without
// a panic.
func TestRebuildWithoutSource(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	f.next(t, "two", 0)
	p := f.start(t)
	p.stop()
	kept, _ := filepath.Glob(filepath.Join(f.DataDir, "sealed", "*.sealed"))
	if len(kept) != 1 {
		t.Fatalf("kept files %v, want one", kept)
	}
	for _, path := range []string{kept[0], filepath.Join(f.DataDir, "db", "KEYREGISTRY"), f.DefPath} {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range []string{"check", "inspect"} {
		out, errOut, code := f.run(t, nil, append([]string{cmd}, f.Args()...)...)
		if code != 1 || !strings.Contains(out+errOut, "KEYREGISTRY is missing") || strings.Contains(out+errOut, "panic") {
			t.Errorf("%s: exit %d, want 1 naming KEYREGISTRY:\n%s%s", cmd, code, out, errOut)
		}
	}
	_, errOut, code := f.run(t, nil, append([]string{"serve", "--listen", "127.0.0.1:0"}, f.Args()...)...)
	if code != 1 || strings.Count(errOut, "coffer-server: error:") != 1 || !strings.Contains(errOut, "(serial 2)") {
		t.Errorf("serve: exit %d, want 1 with one error naming serial 2:\n%s", code, errOut)
	}
}

// TestKeptFileChecked: a damaged kept sealed file shows in inspect and
// check, and the next start keeps the definition file again when it is
// the served definition.
func TestKeptFileChecked(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	p := f.start(t)
	p.stop()
	kept, _ := filepath.Glob(filepath.Join(f.DataDir, "sealed", "*.sealed"))
	if len(kept) != 1 {
		t.Fatalf("kept files %v, want one", kept)
	}
	if err := os.WriteFile(kept[0], []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, _ := f.run(t, nil, append([]string{"inspect"}, f.Args()...)...)
	if !strings.Contains(out, "kept file:  DAMAGED") {
		t.Errorf("inspect does not show the damaged kept file:\n%s", out)
	}
	out, _, _ = f.run(t, nil, append([]string{"check"}, f.Args()...)...)
	if !strings.Contains(out, "KEPT SEALED FILE") {
		t.Errorf("check does not show the damaged kept file:\n%s", out)
	}
	p = f.start(t)
	p.Logs.Wait(t, 0, `kept the definition file again`)
	p.stop()
	out, _, _ = f.run(t, nil, append([]string{"inspect"}, f.Args()...)...)
	if !strings.Contains(out, "kept file:  ok") {
		t.Errorf("after a start with the definition file, inspect says:\n%s", out)
	}
}
