package main

import (
	"strings"
	"testing"
)

// TestRenamedSpellings: the key file variable is COFFER_KEY, as in
// coffer-client and coffer-companion, and the data directory flag is
// --data-dir, as data_dir and COFFER_DATA_DIR; the spellings that
// shipped (COFFER_KEY_FILE, --data) still work with a one-line warning.
func TestRenamedSpellings(t *testing.T) {
	f := newFixture(t, "app")
	f.next(t, "v1", 0)
	base := []string{"check", "--config", f.Conf, "--definition", f.DefPath, "--trusted", f.Author.Public().String()}
	tests := []struct {
		name    string
		env     []string
		args    []string
		warning string
	}{
		{"COFFER_KEY", []string{"COFFER_KEY=" + f.KeyFile}, []string{"--data-dir", f.DataDir}, ""},
		{"COFFER_KEY_FILE", []string{"COFFER_KEY_FILE=" + f.KeyFile}, []string{"--data-dir", f.DataDir},
			"coffer-server: warning: COFFER_KEY_FILE is deprecated; use COFFER_KEY\n"},
		{"--data", []string{"COFFER_KEY=" + f.KeyFile}, []string{"--data", f.DataDir},
			"coffer-server: warning: --data is deprecated; use --data-dir\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := f.run(t, tt.env, append(base, tt.args...)...)
			if code != 0 || !strings.Contains(out, f.DataDir) || !strings.Contains(out, f.Server.Public().String()) {
				t.Errorf("got exit %d, want 0 with the key and data directory used; stdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			if errOut != tt.warning {
				t.Errorf("got stderr %q, want %q", errOut, tt.warning)
			}
		})
	}
}

// TestLogCounts: the load lines say what they count, client names or
// client keys, never a bare "clients".
func TestLogCounts(t *testing.T) {
	f := newFixture(t, "app", "web")
	f.next(t, "v1", 1)
	p := f.start(t)
	defer p.stop()
	p.Logs.Wait(t, 0, `msg="importing definition" .*client_names=3 client_keys=3`)
	p.Logs.Wait(t, 0, `msg="serving definition" .*client_keys=3`)
	if strings.Contains(p.Logs.All(), " clients=") {
		t.Errorf("a log line says clients= without saying what it counts:\n%s", p.Logs.All())
	}
}

// TestInspectCounts: inspect says what it counts: client names and keys,
// values as the definition counts them and as the store keeps them (a
// copy per key).
func TestInspectCounts(t *testing.T) {
	f := newFixture(t)
	k1, k2 := genKey(t).Public().String(), genKey(t).Public().String()
	f.Next(t, []byte("[clients]\napp = [\""+k1+"\", \""+k2+"\"]\n[app]\na = \"x\"\nb = 2\n"))
	p := f.start(t)
	p.stop()
	out, errOut, code := f.run(t, nil, "inspect", "--config", f.Conf, "--data-dir", f.DataDir, "--key", f.KeyFile)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	for _, want := range []string{"clients:    1 names, 2 keys\n", "values:     2 in the definition, 4 stored (a copy per client key; "} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect does not say %q:\n%s", want, out)
		}
	}
}
