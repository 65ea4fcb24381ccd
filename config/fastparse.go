package config

import (
	"bytes"
	"unicode/utf8"
)

// fastDocument reads the plain form of a definition, the one nearly every
// definition and coffer-bench write, straight into the tree that
// ParseDefinition checks, without the TOML library: [clients], [NAME] and
// [shared.NAME] table headers, bare keys, single-line strings without
// escapes, single-line arrays of such strings, comments and blank lines.
// A string in [clients] or an array becomes a Go string, as the library
// gives it; any other string becomes a Value whose Text is a copy of its
// bytes, so that no string copy of a secret is made.
//
// It returns false, having cleared what it read, at the first thing
// outside that form, whether valid TOML (escapes, quoted or dotted keys,
// other value types, multi-line strings or arrays, inline tables) or
// not; ParseDefinition then parses the source with the TOML library, which
// accepts or refuses it with its line. So the plain form is only a faster
// route to the same result (FuzzDefinitionFastPath compares the two).
//
// The library builds a map of every key's dotted path, a parse tree and
// then a decoded copy of it: about 17 times the source's size in memory.
// This builds only the decoded tree (BenchmarkParseDefinition).
func fastDocument(src []byte) (map[string]any, bool) {
	if !utf8.Valid(src) || bytes.HasPrefix(src, []byte("\uFEFF")) {
		return nil, false
	}
	r := fastReader{src: src, doc: map[string]any{}}
	if !r.document() {
		clearDocument(r.doc)
		return nil, false
	}
	return r.doc, true
}

type fastReader struct {
	src     []byte
	i       int
	doc     map[string]any
	clients map[string]any // the current table if it is [clients]
	plain   *plainTable    // the current table if it is another one
	shared  bool           // the current table is a [shared.NAME]
	headers map[string]bool
	last    int               // values in the last table read, the size of the next one's map
	names   map[string]string // value names read so far (internName)
}

// maxInternedNames bounds fastReader.names. Clients of one shape share
// their value names, so a few hundred cover a fleet; names past the bound
// are allocated one by one, as before interning.
const maxInternedNames = 4096

// internName returns the value name b as a string, one allocation per
// distinct name: a fleet of 25,000 clients x 10 values has ten distinct
// names, and allocating each occurrence was 250,000 strings per load
// (BenchmarkParseDefinition). Names are not secret and never point into
// the source.
func (r *fastReader) internName(b []byte) string {
	if s, ok := r.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if r.names == nil {
		r.names = map[string]string{}
	}
	if len(r.names) < maxInternedNames {
		r.names[s] = s
	}
	return s
}

// Map sizes given before a table is read, so that its map does not grow
// (growing a client's map past 8 values was about a quarter of sealing
// a 25,000-client definition). A [clients] table gets its line count,
// at most maxClientsHint; any other table the number of values the one
// before it had, at most maxValuesHint: definitions list clients of one
// shape, and the hint never exceeds what was already parsed.
const (
	maxClientsHint = MaxClients
	maxValuesHint  = 256
)

func (r *fastReader) document() bool {
	r.headers = map[string]bool{}
	for {
		r.space()
		if r.i == len(r.src) {
			return true
		}
		var ok bool
		switch r.src[r.i] {
		case '\n', '\r', '#':
			ok = true
		case '[':
			ok = r.header()
		default:
			ok = r.pair()
		}
		if !ok || !r.endLine() {
			return false
		}
	}
}

// space skips spaces and tabs.
func (r *fastReader) space() {
	for r.i < len(r.src) && (r.src[r.i] == ' ' || r.src[r.i] == '\t') {
		r.i++
	}
}

// endLine reads optional space and a comment, then the end of the line or
// of the source.
func (r *fastReader) endLine() bool {
	r.space()
	if r.i < len(r.src) && r.src[r.i] == '#' {
		for r.i++; r.i < len(r.src) && r.src[r.i] != '\n'; r.i++ {
			if c := r.src[r.i]; c == 0x7f || c < 0x20 && c != '\t' && !(c == '\r' && r.i+1 < len(r.src) && r.src[r.i+1] == '\n') {
				return false
			}
		}
	}
	switch {
	case r.i == len(r.src):
		return true
	case r.src[r.i] == '\n':
		r.i++
		return true
	case r.src[r.i] == '\r' && r.i+1 < len(r.src) && r.src[r.i+1] == '\n':
		r.i += 2
		return true
	}
	return false
}

// bareKey reads [A-Za-z0-9_-]+.
func (r *fastReader) bareKey() (string, bool) {
	b := r.bareKeyBytes()
	return string(b), len(b) > 0
}

// bareKeyBytes reads [A-Za-z0-9_-]+ and returns it as a slice of the
// source.
func (r *fastReader) bareKeyBytes() []byte {
	start := r.i
	for r.i < len(r.src) {
		c := r.src[r.i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			break
		}
		r.i++
	}
	return r.src[start:r.i]
}

// header reads [NAME] or [shared.NAME], each at most once; [shared]
// itself, and any other dotted header, is left to the library.
func (r *fastReader) header() bool {
	r.i++ // '['
	name, ok := r.bareKey()
	if !ok || r.i == len(r.src) {
		return false
	}
	parent, seen, shared := r.doc, name, false
	if r.src[r.i] == '.' {
		if name != sharedTable {
			return false
		}
		r.i++
		if name, ok = r.bareKey(); !ok || r.i == len(r.src) {
			return false
		}
		seen, shared = sharedTable+"."+name, true
		sh, ok := r.doc[sharedTable].(map[string]any)
		if !ok {
			sh = map[string]any{}
			r.doc[sharedTable] = sh
		}
		parent = sh
	} else if name == sharedTable {
		return false
	}
	if r.src[r.i] != ']' || r.headers[seen] {
		return false
	}
	r.headers[seen] = true
	r.i++
	if r.plain != nil {
		r.last = len(r.plain.values)
	}
	r.clients, r.plain, r.shared = nil, nil, shared
	if seen == clientsTable {
		r.clients = make(map[string]any, r.linesAhead(maxClientsHint))
		parent[name] = r.clients
	} else {
		r.plain = &plainTable{values: make(map[string]Value, min(r.last, maxValuesHint))}
		parent[name] = r.plain
	}
	return true
}

// linesAhead counts the lines from r.i to the next one that starts with
// '[', at most limit.
func (r *fastReader) linesAhead(limit int) int {
	n := 0
	for i := r.i; n < limit; n++ {
		j := bytes.IndexByte(r.src[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
		for i < len(r.src) && (r.src[i] == ' ' || r.src[i] == '\t') {
			i++
		}
		if i < len(r.src) && r.src[i] == '[' {
			break
		}
	}
	return n
}

// pair reads KEY = "string" or KEY = ["string", ...] in the current
// table. An array is read only where the checks may accept one: in
// [clients] and as a client's include.
func (r *fastReader) pair() bool {
	if r.clients == nil && r.plain == nil {
		return false
	}
	kb := r.bareKeyBytes()
	if len(kb) == 0 {
		return false
	}
	var key string
	var ok bool
	if r.clients != nil {
		key = string(kb) // a client name: one of each
	} else {
		key = r.internName(kb)
	}
	if r.clients != nil {
		_, ok = r.clients[key]
	} else {
		_, ok = r.plain.values[key]
		ok = ok || key == includeKey && r.plain.include != nil
	}
	if ok {
		return false // a duplicate key, left to the library's error
	}
	r.space()
	if r.i == len(r.src) || r.src[r.i] != '=' {
		return false
	}
	r.i++
	r.space()
	if r.i == len(r.src) {
		return false
	}
	if r.src[r.i] == '[' {
		if r.clients == nil && (r.shared || key != includeKey) {
			return false
		}
		list, ok := r.array()
		if !ok {
			return false
		}
		if r.clients != nil {
			r.clients[key] = list
		} else {
			r.plain.include = list
		}
		return true
	}
	s, ok := r.str()
	switch {
	case !ok:
		return false
	case r.clients != nil:
		r.clients[key] = string(s)
	case key == includeKey && !r.shared:
		r.plain.include = Value{Kind: KindString, Text: bytes.Clone(s)}
	default:
		r.plain.values[key] = Value{Kind: KindString, Text: bytes.Clone(s)}
	}
	return true
}

// array reads a single-line array of strings, a final comma allowed.
func (r *fastReader) array() ([]any, bool) {
	r.i++ // '['
	list := []any{}
	for {
		r.space()
		if r.i == len(r.src) {
			return nil, false
		}
		if r.src[r.i] == ']' {
			r.i++
			return list, true
		}
		s, ok := r.str()
		if !ok {
			return nil, false
		}
		list = append(list, string(s))
		r.space()
		if r.i == len(r.src) {
			return nil, false
		}
		switch r.src[r.i] {
		case ',':
			r.i++
		case ']':
			r.i++
			return list, true
		default:
			return nil, false
		}
	}
}

// str reads a single-line basic string without escapes or a single-line
// literal string, and returns its bytes (a slice of the source).
func (r *fastReader) str() ([]byte, bool) {
	q := r.src[r.i]
	if q != '"' && q != '\'' {
		return nil, false
	}
	start := r.i + 1
	for j := start; j < len(r.src); j++ {
		switch c := r.src[j]; {
		case c == q:
			if j == start && j+1 < len(r.src) && r.src[j+1] == q {
				return nil, false // a multi-line string
			}
			r.i = j + 1
			return r.src[start:j], true
		case c == '\\' && q == '"', c == 0x7f, c < 0x20 && c != '\t':
			return nil, false
		}
	}
	return nil, false
}

// plainTable is a client's table or a [shared.NAME] table as
// fastDocument reads it: string values only, by bare key, and a client's
// include (an array, or a Value that the checks refuse).
type plainTable struct {
	values  map[string]Value
	include any
}

// clearDocument zeroes the Values' text in a tree fastDocument built.
func clearDocument(t map[string]any) {
	for _, v := range t {
		switch v := v.(type) {
		case *plainTable:
			for n, x := range v.values {
				clear(x.Text)
				delete(v.values, n)
			}
			if x, ok := v.include.(Value); ok {
				clear(x.Text)
			}
		case map[string]any:
			clearDocument(v)
		}
	}
}
