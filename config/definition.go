package config

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/coffer-project/coffer/frame"
)

// Limits of a secrets definition (docs/definition.md, "Limits"). The
// companion checks them at seal time and the server again at load.
const (
	// MaxDefinitionBytes bounds the TOML source, and with it the parser's
	// time and memory; a sealed file is at most 64 MiB.
	MaxDefinitionBytes = 16 << 20
	// MaxNestingDepth bounds '[' and '{' nesting, checked by a scan before
	// parsing: the TOML library recurses per level and a deep enough file
	// overflows the goroutine stack, which recover cannot catch.
	MaxNestingDepth = 32
	// MaxClients bounds the client names, and so the server's snapshot.
	MaxClients = 100_000
	// MaxClientKeys bounds the public keys across all names: each costs
	// the server a precomputed box key per definition load.
	MaxClientKeys = 100_000
	// MaxValuesPerClient bounds one client's secrets; it equals the number
	// of map pairs the protocol's shard decoder accepts.
	MaxValuesPerClient = 65_536
	// MaxClientNameBytes bounds a client name, which appears in logs.
	MaxClientNameBytes = 64
	// MaxSecretNameBytes bounds a secret's joined name; it equals the
	// protocol's frame.MaxNameBytes (a coffer test checks they agree).
	MaxSecretNameBytes = 128
	// MaxSharedCopies bounds the shared values given to clients, counted
	// once per client that includes them: a small source could otherwise
	// expand into every client's shard (100,000 clients times 65,536
	// values) and exhaust the server's memory at load.
	MaxSharedCopies = 1 << 20
)

// Reserved names: the top-level table that maps client names to keys, the
// top-level table of shared value groups, and the key in a client's table
// that lists the groups it includes.
const (
	clientsTable = "clients"
	sharedTable  = "shared"
	includeKey   = "include"
)

// Kind is the TOML type of a secret value, kept end to end: the
// protocol's own kinds (frame.Kind), so that a parsed value is the value
// a shard carries, with nothing to convert.
type Kind = frame.Kind

// Value kinds.
const (
	KindInvalid       = frame.KindInvalid
	KindString        = frame.KindString        // a TOML string
	KindInt           = frame.KindInt           // a 64-bit signed integer
	KindFloat         = frame.KindFloat         // a 64-bit float, including inf and nan
	KindBool          = frame.KindBool          // true or false
	KindDateTime      = frame.KindDateTime      // an offset date-time, RFC 3339 text
	KindLocalDateTime = frame.KindLocalDateTime // a date-time without an offset
	KindLocalDate     = frame.KindLocalDate     // a date
	KindLocalTime     = frame.KindLocalTime     // a time of day
)

// Value is one secret value (frame.Value). Text holds a string's bytes,
// or a date or time kind's canonical text (RFC 3339 for an offset
// date-time; for the local kinds YYYY-MM-DDTHH:MM:SS[.fraction],
// YYYY-MM-DD and HH:MM:SS[.fraction], never with a zone).
type Value = frame.Value

// DefinitionClient is one name of the [clients] table and its secrets.
type DefinitionClient struct {
	Name    string
	Keys    []string         // public keys as written, in order; coffer parses them
	Values  map[string]Value // secret name (nested keys joined with '.') to value, shared ones included
	Include []string         // the [shared] groups it includes, as written
}

// SharedGroup is one [shared.NAME] table. Its values are copied into each
// client that includes it; the group keeps only their names.
type SharedGroup struct {
	Name  string
	Names []string // sorted
}

// Definition is a parsed secrets definition.
type Definition struct {
	Clients []DefinitionClient // sorted by Name
	Shared  []SharedGroup      // sorted by Name
}

// Clear zeroes the text of every value. Go cannot promise erasure, but the
// bytes need not outlive their use.
func (d *Definition) Clear() {
	for _, c := range d.Clients {
		for n, v := range c.Values {
			clear(v.Text)
			delete(c.Values, n)
		}
	}
}

// DefinitionError is a definition that does not parse or breaks a rule.
// It names a line, a column and a key, never a value.
type DefinitionError struct {
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Key    string // dotted key path; empty when unknown
	Reason string // fixed text, quoting names only
}

func (e *DefinitionError) Error() string {
	var b strings.Builder
	b.WriteString("config: definition")
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// ParseDefinition parses and checks a secrets definition: a [clients]
// table of names to one public key or an array of them, and one table of
// values per client. Nested tables inside a client's table are flattened
// with '.'. Arrays, tables for unknown clients, invalid names and broken
// limits are errors. Public keys are returned as text; coffer checks them.
// On error no partial definition is returned.
func ParseDefinition(src []byte) (*Definition, error) {
	return parseDefinition(src, true)
}

// parseDefinition is ParseDefinition; fast false skips fastDocument, for
// the tests that compare the two routes.
func parseDefinition(src []byte, fast bool) (*Definition, error) {
	if len(src) > MaxDefinitionBytes {
		return nil, &DefinitionError{Reason: fmt.Sprintf("%d bytes exceeds the limit of %d", len(src), MaxDefinitionBytes)}
	}
	if err := checkNesting(src); err != nil {
		return nil, err
	}
	var doc map[string]any
	ok := false
	if fast {
		doc, ok = fastDocument(src)
	}
	if !ok {
		// A reader, not toml.Decode(string(src)): the library copies its
		// input anyway, and a string copy of the secrets could not be cleared.
		if _, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&doc); err != nil {
			return nil, tomlError(err)
		}
	}
	p := parser{src: src}
	def, err := p.definition(doc)
	if err != nil {
		if ok {
			clearDocument(doc)
		}
		if def != nil {
			def.Clear()
		}
		return nil, err
	}
	return def, nil
}

// parser holds the source only to find the line of a key on error.
type parser struct {
	src []byte
}

// fail returns a DefinitionError at the key path, with its line.
func (p *parser) fail(path []string, format string, args ...any) error {
	return &DefinitionError{Line: Line(p.src, path...), Key: strings.Join(path, "."), Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) definition(doc map[string]any) (*Definition, error) {
	clients, err := p.clients(doc)
	if err != nil {
		return nil, err
	}
	groups, err := p.shared(doc)
	defer clearGroups(groups)
	if err != nil {
		return nil, err
	}
	def := &Definition{Clients: clients, Shared: sharedGroups(groups)}
	byName := make(map[string]int, len(clients))
	for i, c := range clients {
		byName[c.Name] = i
	}
	copies := 0
	for _, name := range sortedKeys(doc) {
		if name == clientsTable || name == sharedTable {
			continue
		}
		i, ok := byName[name]
		if !ok {
			return def, p.fail([]string{name}, "table for a client not listed in [clients]")
		}
		c := &def.Clients[i]
		switch table := doc[name].(type) {
		case *plainTable:
			include, err := p.includeList(name, table.include, groups)
			if err != nil {
				return def, err
			}
			c.Include = include
			c.Values = table.values // the checks below may return with it
			table.values = nil
			if err := p.plainValues([]string{name}, c.Values); err != nil {
				return def, err
			}
		case map[string]any:
			include, err := p.includeList(name, table[includeKey], groups)
			if err != nil {
				return def, err
			}
			delete(table, includeKey)
			c.Include = include
			c.Values = make(map[string]Value, len(table))
			if err := p.values(c.Values, []string{name}, "", table); err != nil {
				return def, err
			}
		default:
			return def, p.fail([]string{name}, "want a table of secrets for client %q", name)
		}
		if err := p.include(c, groups, &copies); err != nil {
			return def, err
		}
		delete(doc, name) // converted: the collector may have it while the rest converts
	}
	return def, nil
}

// clients reads the [clients] table, sorted by name.
func (p *parser) clients(doc map[string]any) ([]DefinitionClient, error) {
	raw, ok := doc[clientsTable]
	if !ok {
		return nil, nil
	}
	table, ok := raw.(map[string]any)
	if !ok {
		return nil, p.fail([]string{clientsTable}, "want a table of client names")
	}
	if len(table) > MaxClients {
		return nil, p.fail([]string{clientsTable}, "%d clients exceeds the limit of %d", len(table), MaxClients)
	}
	clients := make([]DefinitionClient, 0, len(table))
	nkeys := 0
	for _, name := range sortedKeys(table) {
		path := []string{clientsTable, name}
		if name == clientsTable || name == sharedTable {
			return nil, p.fail(path, "the client name %q is reserved", name)
		}
		if err := checkSegment(name, MaxClientNameBytes); err != "" {
			return nil, p.fail(path, "invalid client name: %s", err)
		}
		keys, reason := keyList(table[name])
		if reason != "" {
			return nil, p.fail(path, "%s", reason)
		}
		if nkeys += len(keys); nkeys > MaxClientKeys {
			return nil, p.fail(path, "more than %d public keys in [clients]", MaxClientKeys)
		}
		// A copy, as for secret names in values.
		clients = append(clients, DefinitionClient{Name: strings.Clone(name), Keys: keys, Values: map[string]Value{}})
	}
	return clients, nil
}

// keyList reads one [clients] entry: a string or a non-empty array of
// strings. The reason never quotes the entry.
func keyList(v any) ([]string, string) {
	const want = "want a public key string or an array of them"
	switch v := v.(type) {
	case string:
		return []string{v}, ""
	case []any:
		if len(v) == 0 {
			return nil, "empty array: a client needs at least one public key"
		}
		keys := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Sprintf("element %d: %s", i+1, want)
			}
			keys[i] = s
		}
		return keys, ""
	}
	return nil, want
}

// values flattens one client's table into out, joining nested keys with
// '.'. path is the table's key path, for errors; prefix is its joined
// name, with a final '.', or "" for the client's own table. The path of a
// key is built only on error or to descend: a definition has a hundred
// thousand values (docs/server.md, "Load time").
func (p *parser) values(out map[string]Value, path []string, prefix string, table map[string]any) error {
	kpath := func(k string) []string { return append(slices.Clip(path), k) }
	for _, k := range sortedKeys(table) {
		if err := checkSegment(k, MaxSecretNameBytes); err != "" {
			return p.fail(kpath(k), "invalid secret name: %s", err)
		}
		// A name must not be k itself: the library's keys are substrings
		// of its copy of the source, secrets included, which a kept name
		// would keep alive.
		name := prefix + k
		if prefix == "" {
			name = strings.Clone(k)
		}
		if len(name) > MaxSecretNameBytes {
			return p.fail(kpath(k), "secret name of %d bytes exceeds the limit of %d", len(name), MaxSecretNameBytes)
		}
		if sub, ok := table[k].(map[string]any); ok {
			if err := p.values(out, kpath(k), name+".", sub); err != nil {
				return err
			}
			continue
		}
		v, reason := value(table[k])
		if reason != "" {
			return p.fail(kpath(k), "%s", reason)
		}
		if len(out) >= MaxValuesPerClient {
			clear(v.Text)
			return p.fail(kpath(k), "client %q has more than %d values", path[0], MaxValuesPerClient)
		}
		out[name] = v
	}
	return nil
}

// plainValues checks the values of a table that fastDocument read, as
// values does, in the same order: its keys are bare and its values
// strings, so only names and the count can be refused.
func (p *parser) plainValues(path []string, values map[string]Value) error {
	for i, k := range sortedKeys(values) {
		kpath := func() []string { return append(slices.Clip(path), k) }
		if err := checkSegment(k, MaxSecretNameBytes); err != "" {
			return p.fail(kpath(), "invalid secret name: %s", err)
		}
		if i >= MaxValuesPerClient {
			return p.fail(kpath(), "client %q has more than %d values", path[0], MaxValuesPerClient)
		}
	}
	return nil
}

// Location names the TOML library gives the local kinds (its
// internal/tz.go). They carry the machine's offset, which is dropped.
const (
	zoneLocalDateTime = "datetime-local"
	zoneLocalDate     = "date-local"
	zoneLocalTime     = "time-local"
)

// value converts one decoded TOML value. The reason never quotes it.
func value(v any) (Value, string) {
	switch v := v.(type) {
	case string:
		return Value{Kind: KindString, Text: []byte(v)}, ""
	case int64:
		return Value{Kind: KindInt, Int: v}, ""
	case float64:
		return Value{Kind: KindFloat, Float: v}, ""
	case bool:
		return Value{Kind: KindBool, Bool: v}, ""
	case time.Time:
		return timeValue(v), ""
	case []any, []map[string]any:
		return Value{}, "arrays are not supported as secret values"
	}
	return Value{}, "unsupported value type"
}

// timeValue keeps the local kinds local: their wall clock fields, with no
// zone or offset. An offset date-time keeps its own offset.
func timeValue(t time.Time) Value {
	switch t.Location().String() {
	case zoneLocalDateTime:
		return Value{Kind: KindLocalDateTime, Text: []byte(t.Format("2006-01-02T15:04:05.999999999"))}
	case zoneLocalDate:
		return Value{Kind: KindLocalDate, Text: []byte(t.Format("2006-01-02"))}
	case zoneLocalTime:
		return Value{Kind: KindLocalTime, Text: []byte(t.Format("15:04:05.999999999"))}
	}
	return Value{Kind: KindDateTime, Text: []byte(t.Format(time.RFC3339Nano))}
}

// checkSegment checks one key: 1..max bytes of ASCII letters, digits, '_'
// and '-'. A '.' inside a quoted key is refused, since the flattened name
// would collide with a nested table's.
func checkSegment(s string, max int) string {
	if len(s) == 0 || len(s) > max {
		return fmt.Sprintf("%d bytes (want 1..%d)", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Sprintf("%q has a character outside [A-Za-z0-9_-]", s)
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Line returns the 1-based line of a key path (such as "clients", "web")
// in a definition's source, or 0 if it is not found or was only implied
// by a longer dotted key. It parses the source again, so it is meant for
// error paths.
func Line(src []byte, path ...string) int {
	if len(path) == 0 || len(src) > MaxDefinitionBytes || checkNesting(src) != nil {
		return 0
	}
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(src), &top)
	if err != nil {
		return 0
	}
	prim, ok := top[path[0]]
	for _, k := range path[1:] {
		var m map[string]toml.Primitive
		if !ok || md.PrimitiveDecode(prim, &m) != nil {
			return 0
		}
		prim, ok = m[k]
	}
	if !ok {
		return 0
	}
	// The library reports a key's position only in the ParseError of a
	// failed decode, so decode into a type that always fails.
	var pe toml.ParseError
	if errors.As(md.PrimitiveDecode(prim, positionProbe{}), &pe) {
		return pe.Position.Line
	}
	return 0
}

type positionProbe struct{}

var errProbe = errors.New("position probe")

func (positionProbe) UnmarshalTOML(any) error { return errProbe }

// tomlError converts a TOML library error. Its message and position view
// can quote the input, so only the position, the last key and a fixed
// reason are kept.
func tomlError(err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &DefinitionError{Reason: "invalid TOML"}
	}
	return &DefinitionError{
		Line:   pe.Position.Line,
		Column: pe.Position.Col,
		Key:    pe.LastKey,
		Reason: tomlReason(pe.Message),
	}
}

// tomlReasons maps fragments of the library's messages to fixed text.
var tomlReasons = []struct{ fragment, reason string }{
	{"has already been defined", "duplicate key or table"},
	{"out of range", "number out of range"},
	{"out of the safe", "number out of range"},
	{"invalid datetime", "invalid date or time"},
	{"invalid escape", "invalid escape in a string"},
	{"invalid UTF-8", "invalid UTF-8"},
	{"cannot contain newlines", "a single-line string contains a newline"},
	{"newlines not allowed within inline tables", "newline inside an inline table"},
	{"unexpected EOF", "unexpected end of file"},
	{"Invalid float", "invalid float"},
	{"Invalid integer", "invalid integer"},
}

func tomlReason(msg string) string {
	for _, r := range tomlReasons {
		if strings.Contains(msg, r.fragment) {
			return r.reason
		}
	}
	return "invalid TOML syntax"
}

// checkNesting refuses '[' and '{' nested deeper than MaxNestingDepth
// outside strings and comments, before the recursive parser sees them.
// It follows the TOML lexer's string rules (escapes, multi-line strings
// ending in up to five quotes); elsewhere it over-counts, never under.
func checkNesting(src []byte) error {
	depth, line := 0, 1
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '\n':
			line++
		case '#':
			for i+1 < len(src) && src[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			var nl int
			i, nl = skipString(src, i, c)
			line += nl
		case '[', '{':
			if depth++; depth > MaxNestingDepth {
				return &DefinitionError{Line: line, Reason: fmt.Sprintf("brackets nested deeper than %d", MaxNestingDepth)}
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return nil
}

// skipString returns the index of the last byte of the string starting at
// src[i] (quote q) and the newlines inside it. A single-line string ends
// before a newline, as the lexer fails there.
func skipString(src []byte, i int, q byte) (int, int) {
	escapes := q == '"'
	if i+2 < len(src) && src[i+1] == q && src[i+2] == q {
		nl := 0
		for j := i + 3; j < len(src); j++ {
			switch {
			case src[j] == '\n':
				nl++
			case escapes && src[j] == '\\':
				if j+1 < len(src) && src[j+1] == '\n' {
					nl++
				}
				j++
			case src[j] == q && j+2 < len(src) && src[j+1] == q && src[j+2] == q:
				end := j + 2
				for k := 0; k < 2 && end+1 < len(src) && src[end+1] == q; k++ {
					end++
				}
				return end, nl
			}
		}
		return len(src) - 1, nl
	}
	for j := i + 1; j < len(src); j++ {
		switch {
		case src[j] == '\n':
			return j - 1, 0
		case escapes && src[j] == '\\':
			if j+1 < len(src) && src[j+1] == '\n' {
				return j, 0
			}
			j++
		case src[j] == q:
			return j, 0
		}
	}
	return len(src) - 1, 0
}
