package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockEnd ends a lock file's content, so that a reader never takes a
// file caught half written for a whole one.
const lockEnd = "end"

// pidFileName is the lock file in the data directory. Whoever holds its
// flock owns the store: the running server, or an admin command (inspect,
// audit, check) for the moment it reads. The kernel drops the lock when
// the process dies, so kill -9 leaves nothing stale; the content (pid,
// role, and for the server the version it serves) is only trusted while
// the lock is held.
const pidFileName = "coffer-server.pid"

// holder is what a lock file says about the process holding it.
type holder struct {
	pid     int
	role    string            // "serve", "inspect", "audit" or "check"
	version string            // "serial hash" of the served definition, if any
	defs    map[string]string // for a server of named definitions: "serial hash" of each served one
}

// errStoreInUse is returned when another process holds the lock.
type errStoreInUse struct{ h holder }

func (e *errStoreInUse) Error() string {
	if e.h.role == "serve" {
		return fmt.Sprintf("store in use by a running server (pid %d)", e.h.pid)
	}
	if e.h.pid > 0 {
		return fmt.Sprintf("store in use by coffer-server %s (pid %d)", e.h.role, e.h.pid)
	}
	return "store in use by another process"
}

// lockFile is a held lock on the data directory.
type lockFile struct {
	f *os.File
}

// lockDataDir creates dir (0700) if needed and takes the exclusive lock,
// writing our pid and role into the file. It returns *errStoreInUse when
// another process holds it.
func lockDataDir(dir, role string) (*lockFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, pidFileName), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h, _ := readHolder(dir)
			return nil, &errStoreInUse{h}
		}
		return nil, fmt.Errorf("locking the data directory: %w", err)
	}
	lf := &lockFile{f: f}
	if err := lf.write(role, ""); err != nil {
		lf.release()
		return nil, err
	}
	return lf, nil
}

// parseHolder parses a lock file's content (write).
func parseHolder(data []byte) (holder, error) {
	lines := strings.Split(string(data), "\n")
	if len(lines) == 4 && lines[3] == "" { // written by a server before the "end" line
		lines = append(lines[:3], lockEnd, "")
	}
	if len(lines) < 5 || lines[len(lines)-2] != lockEnd || lines[len(lines)-1] != "" {
		return holder{}, errors.New("lock file is being written")
	}
	pid, err := strconv.Atoi(lines[0])
	if err != nil || pid <= 0 {
		return holder{}, errors.New("lock file holds no pid")
	}
	h := holder{pid: pid, role: lines[1], version: lines[2]}
	for _, l := range lines[3 : len(lines)-2] {
		rest, ok := strings.CutPrefix(l, "def ")
		if !ok {
			continue
		}
		if name, v, ok := strings.Cut(rest, " "); ok {
			if h.defs == nil {
				h.defs = map[string]string{}
			}
			h.defs[name] = v
		}
	}
	return h, nil
}

// lockContent is what write puts in the lock file.
func lockContent(pid int, role, version string, defs ...[2]string) string {
	content := fmt.Sprintf("%d\n%s\n%s\n", pid, role, version)
	for _, d := range defs {
		content += "def " + d[0] + " " + d[1] + "\n"
	}
	return content + lockEnd + "\n"
}

// write replaces the file's content: pid, role, version, then a line
// "def NAME SERIAL HASH" for each of defs (NAME to "serial hash"), then
// "end". Readers that race with it see a short file and retry.
func (lf *lockFile) write(role, version string, defs ...[2]string) error {
	content := lockContent(os.Getpid(), role, version, defs...)
	if err := lf.f.Truncate(0); err != nil {
		return fmt.Errorf("writing the lock file: %w", err)
	}
	if _, err := lf.f.WriteAt([]byte(content), 0); err != nil {
		return fmt.Errorf("writing the lock file: %w", err)
	}
	return nil
}

// release removes the file while still holding the lock, then unlocks.
func (lf *lockFile) release() {
	if lf == nil || lf.f == nil {
		return
	}
	os.Remove(lf.f.Name())
	lf.f.Close()
	lf.f = nil
}

// runningServer reports the process holding dir's lock, if any: ok is
// false when nobody holds it (no server is running).
func runningServer(dir string) (h holder, ok bool, err error) {
	f, err := os.OpenFile(filepath.Join(dir, pidFileName), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return holder{}, false, nil
	}
	if err != nil {
		return holder{}, false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return holder{}, false, nil
	} else if !errors.Is(err, syscall.EWOULDBLOCK) {
		return holder{}, false, err
	}
	h, err = readHolder(dir)
	return h, err == nil, err
}

// readHolder parses the lock file, retrying a few times in case it is
// being rewritten.
func readHolder(dir string) (holder, error) {
	var err error
	for range 5 {
		var data []byte
		data, err = os.ReadFile(filepath.Join(dir, pidFileName))
		if err != nil {
			continue
		}
		var h holder
		if h, err = parseHolder(data); err == nil {
			return h, nil
		}
	}
	return holder{}, err
}
