package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/config"
)

// adminDialTimeout bounds connecting to the admin socket.
const adminDialTimeout = 2 * time.Second

// errNoAdmin reports that nothing listens on the admin socket: the file
// is absent or refuses connections (a socket left by a crash).
var errNoAdmin = errors.New("no server answers on the admin socket")

// dialAdmin connects to the admin socket of cfg's server. It returns
// errNoAdmin (wrapped) when no server listens there.
func dialAdmin(cfg *config.Server) (*net.UnixConn, error) {
	path := cfg.AdminSocketPath()
	c, err := net.DialTimeout("unix", path, adminDialTimeout)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (%s)", errNoAdmin, path)
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, withHint(fmt.Errorf("admin socket %s: permission denied", path),
				"run as root, as the server's user, or as a member of its admin_group")
		}
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return c.(*net.UnixConn), nil
}

// adminCall sends req on c and calls each for every response line until
// each returns true (the answer is complete) or an error; a line with
// Error ends the call with that error. timeout bounds the whole call (0:
// none, for audit --follow). c is closed.
func adminCall(c *net.UnixConn, req adminRequest, timeout time.Duration, each func(*adminResponse) (bool, error)) error {
	defer c.Close()
	if timeout > 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	// A server that refuses the peer answers and closes at once, so a
	// failed write is reported only if no answer can be read.
	_, werr := c.Write(append(b, '\n'))
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 64<<10), maxAdminResponseBytes)
	for sc.Scan() {
		var r adminResponse
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("admin socket: a response line is not JSON")
		}
		if r.Error != "" {
			return fmt.Errorf("server: %s", r.Error)
		}
		done, err := each(&r)
		if err != nil || done {
			return err
		}
	}
	if werr != nil {
		return fmt.Errorf("admin socket: sending the request: %w", werr)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("admin socket: reading the answer: %w", err)
	}
	return fmt.Errorf("admin socket: %w before the answer was complete", io.ErrUnexpectedEOF)
}

// adminRoute is where an admin command goes, decided from the admin
// socket and the data directory's lock.
type adminRoute int

const (
	routeSocket  adminRoute = iota // a running server answers
	routeStore                     // no server runs: open the store
	routeRefused                   // a server runs but its socket does not answer
)

// decideRoute is the choice: the socket if it answered; the store if no
// server holds the lock; otherwise an error, since the store is locked
// and the server cannot be asked.
func decideRoute(dialed bool, dialErr error, serverRuns bool) adminRoute {
	switch {
	case dialed:
		return routeSocket
	case errors.Is(dialErr, errNoAdmin) && !serverRuns:
		return routeStore
	}
	return routeRefused
}

// connectAdmin dials the admin socket and decides the route. With
// routeSocket the connection is returned; with routeRefused, the error
// says why.
func connectAdmin(cfg *config.Server) (*net.UnixConn, adminRoute, error) {
	c, err := dialAdmin(cfg)
	h, runs, lerr := runningServer(cfg.DataDir)
	runs = runs && lerr == nil && h.role == "serve"
	switch decideRoute(err == nil, err, runs) {
	case routeSocket:
		return c, routeSocket, nil
	case routeStore:
		return nil, routeStore, nil
	}
	if errors.Is(err, errNoAdmin) {
		err = withHint(fmt.Errorf("the server runs (pid %d) but %w", h.pid, err),
			"pass the --admin-socket, --data-dir or --config the server runs with",
			"a server older than the admin socket reloads on SIGHUP: kill -HUP "+fmt.Sprint(h.pid))
	}
	return nil, routeRefused, err
}
