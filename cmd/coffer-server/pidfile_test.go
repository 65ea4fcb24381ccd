package main

import (
	"maps"
	"strings"
	"testing"
)

// FuzzLockFile: no content of the lock file panics its parser, and what
// write puts there (pid, role, version, a line per served definition)
// reads back the same. Definition names and versions hold no space or
// newline (config's name rule, "serial hash"), as the second half keeps
// them.
func FuzzLockFile(f *testing.F) {
	f.Add([]byte("123\nserve\n3 ab\n"), "serve", "3 ab", "team-a", "1 cd")
	f.Add([]byte(lockContent(42, "serve", "", [2]string{"team-b", "2 ef"})), "check", "", "x", "1 00")
	f.Fuzz(func(t *testing.T, data []byte, role, version, name, v string) {
		parseHolder(data) // must not panic
		if strings.ContainsAny(role+version, "\n") || strings.ContainsAny(name, " \n") || name == "" || strings.Contains(v, "\n") ||
			role == lockEnd || version == lockEnd {
			return
		}
		h, err := parseHolder([]byte(lockContent(7, role, version, [2]string{name, v})))
		if err != nil {
			t.Fatalf("a written lock file does not parse: %v", err)
		}
		want := map[string]string{name: v}
		if h.pid != 7 || h.role != role || h.version != version || !maps.Equal(h.defs, want) {
			t.Fatalf("read back %+v, want pid 7, role %q, version %q, defs %v", h, role, version, want)
		}
	})
}
