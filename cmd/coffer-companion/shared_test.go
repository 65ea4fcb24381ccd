package main

import (
	"strings"
	"testing"
)

// sharedTOML adds a [shared] group to the setup's definition, given to
// web and worker.
func sharedTOML(s *setup) string {
	return strings.Replace(s.toml, "[web]\n", "[shared.db]\nhost = \"db.internal\"\ntoken = \""+canary+"\"\n[worker]\ninclude = [\"db\"]\n[web]\ninclude = [\"db\"]\n", 1)
}

// TestSharedInspect: check and inspect say what is shared and with whom,
// and count shared values per client, never printing one.
func TestSharedInspect(t *testing.T) {
	s := newSetup(t)
	s.write(t, "shared.toml", sharedTOML(s))
	r := companion(t, s.dir, nil, "check", "shared.toml")
	r.want(t, 0)
	if want := "ok: 2 clients, 2 public keys, 7 values given to clients (4 of them from 1 [shared] group)"; !strings.Contains(r.stdout, want) {
		t.Errorf("check printed %q, want %q", r.stdout, want)
	}
	companion(t, s.dir, s.env, "seal", "-o", "v.sealed", "shared.toml").want(t, 0)
	r = companion(t, s.dir, s.env, "inspect", "v.sealed")
	r.want(t, 0)
	for _, w := range []string{
		"web (1 public key, 5 values, 2 of them shared): at, host, password, port, token; include: db",
		"worker (1 public key, 2 values, 2 of them shared): host, token; include: db",
		"shared:   1 group",
		"  db (2 values): host, token; included by web, worker",
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("inspect does not print %q:\n%s", w, r.stdout)
		}
	}
	if strings.Contains(r.stdout, canary) {
		t.Error("inspect printed a value")
	}
	s.write(t, "clash.toml", strings.Replace(sharedTOML(s), "port = 5432", "token = 1", 1))
	companion(t, s.dir, nil, "check", "clash.toml").want(t, 1, `key "web.token": client "web" has its own value and shared "db" gives one`)
}
