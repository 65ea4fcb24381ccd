package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopTimeout bounds how long a child gets to exit after SIGTERM before
// it is killed.
const stopTimeout = 5 * time.Second

// child is a process the benchmark started. Its stdin is a pipe that the
// parent holds open: the baseline servers and the loadgen exit when it
// closes.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	pipe   *os.File      // stdout's read end, closed by stop
	done   chan struct{} // closed when the process has been waited for
	err    error         // Wait's result, valid after done
}

// children tracks every process the benchmark started so that all of
// them are stopped at the end, on error and on Ctrl-C.
type children struct {
	mu   sync.Mutex
	list []*child
}

// start starts a child with piped stdin and stdout and stderr appended to
// logPath. The child is killed if this process dies (Pdeathsig).
func (cs *children) start(name, logPath string, env []string, path string, args ...string) (*child, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// Not StdoutPipe: Wait closes that as soon as the process exits, and
	// a child's last line could be lost before we read it.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = pw
	c := &child{name: name, cmd: cmd, stdin: stdin, stdout: bufio.NewReader(pr), pipe: pr, done: make(chan struct{})}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	cs.list = append(cs.list, c)
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// pid returns the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// readLine reads one line of the child's stdout, giving up when ctx ends
// or after timeout; the child is killed in that case, since its output
// can no longer be trusted to line up.
func (c *child) readLine(ctx context.Context, timeout time.Duration) (string, error) {
	type line struct {
		s   string
		err error
	}
	ch := make(chan line, 1)
	go func() {
		s, err := c.stdout.ReadString('\n')
		ch <- line{strings.TrimSpace(s), err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l := <-ch:
		if l.err != nil {
			select {
			case <-c.done:
			case <-time.After(stopTimeout):
				c.kill()
			}
			return "", fmt.Errorf("%s closed its output (exit: %v) before answering", c.name, c.err)
		}
		return l.s, nil
	case <-ctx.Done():
		c.kill()
		return "", ctx.Err()
	case <-t.C:
		c.kill()
		return "", fmt.Errorf("%s did not answer within %v", c.name, timeout)
	}
}

func (c *child) kill() {
	c.cmd.Process.Kill()
	<-c.done
}

// stop asks the child to exit (stdin closed, SIGTERM), then kills it
// after stopTimeout. It returns the exit status.
func (c *child) stop() error {
	defer c.pipe.Close()
	c.stdin.Close()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		c.kill()
		return fmt.Errorf("%s ignored SIGTERM for %v and was killed", c.name, stopTimeout)
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) && ee.Exited() {
		return fmt.Errorf("%s exited with status %d", c.name, ee.ExitCode())
	}
	return nil
}

// stopAll stops every child still running, concurrently.
func (cs *children) stopAll() {
	cs.mu.Lock()
	list := cs.list
	cs.list = nil
	cs.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range list {
		if c.exited() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop()
		}()
	}
	wg.Wait()
}
