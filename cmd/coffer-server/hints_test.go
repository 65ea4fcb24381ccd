package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
)

// TestStartHints: a server that cannot start names the cause it met, not
// another one (issue 14): a data directory that is a file is not "another
// process", an invalid port is not "another coffer-server".
func TestStartHints(t *testing.T) {
	f := newFixture(t, "app")
	f.next(t, "v1", 0)
	file := filepath.Join(f.Dir, "plainfile")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		want    string
		notWant string
	}{
		{"data dir is a file", []string{"--data-dir", file, "--listen", "127.0.0.1:0"},
			"hint: the data directory must be a directory", "stop the other process"},
		{"invalid port", []string{"--listen", "127.0.0.1:99999"},
			"hint: listen takes host:port with a port from 1 to 65535", "another coffer-server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := f.run(t, nil, append(f.Args(), tt.args...)...)
			if code != 1 {
				t.Errorf("got exit %d, want 1", code)
			}
			if !strings.Contains(errOut, tt.want) || strings.Contains(errOut, tt.notWant) {
				t.Errorf("stderr does not contain %q or contains %q:\n%s", tt.want, tt.notWant, errOut)
			}
			t.Logf("stderr:\n%s", lastLines(errOut, 3))
		})
	}
}

// TestBindBeforeImport: a port already in use stops the server before it
// creates a store or a first-run trust record: the data directory is as
// it was (here: absent).
func TestBindBeforeImport(t *testing.T) {
	f := newFixture(t, "app")
	f.next(t, "v1", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, errOut, code := f.run(t, nil, append(f.Args(), "--listen", l.Addr().String())...)
	if code != 1 || !strings.Contains(errOut, "address already in use") || !strings.Contains(errOut, "hint: ") {
		t.Errorf("got exit %d, want 1 with address already in use and a hint:\n%s", code, errOut)
	}
	if _, err := os.Stat(f.DataDir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(f.DataDir)
		t.Errorf("data directory left behind (%v): %d entries", err, len(entries))
	}
	t.Logf("stderr:\n%s", lastLines(errOut, 3))
}

// TestFirstRunWrongServer: on a first run, a definition sealed to another
// server key is refused with "nothing stored", not "serving the stored
// one", and a hint to reseal it to this server's key.
func TestFirstRunWrongServer(t *testing.T) {
	f := newFixture(t, "app")
	f.Write(t, e2e.Seal(t, f.Author, genKey(t), 1, [32]byte{}, f.defTOML("v1", 0)))
	p := f.start(t)
	defer p.stop()
	line, _, ok := p.Logs.WaitFor(0, `sealed definition refused`, 10*time.Second)
	if !ok {
		t.Fatalf("no refusal logged:\n%s", p.Logs.All())
	}
	if strings.Contains(line, "serving the stored one") || !strings.Contains(line, "nothing stored") ||
		!strings.Contains(line, f.Server.Public().String()) {
		t.Errorf("refusal line names the wrong state or no fix:\n%s", line)
	}
	t.Logf("log: %s", line)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
