package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/coffer"
)

// TestSecretKeyAsServerKeyNotPrinted (issue 12 §5): a secret key of
// either kind given as --server-key (or COFFER_SERVER_KEY) is named as a
// mistake and never printed.
func TestSecretKeyAsServerKeyNotPrinted(t *testing.T) {
	dir := t.TempDir()
	x, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := coffer.GenerateAuthorKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xPath, aPath := filepath.Join(dir, "client.key"), filepath.Join(dir, "author.key")
	if err := coffer.WriteKeyFile(xPath, x); err != nil {
		t.Fatal(err)
	}
	if err := coffer.WriteAuthorKeyFile(aPath, a); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{xPath, aPath} {
		secret := secretKeyLine(t, path)
		for _, how := range []string{"flag", "environment"} {
			t.Run(filepath.Base(path)+" by "+how, func(t *testing.T) {
				args := []string{"get", "--server", "127.0.0.1:1", "--key", xPath}
				env := map[string]string{}
				if how == "flag" {
					args = append(args, "--server-key", secret)
				} else {
					env["COFFER_SERVER_KEY"] = secret
				}
				var stdout, stderr bytes.Buffer
				code := run(args, func(k string) string { return env[k] }, &stdout, &stderr)
				if code == 0 || !strings.Contains(stderr.String(), "secret key was given") {
					t.Fatalf("got exit %d, stderr %q; want a failure naming the secret key", code, stderr.String())
				}
				if strings.Contains(strings.ToLower(stdout.String()+stderr.String()), secret[len(secret)-40:]) {
					t.Errorf("the secret key is printed: %s", stderr.String())
				}
			})
		}
	}
}

func secretKeyLine(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "coffer") {
			return l
		}
	}
	t.Fatalf("%s holds no key line", path)
	return ""
}
