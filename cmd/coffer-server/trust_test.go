package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coffer-project/coffer/coffer"
)

// TestOldFormatRefusedOnReload: a sealed file in format 1 (before author
// signatures; coffer/testdata holds one the previous companion wrote) is
// refused on reload with one log line that says how to reseal, and the
// current definition keeps being served.
func TestOldFormatRefusedOnReload(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	p := f.start(t)
	old, err := os.ReadFile(filepath.Join("..", "..", "coffer", "testdata", "sealed-v1.armored"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write(t, old)
	n := p.Logs.Count()
	p.Signal(syscall.SIGHUP)
	line, _ := p.Logs.Wait(t, n, `reload: sealed definition refused`)
	for _, want := range []string{"format 1", "reseal", "coffer-companion seal", "--force --serial N"} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal %q does not say %q", line, want)
		}
	}
	p.WaitReady()
	r, err := p.fetch("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := wantShard(r, "one"); err != nil || r.Version.Serial != 1 {
		t.Errorf("after refusing: serial %d, %v", r.Version.Serial, err)
	}
	p.stop()
}

// TestSecretKeyAsTrustedNotPrinted (issue 12 §5): a secret key of either
// kind given as a trusted key, by flag or in the config file, is named as
// a mistake and never printed; so is an X25519 public key, which is named
// as the wrong kind.
func TestSecretKeyAsTrustedNotPrinted(t *testing.T) {
	f := newFixture(t, "web")
	serverSecret := keyLine(t, filepath.Join(f.Dir, "server.key"))
	authorFile := filepath.Join(f.Dir, "author.key")
	if err := coffer.WriteAuthorKeyFile(authorFile, f.Author); err != nil {
		t.Fatal(err)
	}
	authorSecret := keyLine(t, authorFile)
	conf := filepath.Join(f.Dir, "trusted.toml")
	tests := []struct {
		name, text string
		inConfig   bool
		want       string
	}{
		{"X25519 secret key by flag", serverSecret, false, "trusted key 1 is a secret key (not printed)"},
		{"author secret key by flag", authorSecret, false, "trusted key 1 is a secret key (not printed)"},
		{"X25519 secret key in the config", serverSecret, true, "trusted key 1 is a secret key (not printed)"},
		{"author secret key in the config", authorSecret, true, "trusted key 1 is a secret key (not printed)"},
		{"X25519 public key by flag", f.Server.Public().String(), false, "trusted key 1 is an X25519 key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"serve", "--key", f.KeyFile, "--data-dir", f.DataDir, "--definition", f.DefPath, "--listen", "127.0.0.1:0"}
			if tc.inConfig {
				if err := os.WriteFile(conf, []byte("trusted = [\""+tc.text+"\"]\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", conf)
			} else {
				args = append(args, "--config", f.Conf, "--trusted", tc.text)
			}
			out, errOut, code := f.run(t, nil, args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("got exit %d, stderr %q; want 2 (a configuration error) and %q", code, errOut, tc.want)
			}
			body := tc.text[len(tc.text)-40:]
			if strings.Contains(strings.ToLower(out+errOut), body) {
				t.Errorf("the key text is printed: %s", errOut)
			}
		})
	}
}

// keyLine returns the key line of a key file.
func keyLine(t *testing.T, path string) string {
	t.Helper()
	for _, l := range strings.Split(string(mustRead(t, path)), "\n") {
		if strings.HasPrefix(l, "coffer") {
			return l
		}
	}
	t.Fatalf("%s holds no key line", path)
	return ""
}
