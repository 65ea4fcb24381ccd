package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdAgentUnits runs systemd-analyze verify on
// examples/systemd/coffer-agent.service and the app unit that loads its
// credentials from it, and app-watch.service (exec --watch), with ExecStart pointing at the binary just built
// (and /bin/true standing in for the app).
func TestSystemdAgentUnits(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt package systemd): the example units are not verified")
	}
	dir := t.TempDir()
	names := []string{"coffer-agent.service", "app-credentials.service", "app-watch.service"}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join("../../examples/systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.NewReplacer("/usr/local/bin/coffer-client", clientBin, "/usr/local/bin/app", "/bin/true").Replace(string(data))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, names...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	t.Run("a broken unit fails", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.service")
		if err := os.WriteFile(bad, []byte("[Service]\nLoadCredentials=x:/run/coffer/credentials.sock\nExecStart=/bin/true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sa, "verify", "--man=no", "bad.service")
		cmd.Dir = dir
		if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "LoadCredentials") {
			t.Errorf("a misspelt directive went unnoticed: %s", out)
		}
	})
}
