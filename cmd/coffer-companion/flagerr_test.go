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

// TestNames: --server-key is the server's public key, as in
// coffer-client (where --server is an address); --server still works
// with a one-line warning; version and -version print the version.
func TestNames(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, nil, "seal", "--key", "companion.key", "--server-key", s.server, "-o", "a.sealed", "secrets.toml").want(t, 0)
	r := companion(t, s.dir, nil, "seal", "--key", "companion.key", "--server", s.server, "-o", "b.sealed", "secrets.toml")
	r.want(t, 0)
	if !strings.HasPrefix(r.stderr, "coffer-companion: warning: --server is deprecated; use --server-key\n") || strings.Count(r.stderr, "warning") != 1 {
		t.Errorf("got stderr %q, want the one-line warning", r.stderr)
	}
	for _, arg := range []string{"version", "-version", "--version"} {
		r := companion(t, s.dir, nil, arg)
		r.want(t, 0)
		if !strings.HasPrefix(r.stdout, "coffer-companion ") || r.stderr != "" {
			t.Errorf("%s: got stdout %q stderr %q", arg, r.stdout, r.stderr)
		}
	}
}
