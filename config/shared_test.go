package config_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/config"
)

const sharedSrc = `
[clients]
web = "pk-web"
worker = "pk-w"
admin = "pk-a"

[shared.db]
password = "` + canary + `"
host = "db.internal"

[shared.db.replica]
host = "replica.internal"

[shared.smtp]
token = "t"

[web]
include = ["db", "smtp"]
port = 5432

[worker]
include = ["db"]
`

// TestSharedValues: a [shared.NAME] table is given to each client that
// includes it, under the same names, as if written in its own table.
func TestSharedValues(t *testing.T) {
	def := parse(t, sharedSrc)
	byName := map[string]config.DefinitionClient{}
	for _, c := range def.Clients {
		byName[c.Name] = c
	}
	names := func(c config.DefinitionClient) []string {
		var ns []string
		for n := range c.Values {
			ns = append(ns, n)
		}
		slices.Sort(ns)
		return ns
	}
	tests := []struct {
		client  string
		names   []string
		include []string
	}{
		{"admin", nil, nil},
		{"web", []string{"host", "password", "port", "replica.host", "token"}, []string{"db", "smtp"}},
		{"worker", []string{"host", "password", "replica.host"}, []string{"db"}},
	}
	for _, tc := range tests {
		t.Run(tc.client, func(t *testing.T) {
			c := byName[tc.client]
			if got := names(c); !slices.Equal(got, tc.names) {
				t.Errorf("got names %q, want %q", got, tc.names)
			}
			if !slices.Equal(c.Include, tc.include) {
				t.Errorf("got include %q, want %q", c.Include, tc.include)
			}
		})
	}
	if got := string(byName["worker"].Values["password"].Text); got != canary {
		t.Errorf("worker's shared password: got %q", got)
	}
	// Each client has its own copy: clearing one leaves the other.
	clear(byName["web"].Values["password"].Text)
	if got := string(byName["worker"].Values["password"].Text); got != canary {
		t.Errorf("clearing web's copy changed worker's: %q", got)
	}
	wantShared := []config.SharedGroup{
		{Name: "db", Names: []string{"host", "password", "replica.host"}},
		{Name: "smtp", Names: []string{"token"}},
	}
	if len(def.Shared) != len(wantShared) {
		t.Fatalf("got %d shared groups, want %d", len(def.Shared), len(wantShared))
	}
	for i, g := range def.Shared {
		if g.Name != wantShared[i].Name || !slices.Equal(g.Names, wantShared[i].Names) {
			t.Errorf("shared %d: got %q %q, want %q %q", i, g.Name, g.Names, wantShared[i].Name, wantShared[i].Names)
		}
	}
}

func TestSharedErrors(t *testing.T) {
	head := "[clients]\nweb = \"pk\"\nworker = \"pk2\"\n[shared.db]\npassword = \"" + canary + "\"\n"
	tests := []struct {
		name, src string
		line      int
		want      string
	}{
		{"own value of the same name", head + "[web]\ninclude = [\"db\"]\npassword = \"" + canary + "\"\n", 8, `key "web.password": client "web" has its own value and shared "db" gives one`},
		{"two groups give one name", head + "[shared.db2]\npassword = 1\n[web]\ninclude = [\"db\", \"db2\"]\n", 9, `shared "db" and shared "db2" both give "password"`},
		{"unknown group", head + "[web]\ninclude = [\"nope\"]\n", 7, `include names shared "nope", which is not defined`},
		{"group listed twice", head + "[web]\ninclude = [\"db\", \"db\"]\n", 7, `shared "db" is included twice`},
		{"include not an array", head + "[web]\ninclude = \"db\"\n", 7, "want an array of [shared] table names"},
		{"include element not a string", head + "[web]\ninclude = [1]\n", 7, "element 1"},
		{"shared value outside a group", "[shared]\nx = \"" + canary + "\"\n", 2, "want a table of values"},
		{"shared not a table", "shared = 1\n", 1, "want [shared.NAME] tables"},
		{"invalid group name", "[shared.\"a b\"]\nx = 1\n", 1, "invalid shared name"},
		{"shared as a client", "[clients]\nshared = \"pk\"\n", 2, "reserved"},
		{"include inside a group", "[shared.db]\ninclude = [\"x\"]\n", 2, "arrays are not supported"},
		{"shared value array", "[shared.db]\nx = [\"" + canary + "\"]\n", 2, "arrays are not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def, err := config.ParseDefinition([]byte(tc.src))
			var de *config.DefinitionError
			if !errors.As(err, &de) || def != nil {
				t.Fatalf("got %v, %v; want a DefinitionError", def, err)
			}
			if !strings.Contains(err.Error(), tc.want) || de.Line != tc.line {
				t.Errorf("got %q (line %d), want %q on line %d", err, de.Line, tc.want, tc.line)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error quotes a value: %v", err)
			}
		})
	}
}

// TestSharedLimits: shared values count against the per-client limit once
// given, and the copies across all clients are bounded.
func TestSharedLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("[clients]\nweb = \"pk\"\n[shared.big]\n")
	for i := 0; i < config.MaxValuesPerClient; i++ {
		fmt.Fprintf(&b, "v%d = 1\n", i)
	}
	at := b.String() + "[web]\ninclude = [\"big\"]\n"
	if _, err := config.ParseDefinition([]byte(at)); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	past := b.String() + "[web]\ninclude = [\"big\"]\nown = 1\n"
	if _, err := config.ParseDefinition([]byte(past)); err == nil || !strings.Contains(err.Error(), "more than 65536 values") {
		t.Fatalf("one past the limit: got %v", err)
	}
}

func TestSharedCopiesLimit(t *testing.T) {
	// MaxSharedCopies / MaxValuesPerClient clients including a full group
	// reach the limit exactly; one more value passes it.
	var b strings.Builder
	n := config.MaxSharedCopies / 1024
	b.WriteString("[clients]\n")
	for i := 0; i <= n; i++ {
		fmt.Fprintf(&b, "c%d = \"pk%d\"\n", i, i)
	}
	b.WriteString("[shared.g]\n")
	for i := 0; i < 1024; i++ {
		fmt.Fprintf(&b, "v%d = 1\n", i)
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "[c%d]\ninclude = [\"g\"]\n", i)
	}
	if _, err := config.ParseDefinition([]byte(b.String())); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	fmt.Fprintf(&b, "[c%d]\ninclude = [\"g\"]\n", n)
	if _, err := config.ParseDefinition([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "shared values given to clients") {
		t.Fatalf("past the limit: got %v", err)
	}
}
