package hardening_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
)

// TestKeyFiles: all three programs refuse a key file that group or
// others can read, a missing one, a truncated one and one with a bad
// checksum, with a message naming the file, and none of them prints the
// secret key line.
func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	server := genKey(t)
	type variant struct {
		name string
		make func(path string) // creates path
		want string            // in the message
	}
	write := func(path string, k *coffer.PrivateKey) []byte {
		if err := coffer.WriteKeyFile(path, k); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var secretLines []string
	keyText := func(b []byte) string {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "coffersk1") {
				secretLines = append(secretLines, l)
				return l
			}
		}
		t.Fatal("no secret key line in a key file")
		return ""
	}
	variants := []variant{
		{"mode 0644", func(p string) { keyText(write(p, genKey(t))); os.Chmod(p, 0o644) }, "0644"},
		{"mode 0640", func(p string) { keyText(write(p, genKey(t))); os.Chmod(p, 0o640) }, "0640"},
		{"mode 0604", func(p string) { keyText(write(p, genKey(t))); os.Chmod(p, 0o604) }, "0604"},
		{"missing", func(p string) {}, "no such file"},
		{"empty", func(p string) { os.WriteFile(p, nil, 0o600) }, ""},
		{"truncated", func(p string) {
			b := write(p, genKey(t))
			l := keyText(b)
			os.WriteFile(p, b[:bytes.Index(b, []byte(l))+len(l)-9], 0o600)
		}, ""},
		{"bad checksum", func(p string) {
			b := write(p, genKey(t))
			l := keyText(b)
			// A middle character: the last one also carries two unused bits.
			i := bytes.Index(b, []byte(l)) + len(l)/2
			if b[i] == 'a' {
				b[i] = 'b'
			} else {
				b[i] = 'a'
			}
			os.WriteFile(p, b, 0o600)
		}, "checksum"},
		{"a public key", func(p string) { os.WriteFile(p, []byte(genKey(t).Public().String()+"\n"), 0o600) }, "public key"},
	}
	type program struct {
		name string
		bin  string
		args func(key string) []string
		code int
	}
	programs := []program{
		{"coffer-server", serverBin, func(key string) []string {
			return []string{"serve", "--listen", "127.0.0.1:0", "--key", key, "--data-dir", filepath.Join(dir, "data"),
				"--definition", filepath.Join(dir, "none.sealed"), "--trusted", e2e.GenAuthorKey(t).Public().String(),
				"--config", filepath.Join(dir, "none.toml")}
		}, 1},
		{"coffer-client", clientBin, func(key string) []string {
			return []string{"get", "--key", key, "--server", "127.0.0.1:1", "--server-key", server.Public().String(),
				"--config", filepath.Join(dir, "none.toml")}
		}, 2},
		{"coffer-companion", companionBin, func(key string) []string {
			return []string{"pubkey", key}
		}, 1},
	}
	if err := os.WriteFile(filepath.Join(dir, "none.toml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pr := range programs {
		t.Run(pr.name, func(t *testing.T) {
			if pr.bin == "" {
				t.Skipf("coffer-companion does not build: %s", companionErr)
			}
			for i, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					path := filepath.Join(dir, pr.name+"-"+string(rune('a'+i))+".key")
					v.make(path)
					stdout, stderr, code := run(t, pr.bin, []string{"COFFER_KEY=", "COFFER_CONFIG="}, pr.args(path)...)
					if code == 0 || (pr.code != 0 && code != pr.code) {
						t.Errorf("exit %d, want %d; stderr:\n%s", code, pr.code, stderr)
					}
					if !strings.Contains(stderr, path) || !strings.Contains(stderr, v.want) {
						t.Errorf("stderr does not name the file and %q:\n%s", v.want, stderr)
					}
					for _, l := range secretLines {
						if strings.Contains(stdout+stderr, l) || strings.Contains(stdout+stderr, l[9:30]) {
							t.Errorf("the secret key line appears in the output:\n%s", stderr)
						}
					}
					t.Logf("exit %d: %s", code, firstLine(stderr))
				})
			}
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
