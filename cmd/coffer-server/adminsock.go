package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The admin socket (docs/server.md, "Admin socket"): a Unix socket that
// only root, the server's own uid and, if configured, one group can
// reach. The file is 0600 (0660 with a group), and each peer's uid and
// gid are checked again with SO_PEERCRED, so a socket that a mistake
// left readable still answers no one else.

// peerPolicy decides who may use the admin socket.
type peerPolicy struct {
	self     uint32 // the server's uid
	group    uint32 // the admin group's gid, if hasGroup
	hasGroup bool
	// groupsOf returns a uid's supplementary groups; nil means none known.
	groupsOf func(uid uint32) []uint32
}

// allowed is the decision, a function of the peer's credentials: root,
// the server's uid, or a member of the admin group (primary or
// supplementary).
func (p peerPolicy) allowed(uid, gid uint32) bool {
	switch {
	case uid == 0, uid == p.self:
		return true
	case !p.hasGroup:
		return false
	case gid == p.group:
		return true
	case p.groupsOf != nil:
		return slices.Contains(p.groupsOf(uid), p.group)
	}
	return false
}

// newPeerPolicy resolves the admin group (a name or a number) for this
// process.
func newPeerPolicy(group string) (peerPolicy, error) {
	p := peerPolicy{self: uint32(os.Getuid()), groupsOf: userGroups}
	if group == "" {
		return p, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		if g, err = user.LookupGroupId(group); err != nil {
			return p, withHint(fmt.Errorf("admin_group %q: no such group", group),
				"name a group in /etc/group, or its number")
		}
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return p, fmt.Errorf("admin_group %q: gid %q is not a number", group, g.Gid)
	}
	p.group, p.hasGroup = uint32(gid), true
	return p, nil
}

// userGroups returns uid's supplementary groups from the user database.
func userGroups(uid uint32) []uint32 {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var out []uint32
	for _, s := range ids {
		if n, err := strconv.ParseUint(s, 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	return out
}

// listenAdmin creates the admin socket at path with no moment at which
// anyone else could connect: it binds in a fresh 0700 directory beside
// path, sets the mode (and group), then renames it into place. A stale
// socket left by a crash is replaced; anything else at path, or a socket
// another server answers on, is an error.
func listenAdmin(path string, policy peerPolicy) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, withHint(fmt.Errorf("admin socket %s exists and is not a socket", path),
				"move it away, or set admin_socket (--admin-socket) to another path")
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, withHint(fmt.Errorf("admin socket %s: another server answers on it", path),
				"stop it, or set admin_socket (--admin-socket) to another path")
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".adm")
	if err != nil {
		return nil, withHint(fmt.Errorf("admin socket: %w", err), "the socket's directory must exist and be writable by the server")
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	mode := fs.FileMode(0o600)
	if policy.hasGroup {
		mode = 0o660
		if err := os.Chown(bound, -1, int(policy.group)); err != nil {
			l.Close()
			return nil, withHint(fmt.Errorf("admin socket: giving it to admin_group: %w", err),
				"the server must be a member of admin_group (SupplementaryGroups= under systemd)")
		}
	}
	if err := os.Chmod(bound, mode); err == nil {
		err = os.Rename(bound, path)
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return l, nil
}

// adminServer serves the admin socket. Close stops it and waits for its
// connections, closing those that follow the audit.
type adminServer struct {
	l      *net.UnixListener
	path   string
	policy peerPolicy
	log    *slog.Logger
	h      adminHandler
	sem    chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// adminHandler answers one checked request, writing response lines with
// send; it returns when the answer is complete.
type adminHandler func(req adminRequest, send func(*adminResponse) error, done <-chan struct{}) error

func newAdminServer(l *net.UnixListener, path string, policy peerPolicy, log *slog.Logger, h adminHandler) *adminServer {
	return &adminServer{l: l, path: path, policy: policy, log: log, h: h,
		sem: make(chan struct{}, maxAdminConns), conns: map[net.Conn]struct{}{}}
}

// serve accepts until Close.
func (a *adminServer) serve(done <-chan struct{}) {
	for {
		c, err := a.l.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				a.log.Warn("admin socket: accept failed; admin commands stop", "err", err)
			}
			return
		}
		if !a.track(c) {
			c.Close()
			return
		}
		go func() {
			defer a.untrack(c)
			a.handle(c, done)
		}()
	}
}

func (a *adminServer) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.conns[c] = struct{}{}
	a.wg.Add(1)
	return true
}

func (a *adminServer) untrack(c net.Conn) {
	c.Close()
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
	a.wg.Done()
}

// close stops accepting, removes the socket, closes the connections and
// waits for their goroutines.
func (a *adminServer) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.closed = true
	a.l.Close()
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
	os.Remove(a.path)
}

// handle checks the peer, reads one request and answers it.
func (a *adminServer) handle(c *net.UnixConn, done <-chan struct{}) {
	send := func(r *adminResponse) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		c.SetWriteDeadline(time.Now().Add(adminWriteTimeout))
		_, err = c.Write(append(b, '\n'))
		return err
	}
	select {
	case a.sem <- struct{}{}:
		defer func() { <-a.sem }()
	default:
		send(&adminResponse{Error: "admin: busy: too many admin connections"})
		return
	}
	uid, gid, err := peerCred(c)
	if err != nil || !a.policy.allowed(uid, gid) {
		a.log.Warn("admin socket: peer refused", "uid", uid, "gid", gid, "err", err)
		send(&adminResponse{Error: "admin: permission denied"})
		return
	}
	c.SetReadDeadline(time.Now().Add(adminRequestTimeout))
	line, err := readAdminLine(bufio.NewReaderSize(c, 256))
	if err == nil {
		var req adminRequest
		if req, err = parseAdminRequest(line); err == nil {
			c.SetReadDeadline(time.Time{})
			a.log.Debug("admin request", "cmd", req.Cmd, "uid", uid)
			if err = a.h(req, send, peerDone(c, done)); err == nil {
				return
			}
		}
	}
	send(&adminResponse{Error: err.Error()})
}

// peerDone returns a channel closed when done is, or when the peer
// closes its end (or sends more, which the protocol does not allow), so
// that an audit follower that left frees its slot without waiting for
// the next record. Both goroutines end once c is closed.
func peerDone(c net.Conn, done <-chan struct{}) <-chan struct{} {
	stop := make(chan struct{})
	var once sync.Once
	end := func() { once.Do(func() { close(stop) }) }
	go func() {
		var b [1]byte
		c.Read(b[:])
		end()
	}()
	go func() {
		select {
		case <-done:
			end()
		case <-stop:
		}
	}()
	return stop
}

// readAdminLine reads one line of at most maxAdminRequestBytes.
func readAdminLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxAdminRequestBytes+1 {
			return nil, fmt.Errorf("%w: longer than %d bytes", errAdminRequest, maxAdminRequestBytes)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		}
		return nil, fmt.Errorf("%w: no request line", errAdminRequest)
	}
}

// peerCred returns the connected peer's uid and gid (SO_PEERCRED).
func peerCred(c *net.UnixConn) (uid, gid uint32, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if cerr != nil {
		return 0, 0, fmt.Errorf("reading the peer's credentials: %w", cerr)
	}
	return cred.Uid, cred.Gid, nil
}
