package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// The systemd protocols used here are a dozen lines each, documented as
// stable interfaces (sd_notify(3), sd_listen_fds(3)), so they are written
// out rather than taken from go-systemd: STYLE.md admits no new
// dependency, and the daemon needs only readiness and socket activation.

// notifier sends state changes to systemd's NOTIFY_SOCKET. The zero value
// (no socket) does nothing.
type notifier struct {
	addr *net.UnixAddr
}

// newNotifier reads NOTIFY_SOCKET. An address starting with '@' is in
// the abstract namespace; Go's net package maps the '@' to the leading
// NUL byte itself. Anything else that is not an absolute path is an error.
func newNotifier(getenv func(string) string) (*notifier, error) {
	name := getenv("NOTIFY_SOCKET")
	if name == "" {
		return &notifier{}, nil
	}
	if name[0] != '/' && name[0] != '@' {
		return &notifier{}, fmt.Errorf("NOTIFY_SOCKET %q is neither an absolute path nor an abstract socket", name)
	}
	return &notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// notify sends one datagram of newline-separated assignments, such as
// "READY=1" or "STOPPING=1". A notifier without a socket returns nil.
func (n *notifier) notify(state string) error {
	if n == nil || n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notifying systemd: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notifying systemd: %w", err)
	}
	return nil
}

// listenFDsStart is the first file descriptor systemd passes
// (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// maxListenFDs bounds LISTEN_FDS: a unit listens on a handful of sockets.
const maxListenFDs = 64

// activationListeners returns the listeners systemd passed by socket
// activation, or nil when LISTEN_FDS is unset or LISTEN_PID names another
// process (the variables were inherited, not meant for us). It unsets
// the variables so nothing we start inherits them, and marks the
// descriptors close-on-exec.
func activationListeners(getenv func(string) string) ([]net.Listener, error) {
	fds, pid := getenv("LISTEN_FDS"), getenv("LISTEN_PID")
	if fds == "" {
		return nil, nil
	}
	if pid != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	n, err := strconv.Atoi(fds)
	if err != nil || n < 1 || n > maxListenFDs {
		return nil, fmt.Errorf("LISTEN_FDS=%q is not a count between 1 and %d", fds, maxListenFDs)
	}
	var ls []net.Listener
	for fd := listenFDsStart; fd < listenFDsStart+n; fd++ {
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "LISTEN_FD_"+strconv.Itoa(fd))
		l, err := net.FileListener(f)
		f.Close() // FileListener holds its own duplicate
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("socket activation: fd %d is not a listening stream socket: %w", fd, err)
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		return nil, errors.New("socket activation: no listeners")
	}
	return ls, nil
}
