package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/coffer-project/coffer/frame"
)

// Output formats of get (docs/client.md, "Formats").
const (
	formatEnv    = "env"
	formatDotenv = "dotenv"
	formatJSON   = "json"
	formatTOML   = "toml"
	formatRaw    = "raw"
)

var formats = []string{formatEnv, formatDotenv, formatJSON, formatTOML, formatRaw}

// render encodes the shard in format f. envs maps secret names to
// environment variable names for env and dotenv. The caller clears the
// result after writing it. Errors name secrets, never values.
func render(f string, s frame.Shard, envs map[string]string) ([]byte, error) {
	names := sortedNames(s)
	var out []byte
	var err error
	switch f {
	case formatEnv:
		out, err = renderEnv(s, names, envs)
	case formatDotenv:
		out, err = renderDotenv(s, names, envs)
	case formatJSON:
		out, err = renderJSON(s, names)
	case formatTOML:
		out, err = renderTOML(s, names)
	case formatRaw:
		if len(names) != 1 {
			return nil, fmt.Errorf("--format raw needs exactly one value, got %d", len(names))
		}
		out = s[names[0]].AppendText(nil)
	default:
		return nil, fmt.Errorf("unknown format %q", f)
	}
	if err != nil {
		clear(out)
		return nil, err
	}
	return out, nil
}

func sortedNames(s frame.Shard) []string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// envText returns a value's text for an environment variable, which
// cannot hold a NUL byte.
func envText(name string, v frame.Value) ([]byte, error) {
	b := v.AppendText(nil)
	if slices.Contains(b, 0) {
		clear(b)
		return nil, fmt.Errorf("secret %q contains a NUL byte, which an environment variable cannot hold (use --format json or --out DIR)", name)
	}
	return b, nil
}

// renderEnv writes `export NAME='value'` lines for POSIX sh. Inside
// single quotes every byte is literal, newlines included; a single quote
// closes the quoted part, is written as \', and the quoted part reopens.
func renderEnv(s frame.Shard, names []string, envs map[string]string) ([]byte, error) {
	var out []byte
	for _, n := range names {
		b, err := envText(n, s[n])
		if err != nil {
			return out, err
		}
		out = append(out, "export "...)
		out = append(out, envs[n]...)
		out = append(out, "='"...)
		for _, c := range b {
			if c == '\'' {
				out = append(out, `'\''`...)
			} else {
				out = append(out, c)
			}
		}
		out = append(out, "'\n"...)
		clear(b)
	}
	return out, nil
}

// renderDotenv writes NAME="value" lines in the dialect of Ruby's dotenv
// and github.com/joho/godotenv: inside double quotes \n, \r, \\, \" and
// \$ are escapes, so $ never expands.
func renderDotenv(s frame.Shard, names []string, envs map[string]string) ([]byte, error) {
	var out []byte
	for _, n := range names {
		b, err := envText(n, s[n])
		if err != nil {
			return out, err
		}
		out = append(out, envs[n]...)
		out = append(out, `="`...)
		for _, c := range b {
			switch c {
			case '\\', '"', '$':
				out = append(out, '\\', c)
			case '\n':
				out = append(out, `\n`...)
			case '\r':
				out = append(out, `\r`...)
			default:
				out = append(out, c)
			}
		}
		out = append(out, "\"\n"...)
		clear(b)
	}
	return out, nil
}

// renderJSON writes one object, names as keys in sorted order, with typed
// values: strings, numbers (a float always has a '.' or an exponent),
// booleans, and strings for dates and times and for inf, -inf and nan,
// which JSON cannot express.
func renderJSON(s frame.Shard, names []string) ([]byte, error) {
	out := []byte("{")
	for i, n := range names {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, "\n  "...)
		out = appendQuoted(out, []byte(n))
		out = append(out, ": "...)
		v := s[n]
		switch {
		case v.Kind == frame.KindInt || v.Kind == frame.KindBool:
			out = v.AppendText(out)
		case v.Kind == frame.KindFloat && !math.IsInf(v.Float, 0) && !math.IsNaN(v.Float):
			out = appendFloat(out, v.Float)
		case v.Kind == frame.KindInvalid:
			return out, fmt.Errorf("secret %q has no value", n)
		default:
			b := v.AppendText(nil)
			if !utf8.Valid(b) {
				clear(b)
				return out, fmt.Errorf("secret %q is not valid UTF-8", n)
			}
			out = appendQuoted(out, b)
			clear(b)
		}
	}
	if len(names) > 0 {
		out = append(out, '\n')
	}
	return append(out, "}\n"...), nil
}

// appendQuoted appends a JSON string, which is also a TOML basic string:
// both read \" \\ \b \t \n \f \r and \u00XX, and TOML forbids raw control
// characters and DEL.
func appendQuoted(out, b []byte) []byte {
	const hex = "0123456789ABCDEF"
	out = append(out, '"')
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c == '\b':
			out = append(out, `\b`...)
		case c == '\t':
			out = append(out, `\t`...)
		case c == '\n':
			out = append(out, `\n`...)
		case c == '\f':
			out = append(out, `\f`...)
		case c == '\r':
			out = append(out, `\r`...)
		case c < 0x20 || c == 0x7f:
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}

// appendFloat writes a finite float in the shortest form that reads back
// exactly, with ".0" added when it would otherwise read as an integer.
func appendFloat(out []byte, f float64) []byte {
	start := len(out)
	out = strconv.AppendFloat(out, f, 'g', -1, 64)
	for _, c := range out[start:] {
		if c == '.' || c == 'e' {
			return out
		}
	}
	return append(out, ".0"...)
}

// renderTOML writes a flat TOML document: each name a key (quoted when
// it holds a '.', so it does not make a table), each value of its own
// kind, dates and times unquoted so they read back as the same kind.
func renderTOML(s frame.Shard, names []string) ([]byte, error) {
	var out []byte
	for _, n := range names {
		if bareKey(n) {
			out = append(out, n...)
		} else {
			out = appendQuoted(out, []byte(n))
		}
		out = append(out, " = "...)
		v := s[n]
		switch v.Kind {
		case frame.KindString:
			if !utf8.Valid(v.Text) {
				return out, fmt.Errorf("secret %q is not valid UTF-8", n)
			}
			out = appendQuoted(out, v.Text)
		case frame.KindInt, frame.KindBool:
			out = v.AppendText(out)
		case frame.KindFloat:
			if math.IsInf(v.Float, 0) || math.IsNaN(v.Float) {
				out = v.AppendText(out)
			} else {
				out = appendFloat(out, v.Float)
			}
		case frame.KindDateTime, frame.KindLocalDateTime, frame.KindLocalDate, frame.KindLocalTime:
			if !dateText(v.Text) {
				return out, fmt.Errorf("secret %q has a malformed %s value", n, v.Kind)
			}
			out = append(out, v.Text...)
		default:
			return out, fmt.Errorf("secret %q has no value", n)
		}
		out = append(out, '\n')
	}
	return out, nil
}

// bareKey reports whether n can be a bare TOML key.
func bareKey(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return n != ""
}

// dateText reports whether b holds only date and time characters, so a
// value from the server cannot add lines to a TOML document.
func dateText(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '-' || c == ':' || c == '.' || c == '+' || c == 'T' || c == 'Z' ||
			c == 't' || c == 'z' || c == ' ') {
			return false
		}
	}
	return len(b) > 0
}

// envNames maps each secret name to its environment variable name
// (docs/client.md, "Environment names"): the prefix, then the name in
// upper case with '.' and '-' turned into '_', with '_' in front when it
// would otherwise start with a digit. Two names that map to one variable
// are an error naming both.
func envNames(prefix string, s frame.Shard) (map[string]string, error) {
	envs := make(map[string]string, len(s))
	owner := make(map[string]string, len(s))
	for _, n := range sortedNames(s) {
		e := envName(prefix, n)
		if prev, ok := owner[e]; ok {
			return nil, fmt.Errorf("secrets %q and %q both map to the environment variable %s", prev, n, e)
		}
		owner[e] = n
		envs[n] = e
	}
	return envs, nil
}

func envName(prefix, name string) string {
	b := make([]byte, 0, len(prefix)+len(name)+1)
	b = append(b, prefix...)
	if len(b) == 0 && name != "" && name[0] >= '0' && name[0] <= '9' {
		b = append(b, '_')
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.' || c == '-':
			b = append(b, '_')
		case c >= 'a' && c <= 'z':
			b = append(b, c-'a'+'A')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// checkPrefix checks that --prefix is a valid start of a variable name.
func checkPrefix(p string) error {
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return fmt.Errorf("--prefix %q is not a valid start of an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", p)
		}
	}
	return nil
}
