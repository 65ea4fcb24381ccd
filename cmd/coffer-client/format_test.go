package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/coffer-project/coffer/frame"
)

// trickyText holds every character class the formats must quote.
const trickyText = "it's \"quoted\" \\ $HOME ${X} `id` $(id)\nline2\r\n\ttab é \x01 \x7f ' end\n"

func str(s string) frame.Value { return frame.Value{Kind: frame.KindString, Text: []byte(s)} }

func testShard() frame.Shard {
	return frame.Shard{
		"db.password":  str(trickyText),
		"api-key":      str("simple"),
		"empty":        str(""),
		"9lives":       str("digit"),
		"quote":        str("'"),
		"newlines":     str("\n\n"),
		"port":         {Kind: frame.KindInt, Int: -5432},
		"ratio":        {Kind: frame.KindFloat, Float: 0.5},
		"whole":        {Kind: frame.KindFloat, Float: 3},
		"big":          {Kind: frame.KindFloat, Float: 1e300},
		"tiny":         {Kind: frame.KindFloat, Float: -2.5e-10},
		"inf":          {Kind: frame.KindFloat, Float: math.Inf(1)},
		"ninf":         {Kind: frame.KindFloat, Float: math.Inf(-1)},
		"nan":          {Kind: frame.KindFloat, Float: math.NaN()},
		"on":           {Kind: frame.KindBool, Bool: true},
		"off":          {Kind: frame.KindBool, Bool: false},
		"when":         {Kind: frame.KindDateTime, Text: []byte("1979-05-27T00:32:00.999999-07:00")},
		"when.utc":     {Kind: frame.KindDateTime, Text: []byte("1979-05-27T07:32:00Z")},
		"local.dt":     {Kind: frame.KindLocalDateTime, Text: []byte("1979-05-27T07:32:00")},
		"local.date":   {Kind: frame.KindLocalDate, Text: []byte("1979-05-27")},
		"local.time":   {Kind: frame.KindLocalTime, Text: []byte("07:32:00.5")},
		"Mixed_Case-1": str("m"),
	}
}

// textOf is the plain text each value must have in env-like formats.
func textOf(v frame.Value) string { return string(v.AppendText(nil)) }

func TestEnvName(t *testing.T) {
	tests := []struct{ prefix, name, want string }{
		{"", "db.password", "DB_PASSWORD"},
		{"", "api-key", "API_KEY"},
		{"", "Mixed_Case-1", "MIXED_CASE_1"},
		{"", "9lives", "_9LIVES"},
		{"APP_", "9lives", "APP_9LIVES"},
		{"app_", "db.password", "app_DB_PASSWORD"},
		{"X", "a", "XA"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+tt.name, func(t *testing.T) {
			if got := envName(tt.prefix, tt.name); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestEnvNamesCollision(t *testing.T) {
	s := frame.Shard{"db.password": str("a"), "DB_PASSWORD": str("b"), "other": str("c")}
	_, err := envNames("", s)
	if err == nil || !strings.Contains(err.Error(), `"DB_PASSWORD" and "db.password"`) {
		t.Errorf("got %v, want a collision naming both", err)
	}
	if err != nil && (strings.Contains(err.Error(), `"a"`) || strings.Contains(err.Error(), `"b"`)) {
		t.Errorf("error %q quotes a value", err)
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, ok := range []string{"", "APP_", "_x9", "a"} {
		if err := checkPrefix(ok); err != nil {
			t.Errorf("checkPrefix(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"9A", "A-B", "A.B", "A B", "A=", "é"} {
		if err := checkPrefix(bad); err == nil {
			t.Errorf("checkPrefix(%q) = nil, want an error", bad)
		}
	}
}

func mustRender(t *testing.T, f string, s frame.Shard, prefix string) []byte {
	t.Helper()
	envs, err := envNames(prefix, s)
	if err != nil {
		t.Fatal(err)
	}
	out, err := render(f, s, envs)
	if err != nil {
		t.Fatalf("render %s: %v", f, err)
	}
	return out
}

// checkSourced sources an env file with sh and compares every variable.
func checkSourced(t *testing.T, file []byte, s frame.Shard, prefix string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	names := sortedNames(s)
	script := `. "$1"; shift; for v; do eval "printf '%s\0' \"\${$v}\""; done`
	args := []string{"-c", script, "sh", path}
	for _, n := range names {
		args = append(args, envName(prefix, n))
	}
	got, err := exec.Command("sh", args...).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	parts := strings.Split(string(got), "\x00")
	if len(parts) != len(names)+1 {
		t.Fatalf("got %d values from sh, want %d", len(parts)-1, len(names))
	}
	for i, n := range names {
		if want := textOf(s[n]); parts[i] != want {
			t.Errorf("%s: got %q, want %q", n, parts[i], want)
		}
	}
}

func TestFormatEnvSourced(t *testing.T) {
	for _, prefix := range []string{"", "APP_"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			s := testShard()
			checkSourced(t, mustRender(t, formatEnv, s, prefix), s, prefix)
		})
	}
}

// parseDotenv is a reference reader of the dialect coffer-client writes
// (Ruby dotenv, joho/godotenv): NAME="value" with \n, \r and \X -> X.
func parseDotenv(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		name, rest, ok := strings.Cut(line, "=")
		if !ok || len(rest) < 2 || rest[0] != '"' || rest[len(rest)-1] != '"' {
			t.Fatalf("malformed dotenv line %q", line)
		}
		rest = rest[1 : len(rest)-1]
		var v strings.Builder
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			if c == '"' {
				t.Fatalf("unescaped quote in %q", line)
			}
			if c != '\\' {
				v.WriteByte(c)
				continue
			}
			i++
			switch rest[i] {
			case 'n':
				v.WriteByte('\n')
			case 'r':
				v.WriteByte('\r')
			default:
				v.WriteByte(rest[i])
			}
		}
		out[name] = v.String()
	}
	return out
}

func TestFormatDotenv(t *testing.T) {
	s := testShard()
	checkDotenv(t, mustRender(t, formatDotenv, s, "P_"), s, "P_")
}

// checkDotenv reads out with the reference parser and compares it with s.
func checkDotenv(t *testing.T, out []byte, s frame.Shard, prefix string) {
	t.Helper()
	if bytes.Contains(out, []byte("$HOME")) && !bytes.Contains(out, []byte(`\$HOME`)) {
		t.Error("dotenv leaves $ unescaped")
	}
	got := parseDotenv(t, out)
	if len(got) != len(s) {
		t.Errorf("got %d variables, want %d", len(got), len(s))
	}
	for n, v := range s {
		if g, want := got[envName(prefix, n)], textOf(v); g != want {
			t.Errorf("%s: got %q, want %q", n, g, want)
		}
	}
}

func TestFormatJSON(t *testing.T) {
	s := testShard()
	checkJSON(t, mustRender(t, formatJSON, s, ""), s)
	t.Run("empty", func(t *testing.T) {
		out := mustRender(t, formatJSON, frame.Shard{}, "")
		if string(out) != "{}\n" {
			t.Errorf("got %q, want {}", out)
		}
	})
}

// checkJSON decodes out with encoding/json and compares it with s.
func checkJSON(t *testing.T, out []byte, s frame.Shard) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var got map[string]any
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(got) != len(s) {
		t.Errorf("got %d keys, want %d", len(got), len(s))
	}
	for n, v := range s {
		var want any
		switch v.Kind {
		case frame.KindInt:
			want = json.Number(textOf(v))
		case frame.KindFloat:
			want = json.Number(textOf(v))
			if math.IsInf(v.Float, 0) || math.IsNaN(v.Float) {
				want = textOf(v)
			}
		case frame.KindBool:
			want = v.Bool
		default:
			want = textOf(v)
		}
		g := got[n]
		if num, ok := g.(json.Number); ok && v.Kind == frame.KindFloat {
			f, err := num.Float64()
			if err != nil || f != v.Float || !strings.ContainsAny(string(num), ".e") {
				t.Errorf("%s: got %s, want float %v with a '.' or exponent", n, num, v.Float)
			}
			continue
		}
		if g != want {
			t.Errorf("%s: got %#v, want %#v", n, g, want)
		}
	}
}

func TestFormatTOML(t *testing.T) {
	s := testShard()
	checkTOML(t, mustRender(t, formatTOML, s, ""), s)
}

// checkTOML decodes out with BurntSushi/toml and compares it with s.
func checkTOML(t *testing.T, out []byte, s frame.Shard) {
	t.Helper()
	var got map[string]any
	md, err := toml.Decode(string(out), &got)
	if err != nil {
		t.Fatalf("toml: %v\n%s", err, out)
	}
	if len(md.Keys()) != len(s) || len(got) != len(s) {
		t.Errorf("got %d keys, want %d flat keys", len(got), len(s))
	}
	layouts := map[frame.Kind]struct {
		loc    string // BurntSushi/toml's zone name for the local kinds
		layout string
	}{
		frame.KindDateTime:      {"", time.RFC3339Nano},
		frame.KindLocalDateTime: {"datetime-local", "2006-01-02T15:04:05.999999999"},
		frame.KindLocalDate:     {"date-local", "2006-01-02"},
		frame.KindLocalTime:     {"time-local", "15:04:05.999999999"},
	}
	for n, v := range s {
		g := got[n]
		switch v.Kind {
		case frame.KindString:
			if g != string(v.Text) {
				t.Errorf("%s: got %q, want %q", n, g, v.Text)
			}
		case frame.KindInt:
			if g != v.Int {
				t.Errorf("%s: got %#v, want %d", n, g, v.Int)
			}
		case frame.KindFloat:
			f, ok := g.(float64)
			if !ok || !(f == v.Float || math.IsNaN(f) && math.IsNaN(v.Float)) {
				t.Errorf("%s: got %#v, want %v", n, g, v.Float)
			}
		case frame.KindBool:
			if g != v.Bool {
				t.Errorf("%s: got %#v, want %v", n, g, v.Bool)
			}
		default:
			l := layouts[v.Kind]
			tm, ok := g.(time.Time)
			if !ok {
				t.Errorf("%s: got %#v, want a time", n, g)
				continue
			}
			if l.loc != "" && tm.Location().String() != l.loc {
				t.Errorf("%s: got location %v, want %v", n, tm.Location(), l.loc)
			}
			want := string(v.Text)
			if l.loc == "" {
				w, _ := time.Parse(time.RFC3339Nano, want)
				if !tm.Equal(w) {
					t.Errorf("%s: got %v, want %v", n, tm, w)
				}
			} else if f := tm.Format(l.layout); f != want {
				t.Errorf("%s: got %s, want %s", n, f, want)
			}
		}
	}
}

func TestFormatRaw(t *testing.T) {
	for _, n := range []string{"db.password", "port", "whole", "newlines", "empty", "local.date"} {
		t.Run(n, func(t *testing.T) {
			s := frame.Shard{n: testShard()[n]}
			got := mustRender(t, formatRaw, s, "")
			if want := textOf(s[n]); string(got) != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	t.Run("two values", func(t *testing.T) {
		if _, err := render(formatRaw, frame.Shard{"a": str("1"), "b": str("2")}, nil); err == nil {
			t.Error("got no error, want one")
		}
	})
}

func TestFormatErrors(t *testing.T) {
	tests := []struct {
		name, format string
		s            frame.Shard
	}{
		{"env NUL", formatEnv, frame.Shard{"a": str("x\x00canary42")}},
		{"dotenv NUL", formatDotenv, frame.Shard{"a": str("x\x00canary42")}},
		{"json bad utf8", formatJSON, frame.Shard{"a": str("canary42\xff")}},
		{"toml bad utf8", formatTOML, frame.Shard{"a": str("canary42\xff")}},
		{"toml date injection", formatTOML, frame.Shard{"a": {Kind: frame.KindLocalDate, Text: []byte("1979-05-27\ncanary42 = 1")}}},
		{"unknown", "yaml", frame.Shard{"a": str("canary42")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			envs, _ := envNames("", tt.s)
			out, err := render(tt.format, tt.s, envs)
			if err == nil {
				t.Fatalf("got %q, want an error", out)
			}
			if strings.Contains(err.Error(), "canary42") {
				t.Errorf("error %q quotes a value", err)
			}
		})
	}
}

// TestFormatExactText pins the exact bytes of each format
// (docs/client.md, "Formats"): lines and members in byte order of the
// secret names (not of the variable names: Z before A_B), JSON with
// two-space indentation and one member per line, the JSON and TOML
// string escapes (short forms, \u00XX in upper-case hex for the other
// control bytes and DEL, every other byte as is) and the float text
// forms, -0 and exponents included.
func TestFormatExactText(t *testing.T) {
	const tricky = "esc\x1b del\x7f tab\t nl\n q\" bs\\ sl/ lt< amp& \u00e9 \u2028"
	s := frame.Shard{
		"b":      str(tricky),
		"Z":      str("upper"),
		"a.b":    str("dot"),
		"a_c":    str("underscore"),
		"f.negz": {Kind: frame.KindFloat, Float: math.Copysign(0, -1)},
		"f.mill": {Kind: frame.KindFloat, Float: 1e6},
		"f.m7":   {Kind: frame.KindFloat, Float: 1234567},
		"f.k6":   {Kind: frame.KindFloat, Float: 123456},
		"f.tiny": {Kind: frame.KindFloat, Float: 0.0001},
		"f.tin5": {Kind: frame.KindFloat, Float: 0.00001},
		"f.big":  {Kind: frame.KindFloat, Float: 1e300},
		"f.nan":  {Kind: frame.KindFloat, Float: math.NaN()},
	}
	// é and U+2028 come out as their UTF-8 bytes.
	const quoted = `"esc\u001B del\u007F tab\t nl\n q\" bs\\ sl/ lt< amp& ` + "\u00e9 \u2028\""
	for _, tc := range []struct{ format, want string }{
		{formatEnv, "export Z='upper'\n" +
			"export A_B='dot'\n" +
			"export A_C='underscore'\n" +
			"export B='" + tricky + "'\n" +
			"export F_BIG='1e+300'\n" +
			"export F_K6='123456'\n" +
			"export F_M7='1.234567e+06'\n" +
			"export F_MILL='1e+06'\n" +
			"export F_NAN='nan'\n" +
			"export F_NEGZ='-0'\n" +
			"export F_TIN5='1e-05'\n" +
			"export F_TINY='0.0001'\n"},
		{formatJSON, "{\n" +
			`  "Z": "upper",` + "\n" +
			`  "a.b": "dot",` + "\n" +
			`  "a_c": "underscore",` + "\n" +
			`  "b": ` + quoted + ",\n" +
			`  "f.big": 1e+300,` + "\n" +
			`  "f.k6": 123456.0,` + "\n" +
			`  "f.m7": 1.234567e+06,` + "\n" +
			`  "f.mill": 1e+06,` + "\n" +
			`  "f.nan": "nan",` + "\n" +
			`  "f.negz": -0.0,` + "\n" +
			`  "f.tin5": 1e-05,` + "\n" +
			`  "f.tiny": 0.0001` + "\n" +
			"}\n"},
		{formatTOML, `Z = "upper"` + "\n" +
			`"a.b" = "dot"` + "\n" +
			`a_c = "underscore"` + "\n" +
			`b = ` + quoted + "\n" +
			`"f.big" = 1e+300` + "\n" +
			`"f.k6" = 123456.0` + "\n" +
			`"f.m7" = 1.234567e+06` + "\n" +
			`"f.mill" = 1e+06` + "\n" +
			`"f.nan" = nan` + "\n" +
			`"f.negz" = -0.0` + "\n" +
			`"f.tin5" = 1e-05` + "\n" +
			`"f.tiny" = 0.0001` + "\n"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			if got := string(mustRender(t, tc.format, s, "")); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	// The plain text of a float (env, dotenv, raw, exec, --out DIR).
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{math.Copysign(0, -1), "-0"}, {0, "0"}, {3, "3"}, {0.5, "0.5"}, {123456, "123456"},
		{1e6, "1e+06"}, {1234567, "1.234567e+06"}, {0.0001, "0.0001"}, {0.00001, "1e-05"},
		{1e300, "1e+300"}, {-2.5e-10, "-2.5e-10"}, {0.1, "0.1"}, {1.0 / 3, "0.3333333333333333"},
		{5e-324, "5e-324"}, {math.Inf(1), "inf"}, {math.Inf(-1), "-inf"}, {math.NaN(), "nan"},
	} {
		v := frame.Value{Kind: frame.KindFloat, Float: tc.f}
		if got := string(mustRender(t, formatRaw, frame.Shard{"x": v}, "")); got != tc.want {
			t.Errorf("raw %v: got %q, want %q", tc.f, got, tc.want)
		}
	}
}

// TestCheckNameArgs pins how get passes NAMEs on (docs/protocol.md §4.3):
// each checked, duplicates dropped, in the order first given.
func TestCheckNameArgs(t *testing.T) {
	got, err := checkNameArgs([]string{"port", "db.password", "port", "a"})
	if want := []string{"port", "db.password", "a"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	if _, err := checkNameArgs([]string{"ok", ".hidden"}); err == nil {
		t.Error("got no error for .hidden, want one")
	}
}
