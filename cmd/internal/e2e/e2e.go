// Package e2e runs the real coffer binaries for the end-to-end tests of
// cmd/coffer-server, its hardening suite and cmd/coffer-client: it builds
// them, starts the server with a fake NOTIFY_SOCKET, watches its log and
// keeps every output for the canary checks. Only tests import it.
package e2e

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// runTimeout bounds a run to completion, so a hung binary fails its test
// instead of the whole package's timeout.
const runTimeout = 60 * time.Second

// Build builds the Go package pkg (a path relative to the test's
// directory) into dir/name and returns the binary's path. The error
// carries the compiler's output.
func Build(dir, name, pkg string) (string, error) {
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// Outputs collects what the processes of a test printed, for a canary
// check. It is safe for concurrent use; the zero value is empty.
type Outputs struct {
	mu   sync.Mutex
	list []string
}

// Record keeps one output.
func (o *Outputs) Record(s string) {
	o.mu.Lock()
	o.list = append(o.list, s)
	o.mu.Unlock()
}

// Containing returns the outputs that contain any of needles.
func (o *Outputs) Containing(needles ...string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var found []string
	for _, s := range o.list {
		for _, n := range needles {
			if strings.Contains(s, n) {
				found = append(found, s)
				break
			}
		}
	}
	return found
}

// Size returns the number of bytes recorded.
func (o *Outputs) Size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, s := range o.list {
		n += len(s)
	}
	return n
}

// Run runs bin to completion with os.Environ() plus env, and returns its
// stdout, stderr and exit code. Both outputs go to record, if not nil.
// A run that takes over a minute is killed and fails t.
func Run(t testing.TB, bin string, env []string, record func(string), args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// coffer-client keeps its remembered serial under XDG_STATE_HOME by
	// default: never the real home or /var/lib in a test.
	cmd.Env = append(append(os.Environ(), "XDG_STATE_HOME="+t.TempDir()), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(runTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %v did not finish in 60 s", filepath.Base(bin), args)
	}
	if record != nil {
		record(stdout.String())
		record(stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// GenKey returns a new key from crypto/rand.
func GenKey(t testing.TB) *coffer.PrivateKey {
	t.Helper()
	k, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
