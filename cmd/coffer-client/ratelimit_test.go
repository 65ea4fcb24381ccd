package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
)

// realFixture is a real coffer-server serving realDefinition to a fresh
// client, with the server's own config file (conf, TOML) and its log.
func realFixture(t *testing.T, conf string) (*fixture, *e2e.Proc, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds coffer-server")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	client, _ := coffer.GenerateKey(rand.Reader)
	server, _ := coffer.GenerateKey(rand.Reader)
	author := e2e.GenAuthorKey(t)
	clientKey, serverKey := filepath.Join(dir, "client.key"), filepath.Join(dir, "server.key")
	for path, k := range map[string]*coffer.PrivateKey{clientKey: client, serverKey: server} {
		if err := coffer.WriteKeyFile(path, k); err != nil {
			t.Fatal(err)
		}
	}
	def := []byte(strings.Replace(realDefinition, "CLIENT", client.Public().String(), 1))
	defPath := filepath.Join(dir, "secrets.sealed")
	if err := os.WriteFile(defPath, e2e.Seal(t, author, server, 1, [32]byte{}, def), 0o600); err != nil {
		t.Fatal(err)
	}
	serverConf := filepath.Join(dir, "server.toml")
	if err := os.WriteFile(serverConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := e2e.Launch(t, []string{bin, "serve", "--config", serverConf, "--key", serverKey, "--data-dir", filepath.Join(dir, "data"),
		"--definition", defPath, "--trusted", author.Public().String(), "--listen", "127.0.0.1:0"}, e2e.Options{Env: environ()})
	t.Cleanup(func() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		<-p.Done()
	})
	line, _, ok := p.Logs.WaitFor(0, `msg=listening addr=[0-9.:]+`, 30*time.Second)
	if !ok {
		t.Fatalf("coffer-server did not start:\n%s", p.Logs.All())
	}
	fx := &fixture{t: t, dir: dir, client: client, keyFile: clientKey, server: server, config: filepath.Join(dir, "empty.toml")}
	os.WriteFile(fx.config, nil, 0o644)
	return fx, p, listeningRE.FindStringSubmatch(line)[1]
}

// TestRateLimited: a fetch the server's per_client limit refuses says
// "rate limited" and when to retry on the client's last line and hint,
// and the server's session line names the bucket, not a bare error.
func TestRateLimited(t *testing.T) {
	fx, p, addr := realFixture(t, "[limits]\nper_client = { rate = 0.001, burst = 1 }\n")
	args := append([]string{"get", "--format", "json", "port"}, fx.base("--server", addr)...)
	fx.run(nil, args...).want(t, exitOK)
	r := fx.run(nil, args...)
	r.want(t, exitUnreachable)
	lines := strings.Split(strings.TrimSpace(string(r.stderr)), "\n")
	errLine := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "coffer-client: error:") {
			errLine = l
		}
	}
	if !strings.Contains(errLine, "rate limited") {
		t.Errorf("error line does not say rate limited:\n%s", r.stderr)
	}
	if !strings.Contains(string(r.stderr), "hint: ") || !strings.Contains(string(r.stderr), "--wait") {
		t.Errorf("no hint on when to retry:\n%s", r.stderr)
	}
	if _, _, ok := p.Logs.WaitFor(0, `msg=session .*outcome=rate-limited.* limit=per_client`, 10*time.Second); !ok {
		t.Errorf("no session line naming the bucket:\n%s", p.Logs.All())
	}
	t.Logf("client:\n%s", r.stderr)
}
