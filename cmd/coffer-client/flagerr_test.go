package main

import (
	"strings"
	"testing"
)

// TestFlagErrors: a flag error prints once, in the form the three
// programs share: the error line, hint lines, a pointer to -h, not the
// whole usage; status 2.
func TestFlagErrors(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"duration without unit", []string{"get", "--wait", "10"}, []string{
			`coffer-client: error: --wait "10": not a duration`,
			"hint: a duration needs a unit: --wait 10s (or ms, m, h)",
			"run 'coffer-client get -h' for usage"}},
		{"unknown flag", []string{"exec", "--nope", "--", "true"}, []string{
			"coffer-client: error: unknown option --nope",
			"run 'coffer-client exec -h' for usage"}},
		{"missing value", []string{"check", "--timeout"}, []string{
			"coffer-client: error: --timeout needs a value",
			"run 'coffer-client check -h' for usage"}},
		{"unknown command", []string{"fetch"}, []string{
			`coffer-client: error: unknown command "fetch"`,
			"run 'coffer-client -h' for usage"}},
		{"bad name", append([]string{"get", "a/b"}, fx.base("--server", "127.0.0.1:1")...), []string{
			`coffer-client: error: bad secret name "a/b": want 1 to 128 of [A-Za-z0-9_.-], not starting or ending with '.'`,
			"run 'coffer-client get -h' for usage"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fx.run(nil, tt.args...)
			r.want(t, exitUsage)
			if got := strings.Split(strings.TrimRight(string(r.stderr), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got stderr:\n%s\nwant:\n%s", r.stderr, strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestVersion: the client prints its version, as the server and the
// companion do.
func TestVersion(t *testing.T) {
	fx := newFixture(t)
	for _, arg := range []string{"version", "-version", "--version"} {
		r := fx.run(nil, arg)
		r.want(t, exitOK)
		if !strings.HasPrefix(string(r.stdout), "coffer-client ") || len(r.stderr) != 0 {
			t.Errorf("%s: got stdout %q stderr %q", arg, r.stdout, r.stderr)
		}
	}
}
