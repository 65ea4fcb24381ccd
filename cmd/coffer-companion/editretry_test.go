package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEditReopensOnError: an edit that does not check is not thrown away.
// The editor opens again on the same text with the error in a comment
// block at the top (line, column and key only, never a value); a fixed
// save seals, an unchanged save gives up and leaves the file as it was.
func TestEditReopensOnError(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, s.env, "seal", "-o", "v.sealed", "secrets.toml").want(t, 0)
	header := filepath.Join(s.dir, "header.txt")
	// Round 1 adds a good line and a bad one; round 2 saves the header
	// it was shown, then (fix) drops the bad line or (give up) exits.
	editor := func(fix string) string {
		return `if grep -q '^# coffer-companion:' "$1"; then
  grep '^# coffer-companion:' "$1" > ` + header + `
  grep -n 'kept = "mine"' "$1" | cut -d: -f1 >> ` + header + `
  ` + fix + `
  exit 0
fi
echo 'kept = "mine"' >> "$1"
echo 'x = ["` + canary + `"]' >> "$1"`
	}
	t.Run("fixed on the second round", func(t *testing.T) {
		os.Remove(header)
		ed := writeEditor(t, s, editor(`grep -v '^x = ' "$1" > "$1.new"; cat "$1.new" > "$1"; rm "$1.new"`))
		companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "v.sealed").want(t, 0, "arrays", "reopening", "serial 2")
		tmpEmpty(t, s)
		shown, _ := os.ReadFile(header)
		lines := strings.Split(strings.TrimSpace(string(shown)), "\n")
		if bytes.Contains(shown, []byte(canary)) || !strings.Contains(string(shown), `key "web.x": arrays are not supported`) {
			t.Errorf("error block shown:\n%s", shown)
		}
		// The error's line number is the line in the file the editor
		// shows: the bad line is the one after "kept".
		keptLine := lines[len(lines)-1]
		if want := "line " + itoaPlus(t, keptLine, 1); !strings.Contains(string(shown), want) {
			t.Errorf("error block does not name %s (kept is on line %s):\n%s", want, keptLine, shown)
		}
		r := companion(t, s.dir, s.env, "open", "v.sealed")
		if r.stdout != s.toml+"kept = \"mine\"\n" {
			t.Errorf("after the fixed edit open printed %q", r.stdout)
		}
	})
	t.Run("given up by an unchanged save", func(t *testing.T) {
		before := s.read(t, "v.sealed")
		ed := writeEditor(t, s, editor(`true`))
		companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "v.sealed").want(t, 1, "saved unchanged", "discarded")
		tmpEmpty(t, s)
		if !bytes.Equal(s.read(t, "v.sealed"), before) {
			t.Error("the sealed file changed")
		}
	})
}

func itoaPlus(t *testing.T, s string, n int) string {
	t.Helper()
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(v + n)
}
