package config

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Table names where SetValue and UnsetValue act: a client's table, or a
// [shared.NAME] group.
type Table struct {
	Shared bool   // a [shared.NAME] group, not a client
	Name   string // the client or group name
}

func (t Table) path() []string {
	if t.Shared {
		return []string{sharedTable, t.Name}
	}
	return []string{t.Name}
}

func (t Table) String() string {
	if t.Shared {
		return fmt.Sprintf("shared %q", t.Name)
	}
	return fmt.Sprintf("client %q", t.Name)
}

// SetValue returns a copy of the definition src with the string value
// of name in table set to value: the value's line is rewritten if it has
// one, else a line is added under the table's header, or a new table at
// the end. The rest of the text, comments included, is kept. The result
// is parsed and must differ from src in exactly that value (for a group,
// in each client that includes it); otherwise an error says to use edit.
// Errors never quote the value. The caller clears the result.
func SetValue(src []byte, t Table, name string, value []byte) ([]byte, error) {
	if !utf8.Valid(value) {
		return nil, fmt.Errorf("config: the value is not UTF-8 text")
	}
	before, segs, err := changeStart(src, t, name, true)
	if err != nil {
		return nil, err
	}
	defer before.Clear()
	quoted := quoteBasic(value)
	defer clear(quoted)
	var out []byte
	if line := Line(src, append(t.path(), segs...)...); line > 0 {
		out, err = replaceValue(src, line, quoted)
	} else {
		out = insertValue(src, t, name, quoted)
	}
	if err != nil {
		return nil, fmt.Errorf("config: %s: %q: %w; use edit", t, name, err)
	}
	want := Value{Kind: KindString, Text: value}
	if err := checkChange(before, out, t, name, &want); err != nil {
		clear(out)
		return nil, err
	}
	return out, nil
}

// UnsetValue returns a copy of src without name in table: its line is
// removed. As for SetValue, the result must differ from src in exactly
// that value, or an error says to use edit.
func UnsetValue(src []byte, t Table, name string) ([]byte, error) {
	before, segs, err := changeStart(src, t, name, false)
	if err != nil {
		return nil, err
	}
	defer before.Clear()
	line := Line(src, append(t.path(), segs...)...)
	if line == 0 {
		return nil, fmt.Errorf("config: %s has no value %q of its own", t, name)
	}
	start, end := lineSpan(src, line)
	out := append(append(make([]byte, 0, len(src)), src[:start]...), src[end:]...)
	if err := checkChange(before, out, t, name, nil); err != nil {
		clear(out)
		return nil, err
	}
	return out, nil
}

// changeStart parses src and checks the table and the name.
func changeStart(src []byte, t Table, name string, set bool) (*Definition, []string, error) {
	before, err := ParseDefinition(src)
	if err != nil {
		return nil, nil, err
	}
	segs := strings.Split(name, ".")
	for _, s := range segs {
		if reason := checkSegment(s, MaxSecretNameBytes); reason != "" || len(name) > MaxSecretNameBytes {
			before.Clear()
			return nil, nil, fmt.Errorf("config: invalid secret name %q", name)
		}
	}
	if reason := checkSegment(t.Name, MaxClientNameBytes); reason != "" {
		before.Clear()
		return nil, nil, fmt.Errorf("config: invalid %s: %s", t, reason)
	}
	if !t.Shared && !slices.ContainsFunc(before.Clients, func(c DefinitionClient) bool { return c.Name == t.Name }) {
		before.Clear()
		return nil, nil, fmt.Errorf("config: no %s in [clients]", t)
	}
	if t.Shared && !set && !slices.ContainsFunc(before.Shared, func(g SharedGroup) bool { return g.Name == t.Name }) {
		before.Clear()
		return nil, nil, fmt.Errorf("config: no [shared.%s] group", t.Name)
	}
	return before, segs, nil
}

// lineSpan returns the byte range of 1-based line n, its newline included.
func lineSpan(src []byte, n int) (int, int) {
	start := 0
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(src[start:], '\n')
		if j < 0 {
			return len(src), len(src)
		}
		start += j + 1
	}
	end := len(src)
	if j := bytes.IndexByte(src[start:], '\n'); j >= 0 {
		end = start + j + 1
	}
	return start, end
}

// replaceValue rewrites the value on line n, the line of a "key = value"
// pair whose value ends on that line; a trailing comment is kept.
func replaceValue(src []byte, n int, quoted []byte) ([]byte, error) {
	start, end := lineSpan(src, n)
	line := src[start:end]
	eq := -1
	for i := 0; i < len(line) && eq < 0; i++ {
		switch line[i] {
		case '"', '\'':
			i, _ = skipString(line, i, line[i])
		case '=':
			eq = i
		case '#', '\n':
			return nil, fmt.Errorf("its line holds no key = value")
		}
	}
	if eq < 0 {
		return nil, fmt.Errorf("its line holds no key = value")
	}
	vs := eq + 1
	for vs < len(line) && (line[vs] == ' ' || line[vs] == '\t') {
		vs++
	}
	ve, err := valueEnd(line, vs)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(src)+len(quoted))
	out = append(out, src[:start+vs]...)
	out = append(out, quoted...)
	return append(out, src[start+ve:]...), nil
}

// valueEnd returns the end of the value starting at line[vs]: a string
// that ends on the line, or a bare value up to a comment or the line's end.
func valueEnd(line []byte, vs int) (int, error) {
	if vs >= len(line) {
		return 0, fmt.Errorf("its line holds no value")
	}
	switch c := line[vs]; c {
	case '"', '\'':
		e, nl := skipString(line, vs, c)
		if nl > 0 || e >= len(line) || line[e] != c {
			return 0, fmt.Errorf("its value spans lines")
		}
		return e + 1, nil
	case '{', '[':
		return 0, fmt.Errorf("its value is not a single value")
	}
	e := vs
	for e < len(line) && line[e] != '#' && line[e] != '\n' && line[e] != '\r' {
		e++
	}
	for e > vs && (line[e-1] == ' ' || line[e-1] == '\t') {
		e--
	}
	return e, nil
}

// insertValue adds "name = value" under the table's header line, or a new
// table at the end when the table has no header of its own.
func insertValue(src []byte, t Table, name string, quoted []byte) []byte {
	out := make([]byte, 0, len(src)+len(name)+len(quoted)+len(t.Name)+16)
	if line := Line(src, t.path()...); line > 0 && isHeader(src, line, t) {
		_, end := lineSpan(src, line)
		out = append(out, src[:end]...)
		if end > 0 && src[end-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(append(append(append(out, name...), " = "...), quoted...), '\n')
		return append(out, src[end:]...)
	}
	out = append(out, src...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	out = append(out, "\n["+strings.Join(t.path(), ".")+"]\n"+name+" = "...)
	return append(append(out, quoted...), '\n')
}

// isHeader reports whether line n is the table's [header] (and not, say,
// an inline table or a dotted key).
func isHeader(src []byte, n int, t Table) bool {
	start, end := lineSpan(src, n)
	line := strings.TrimSpace(string(src[start:end]))
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = strings.TrimSpace(line[:i])
	}
	return line == "["+strings.Join(t.path(), ".")+"]"
}

// checkChange parses out and checks it equals before but for name in the
// clients the change reaches: set to *want, or removed when want is nil.
func checkChange(before *Definition, out []byte, t Table, name string, want *Value) error {
	after, err := ParseDefinition(out)
	if err != nil {
		return fmt.Errorf("config: %s: %q: the definition would not check after the change (%w); nothing was changed, use edit", t, name, err)
	}
	defer after.Clear()
	layout := fmt.Errorf("config: %s: %q could not be changed in place in this file's layout (a multi-line value, an inline table or a dotted key); use edit", t, name)
	if len(after.Clients) != len(before.Clients) {
		return layout
	}
	for i, b := range before.Clients {
		a := after.Clients[i]
		if a.Name != b.Name || !slices.Equal(a.Keys, b.Keys) || !slices.Equal(a.Include, b.Include) {
			return layout
		}
		reached := (!t.Shared && b.Name == t.Name) || (t.Shared && slices.Contains(b.Include, t.Name))
		if !sameValues(b.Values, a.Values, reached, name, want) {
			return layout
		}
	}
	return nil
}

// sameValues reports whether a is b with, when reached, name set to *want
// (or removed for nil).
func sameValues(b, a map[string]Value, reached bool, name string, want *Value) bool {
	n := len(b)
	if reached {
		_, had := b[name]
		switch {
		case want == nil && had:
			n--
		case want != nil && !had:
			n++
		}
	}
	if len(a) != n {
		return false
	}
	for k, av := range a {
		if reached && k == name {
			if want == nil || !equalValue(av, *want) {
				return false
			}
			continue
		}
		if bv, ok := b[k]; !ok || !equalValue(av, bv) {
			return false
		}
	}
	return !reached || want != nil || a[name].Kind == KindInvalid
}

// equalValue compares two values by kind and content; a NaN equals a NaN.
func equalValue(a, b Value) bool {
	if a.Kind != b.Kind || !bytes.Equal(a.Text, b.Text) || a.Int != b.Int || a.Bool != b.Bool {
		return false
	}
	return a.Float == b.Float || a.Float != a.Float && b.Float != b.Float
}

// quoteBasic writes value as a TOML basic string: '"' and '\' escaped,
// control characters as \uXXXX, so any text fits on one line.
func quoteBasic(value []byte) []byte {
	size := 2
	for _, c := range value {
		switch {
		case c == '"' || c == '\\':
			size += 2
		case c < 0x20 || c == 0x7f:
			size += 6
		default:
			size++
		}
	}
	out := make([]byte, 0, size) // sized once: no copies of the value left behind
	out = append(out, '"')
	for _, c := range value {
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c < 0x20 || c == 0x7f:
			out = fmt.Appendf(out, "\\u%04X", c)
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}
