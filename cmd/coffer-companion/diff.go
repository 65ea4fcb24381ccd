package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

const diffUsage = `usage: coffer-companion diff [--key AUTHOR.key] [--server-key SEALING] OLD.sealed NEW.sealed

Compare the definitions inside two sealed files (both sealed by this
author key) so that a change can be reviewed before it is published. It
prints a header line for each file, then one line for each client added
or removed, and for each client in both: public keys added and removed,
a changed include list, and value names added, removed and changed. It
never prints a value: a changed value shows as "changed". Serials and
creation times are not compared.

exit status (as diff(1)): 0 the definitions are the same, 1 they differ,
2 trouble (a usage error, a file that does not open).

options:
  --key FILE        the author's secret key file (default $COFFER_KEY)
  --server-key SEALING  the server's sealing key, or its file; both files must
                    be sealed for it (default $COFFER_SERVER_KEY)

example:
  coffer-companion diff prod.sealed prod.next.sealed
`

// errDiffer ends a diff that found differences: exit 1, no message.
var errDiffer = errors.New("the definitions differ")

// exitStatus is an error with its own exit status (diff's trouble is 2).
type exitStatus struct {
	err  error
	code int
}

func (e *exitStatus) Error() string { return e.err.Error() }
func (e *exitStatus) Unwrap() error { return e.err }

func (c *cli) diff(args []string) error {
	fs := newFlags("diff")
	var kf keyFlags
	kf.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("diff takes OLD and NEW")
	}
	var defs [2]*coffer.Definition
	var envs [2]*coffer.Envelope
	for i, path := range pos {
		env, err := openOwn(&kf, path)
		if err != nil {
			return &exitStatus{err, 2}
		}
		def, err := coffer.ParseDefinition(env.TOML)
		clear(env.TOML)
		if err != nil {
			return &exitStatus{fmt.Errorf("%s: the definition inside does not parse: %w", path, err), 2}
		}
		defer def.Clear()
		defs[i], envs[i] = def, env
	}
	fmt.Fprintf(c.stdout, "--- %s (definition %s, serial %d)\n", pos[0], envs[0].Name, envs[0].Serial)
	fmt.Fprintf(c.stdout, "+++ %s (definition %s, serial %d)\n", pos[1], envs[1].Name, envs[1].Serial)
	if envs[0].Name != envs[1].Name {
		fmt.Fprintf(c.stdout, "definition changed: %s -> %s\n", envs[0].Name, envs[1].Name)
	}
	n := 0
	if envs[0].Server != envs[1].Server {
		fmt.Fprintf(c.stdout, "server changed: %s -> %s\n", envs[0].Server, envs[1].Server)
		n++
	}
	n += diffDefinitions(c.stdout, defs[0], defs[1])
	if n > 0 {
		return errDiffer
	}
	return nil
}

// diffDefinitions prints the differences from a to b, one per line, and
// returns how many it printed. It prints names, never values.
func diffDefinitions(w io.Writer, a, b *coffer.Definition) int {
	n := 0
	line := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		n++
	}
	old, cur := clientMap(a), clientMap(b)
	for _, name := range unionKeys(old, cur) {
		ca, inA := old[name]
		cb, inB := cur[name]
		switch {
		case !inA:
			line("client added: %s (%s, %s)", name, plural(len(cb.Keys), "public key"), plural(len(cb.Values), "value"))
		case !inB:
			line("client removed: %s", name)
		default:
			diffClient(line, ca, cb)
		}
	}
	ga, gb := groupMap(a), groupMap(b)
	for _, name := range unionKeys(ga, gb) {
		_, inA := ga[name]
		_, inB := gb[name]
		switch {
		case !inA:
			line("shared added: %s", name)
		case !inB:
			line("shared removed: %s", name)
		}
	}
	return n
}

// diffClient prints the differences between one client's two versions.
func diffClient(line func(string, ...any), a, b *coffer.DefinitionClient) {
	for _, k := range b.Keys {
		if !slices.Contains(a.Keys, k) {
			line("%s: public key added: %s", a.Name, k)
		}
	}
	for _, k := range a.Keys {
		if !slices.Contains(b.Keys, k) {
			line("%s: public key removed: %s", a.Name, k)
		}
	}
	if !slices.Equal(a.Include, b.Include) {
		line("%s: include changed: [%s] -> [%s]", a.Name, strings.Join(a.Include, ", "), strings.Join(b.Include, ", "))
	}
	for _, name := range unionKeys(a.Values, b.Values) {
		va, inA := a.Values[name]
		vb, inB := b.Values[name]
		switch {
		case !inA:
			line("%s: value added: %s", a.Name, name)
		case !inB:
			line("%s: value removed: %s", a.Name, name)
		case !sameValue(va, vb):
			line("%s: value changed: %s", a.Name, name)
		}
	}
}

// sameValue compares two values by kind and content; floats by their
// bits, so -0 differs from 0 and a NaN equals itself.
func sameValue(a, b frame.Value) bool {
	return a.Kind == b.Kind && a.Int == b.Int && a.Bool == b.Bool &&
		math.Float64bits(a.Float) == math.Float64bits(b.Float) && bytes.Equal(a.Text, b.Text)
}

func clientMap(d *coffer.Definition) map[string]*coffer.DefinitionClient {
	m := make(map[string]*coffer.DefinitionClient, len(d.Clients))
	for i := range d.Clients {
		m[d.Clients[i].Name] = &d.Clients[i]
	}
	return m
}

func groupMap(d *coffer.Definition) map[string]bool {
	m := make(map[string]bool, len(d.Shared))
	for _, g := range d.Shared {
		m[g.Name] = true
	}
	return m
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys[V1, V2 any](a map[string]V1, b map[string]V2) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
