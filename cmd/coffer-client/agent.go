package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coffer-project/coffer/frame"
)

const agentUsage = `usage: coffer-client agent [flags]

Serve this client's secrets to systemd units as credentials. The agent
fetches the shard (retrying until a server answers, then on each new
serial, as --watch does; kept in memory only), listens on an AF_UNIX
socket created with mode 0600, and answers each connection from systemd
for a unit's LoadCredential=ID:SOCKET with the value of the secret named
ID, if the allow-list lets that unit have it, then closes. Anything else
(a unit or ID not allowed, an unknown ID, a peer that is not systemd)
gets a closed connection and a log line, never a value.

Options:
  --socket PATH     the socket to listen on (agent.socket in the config)
  --allow UNIT=NAME[,NAME...]
                    let units whose name matches the glob UNIT read the
                    secrets NAME; repeatable; replaces [agent.allow] of the
                    config file
  --watch-interval D  mean time between checks of the served serial;
                    default 1m (COFFER_WATCH_INTERVAL, [watch] interval)

SIGHUP checks the served serial at once; SIGINT or SIGTERM stops the
agent and removes the socket. Under systemd it sends READY=1 once it has
a shard to serve (Type=notify).

` + connectionUsage + `
Exit status: 0 after SIGINT or SIGTERM, 2 for a usage or configuration
error, 1 for any other failure (the socket cannot be created).

Example (/etc/coffer/client.toml):
  [agent]
  socket = "/run/coffer/credentials.sock"
  [agent.allow]
  "app.service" = ["db.password", "api.token"]
  "worker@*.service" = ["queue.password"]

and in app.service:
  LoadCredential=db.password:/run/coffer/credentials.sock
`

// Limits of the agent's connections.
const (
	// agentConnTimeout bounds one connection, the wait for the first
	// shard included, so a stuck peer cannot hold a slot for ever.
	agentConnTimeout = 30 * time.Second
	// maxAgentConns bounds connections served at once; more are closed
	// at once (systemd opens one per credential of a starting unit).
	maxAgentConns = 64
	// maxUnitNameBytes is systemd's limit of a unit name (UNIT_NAME_MAX).
	maxUnitNameBytes = 255
)

// unitAllowList maps unit name globs (path.Match) to the secret names that
// matching units may read.
type unitAllowList map[string][]string

// allowed reports whether unit may read the secret id: some glob that
// matches unit lists id.
func (a unitAllowList) allowed(unit, id string) bool {
	for glob, names := range a {
		if ok, _ := path.Match(glob, unit); ok && slices.Contains(names, id) {
			return true
		}
	}
	return false
}

// unitAllowFlag is the repeatable --allow UNIT=NAME[,NAME...].
type unitAllowFlag unitAllowList

func (a unitAllowFlag) String() string { return "" }

func (a unitAllowFlag) Set(s string) error {
	glob, names, ok := strings.Cut(s, "=")
	if !ok || glob == "" || names == "" {
		return errors.New("want UNIT=NAME[,NAME...]")
	}
	if _, err := path.Match(glob, ""); err != nil || strings.Contains(glob, "/") {
		return fmt.Errorf("bad unit pattern %q", glob)
	}
	for _, n := range strings.Split(names, ",") {
		a[glob] = append(a[glob], strings.TrimSpace(n))
	}
	return nil
}

// checkAllow checks every secret name of the allow-list.
func checkAllow(a unitAllowList) error {
	for glob, names := range a {
		for _, n := range names {
			if err := frame.ValidName(n); err != nil {
				return fmt.Errorf("allow-list %q: bad secret name %q", glob, n)
			}
		}
	}
	return nil
}

// parsePeer parses the address that systemd binds its socket to before
// it connects for LoadCredential=: an abstract address, which Go shows
// with '@' for the leading NUL, of the form @RANDOM/unit/UNIT/ID
// (systemd.exec(5), "LoadCredential="). UNIT and ID hold no '/'.
func parsePeer(addr string) (unit, id string, err error) {
	rest, ok := strings.CutPrefix(addr, "@")
	if !ok {
		return "", "", errors.New("not an abstract address: not systemd")
	}
	random, rest, ok := strings.Cut(rest, "/unit/")
	if !ok || random == "" || strings.ContainsRune(random, '/') {
		return "", "", errors.New("no /unit/ part: not systemd")
	}
	unit, id, ok = strings.Cut(rest, "/")
	switch {
	case !ok || unit == "" || id == "" || strings.ContainsRune(id, '/'):
		return "", "", errors.New("want /unit/UNIT/ID")
	case len(unit) > maxUnitNameBytes || !validUnitName(unit):
		return "", "", errors.New("bad unit name")
	}
	return unit, id, nil
}

// validUnitName accepts the characters of systemd unit names.
func validUnitName(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":-_.\\@", c) >= 0) {
			return false
		}
	}
	return true
}

// agent serves the shard in memory to systemd. Its shard is its own copy,
// replaced whole on a new serial, with the old values cleared.
type agent struct {
	e     *env
	allow unitAllowList
	ready chan struct{}   // closed once the first shard is in
	done  <-chan struct{} // closed at SIGINT or SIGTERM

	mu    sync.RWMutex
	shard frame.Shard
}

func (a *agent) logf(format string, args ...any) {
	fmt.Fprintf(a.e.stderr, "coffer-client: agent: "+format+"\n", args...)
}

// set replaces the shard with a copy of s.
func (a *agent) set(s frame.Shard) {
	cp := make(frame.Shard, len(s))
	for n, v := range s {
		v.Text = append([]byte(nil), v.Text...)
		cp[n] = v
	}
	a.mu.Lock()
	old := a.shard
	a.shard = cp
	a.mu.Unlock()
	clearShard(old)
	select {
	case <-a.ready:
	default:
		close(a.ready)
	}
}

// value returns a copy of the text of secret id, for the caller to clear.
func (a *agent) value(id string) ([]byte, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	v, ok := a.shard[id]
	if !ok {
		return nil, false
	}
	return v.AppendText(nil), true
}

func (e *env) agent(args []string) error {
	var c commonFlags
	var socket string
	var interval watchFlags
	allow := unitAllowFlag{}
	fs := e.newFlagSet("agent", agentUsage)
	c.register(fs)
	fs.StringVar(&socket, "socket", "", "")
	fs.Var(allow, "allow", "")
	fs.DurationVar(&interval.interval, "watch-interval", 0, "")
	if err := fs.Parse(args); err != nil {
		return parseErr(err)
	}
	if fs.NArg() > 0 {
		return usageErr("agent takes no arguments")
	}
	s, err := e.open(fs, &c)
	if err != nil {
		return err
	}
	if interval.interval, err = interval.resolveInterval(fs, s, e.getenv); err != nil {
		return err
	}
	if socket == "" {
		socket = s.file.Agent.Socket
	}
	if socket == "" {
		return usageErr("no socket: give --socket or agent.socket in the config file")
	}
	if len(allow) == 0 {
		allow = unitAllowFlag(s.file.Agent.Allow)
	}
	if err := checkAllow(unitAllowList(allow)); err != nil {
		return configErr(err)
	}
	a := &agent{e: e, allow: unitAllowList(allow), ready: make(chan struct{})}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a.done = ctx.Done()
	l, err := listenPrivate(socket)
	if err != nil {
		return err
	}
	defer l.Close()
	a.logf("listening on %s; %d unit patterns allowed", socket, len(allow))
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go a.fetchAndWatch(ctx, s, interval.interval, hup)
	a.serve(l)
	a.logf("stopped; removed %s", socket)
	return nil
}

// fetchAndWatch gets the first shard, retrying with backoff until a
// server answers (or the cache may be used), then watches for new serials.
func (a *agent) fetchAndWatch(ctx context.Context, s *session, interval time.Duration, hup <-chan os.Signal) {
	var first *shard
	for fails := 0; first == nil; {
		sh, err := a.e.fetchShard(s, nil)
		if err == nil {
			first = sh
			break
		}
		fails++
		d := watchDelay(interval, fails, 0.5)
		a.logf("no shard yet; retrying in about %s: %v", d.Round(time.Millisecond), err)
		t := time.NewTimer(watchDelay(interval, fails, rand.Float64()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-hup:
			t.Stop()
		case <-t.C:
		}
	}
	if err := a.e.commit(s, first); err != nil {
		a.logf("warning: %v", err)
	}
	a.set(first.values)
	w := newWatcher(a.e, s, nil, interval, first)
	a.logf("serving serial %d: %d secrets; checking every %s", w.serial, len(first.values), interval)
	notifyReady()
	w.apply = func(sh *shard) error {
		a.set(sh.values)
		w.logf("serial %d (was %d): serving %d secrets", sh.res.Version.Serial, w.serial, len(sh.values))
		return nil
	}
	w.poke = hup
	w.run(ctx)
}

// serve accepts connections until l is closed, at most maxAgentConns at
// once.
func (a *agent) serve(l *net.UnixListener) {
	slots := make(chan struct{}, maxAgentConns)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			a.logf("accept: %v", err)
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			a.logf("refused a connection: %d connections already open", maxAgentConns)
			conn.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			a.handle(conn)
		}()
	}
}

// handle answers one connection: check the peer's credentials and
// address, the allow-list and the shard, then write the value and close.
// Every refusal is a closed connection and one log line without a value.
func (a *agent) handle(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(agentConnTimeout))
	uid, err := peerUID(conn)
	if err != nil {
		a.logf("refused a connection: %v", err)
		return
	}
	if uid != 0 && uid != os.Geteuid() {
		a.logf("refused a connection from uid %d: only root (systemd) is served", uid)
		return
	}
	peer := ""
	if ra, ok := conn.RemoteAddr().(*net.UnixAddr); ok && ra != nil {
		peer = ra.Name
	}
	unit, id, err := parsePeer(peer)
	if err != nil {
		a.logf("refused a connection from %q: %v", peer, err)
		return
	}
	if !a.allow.allowed(unit, id) {
		a.logf("refused unit %q credential %q: not in the allow-list", unit, id)
		return
	}
	select {
	case <-a.ready:
	default:
		a.logf("unit %q credential %q: waiting for the first shard", unit, id)
	}
	t := time.NewTimer(agentConnTimeout)
	defer t.Stop()
	select {
	case <-a.ready:
	case <-t.C:
		a.logf("refused unit %q credential %q: no shard fetched yet", unit, id)
		return
	case <-a.done:
		a.logf("refused unit %q credential %q: stopping before a shard was fetched", unit, id)
		return
	}
	b, ok := a.value(id)
	if !ok {
		a.logf("refused unit %q credential %q: no such secret in this client's shard", unit, id)
		return
	}
	_, err = conn.Write(b)
	clear(b)
	if err != nil {
		a.logf("unit %q credential %q: writing: %v", unit, id, err)
		return
	}
	a.logf("served unit %q credential %q (%d bytes)", unit, id, len(b))
}

// peerUID reads the uid of the connecting process (SO_PEERCRED).
func peerUID(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	return int(cred.Uid), nil
}

// listenPrivate creates the socket with mode 0600 from the start (umask
// 0177 around bind, so there is no moment it is open to others). A
// leftover socket that nothing listens on is removed first; anything
// else at path is refused.
func listenPrivate(p string) (*net.UnixListener, error) {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("socket %s: %w", p, bareErr(err))
	case fi.Mode()&fs.ModeSocket == 0:
		return nil, fmt.Errorf("socket %s: exists and is not a socket", p)
	default:
		if c, err := net.Dial("unix", p); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another agent is listening on it", p)
		}
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("socket %s: removing the old socket: %w", p, bareErr(err))
		}
	}
	old := syscall.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", p, err)
	}
	return l, nil
}

// notifyReady tells systemd the agent serves (Type=notify), if it runs
// under a NOTIFY_SOCKET.
func notifyReady() {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte("READY=1"))
}
