// Package flagerr turns the flag package's parse errors into the one
// form the three programs print: one error line, hint lines, and a
// pointer to -h instead of the whole usage (docs/client.md, "Usage
// errors").
package flagerr

import (
	"flag"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// patterns are the flag package's error texts. They are compiled on the
// first usage error, not at package initialisation: compiling them cost
// every start of the three programs about 0.2 ms (docs/benchmarks.md,
// "Cold start"), and a correct command line never needs them.
type patterns struct {
	undefined, noValue, invalid, boolean, digits *regexp.Regexp
}

var compiled = sync.OnceValue(func() *patterns {
	return &patterns{
		undefined: regexp.MustCompile(`^flag provided but not defined: -+(.+)$`),
		noValue:   regexp.MustCompile(`^flag needs an argument: -+(.+)$`),
		invalid:   regexp.MustCompile(`(?s)^invalid value "(.*)" for flag -+([^:]+): (.*)$`),
		boolean:   regexp.MustCompile(`(?s)^invalid boolean value "(.*)" for -+([^:]+): `),
		digits:    regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`),
	}
})

// Explain returns the message and hint lines for err, an error of
// fs.Parse. An error it does not know comes back as its text. It is a
// pure function of fs's flag types and err.
func Explain(fs *flag.FlagSet, err error) (msg string, hints []string) {
	msg, hints = explain(fs, err)
	return oneLine(msg), hints
}

// oneLine keeps a message on one line of stderr: a flag name may hold
// any byte.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

func explain(fs *flag.FlagSet, err error) (msg string, hints []string) {
	s := err.Error()
	re := compiled()
	if m := re.undefined.FindStringSubmatch(s); m != nil {
		return "unknown option --" + m[1], nil
	}
	if m := re.noValue.FindStringSubmatch(s); m != nil {
		return "--" + m[1] + " needs a value", nil
	}
	if m := re.boolean.FindStringSubmatch(s); m != nil {
		return fmt.Sprintf("--%s=%q: not true or false", m[2], m[1]), nil
	}
	m := re.invalid.FindStringSubmatch(s)
	if m == nil {
		return s, nil
	}
	value, name, why := m[1], m[2], m[3]
	if IsDuration(fs, name) {
		return fmt.Sprintf("--%s %q: not a duration", name, value), DurationHints("--"+name, value)
	}
	if why == "parse error" {
		why = "not a number"
	} else if why == "value out of range" {
		why = "out of range"
	}
	return fmt.Sprintf("--%s %q: %s", name, value, why), nil
}

// IsDuration reports whether fs's flag name holds a time.Duration.
func IsDuration(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(time.Duration)
	return ok
}

// DurationHints suggests a unit for a duration given as value: "10"
// becomes "--wait 10s".
func DurationHints(option, value string) []string {
	v := strings.TrimSpace(value)
	if compiled().digits.MatchString(v) {
		return []string{fmt.Sprintf("a duration needs a unit: %s %ss (or ms, m, h)", option, v)}
	}
	return []string{"a duration looks like 500ms, 10s, 5m or 1h30m"}
}

// Pointer is the line printed after a usage error instead of the whole
// usage: "run 'coffer-client get -h' for usage". cmd may be "".
func Pointer(prog, cmd string) string {
	if cmd == "" {
		return fmt.Sprintf("run '%s -h' for usage", prog)
	}
	return fmt.Sprintf("run '%s %s -h' for usage", prog, cmd)
}
