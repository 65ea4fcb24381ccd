package config_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxUnitExposure bounds what `systemd-analyze security` may rate any
// shipped service (0 is best, 10 is UNSAFE). The app units were 9.2 before
// they were sandboxed; the server's is 1.4.
const maxUnitExposure = 2.0

var exposureLine = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// systemdUnits copies examples/systemd into a temporary directory with each
// /usr/local/bin/PROGRAM replaced by an executable that exists there, since
// `systemd-analyze verify` checks that every command exists. It returns the
// copies' paths.
func systemdUnits(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not found: install Debian's systemd package (.ci/run does) to check the units")
	}
	src, err := filepath.Glob("../examples/systemd/*")
	if err != nil || len(src) == 0 {
		t.Fatalf("no units in examples/systemd: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	units := filepath.Join(dir, "units")
	for _, d := range []string{bin, units} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	trueBin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skipf("no /bin/true to stand in for the programs: %v", err)
	}
	programs := regexp.MustCompile(`/usr/local/bin/([A-Za-z0-9_-]+)`)
	var out []string
	for _, path := range src {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range programs.FindAllSubmatch(text, -1) {
			if err := os.WriteFile(filepath.Join(bin, string(m[1])), trueBin, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		text = bytes.ReplaceAll(text, []byte("/usr/local/bin/"), []byte(bin+"/"))
		dst := filepath.Join(units, filepath.Base(path))
		if err := os.WriteFile(dst, text, 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, dst)
	}
	return out
}

// TestSystemdUnitsVerify runs `systemd-analyze verify` on every unit that
// examples/systemd ships, together, so that dependencies between them
// (app-with-secrets.service requires app-secrets.service) resolve.
func TestSystemdUnitsVerify(t *testing.T) {
	units := systemdUnits(t)
	cmd := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSystemdUnitsSandboxed rates every shipped service with
// `systemd-analyze security` and requires at most maxUnitExposure.
func TestSystemdUnitsSandboxed(t *testing.T) {
	for _, unit := range systemdUnits(t) {
		if !strings.HasSuffix(unit, ".service") {
			continue // only services run code
		}
		t.Run(filepath.Base(unit), func(t *testing.T) {
			out, _ := exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", unit).CombinedOutput()
			m := exposureLine.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure level in systemd-analyze's output:\n%s", out)
			}
			got, err := strconv.ParseFloat(string(m[1]), 64)
			if err != nil {
				t.Fatal(err)
			}
			if got > maxUnitExposure {
				t.Errorf("exposure %.1f, want at most %.1f:\n%s", got, maxUnitExposure, out)
			}
		})
	}
}

// TestSystemdUnitsStopOnRefusal: a service that runs coffer-client as its
// main process must not restart on the exit statuses that need a person
// (2: usage or configuration, 4: authentication refused), and the server's
// socket listens on loopback by default.
func TestSystemdUnitsStopOnRefusal(t *testing.T) {
	src, err := filepath.Glob("../examples/systemd/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range src {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := string(text)
		name := filepath.Base(path)
		if strings.Contains(s, "ExecStartPre=+/usr/local/bin/coffer-client") {
			t.Errorf("%s: runs the network client as unsandboxed root in ExecStartPre=+", name)
		}
		if regexp.MustCompile(`(?m)^ExecStart=\S*coffer-client (get|exec)`).MatchString(s) &&
			!regexp.MustCompile(`(?m)^RestartPreventExitStatus=.*\b2\b.*\b4\b`).MatchString(s) {
			t.Errorf("%s: coffer-client is the main process but exit 2 and 4 do not stop restarts", name)
		}
		if strings.HasSuffix(name, ".socket") && !regexp.MustCompile(`(?m)^ListenStream=(127\.0\.0\.1|\[::1\]):`).MatchString(s) {
			t.Errorf("%s: listens beyond loopback by default", name)
		}
	}
}
