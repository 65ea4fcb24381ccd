package config

import (
	"strings"
	"testing"
)

// TestServerDefinitions: [[definitions]] tables parse into
// Server.Definitions with their own trusted keys, the old top-level form
// is one definition named "default", and every mistake is a clear error.
func TestServerDefinitions(t *testing.T) {
	c, err := ParseServer([]byte(`
[[definitions]]
name = "team-a"
path = "/etc/coffer/a.sealed"
trusted = ["cofferauthorpk1aaa"]
[[definitions]]
name = "team-b"
path = "https://example.org/b.sealed"
trusted = ["cofferauthorpk1bbb", "cofferauthorpk1ccc"]
`))
	if err != nil {
		t.Fatal(err)
	}
	l := c.DefinitionList()
	if len(l) != 2 || l[0].Name != "team-a" || l[0].Path != "/etc/coffer/a.sealed" || len(l[0].Trusted) != 1 ||
		l[1].Name != "team-b" || len(l[1].Trusted) != 2 || l[1].Trusted[1] != "cofferauthorpk1ccc" {
		t.Errorf("definitions: %+v", l)
	}
	if err := c.SingleDefinition(); err != nil || len(c.Trusted) != 0 {
		t.Errorf("SingleDefinition of two: %v, definition %q, trusted %q; want no trusted keys folded in", err, c.Definition, c.Trusted)
	}

	c, err = ParseServer([]byte("definition = \"/x.sealed\"\ntrusted = [\"cofferauthorpk1aaa\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	l = c.DefinitionList()
	if len(l) != 1 || l[0].Name != DefaultDefinitionName || l[0].Path != "/x.sealed" || l[0].Trusted[0] != "cofferauthorpk1aaa" {
		t.Errorf("old form: %+v", l)
	}

	c, err = ParseServer([]byte("[[definitions]]\nname = \"one\"\npath = \"/one.sealed\"\ntrusted = [\"cofferauthorpk1aaa\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SingleDefinition(); err != nil || c.Definition != "/one.sealed" || c.Trusted[0] != "cofferauthorpk1aaa" {
		t.Errorf("one table: %v, %q %q", err, c.Definition, c.Trusted)
	}

	def := func(name, path, trusted string) string {
		return "[[definitions]]\nname = " + name + "\npath = " + path + "\ntrusted = " + trusted + "\n"
	}
	ok := def(`"a"`, `"/a"`, `["cofferauthorpk1aaa"]`)
	for _, tc := range []struct{ name, file, want string }{
		{"mixed with definition", "definition = \"/x\"\n" + ok, "two forms of the same setting"},
		{"mixed with trusted", "trusted = [\"cofferauthorpk1aaa\"]\n" + ok, "two forms of the same setting"},
		{"no name", "[[definitions]]\npath = \"/a\"\ntrusted = [\"cofferauthorpk1aaa\"]\n", "needs both name and path"},
		{"no path", "[[definitions]]\nname = \"a\"\ntrusted = [\"cofferauthorpk1aaa\"]\n", "needs both name and path"},
		{"bad name", def(`"Team A"`, `"/a"`, `["cofferauthorpk1aaa"]`), `name "Team A" is not`},
		{"name twice", ok + def(`"a"`, `"/b"`, `["cofferauthorpk1aaa"]`), `name "a" is given twice`},
		{"path twice", ok + def(`"b"`, `"/a"`, `["cofferauthorpk1aaa"]`), `"a" and "b" have the same path`},
		{"empty path", def(`"a"`, `""`, `["cofferauthorpk1aaa"]`), `"a": path is empty`},
		{"no trusted", def(`"a"`, `"/a"`, `[]`), `"a": trusted is empty`},
		{"secret trusted", def(`"a"`, `"/a"`, `["cofferauthorsk1zzz"]`), "is a secret key (not printed)"},
		{"unknown key", ok + "color = \"red\"\n", `unknown key "definitions.color"`},
	} {
		_, err := ParseServer([]byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "zzz") {
			t.Errorf("%s: error prints the secret key: %v", tc.name, err)
		}
	}
}

// FuzzServerDefinitions: no file makes ParseServer panic, and a file it
// accepts has only valid, uniquely named definitions.
func FuzzServerDefinitions(f *testing.F) {
	f.Add([]byte("[[definitions]]\nname = \"a\"\npath = \"/a\"\ntrusted = [\"cofferauthorpk1aaa\"]\n"))
	f.Add([]byte("definition = \"/x\"\n[[definitions]]\nname = \"a\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseServer(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, d := range c.DefinitionList() {
			if seen[d.Name] || d.Path == "" {
				t.Fatalf("accepted %+v", c.DefinitionList())
			}
			seen[d.Name] = true
		}
	})
}
