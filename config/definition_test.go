package config_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/config"
)

// canary is planted in values; no error may contain it.
const canary = "CANARY-s3cr3t-7f1d"

func parse(t *testing.T, src string) *config.Definition {
	t.Helper()
	def, err := config.ParseDefinition([]byte(src))
	if err != nil {
		t.Fatalf("ParseDefinition: %v", err)
	}
	return def
}

func TestParseDefinitionSeed(t *testing.T) {
	def := parse(t, `
[clients]
web = "pk-web"
worker = ["pk-w1", "pk-w2"]   # one name, several machines

[web]
db_password = "hunter2"
port = 5432

[web.db]
password = "nested"
`)
	if got, want := len(def.Clients), 2; got != want {
		t.Fatalf("got %d clients, want %d", got, want)
	}
	web, worker := def.Clients[0], def.Clients[1]
	if web.Name != "web" || worker.Name != "worker" {
		t.Fatalf("got names %q, %q, want web, worker (sorted)", web.Name, worker.Name)
	}
	if got := strings.Join(worker.Keys, ","); got != "pk-w1,pk-w2" {
		t.Errorf("got worker keys %q, want pk-w1,pk-w2", got)
	}
	if got := string(web.Values["db_password"].Text); got != "hunter2" {
		t.Errorf("got db_password %q, want hunter2", got)
	}
	if got := string(web.Values["db.password"].Text); got != "nested" {
		t.Errorf("got db.password %q, want nested", got)
	}
	if v := web.Values["port"]; v.Kind != config.KindInt || v.Int != 5432 {
		t.Errorf("got port %+v, want int 5432", v)
	}
	if len(worker.Values) != 0 {
		t.Errorf("got %d worker values, want 0 (a client without a table has an empty shard)", len(worker.Values))
	}
}

// TestTypeFidelity checks every TOML value kind keeps its type and exact
// value, and that the local kinds get no zone.
func TestTypeFidelity(t *testing.T) {
	def := parse(t, `
[clients]
a = "pk"
[a]
s = "text with \"quotes\" and \u00e9"
ml = """
line1
line2"""
lit = 'C:\path'
empty = ""
i = 9223372036854775807
neg = -9223372036854775808
hex = 0xff
f = 3.14159
exp = -1e-300
pinf = inf
ninf = -inf
nan = nan
negzero = -0.0
t = true
fl = false
odt = 1979-05-27T07:32:00.999999-07:00
odtz = 1979-05-27 07:32:00Z
ldt = 1979-05-27T07:32:00.5
ldtmin = 1979-05-27T07:32
ld = 1979-05-27
lt = 00:32:00.123456789
inline = { x = 1, deeper = { y = "z" } }
dotted.key = 2
`)
	vals := def.Clients[0].Values
	text := func(name string, kind config.Kind, want string) {
		t.Helper()
		v, ok := vals[name]
		if !ok {
			t.Fatalf("value %q missing", name)
		}
		if v.Kind != kind || string(v.Text) != want {
			t.Errorf("%s: got kind %d text %q, want kind %d text %q", name, v.Kind, v.Text, kind, want)
		}
	}
	text("s", config.KindString, "text with \"quotes\" and \u00e9")
	text("ml", config.KindString, "line1\nline2")
	text("lit", config.KindString, `C:\path`)
	text("empty", config.KindString, "")
	text("odt", config.KindDateTime, "1979-05-27T07:32:00.999999-07:00")
	text("odtz", config.KindDateTime, "1979-05-27T07:32:00Z")
	text("ldt", config.KindLocalDateTime, "1979-05-27T07:32:00.5")
	text("ldtmin", config.KindLocalDateTime, "1979-05-27T07:32:00")
	text("ld", config.KindLocalDate, "1979-05-27")
	text("lt", config.KindLocalTime, "00:32:00.123456789")
	text("inline.deeper.y", config.KindString, "z")
	ints := map[string]int64{"i": math.MaxInt64, "neg": math.MinInt64, "hex": 255, "inline.x": 1, "dotted.key": 2}
	for n, want := range ints {
		if v := vals[n]; v.Kind != config.KindInt || v.Int != want {
			t.Errorf("%s: got %+v, want int %d", n, v, want)
		}
	}
	floats := map[string]float64{"f": 3.14159, "exp": -1e-300, "pinf": math.Inf(1), "ninf": math.Inf(-1)}
	for n, want := range floats {
		if v := vals[n]; v.Kind != config.KindFloat || v.Float != want {
			t.Errorf("%s: got %+v, want float %v", n, v, want)
		}
	}
	if v := vals["nan"]; v.Kind != config.KindFloat || !math.IsNaN(v.Float) {
		t.Errorf("nan: got %+v, want NaN", v)
	}
	if v := vals["negzero"]; v.Kind != config.KindFloat || v.Float != 0 || !math.Signbit(v.Float) {
		t.Errorf("negzero: got %+v, want -0.0", v)
	}
	if v := vals["t"]; v.Kind != config.KindBool || !v.Bool {
		t.Errorf("t: got %+v, want true", v)
	}
	if v := vals["fl"]; v.Kind != config.KindBool || v.Bool {
		t.Errorf("fl: got %+v, want false", v)
	}
	if got, want := len(vals), 24; got != want {
		t.Errorf("got %d values, want %d (none dropped)", got, want)
	}
}

// TestLocalKindsIgnoreMachineZone runs the parse under several TZ values:
// the local kinds' text must not change.
func TestLocalKindsIgnoreMachineZone(t *testing.T) {
	src := "[clients]\na = \"pk\"\n[a]\nldt = 2024-03-10T02:30:00\nld = 2024-03-10\nlt = 02:30:00\n"
	var first string
	for _, tz := range []string{"UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"} {
		t.Run(tz, func(t *testing.T) {
			t.Setenv("TZ", tz)
			v := parse(t, src).Clients[0].Values
			got := fmt.Sprintf("%s|%s|%s", v["ldt"].Text, v["ld"].Text, v["lt"].Text)
			if want := "2024-03-10T02:30:00|2024-03-10|02:30:00"; got != want {
				t.Errorf("got %s, want %s", got, want)
			}
			if first == "" {
				first = got
			}
		})
	}
}

func TestDefinitionErrors(t *testing.T) {
	long := strings.Repeat("n", config.MaxSecretNameBytes+1)
	tests := []struct {
		name, src  string
		line       int
		key, cause string
	}{
		{"array value", "[clients]\na = \"pk\"\n[a]\nx = [\"" + canary + "\"]\n", 4, "a.x", "arrays"},
		{"array of tables", "[clients]\na = \"pk\"\n[[a.x]]\ny = \"" + canary + "\"\n", 0, "a.x", "arrays"},
		{"unknown client", "[clients]\na = \"pk\"\n[b]\nx = \"" + canary + "\"\n", 3, "b", "not listed"},
		{"client table not a table", "[clients]\na = \"pk\"\n[[a]]\nx = \"" + canary + "\"\n", 0, "a", "want a table"},
		{"top-level value", "x = \"" + canary + "\"\n", 1, "x", "not listed"},
		{"clients not a table", "clients = \"" + canary + "\"\n", 1, "clients", "table of client names"},
		{"key not a string", "[clients]\na = 5\n", 2, "clients.a", "public key string"},
		{"key array not strings", "[clients]\na = [\"pk\", 5]\n", 2, "clients.a", "element 2"},
		{"empty key array", "[clients]\na = []\n", 2, "clients.a", "at least one"},
		{"nested clients table", "[clients.a]\nk = \"pk\"\n", 1, "clients.a", "public key string"},
		{"reserved client name", "[clients]\nclients = \"pk\"\n", 2, "clients.clients", "reserved"},
		{"client name with dot", "[clients]\n\"a.b\" = \"pk\"\n", 2, "clients.a.b", "invalid client name"},
		{"client name too long", "[clients]\n" + strings.Repeat("c", config.MaxClientNameBytes+1) + " = \"pk\"\n", 2, "", "invalid client name"},
		{"secret name with space", "[clients]\na = \"pk\"\n[a]\n\"x y\" = \"" + canary + "\"\n", 4, "a.x y", "invalid secret name"},
		{"secret name with dot", "[clients]\na = \"pk\"\n[a]\n\"x.y\" = \"" + canary + "\"\n", 4, "a.x.y", "invalid secret name"},
		{"empty secret name", "[clients]\na = \"pk\"\n[a]\n\"\" = \"" + canary + "\"\n", 0, "", "invalid secret name"},
		{"secret name too long", "[clients]\na = \"pk\"\n[a]\n" + long + " = \"" + canary + "\"\n", 4, "", "invalid secret name"},
		{"joined name too long", "[clients]\na = \"pk\"\n[a." + long[:70] + "]\n" + long[:70] + " = \"" + canary + "\"\n", 4, "", "exceeds the limit"},
		{"duplicate key", "[clients]\na = \"pk\"\n[a]\nx = \"" + canary + "\"\nx = \"" + canary + "\"\n", 5, "a.x", "duplicate"},
		{"integer overflow", "[clients]\na = \"pk\"\n[a]\nx = 9223372036854775808\n", 4, "", "out of range"},
		{"bad string", "[clients]\na = \"pk\"\n[a]\nx = \"" + canary + "\n\"\n", 4, "", "newline"},
		{"bad date", "[clients]\na = \"pk\"\n[a]\nx = 2024-13-45\n", 4, "", "date"},
		{"syntax", "[clients]\na = \"pk\"\n[a]\nx = " + canary + "\n", 4, "", "invalid"},
		{"deep nesting", "[clients]\na = \"pk\"\n[a]\nx = " + strings.Repeat("[", config.MaxNestingDepth+1) + "\n", 4, "", "nested deeper"},
		{"deep inline tables", "[clients]\na = \"pk\"\n[a]\nx = " + strings.Repeat("{y=", config.MaxNestingDepth+1) + "\n", 4, "", "nested deeper"},
		{"too large", strings.Repeat("#", config.MaxDefinitionBytes+1), 0, "", "exceeds the limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def, err := config.ParseDefinition([]byte(tc.src))
			if err == nil {
				t.Fatalf("got definition %+v, want error", def)
			}
			var de *config.DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("got %T %v, want *config.DefinitionError", err, err)
			}
			if !strings.Contains(err.Error(), tc.cause) {
				t.Errorf("got %q, want it to mention %q", err, tc.cause)
			}
			if tc.line != 0 && de.Line != tc.line {
				t.Errorf("got line %d, want %d (%v)", de.Line, tc.line, err)
			}
			if tc.key != "" && de.Key != tc.key {
				t.Errorf("got key %q, want %q (%v)", de.Key, tc.key, err)
			}
			if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "CANARY") {
				t.Errorf("error quotes a secret value: %v", err)
			}
		})
	}
}

// TestNestingInsideStrings checks that brackets inside strings and
// comments do not count toward the nesting limit.
func TestNestingInsideStrings(t *testing.T) {
	deep := strings.Repeat("[{", config.MaxNestingDepth)
	src := "# " + deep + "\n[clients]\na = \"pk\"\n[a]\n" +
		"s1 = \"" + deep + "\"\n" +
		"s2 = '" + deep + "'\n" +
		"s3 = \"\"\"\n" + deep + "\n\"\"\"\n" +
		"s4 = '''" + deep + "'''\n" +
		"s5 = \"\\\"" + deep + "\"\n" +
		"s6 = \"\"\"a\"\"\"\"\"\n" +
		"ok = [[[1]]]\n"
	_, err := config.ParseDefinition([]byte(src))
	var de *config.DefinitionError
	if !errors.As(err, &de) || !strings.Contains(de.Reason, "arrays") || de.Key != "a.ok" {
		t.Fatalf("got %v, want the array error for a.ok (strings must not count as nesting)", err)
	}
}

func TestEmptyDefinition(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "[clients]\n"} {
		def := parse(t, src)
		if len(def.Clients) != 0 {
			t.Errorf("%q: got %d clients, want 0", src, len(def.Clients))
		}
	}
}

func TestLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("parses definitions at the size limits: about 10 s under -race")
	}
	t.Run("values per client at the limit", func(t *testing.T) {
		src := valuesSrc(config.MaxValuesPerClient)
		def := parse(t, src)
		if got := len(def.Clients[0].Values); got != config.MaxValuesPerClient {
			t.Errorf("got %d values, want %d", got, config.MaxValuesPerClient)
		}
	})
	t.Run("values per client one past", func(t *testing.T) {
		_, err := config.ParseDefinition([]byte(valuesSrc(config.MaxValuesPerClient + 1)))
		if err == nil || !strings.Contains(err.Error(), "more than") {
			t.Errorf("got %v, want a values limit error", err)
		}
	})
	t.Run("size at the limit", func(t *testing.T) {
		src := "[clients]\n" + strings.Repeat("#", config.MaxDefinitionBytes-len("[clients]\n"))
		parse(t, src)
	})
	t.Run("nesting at the limit", func(t *testing.T) {
		src := "[clients]\na = \"pk\"\n[a]\nx = " + strings.Repeat("{y=", config.MaxNestingDepth) + "1" + strings.Repeat("}", config.MaxNestingDepth) + "\n"
		def := parse(t, src)
		if len(def.Clients[0].Values) != 1 {
			t.Errorf("got %d values, want 1", len(def.Clients[0].Values))
		}
	})
}

func valuesSrc(n int) string {
	var b strings.Builder
	b.WriteString("[clients]\na = \"pk\"\n[a]\n")
	for i := range n {
		fmt.Fprintf(&b, "v%d = %d\n", i, i)
	}
	return b.String()
}

func TestLine(t *testing.T) {
	src := []byte("[clients]\nweb = \"pk\"\nworker = [\n  \"a\",\n]\n[web]\nx = 1\n")
	tests := []struct {
		path []string
		want int
	}{
		{[]string{"clients"}, 1},
		{[]string{"clients", "web"}, 2},
		{[]string{"clients", "worker"}, 3},
		{[]string{"web", "x"}, 7},
		{[]string{"nope"}, 0},
		{nil, 0},
	}
	for _, tc := range tests {
		if got := config.Line(src, tc.path...); got != tc.want {
			t.Errorf("Line(%q): got %d, want %d", tc.path, got, tc.want)
		}
	}
}

func TestClear(t *testing.T) {
	def := parse(t, "[clients]\na = \"pk\"\n[a]\nx = \"secret\"\n")
	text := def.Clients[0].Values["x"].Text
	def.Clear()
	if string(text) != "\x00\x00\x00\x00\x00\x00" {
		t.Errorf("got %q after Clear, want zeros", text)
	}
}

// FuzzParseDefinition checks that no input panics or overflows the stack,
// that every error is a DefinitionError, and that an accepted definition
// keeps the limits and naming rules.
func FuzzParseDefinition(f *testing.F) {
	f.Add([]byte("[clients]\nweb = \"pk\"\nworker = [\"a\", \"b\"]\n[web]\nport = 5432\n[web.db]\npassword = \"x\"\n"))
	f.Add([]byte("[clients]\na = \"pk\"\n[a]\nldt = 1979-05-27T07:32:00\nld = 1979-05-27\nlt = 07:32:00\nodt = 1979-05-27T07:32:00Z\nf = nan\n"))
	f.Add([]byte("[clients]\na = \"pk\"\n[a]\nx = \"\"\"a\"\"\"\"\" \ny = '''b'''\nz = { q = [[[1]]] }\n"))
	f.Add([]byte("a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		def, err := config.ParseDefinition(src)
		if err != nil {
			var de *config.DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("got %T, want *config.DefinitionError", err)
			}
			if def != nil {
				t.Fatal("got a definition with an error")
			}
			return
		}
		if len(def.Clients) > config.MaxClients {
			t.Fatalf("got %d clients", len(def.Clients))
		}
		for i, c := range def.Clients {
			if i > 0 && def.Clients[i-1].Name >= c.Name {
				t.Fatalf("clients not sorted: %q before %q", def.Clients[i-1].Name, c.Name)
			}
			if len(c.Keys) == 0 || len(c.Values) > config.MaxValuesPerClient {
				t.Fatalf("client %q: %d keys, %d values", c.Name, len(c.Keys), len(c.Values))
			}
			for n, v := range c.Values {
				if len(n) == 0 || len(n) > config.MaxSecretNameBytes || v.Kind == config.KindInvalid || v.Kind > config.KindLocalTime {
					t.Fatalf("client %q: bad value %q kind %d", c.Name, n, v.Kind)
				}
			}
			// Every included group exists, and its names are all given.
			for _, g := range c.Include {
				i := slices.IndexFunc(def.Shared, func(s config.SharedGroup) bool { return s.Name == g })
				if i < 0 {
					t.Fatalf("client %q includes %q, which is not in Shared", c.Name, g)
				}
				for _, n := range def.Shared[i].Names {
					if _, ok := c.Values[n]; !ok {
						t.Fatalf("client %q includes %q but lacks %q", c.Name, g, n)
					}
				}
			}
		}
		for i, g := range def.Shared {
			if i > 0 && def.Shared[i-1].Name >= g.Name {
				t.Fatalf("shared not sorted: %q before %q", def.Shared[i-1].Name, g.Name)
			}
		}
	})
}
