package flagerr

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	tests := []struct {
		name, arg, msg string
		hints          []string
	}{
		{"unknown", "--nope", "unknown option --nope", nil},
		{"no value", "--wait", "--wait needs a value", nil},
		{"duration without unit", "--wait=10", `--wait "10": not a duration`, []string{"a duration needs a unit: --wait 10s (or ms, m, h)"}},
		{"duration fraction", "--wait=1.5", `--wait "1.5": not a duration`, []string{"a duration needs a unit: --wait 1.5s (or ms, m, h)"}},
		{"duration word", "--wait=soon", `--wait "soon": not a duration`, []string{"a duration looks like 500ms, 10s, 5m or 1h30m"}},
		{"int", "--n=x", `--n "x": not a number`, nil},
		{"int range", "--n=99999999999999999999", `--n "99999999999999999999": out of range`, nil},
		{"bool", "--b=maybe", `--b="maybe": not true or false`, nil},
		{"func", "--f=x", `--f "x": bad x`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("get", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Duration("wait", 0, "")
			fs.Int("n", 0, "")
			fs.Bool("b", false, "")
			fs.Func("f", "", func(string) error { return errString("bad x") })
			err := fs.Parse([]string{tt.arg})
			if err == nil {
				t.Fatal("parsed")
			}
			msg, hints := Explain(fs, err)
			if msg != tt.msg || !slices.Equal(hints, tt.hints) {
				t.Errorf("got %q %q, want %q %q", msg, hints, tt.msg, tt.hints)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestPointer(t *testing.T) {
	if got, want := Pointer("coffer-client", "get"), "run 'coffer-client get -h' for usage"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Pointer("coffer-server", ""), "run 'coffer-server -h' for usage"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzExplain: whatever the arguments, Explain returns one line and
// never panics.
func FuzzExplain(f *testing.F) {
	f.Fuzz(func(t *testing.T, arg, value string) {
		fs := flag.NewFlagSet("get", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Duration("wait", 0, "")
		fs.Int("n", 0, "")
		fs.Bool("b", false, "")
		err := fs.Parse([]string{arg, value})
		if err == nil {
			return
		}
		msg, hints := Explain(fs, err)
		for _, s := range append(hints, msg) {
			if strings.Contains(s, "\n") {
				t.Errorf("not one line: %q", s)
			}
		}
	})
}
