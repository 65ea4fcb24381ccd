package e2e

import (
	"bufio"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// logWaitTimeout bounds Wait: a line that has not come by then is taken
// as missing.
const logWaitTimeout = 30 * time.Second

// Logs collects a process's stderr lines and lets tests wait for one.
// It is safe for concurrent use.
type Logs struct {
	mu    sync.Mutex
	cond  *sync.Cond
	lines []string
	eof   bool
}

// NewLogs reads r line by line until EOF, handing each line to record
// as well, if not nil.
func NewLogs(r io.Reader, record func(string)) *Logs {
	w := &Logs{}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if record != nil {
				record(sc.Text())
			}
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.cond.Broadcast()
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.eof = true
		w.cond.Broadcast()
		w.mu.Unlock()
	}()
	return w
}

// Wait returns the first line from index from on that matches re, and
// the index after it, or fails t when the output ends or 30 s pass.
func (w *Logs) Wait(t testing.TB, from int, re string) (string, int) {
	t.Helper()
	line, next, ok := w.WaitFor(from, re, logWaitTimeout)
	if !ok {
		t.Fatalf("no log line matching %q; log:\n%s", re, w.All())
	}
	return line, next
}

// WaitFor is Wait that reports a missing line instead of failing: ok is
// false when the output ends or d passes first.
func (w *Logs) WaitFor(from int, re string, d time.Duration) (line string, next int, ok bool) {
	rx := regexp.MustCompile(re)
	expired := false
	timer := time.AfterFunc(d, func() {
		w.mu.Lock()
		expired = true
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := from; ; i++ {
		for i >= len(w.lines) && !w.eof && !expired {
			w.cond.Wait()
		}
		if i >= len(w.lines) {
			return "", i, false
		}
		if rx.MatchString(w.lines[i]) {
			return w.lines[i], i + 1, true
		}
	}
}

// Since returns a copy of the lines from index from on.
func (w *Logs) Since(from int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string{}, w.lines[min(from, len(w.lines)):]...)
}

// Count returns the number of lines so far: the from of a later Wait.
func (w *Logs) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lines)
}

// All returns the lines so far, joined, for failure messages.
func (w *Logs) All() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}
