package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
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
