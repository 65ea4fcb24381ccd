package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/shard"
)

const serveUsage = `Usage: coffer-server [serve] [options]

Run the daemon: bind the listen address, open the store, load the sealed
definition if it is newer than the stored one, and serve coffer/2 until
SIGTERM or SIGINT.
'coffer-server reload' (through the admin socket, waiting for the outcome)
or SIGHUP loads the sealed definition again; a definition URL is also
polled every --definition-poll. The admin socket answers status, reload,
inspect and audit; --metrics-listen serves /metrics (docs/server.md).
Under systemd it reports readiness (Type=notify) and accepts a socket
from socket activation (coffer-server.socket), which replaces --listen.

` + configUsage + `
Profiling:
  --cpuprofile FILE          write a pprof CPU profile to FILE (created 0600),
                             from start-up until the server stops

Examples:
  coffer-server --config /etc/coffer/server.toml
  coffer-server serve --key server.key --data-dir ./data --definition secrets.sealed \
      --trusted cofferpk1... --listen 127.0.0.1:9187
`

func cmdServe(args []string, stdout, stderr io.Writer) error {
	// First of all: a SIGHUP's default action kills the process, and
	// opening the store and loading the definition can take seconds.
	sigs := notifySignals()
	defer signal.Stop(sigs.ch)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	build := configFlags(fs)
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to FILE until the server stops")
	if err := parseFlags(fs, args, stderr, serveUsage); err != nil {
		return err
	}
	// First, before any key or secret is in memory.
	if err := harden(); err != nil {
		return err
	}
	// The daemon never writes a heap profile; sampling the allocations
	// of a load left the profiler's records, about 1.5 MiB, resident for
	// good (docs/server.md, "Memory").
	runtime.MemProfileRate = 0
	cfg, err := build(os.Getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log)
	if *cpuprofile != "" {
		stop, err := startCPUProfile(*cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := serve(cfg, log, os.Getenv, sigs); err != nil {
		var ue *usageError
		if !errors.As(err, &ue) { // a usage error is printed once, below
			log.Error("coffer-server stopped on an error", "err", err)
		}
		return err
	}
	return nil
}

// startCPUProfile writes a pprof CPU profile to path until stop is
// called: the benchmark (cmd/coffer-bench -cpuprofile) profiles the real
// server under load with it. A profile holds stack samples, no data.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// newLogger returns the daemon's logger: one line per event on w.
func newLogger(w io.Writer, c config.ServerLog) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // checked by config.Validate
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseTrusted parses the trusted authors' signing keys; at least one is
// needed. A key is never printed: a secret key pasted there is named as
// such by coffer.ErrSecretKeyGiven.
func parseTrusted(keys []string) ([]coffer.AuthorPublicKey, error) {
	if len(keys) == 0 {
		return nil, withHint(errors.New("no trusted author keys configured"),
			"set trusted = [\"cofferauthorpk1...\"] in the config file, or pass --trusted",
			"the key is printed by 'coffer-companion pubkey author.key'")
	}
	out := make([]coffer.AuthorPublicKey, 0, len(keys))
	for i, s := range keys {
		k, err := coffer.ParseAuthorPublicKey(s)
		if err != nil {
			return nil, withHint(fmt.Errorf("trusted key %d: %w", i+1, err),
				"copy the key again from 'coffer-companion pubkey author.key'")
		}
		out = append(out, k)
	}
	return out, nil
}

// loadKey loads the server key file with a hint for the usual mistakes.
func loadKey(path string) (*coffer.PrivateKey, error) {
	k, err := coffer.LoadKeyFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, withHint(fmt.Errorf("loading the server key: %w", err),
				"create it with 'coffer-server keygen -o "+path+"' (or 'coffer-companion keygen'),",
				"then give its public key to the companion that seals definitions")
		}
		if errors.Is(err, coffer.ErrKeyFileMode) {
			return nil, fmt.Errorf("loading the server key: %w", err) // the error names the fix
		}
		return nil, withHint(fmt.Errorf("loading the server key: %w", err),
			"the key file holds one coffersk1... line, as written by 'coffer-server keygen'")
	}
	return k, nil
}

// openStore opens the store in dir with keys derived from key. With
// repair, a store Badger cannot open is quarantined and reopened empty,
// so that it is rebuilt from the kept sealed file.
func openStore(dir string, key *coffer.PrivateKey, cfg *config.Server, log *slog.Logger, repair bool) (*shard.Store, error) {
	sk, err := coffer.DeriveStoreKeys(key)
	if err != nil {
		return nil, err
	}
	defer sk.Clear()
	opt := shard.Options{Logger: log, AuditMaxRecords: cfg.Audit.MaxRecords, AuditMaxAge: cfg.Audit.MaxAge}
	st, err := shard.Open(dir, &sk.Badger, &sk.Seal, opt)
	if errors.Is(err, shard.ErrCorrupt) && repair {
		log.Error("the store does not open; moving it aside to rebuild it from the kept sealed file", "err", err)
		moved, qerr := shard.Quarantine(dir)
		if qerr != nil {
			return nil, qerr
		}
		log.Warn("corrupt store quarantined", "path", moved)
		st, err = shard.Open(dir, &sk.Badger, &sk.Seal, opt)
	}
	if err != nil {
		return nil, storeHint(err, dir)
	}
	return st, nil
}

// storeHint adds the operator's next step to a store error.
func storeHint(err error, dir string) error {
	switch {
	case errors.Is(err, shard.ErrWrongKey):
		return withHint(fmt.Errorf("opening the store: %w", err),
			"the key file is not the one the data directory "+dir+" was created with",
			"use that key, or move the directory aside and let the server rebuild from the sealed definition")
	case errors.Is(err, shard.ErrBadState):
		return withHint(fmt.Errorf("opening the store: %w", err),
			"the store itself opened with this key, so the state file is damaged (or was written with another key):",
			"move it aside only if the store and kept sealed file are the ones you want; see docs/server.md, \"Recovery\"")
	case errors.Is(err, shard.ErrCorrupt):
		return withHint(fmt.Errorf("opening the store: %w", err),
			"'coffer-server serve' quarantines a corrupt store and rebuilds it from the kept sealed file")
	case errors.Is(err, shard.ErrLocked):
		return withHint(fmt.Errorf("opening the store: %w", err), "another process has "+dir+" open")
	}
	return fmt.Errorf("opening the store: %w", err)
}

// newServer maps the configuration onto coffer.Server. Each audit record
// goes to the store and to the audit followers; each session's end is
// counted in live.
func newServer(cfg *config.Server, key *coffer.PrivateKey, st *shard.Store, log *slog.Logger, live *liveStats, feed *auditFeed) *coffer.Server {
	l := cfg.Limits
	return &coffer.Server{
		Key:    key,
		Logger: log,
		Audit: func(e coffer.AuditEvent) {
			rec := shard.AuditRecord{Time: e.Time, Client: e.Client, Name: e.Name, Remote: e.Remote,
				Serial: e.Serial, Values: e.Values, Outcome: e.Outcome}
			st.Audit(rec)
			live.auditHanded.Add(1)
			feed.publish(rec)
		},
		Observe:            live.observe,
		MaxConns:           l.MaxConnections,
		HelloTimeout:       l.HelloTimeout,
		GetTimeout:         l.HandshakeTimeout,
		SessionTimeout:     l.SessionTimeout,
		ByeTimeout:         l.ByeTimeout,
		FailPerIPLimit:     limit(l.FailedAuthPerAddress),
		UnknownLimit:       limit(l.UnknownClients),
		UnknownPerIPLimit:  limit(l.UnknownClientsPerAddress),
		ClientLimit:        limit(l.PerClient),
		MaxHandshakesPerIP: l.MaxHandshakesPerAddress,
	}
}

// limit maps a configured rate onto coffer.Limit. A zero Rate turns the
// limit off (config.ServerRate), which coffer.Limit spells as a negative
// Rate; its own zero Rate would mean the default.
func limit(r config.ServerRate) coffer.Limit {
	if r.Rate == 0 {
		return coffer.Limit{Rate: -1}
	}
	return coffer.Limit{Rate: r.Rate, Burst: r.Burst}
}

// signals queues the signals the server acts on from the start of
// cmdServe. During start-up they wait here: SIGTERM or SIGINT stops the
// server between steps, and a SIGHUP is acted on once it is running.
type signals struct {
	ch  chan os.Signal
	hup bool // a SIGHUP came during start-up: reload once running
}

func notifySignals() *signals {
	s := &signals{ch: make(chan os.Signal, 4)}
	signal.Notify(s.ch, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	return s
}

// stopping reports whether a SIGTERM or SIGINT came during start-up,
// remembering any SIGHUP for later.
func (s *signals) stopping(log *slog.Logger) bool {
	for {
		select {
		case sig := <-s.ch:
			if sig == syscall.SIGHUP {
				s.hup = true
				continue
			}
			log.Info("stopping during start-up", "signal", sig.String())
			return true
		default:
			return false
		}
	}
}

// definitionsDir holds the stores of the named definitions, one
// directory each, inside the data directory.
const definitionsDir = "definitions"

// definitionDir is the store directory of the definition named name:
// the data directory itself for the default one (where a server with one
// definition has always kept it), definitions/NAME for the others. Names
// are plain (config's rule), so the path stays inside dataDir.
func definitionDir(dataDir, name string) string {
	if name == config.DefaultDefinitionName {
		return dataDir
	}
	return filepath.Join(dataDir, definitionsDir, name)
}

// strayStores returns the names of the definition stores in dataDir that
// no definition in defs names: a definition removed from the config
// leaves its store (its last definition's values, encrypted, and its
// serial chain) in definitions/NAME until the operator removes it. The
// server neither serves nor deletes it: putting the definition back
// serves it again, with its rollback protection intact.
func strayStores(dataDir string, defs []config.ServerDefinition) []string {
	entries, err := os.ReadDir(filepath.Join(dataDir, definitionsDir))
	if err != nil {
		return nil
	}
	var stray []string
	for _, e := range entries {
		if !e.IsDir() || slices.ContainsFunc(defs, func(d config.ServerDefinition) bool { return d.Name == e.Name() }) {
			continue
		}
		stray = append(stray, e.Name())
	}
	return stray
}

// strayHint is what the server and check say about a stray store.
const strayHint = "its store keeps the last definition's values (encrypted) until the directory is removed; put the definition back in the config to serve it again"

// serve runs the daemon until SIGTERM or SIGINT.
func serve(cfg *config.Server, log *slog.Logger, getenv func(string) string, sigs *signals) error {
	defs := cfg.DefinitionList()
	trusted := make([][]coffer.AuthorPublicKey, len(defs))
	for i, d := range defs {
		t, err := parseTrusted(d.Trusted)
		if err != nil {
			if len(defs) > 1 {
				err = fmt.Errorf("definition %q: %w", d.Name, err)
			}
			return asUsage("serve", err)
		}
		trusted[i] = t
	}
	key, err := loadKey(cfg.KeyFile)
	if err != nil {
		return err
	}
	sd, err := newNotifier(getenv)
	if err != nil {
		log.Warn("systemd notification disabled", "err", err)
	}
	// Bind first: a port in use, a bad address or an admin socket in the
	// way stops the server before it creates a store or trusts a first
	// definition (docs/server.md, "Starting").
	b, err := bindPublic(cfg, getenv, log)
	if err != nil {
		return err
	}
	defer b.close()
	lock, err := lockDataDir(cfg.DataDir, "serve")
	if err != nil {
		return lockHint(err)
	}
	defer lock.release()
	if err := b.bindAdmin(cfg, log); err != nil {
		return err
	}
	// The data directory's own store holds the audit trail and the
	// default definition; each named definition has a store of its own,
	// so a load or a crash in one never touches another's files.
	root, err := openStore(cfg.DataDir, key, cfg, log, true)
	if err != nil {
		return err
	}
	stores := []*shard.Store{root}
	var lds []*loader
	var unserved []definitionStatus // definitions whose store did not open
	closeStores := func() {
		for _, ld := range lds {
			ld.drops.Wait()
		}
		for _, st := range stores {
			if err := st.Close(); err != nil {
				log.Error("closing the store", "dir", st.Dir(), "err", err)
			}
		}
	}
	for _, name := range strayStores(cfg.DataDir, defs) {
		log.Warn("a stored definition is not in the config; "+strayHint, "definition", name, "dir", definitionDir(cfg.DataDir, name))
	}
	live, feed := newLiveStats(time.Now()), &auditFeed{}
	srv := newServer(cfg, key, root, log, live, feed)
	for i, d := range defs {
		dlog := log
		if d.Name != config.DefaultDefinitionName {
			dlog = log.With("definition", d.Name)
		}
		st := root
		if dir := definitionDir(cfg.DataDir, d.Name); dir != cfg.DataDir {
			if st, err = openStore(dir, key, cfg, dlog, true); err != nil {
				// One definition's damaged store must not take the
				// others down: they are served, this one is not, and
				// status says why.
				dlog.Error("definition not served: its store does not open", "dir", dir, "err", err)
				unserved = append(unserved, definitionStatus{Name: d.Name, Source: d.Path, Condition: "not served: " + err.Error(), Authors: d.Trusted})
				continue
			}
			stores = append(stores, st)
		}
		ld := &loader{name: d.Name, log: dlog, key: key, trusted: trusted[i], path: d.Path, st: st, srv: srv}
		if config.IsDefinitionURL(d.Path) {
			u, err := config.CheckDefinitionURL(d.Path)
			if err != nil {
				closeStores()
				return err
			}
			ld.remote, ld.path = newRemoteSource(u), redactedURL(u)
		}
		lds = append(lds, ld)
	}
	if sigs.stopping(log) {
		closeStores()
		return nil
	}
	for _, ld := range lds {
		if err := ld.startStored(); err != nil {
			closeStores()
			if len(lds) > 1 {
				err = fmt.Errorf("definition %q: %w", ld.name, err)
			}
			return err
		}
	}
	for _, ld := range lds {
		loadErr := ld.loadAtStart()
		live.loaded(loadResult(ld, loadErr))
		if ld.servedVersion() != nil {
			live.markInstalled(time.Now())
		}
		if sigs.stopping(log) {
			closeStores()
			return nil
		}
	}
	if len(lds) == 0 {
		closeStores()
		return errors.New("no definition can be served: every definition's store failed to open (see the errors above)")
	}
	d := &daemon{log: log, sd: sd, srv: srv, ld: lds[0], lds: lds, unserved: unserved, audit: root, lock: lock, sigs: sigs, live: live, feed: feed, dataDir: cfg.DataDir,
		reloads: make(chan reloadRequest), done: make(chan struct{})}
	err = d.serveUntilStopped(cfg, b)
	closeStores()
	log.Info("stopped")
	return err
}

// serveUntilStopped serves on the bound listeners (coffer/2, metrics,
// the admin socket) until SIGTERM or SIGINT, then stops them in order:
// the loop, the poller, the admin socket, the metrics.
func (d *daemon) serveUntilStopped(cfg *config.Server, b *bindings) error {
	admin := d.startAdmin(b, cfg.AdminGroup)
	stopMetrics := func() {}
	if b.metrics != nil {
		stopMetrics = d.serveMetrics(b.metrics)
	}
	polling := d.startPoller(cfg)
	err := d.run(b.listeners, cfg)
	close(d.done)
	<-polling
	admin.close()
	stopMetrics()
	return err
}

// bindings are the sockets the server binds before it touches its store.
type bindings struct {
	listeners []net.Listener
	metrics   net.Listener      // nil without --metrics-listen
	admin     *net.UnixListener // nil when the path is too long
	adminPath string
	policy    peerPolicy
}

// bindPublic binds the coffer/2 listeners and the metrics listener.
func bindPublic(cfg *config.Server, getenv func(string) string, log *slog.Logger) (*bindings, error) {
	ls, err := listen(cfg.Listen, getenv, log)
	if err != nil {
		return nil, err
	}
	b := &bindings{listeners: ls}
	if b.metrics, err = listenMetrics(cfg, log); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// bindAdmin binds the admin socket; the data directory must be locked,
// as the socket's default place is in it.
func (b *bindings) bindAdmin(cfg *config.Server, log *slog.Logger) error {
	policy, err := newPeerPolicy(cfg.AdminGroup)
	if err != nil {
		return err
	}
	path := cfg.AdminSocketPath()
	if len(path) > config.MaxUnixPathBytes {
		log.Warn("no admin socket: its path is too long for a Unix socket; set admin_socket (status, reload, audit and inspect cannot reach this server)",
			"path", path)
		return nil
	}
	l, err := listenAdmin(path, policy)
	if err != nil {
		return err
	}
	b.admin, b.adminPath, b.policy = l, path, policy
	return nil
}

// close closes what is bound; closing a listener twice is harmless, and
// the admin socket's file goes with it.
func (b *bindings) close() {
	for _, l := range b.listeners {
		l.Close()
	}
	if b.metrics != nil {
		b.metrics.Close()
	}
	if b.admin != nil {
		b.admin.Close()
		os.Remove(b.adminPath)
		b.admin = nil
	}
}

// lockHint adds the cause's fix to a failure to lock the data directory:
// another process only when one holds the lock.
func lockHint(err error) error {
	var inUse *errStoreInUse
	if errors.As(err, &inUse) {
		return withHint(err, "stop the other process first, or use another data directory")
	}
	return withHint(err, "the data directory must be a directory the server's user can create and write: check data_dir (--data-dir), its owner and its mode")
}

// startStored brings the store up to date at startup and installs what
// it holds: it rebuilds a store that is behind its state file. It fails
// only when the store cannot be brought to a state that is not older
// than what was served before. Every definition's stored state is
// installed before any configured file is loaded (loadAtStart), so that
// a new file is checked against every definition served, as a reload is.
func (l *loader) startStored() error {
	switch c := l.st.Condition(); c {
	case shard.FirstRun:
		l.log.Warn("first run: no state file and an empty store; the first valid definition is trusted as is (TOFU)")
	case shard.StateUpdated, shard.StateRecreated:
		l.log.Warn("store and state file disagreed; state file rewritten from the store", "condition", c.String())
	case shard.NeedsRebuild:
		if err := l.rebuild(); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, _, ok := l.st.Current(); !ok || l.served != nil {
		return nil
	}
	l.checkKept()
	err := l.installLocked(0, nil)
	if errors.Is(err, coffer.ErrClientInTwoDefinitions) {
		// Two stores were accepted apart (the config changed since):
		// serve the others rather than none.
		l.log.Error("stored definition not served", "reason", err)
		return nil
	}
	return err
}

// loadAtStart loads the configured file if it is newer than the store's
// and returns its load error, which it logs.
func (l *loader) loadAtStart() (loadErr error) {
	loadErr = l.loadConfigured()
	switch err := loadErr; {
	case err == nil:
	case errors.Is(err, errUnchanged):
		l.log.Info("sealed definition is the stored one", "path", l.path)
	case errors.Is(err, fs.ErrNotExist):
		l.log.Warn("no sealed definition file", "path", l.path)
	case storeVersion(l.st) == nil:
		l.log.Error("sealed definition refused; nothing stored to serve", refusalAttrs(l, err)...)
	default:
		l.log.Error("sealed definition refused; serving the stored one", refusalAttrs(l, err)...)
	}
	if l.servedVersion() == nil {
		l.log.Warn("nothing to serve: clients get Error{unavailable} until a definition is loaded (coffer-server reload)")
	}
	return loadErr
}

// rebuild imports the definition the state file names, from the kept
// sealed file, or failing that from the configured file if it is that
// definition or a newer one. Older data is never imported.
func (l *loader) rebuild() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer loadMemory()()
	state, _ := l.st.State()
	l.log.Warn("store is behind the state file or empty; rebuilding from the kept sealed file",
		"serial", state.Serial, "hash", hashPrefix(state.Hash))
	kept, err := l.st.KeptSealed(state.Hash)
	if err == nil {
		if err = l.importLocked(kept, nil, "rebuild"); err == nil {
			return nil
		}
	}
	l.log.Error("rebuilding from the kept sealed file failed; trying the configured file", "err", err)
	file, ferr := l.readConfigured()
	if ferr != nil {
		return withHint(fmt.Errorf("rebuilding the store: %w; and %w", err, ferr),
			"put the last sealed definition (serial "+fmt.Sprint(state.Serial)+") or a newer one at "+l.path)
	}
	cur := &coffer.Version{Serial: state.Serial, Hash: state.Hash}
	if coffer.SealedHash(file) == state.Hash {
		cur = nil
	}
	if ferr = l.importLocked(file, cur, "rebuild"); ferr != nil {
		return withHint(fmt.Errorf("rebuilding the store: %w", ferr),
			"the server never serves a definition older than serial "+fmt.Sprint(state.Serial),
			"put that definition or a newer one at "+l.path)
	}
	return nil
}

// listen returns the socket-activated listeners, or one on addr.
func listen(addr string, getenv func(string) string, log *slog.Logger) ([]net.Listener, error) {
	ls, err := activationListeners(getenv)
	if err != nil {
		return nil, err
	}
	if ls != nil {
		for _, l := range ls {
			log.Info("listening (socket activation)", "addr", l.Addr().String())
		}
		return ls, nil
	}
	// No TCP keep-alive on accepted connections: a session lives at most
	// SessionTimeout (30 s) from accept, so the probes (15 s idle by
	// default) would never find a peer that the deadline has not, and
	// turning them on cost four setsockopt calls per session, about 1.4%
	// of the server's CPU at concurrency 16 (BenchmarkAccept).
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, withHint(fmt.Errorf("listening: %w", err), listenHint(err))
	}
	log.Info("listening", "addr", l.Addr().String())
	return []net.Listener{l}, nil
}

// listenHint names the fix for a failed listen by its cause.
func listenHint(err error) string {
	var ae *net.AddrError
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "another process listens on this address (another coffer-server?): stop it, or change listen (--listen)"
	case errors.Is(err, syscall.EACCES):
		return "ports below 1024 need root or CAP_NET_BIND_SERVICE: change listen (--listen)"
	case errors.As(err, &ae):
		return "listen takes host:port with a port from 1 to 65535, such as 127.0.0.1:9187 (port 0: any free port)"
	}
	return "listen (--listen) must be host:port with an address of this machine"
}

// refusalAttrs are the log attributes of a refused definition: the path,
// the reason and, for a file sealed to another server, the key to seal to.
func refusalAttrs(l *loader, err error) []any {
	attrs := []any{"path", l.path, "reason", err}
	if errors.Is(err, coffer.ErrWrongServer) {
		attrs = append(attrs, "hint", "if it was sealed for another server, seal it again to this server's public key "+l.key.Public().String())
	}
	return attrs
}
