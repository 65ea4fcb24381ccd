package main

import (
	"strings"
	"testing"
)

// TestDiff compares two sealed files: clients, keys and names added,
// removed and changed, never a value; exit 0 same, 1 different, 2 trouble.
func TestDiff(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, s.env, "seal", "-o", "v1.sealed", "secrets.toml").want(t, 0)
	api := strings.TrimSpace(companion(t, s.dir, nil, "keygen", "-o", "api.key").stdout)
	w2 := strings.TrimSpace(companion(t, s.dir, nil, "keygen", "-o", "w2.key").stdout)
	changed := strings.NewReplacer(
		canary, "new-"+canary, // password changes
		"port = 5432\n", "", // port removed
		"at = 1979-05-27T07:32:00\n", "at = 1979-05-27T07:32:00\nuser = \"u-"+canary+"\"\n", // user added
	).Replace(s.toml)
	changed = strings.Replace(changed, "worker = [", "api = \""+api+"\"\nworker = [\""+w2+"\", ", 1)
	changed += "[api]\ntoken = \"" + canary + "\"\n"
	s.write(t, "v2.toml", changed)
	companion(t, s.dir, s.env, "seal", "-o", "v2.sealed", "v2.toml").want(t, 0)

	r := companion(t, s.dir, s.env, "diff", "v1.sealed", "v2.sealed")
	r.want(t, 1)
	want := []string{
		"--- v1.sealed (definition default, serial 1)",
		"+++ v2.sealed (definition default, serial 1)",
		"client added: api (1 public key, 1 value)",
		"worker: public key added: " + w2,
		"web: value changed: password",
		"web: value removed: port",
		"web: value added: user",
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w+"\n") {
			t.Errorf("diff does not print %q:\n%s", w, r.stdout)
		}
	}
	if got := strings.Count(r.stdout, "\n"); got != len(want) {
		t.Errorf("got %d lines, want %d:\n%s", got, len(want), r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, canary) {
		t.Errorf("diff printed a value:\n%s%s", r.stdout, r.stderr)
	}
	r = companion(t, s.dir, s.env, "diff", "v2.sealed", "v1.sealed")
	r.want(t, 1)
	for _, w := range []string{"client removed: api", "worker: public key removed: " + w2, "web: value added: port", "web: value removed: user"} {
		if !strings.Contains(r.stdout, w+"\n") {
			t.Errorf("reverse diff does not print %q:\n%s", w, r.stdout)
		}
	}

	// The same definition sealed again (serial 2) is the same.
	companion(t, s.dir, s.env, "seal", "--previous", "v1.sealed", "-o", "v1b.sealed", "secrets.toml").want(t, 0)
	r = companion(t, s.dir, s.env, "diff", "v1.sealed", "v1b.sealed")
	r.want(t, 0)
	if strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("same definition: got\n%s", r.stdout)
	}

	companion(t, s.dir, nil, "keygen", "--author", "-o", "other.key").want(t, 0)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"missing file", s.env, []string{"diff", "v1.sealed", "nope.sealed"}, "nope.sealed"},
		{"another author", []string{"COFFER_KEY=other.key"}, []string{"diff", "v1.sealed", "v2.sealed"}, "not sealed by this author key"},
		{"one argument", s.env, []string{"diff", "v1.sealed"}, "diff takes OLD and NEW"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := companion(t, s.dir, tc.env, tc.args...)
			r.want(t, 2, tc.want)
			if r.stdout != "" && tc.name != "missing file" {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}
}
