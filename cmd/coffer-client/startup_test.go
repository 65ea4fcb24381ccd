package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestStartupScript runs examples/startup.sh as shipped with the real
// client against a real server on a machine where none of its
// directories exist yet: it must fetch, create its state and cache, and
// exec the app (APP_COMMAND stands in for /usr/local/bin/app) with the
// secrets in its environment.
func TestStartupScript(t *testing.T) {
	fx, _, addr := realFixture(t, "")
	fresh := filepath.Join(fx.dir, "fresh") // nothing below exists
	cmd := exec.Command("sh", filepath.Join("..", "..", "examples", "startup.sh"), "-c", `printf '%s|%s' "$APP_DB_PASSWORD" "$APP_PORT"`)
	cmd.Env = environ(
		"PATH="+filepath.Dir(clientBin)+":"+os.Getenv("PATH"),
		"HOME="+filepath.Join(fresh, "home"),
		"XDG_STATE_HOME="+filepath.Join(fresh, "state"),
		"COFFER_APP_DIR="+filepath.Join(fresh, "app"),
		"APP_COMMAND=sh",
		"COFFER_CONFIG="+fx.config,
		"COFFER_SERVER="+addr,
		"COFFER_SERVER_KEY="+fx.server.Public().String(),
		"COFFER_KEY="+fx.keyFile,
	)
	out, err := cmd.Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	fx.checkStderr(stderr)
	if err != nil {
		t.Fatalf("startup.sh: %v\n%s", err, stderr)
	}
	if want := "db-" + canary + "|5432"; string(out) != want {
		t.Errorf("the app got %q, want %q", out, want)
	}
	for _, p := range []string{filepath.Join(fresh, "state", "coffer-client", "state-"+fx.server.Public().Fingerprint()),
		filepath.Join(fresh, "app", "cache")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("not written: %v", err)
		}
	}
}
