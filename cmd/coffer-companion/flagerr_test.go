package main

import (
	"strings"
	"testing"
)

// TestFlagErrors: a usage error prints once, in the form the three
// programs share: the error line, hint lines, then a pointer to -h, not
// the whole usage; status 2.
func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"seal", "--bogus", "x"},
			"coffer-companion: error: unknown option --bogus\nrun 'coffer-companion seal -h' for usage\n"},
		{"missing value", []string{"inspect", "x", "--key"},
			"coffer-companion: error: --key needs a value\nrun 'coffer-companion inspect -h' for usage\n"},
		{"bad serial", []string{"seal", "--serial", "x", "s.toml"},
			"coffer-companion: error: --serial \"x\": not a number\nrun 'coffer-companion seal -h' for usage\n"},
		{"unknown command", []string{"frobnicate"},
			"coffer-companion: error: unknown command \"frobnicate\"\nrun 'coffer-companion -h' for usage\n"},
		{"two files", []string{"check", "a", "b"},
			"coffer-companion: error: check takes one definition file\nrun 'coffer-companion check -h' for usage\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := companion(t, dir, nil, tt.args...)
			r.want(t, 2)
			if r.stderr != tt.want {
				t.Errorf("got stderr:\n%s\nwant:\n%s", r.stderr, tt.want)
			}
			if strings.Contains(r.stderr, "usage: coffer-companion") {
				t.Errorf("the whole usage was printed")
			}
		})
	}
}
