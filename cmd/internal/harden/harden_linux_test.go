//go:build linux

package harden_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/cmd/internal/harden"
)

// childEnv makes the test binary, run again as a child, report its
// dumpable flag and core limit before and after Process instead of
// running the tests.
const childEnv = "COFFER_HARDEN_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		report := func() string {
			d, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
			var l unix.Rlimit
			unix.Getrlimit(unix.RLIMIT_CORE, &l)
			return fmt.Sprintf("dumpable %d core %d %d", d, l.Cur, l.Max)
		}
		before := report()
		if err := harden.Process(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("%s; %s\n", before, report())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestProcess reads PR_GET_DUMPABLE and RLIMIT_CORE in a child process
// before and after Process.
func TestProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	got := strings.TrimSpace(string(out))
	before, after, _ := strings.Cut(got, "; ")
	if after != "dumpable 0 core 0 0" {
		t.Errorf("after Process: got %q, want dumpable 0 core 0 0", after)
	}
	if strings.HasPrefix(before, "dumpable 0") {
		t.Errorf("before Process: got %q: the check cannot tell the difference", before)
	}
}

// TestPrograms runs each real program that holds secrets and, once it is
// blocked opening a FIFO given as its input (so past the start of main),
// reads its core limit from /proc/PID/limits and its dumpable flag from
// the owner of /proc/PID/status, which the kernel sets to root while a
// process is not dumpable. So that the owner tells, the program runs as
// nobody (65534) when the test runs as root.
func TestPrograms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries; skipped with -short")
	}
	dir, err := os.MkdirTemp("", "coffer-harden-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // nobody runs the binaries and opens the FIFOs
		t.Fatal(err)
	}
	bins := map[string]string{}
	for _, p := range []string{"coffer-client", "coffer-companion", "coffer-server"} {
		if bins[p], err = e2e.Build(dir, p, "../../"+p); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		bin  string
		args func(fifo string) []string
	}{
		{"coffer-client get", "coffer-client", func(f string) []string { return []string{"get", "--config", f} }},
		{"coffer-client exec", "coffer-client", func(f string) []string { return []string{"exec", "--config", f, "--", "true"} }},
		{"coffer-companion check", "coffer-companion", func(f string) []string { return []string{"check", f} }},
		{"coffer-server check", "coffer-server", func(f string) []string { return []string{"check", "--config", f} }},
		{"coffer-server inspect", "coffer-server", func(f string) []string { return []string{"inspect", "--config", f} }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fifo := filepath.Join(dir, fmt.Sprintf("in-%d", i))
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(fifo, 0o666); err != nil {
				t.Fatal(err)
			}
			checkProgram(t, exec.Command(bins[tt.bin], tt.args(fifo)...), fifo)
		})
	}
}

func checkProgram(t *testing.T, cmd *exec.Cmd, fifo string) {
	t.Helper()
	runAs := os.Geteuid()
	if runAs == 0 {
		runAs = 65534
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "XDG_STATE_HOME=" + filepath.Dir(fifo)}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The program blocks opening the FIFO until a writer comes, so it stays
	// alive while its /proc files are read; the properties are polled until
	// they hold (Process runs first thing in main, before that open) or a
	// deadline passes. Only then is the FIFO opened, to let it go on: a
	// program that refuses a FIFO after opening it then exits at once.
	proc := fmt.Sprintf("/proc/%d/", cmd.Process.Pid)
	var (
		st    syscall.Stat_t
		limit string
		err   error
	)
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-done:
			t.Fatalf("the program ended before it opened its input: %v\n%s", err, stderr.Bytes())
		default:
		}
		err = syscall.Stat(proc+"status", &st)
		if err == nil {
			limit, err = coreLimit(proc + "limits")
		}
		if err == nil && st.Uid == 0 && limit == "0 0" {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond) // polling the property itself, with a deadline
	}
	if w, werr := os.OpenFile(fifo, os.O_WRONLY, 0); werr == nil { // releases the program's open
		w.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 {
		t.Errorf("%sstatus is owned by uid %d, want 0: the process (uid %d) is dumpable", proc, st.Uid, runAs)
	}
	if limit != "0 0" {
		t.Errorf("core file size limit: got %q, want \"0 0\"", limit)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatal("the program did not end within a minute of its input's EOF")
	}
}

// coreLimit returns the soft and hard "Max core file size" of a
// /proc/PID/limits file.
func coreLimit(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Max core file size"); ok {
			fields := strings.Fields(rest)
			if len(fields) < 2 {
				break
			}
			return fields[0] + " " + fields[1], nil
		}
	}
	return "", fmt.Errorf("%s: no core file size line", path)
}
