package config_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coffer-project/coffer/config"
)

const setSrc = `# the team's secrets
[clients]
web = "pk-web"
worker = "pk-w"

[shared.db]
host = "db.internal"   # the primary

[web]
include = ["db"]
password = "old" # rotated monthly
port = 5432

[web.smtp]
token = 'abc'

[worker]
multi = """
line one
"""
`

func TestSetValue(t *testing.T) {
	web, worker, db := config.Table{Name: "web"}, config.Table{Name: "worker"}, config.Table{Shared: true, Name: "db"}
	tests := []struct {
		name  string
		table config.Table
		key   string
		value string
		has   string // a line the result must contain
	}{
		{"replace keeps the comment", web, "password", "new", `password = "new" # rotated monthly`},
		{"replace a number", web, "port", "5433", `port = "5433"`},
		{"replace nested", web, "smtp.token", "t2", `token = "t2"`},
		{"new value under the header", web, "api", "k", "[web]\napi = \"k\"\n"},
		{"new nested value", web, "smtp.user", "u", "[web]\nsmtp.user = \"u\"\n"},
		{"escapes", web, "odd", "a\"b\\c\nd\x01", `odd = "a\"b\\c\u000Ad\u0001"`},
		{"shared group", db, "host", "db2", `host = "db2"   # the primary`},
		{"new shared group", config.Table{Shared: true, Name: "cache"}, "url", "u", "\n[shared.cache]\nurl = \"u\"\n"},
		{"client without a header", config.Table{Name: "worker"}, "x", "1", "[worker]\nx = \"1\"\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := config.SetValue([]byte(setSrc), tc.table, tc.key, []byte(tc.value))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tc.has) {
				t.Fatalf("result lacks %q:\n%s", tc.has, out)
			}
			if !strings.Contains(string(out), "# the team's secrets") {
				t.Error("comment lost")
			}
			def := parse(t, string(out))
			for _, c := range def.Clients {
				if c.Name == tc.table.Name || tc.table.Shared && len(c.Include) > 0 && c.Include[0] == tc.table.Name {
					if got := string(c.Values[tc.key].Text); got != tc.value {
						t.Errorf("client %s: got %q, want %q", c.Name, got, tc.value)
					}
				}
			}
		})
	}
	errs := []struct {
		name  string
		table config.Table
		key   string
		want  string
	}{
		{"multi-line value", worker, "multi", "use edit"},
		{"value from a shared group", web, "host", `client "web" has its own value and shared "db" gives one`},
		{"unknown client", config.Table{Name: "nope"}, "x", `no client "nope" in [clients]`},
		{"bad name", web, "a b", "invalid secret name"},
		{"reserved include", web, "include", "use edit"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			out, err := config.SetValue([]byte(setSrc), tc.table, tc.key, []byte(canary))
			if err == nil || !strings.Contains(err.Error(), tc.want) || out != nil {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error quotes the value: %v", err)
			}
		})
	}
	if _, err := config.SetValue([]byte(setSrc), web, "x", []byte{0xff}); err == nil {
		t.Error("a value that is not UTF-8 was set")
	}
}

func TestUnsetValue(t *testing.T) {
	web := config.Table{Name: "web"}
	out, err := config.UnsetValue([]byte(setSrc), web, "password")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "password") || !strings.Contains(string(out), "port = 5432") {
		t.Errorf("unset password:\n%s", out)
	}
	out, err = config.UnsetValue([]byte(setSrc), config.Table{Shared: true, Name: "db"}, "host")
	if err != nil || strings.Contains(string(out), "db.internal") {
		t.Errorf("unset shared host: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name  string
		table config.Table
		key   string
		want  string
	}{
		{"missing", web, "nope", `has no value "nope" of its own`},
		{"from a group", web, "host", "of its own"},
		{"multi-line", config.Table{Name: "worker"}, "multi", "use edit"},
		{"unknown group", config.Table{Shared: true, Name: "x"}, "a", "no [shared.x] group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := config.UnsetValue([]byte(setSrc), tc.table, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzSetValue checks that SetValue never panics and that what it
// returns parses, with the value set.
func FuzzSetValue(f *testing.F) {
	f.Add([]byte(setSrc), "web", "password", []byte("v"))
	f.Add([]byte(setSrc), "worker", "multi", []byte("\"\"\"\n"))
	f.Add([]byte("[clients]\nweb = \"pk\"\nweb2 = \"pk\"\nweb = { a = 1 }\n"), "web", "a", []byte("x"))
	f.Add([]byte("[clients]\nweb = \"pk\"\n[web]\na = 'x' # c\nb.c = 1\n"), "web", "b.c", []byte("'"))
	f.Fuzz(func(t *testing.T, src []byte, client, name string, value []byte) {
		out, err := config.SetValue(src, config.Table{Name: client}, name, value)
		if err != nil {
			if out != nil {
				t.Fatal("output with an error")
			}
			return
		}
		def, err := config.ParseDefinition(out)
		if err != nil {
			t.Fatalf("SetValue returned a definition that does not parse: %v", err)
		}
		for _, c := range def.Clients {
			if c.Name == client && string(c.Values[name].Text) != string(value) {
				t.Fatalf("value not set")
			}
		}
		if !utf8.Valid(value) {
			t.Fatal("set a value that is not UTF-8")
		}
		if o2, err := config.UnsetValue(out, config.Table{Name: client}, name); err == nil {
			if _, err := config.ParseDefinition(o2); err != nil {
				t.Fatalf("UnsetValue returned a definition that does not parse: %v", err)
			}
		}
	})
}
