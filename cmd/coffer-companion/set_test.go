package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// companionIn is companion with stdin.
func companionIn(t *testing.T, s *setup, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = s.dir
	cmd.Env = append(baseEnv(s.dir), s.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	r := result{code, so.String(), se.String()}
	if strings.Contains(r.stdout+r.stderr, canary) {
		t.Errorf("a value reached stdout or stderr:\n%s%s", r.stdout, r.stderr)
	}
	return r
}

// TestSetUnset: set reads the value from stdin and reseals in place with
// the next serial, keeping the file's mode and comments; unset removes a
// value. Neither prints a value, and a refused change writes nothing.
func TestSetUnset(t *testing.T) {
	s := newSetup(t)
	s.write(t, "secrets.toml", "# team secrets\n"+s.toml)
	companion(t, s.dir, s.env, "seal", "-o", "v.sealed", "secrets.toml").want(t, 0)
	os.Chmod(s.dir+"/v.sealed", 0o640)
	v1 := s.read(t, "v.sealed")

	companionIn(t, s, "rotated-"+canary+"\n", "set", "--client", "web", "v.sealed", "password").want(t, 0, `set "password" of client "web"`, "serial 2")
	r := companion(t, s.dir, s.env, "open", "v.sealed")
	if !strings.Contains(r.stdout, `password = "rotated-`+canary+`"`) || !strings.HasPrefix(r.stdout, "# team secrets\n") {
		t.Errorf("after set open printed:\n%s", r.stdout)
	}
	r = companion(t, s.dir, s.env, "inspect", "v.sealed")
	if !strings.Contains(r.stdout, "serial:   2") || !strings.Contains(r.stdout, "previous: "+hexHash(v1)) {
		t.Errorf("inspect after set:\n%s", r.stdout)
	}
	if fi, _ := os.Stat(s.dir + "/v.sealed"); fi.Mode().Perm() != 0o640 {
		t.Errorf("set changed the mode to %04o", fi.Mode().Perm())
	}
	// The only client with a value of that name is found without --client.
	companionIn(t, s, "x", "set", "v.sealed", "port").want(t, 0, `client "web"`, "serial 3")
	companionIn(t, s, "y", "set", "--client", "worker", "v.sealed", "api.token").want(t, 0, "serial 4")
	companion(t, s.dir, s.env, "unset", "--client", "web", "v.sealed", "at").want(t, 0, `unset "at" of client "web"`, "serial 5")
	r = companion(t, s.dir, s.env, "open", "v.sealed")
	if strings.Contains(r.stdout, "\nat = ") || !strings.Contains(r.stdout, `api.token = "y"`) || !strings.Contains(r.stdout, `port = "x"`) {
		t.Errorf("after set and unset open printed:\n%s", r.stdout)
	}

	before := s.read(t, "v.sealed")
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"value in argv", canary, []string{"set", "--client", "web", "v.sealed", "password", canary}, 2, "value is read from stdin"},
		{"empty value", "", []string{"set", "--client", "web", "v.sealed", "password"}, 1, "empty"},
		{"whose is unclear", "v", []string{"set", "v.sealed", "new"}, 2, "--client"},
		{"unknown client", "v", []string{"set", "--client", "nope", "v.sealed", "x"}, 1, `no client "nope"`},
		{"unset missing", "", []string{"unset", "--client", "web", "v.sealed", "nope"}, 1, `has no value "nope"`},
		{"client and shared", "v", []string{"set", "--client", "web", "--shared", "db", "v.sealed", "x"}, 2, "exclude"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			companionIn(t, s, tc.stdin, tc.args...).want(t, tc.code, tc.want)
			if !bytes.Equal(s.read(t, "v.sealed"), before) {
				t.Error("the sealed file changed")
			}
		})
	}
}
