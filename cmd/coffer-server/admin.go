package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/frame"
	"github.com/coffer-project/coffer/shard"
)

const keygenUsage = `Usage: coffer-server keygen -o FILE

Write a new server private key to FILE (created 0600; an existing file is
never overwritten) and print its public key on stdout, for the companion
('coffer-companion seal --server KEY') and the clients (--server-key).

Options:
  -o FILE   the key file to create (required)
`

func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("o", "", "key file to create")
	if err := parseFlags(fs, args, stderr, keygenUsage); err != nil {
		return err
	}
	if *out == "" {
		return &usageError{cmd: "keygen", err: errors.New("-o FILE is required")}
	}
	k, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := coffer.WriteKeyFile(*out, k); err != nil {
		return withHint(err, "keygen never overwrites a key file; choose another name or remove the old one deliberately")
	}
	fmt.Fprintln(stdout, k.Public().String())
	return nil
}

const reloadUsage = `Usage: coffer-server reload [options] [NAME]

Make the running server load its sealed definition (the file, or the URL
it polls) now, wait for the outcome and report it: the serial served, or
why the definition was refused (the server then serves the previous one).
A server with several definitions ([[definitions]] in its config) loads
each of them, one after the other, or only the one named NAME; the
others keep serving untouched either way.
It asks through the admin socket (docs/server.md, "Admin socket"); the
systemd unit's ExecReload runs it, so 'systemctl reload coffer-server'
succeeds only when the definition was loaded. SIGHUP still reloads,
without an answer.

Options:
  --timeout D                how long to wait for the outcome (default 2m)
  --json                     the outcome as one JSON object
` + "\n" + configUsage + `
Exit status: 0 loaded (or already current; every definition, with
several), 1 refused or no server running, 2 usage error.
`

func cmdReload(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	build := configFlags(fs)
	timeout := fs.Duration("timeout", 2*time.Minute, "wait for the outcome")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseFlagsArgs(fs, args, stderr, reloadUsage, 1); err != nil {
		return err
	}
	req := adminRequest{Cmd: adminReload}
	switch rest := fs.Args(); {
	case len(rest) > 1:
		return &usageError{cmd: "reload", err: errors.New("at most one definition name")}
	case len(rest) == 1:
		if !frame.ValidDefinitionName(rest[0]) {
			return &usageError{cmd: "reload", err: errors.New("the definition name must be 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit")}
		}
		req.Definition = rest[0]
	}
	cfg, err := build(os.Getenv)
	if err != nil {
		return err
	}
	c, route, err := connectAdmin(cfg)
	switch route {
	case routeRefused:
		return err
	case routeStore:
		return withHint(fmt.Errorf("no coffer-server is running on %s", cfg.DataDir),
			"start it, or pass the --data-dir, --admin-socket or --config it runs with")
	}
	var rs []reloadResult
	err = adminCall(c, req, *timeout, func(resp *adminResponse) (bool, error) {
		switch {
		case resp.Reloads != nil:
			rs = resp.Reloads
		case resp.Reload != nil:
			rs = []reloadResult{*resp.Reload}
		default:
			return false, errors.New("admin socket: the answer holds no reload outcome")
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var v any = rs
		if len(rs) == 1 {
			v = rs[0]
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	if len(rs) == 1 {
		return reloadOutcome(rs[0], *asJSON, stdout)
	}
	var refused []string
	for _, r := range rs {
		if err := reloadOutcome(r, *asJSON, prefixWriter{stdout, r.Definition + ": "}); err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", r.Definition, err)
			refused = append(refused, r.Definition)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("reload: refused for %s; those definitions keep serving what they served", strings.Join(refused, ", "))
	}
	return nil
}

// prefixWriter writes each Write's bytes after prefix; reloadOutcome
// writes one line per call.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// reloadOutcome prints a load's outcome and returns the error that makes
// the exit status 1 when it was refused.
func reloadOutcome(r reloadResult, quiet bool, stdout io.Writer) error {
	served := "nothing"
	if r.Serial != 0 {
		served = fmt.Sprintf("serial %d (%s)", r.Serial, r.Hash)
	}
	if !r.Accepted {
		return withHint(fmt.Errorf("definition refused: %s", r.Reason),
			"the server still serves "+served+"; its log has the details")
	}
	if quiet {
		return nil
	}
	if r.Changed {
		fmt.Fprintf(stdout, "loaded: serving %s\n", served)
	} else {
		fmt.Fprintf(stdout, "already current: serving %s\n", served)
	}
	return nil
}

// adminStore opens the store for an admin command: it takes the data
// directory's lock, so it fails clearly while the server runs (Badger
// holds an exclusive flock and has no read-only mode next to a writer).
func adminStore(cfg *config.Server, role string, stderr io.Writer) (*shard.Store, *lockFile, error) {
	return adminStoreAt(cfg, cfg.DataDir, role, stderr)
}

// adminStoreAt is adminStore for the store in dir, the data directory or
// one definition's directory in it (definitionDir); the lock is always
// the data directory's.
func adminStoreAt(cfg *config.Server, dir, role string, stderr io.Writer) (*shard.Store, *lockFile, error) {
	if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, withHint(fmt.Errorf("no store at %s", cfg.DataDir), "pass the --data-dir or --config the server runs with")
	}
	key, err := loadKey(cfg.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	lock, err := lockDataDir(cfg.DataDir, role)
	if err != nil {
		var inUse *errStoreInUse
		if errors.As(err, &inUse) {
			return nil, nil, withHint(err, "Badger allows one process at a time: stop the server to "+role+
				" (systemctl stop coffer-server), or read its log")
		}
		return nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openStore(dir, key, cfg, log, false)
	if err != nil {
		lock.release()
		return nil, nil, err
	}
	return st, lock, nil
}

const inspectUsage = `Usage: coffer-server inspect [options]

Print the stored definition: serial, hash, clients with their key
fingerprints, and each client's secret names with kinds and sizes (never a
value), then the store's size. A running server is asked through its
admin socket; a stopped one's store is read directly.

Options:
  --json     one JSON object instead of text
` + "\n" + configUsage

// inspectClient is one client in inspect's output.
type inspectClient struct {
	Name   string        `json:"name"`
	Keys   []string      `json:"keys"`
	Values []inspectName `json:"values"`
}

type inspectName struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Bytes int    `json:"bytes"` // encoded size
}

func cmdInspect(args []string, stdout, stderr io.Writer) error {
	return reportCommand(args, stdout, stderr, "inspect", inspectUsage, inspectReportOf, printInspect)
}

// inspectReportOf asks the running server, or reads the store when none
// runs.
func inspectReportOf(cfg *config.Server, stderr io.Writer) (*inspectReport, error) {
	c, route, err := connectAdmin(cfg)
	switch route {
	case routeRefused:
		return nil, err
	case routeStore:
		st, lock, err := adminStore(cfg, "inspect", stderr)
		if err != nil {
			return nil, err
		}
		defer lock.release()
		defer st.Close()
		r, err := inspectStore(st)
		if err != nil {
			return nil, err
		}
		defs := cfg.DefinitionList()
		if len(defs) == 1 && defs[0].Name == config.DefaultDefinitionName {
			return r, nil
		}
		for _, d := range defs {
			dr, err := inspectDefinitionStore(cfg, d, st, stderr)
			if err != nil {
				dr = &inspectReport{Condition: "not readable: " + err.Error(), Clients: []inspectClient{}}
			}
			dr.Name, dr.Trusted = d.Name, d.Trusted
			r.Definitions = append(r.Definitions, dr)
		}
		return r, nil
	}
	var r *inspectReport
	err = adminCall(c, adminRequest{Cmd: adminInspect}, adminCallTimeout, func(resp *adminResponse) (bool, error) {
		if r = resp.Inspect; r == nil {
			return false, errors.New("admin socket: the answer holds no inspect report")
		}
		return true, nil
	})
	return r, err
}

// inspectDefinitionStore reads definition d's store of a stopped server
// whose data directory's lock the caller holds; root is the data
// directory's own store, already open.
func inspectDefinitionStore(cfg *config.Server, d config.ServerDefinition, root *shard.Store, stderr io.Writer) (*inspectReport, error) {
	dir := definitionDir(cfg.DataDir, d.Name)
	if dir == cfg.DataDir {
		return inspectStore(root)
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return &inspectReport{Condition: "no store", Clients: []inspectClient{}}, nil
	}
	key, err := loadKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openStore(dir, key, cfg, log, false)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return inspectStore(st)
}

// adminCallTimeout bounds status and inspect through the admin socket.
const adminCallTimeout = 60 * time.Second

// storedClients reads every client of generation gen, grouping keys by
// client name. Values are decoded only to learn their kind and are
// cleared at once.
func storedClients(st *shard.Store, gen uint64) ([]inspectClient, error) {
	byName := map[string]*inspectClient{}
	first := map[string][32]byte{} // one key per client name, to read its values
	err := st.Clients(gen, func(key [32]byte, name string) {
		c := byName[name]
		if c == nil {
			c = &inspectClient{Name: name, Values: []inspectName{}}
			byName[name] = c
			first[name] = key
		}
		c.Keys = append(c.Keys, coffer.PublicKey(key).String())
	})
	if err != nil {
		return nil, err
	}
	out := make([]inspectClient, 0, len(byName))
	for name, c := range byName {
		vals, err := st.Shard(gen, first[name], nil)
		if err != nil {
			return nil, fmt.Errorf("reading client %q: %w", name, err)
		}
		for n, b := range vals {
			var v frame.Value
			kind := "invalid"
			if v.UnmarshalCBOR(b) == nil {
				kind = v.Kind.String()
				clear(v.Text)
			}
			c.Values = append(c.Values, inspectName{Name: n, Kind: kind, Bytes: len(b)})
			clear(b)
		}
		slices.SortFunc(c.Values, func(a, b inspectName) int { return cmpString(a.Name, b.Name) })
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b inspectClient) int { return cmpString(a.Name, b.Name) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func printInspect(w io.Writer, r *inspectReport) {
	if r.Definitions != nil {
		fmt.Fprintf(w, "data directory store (audit trail):\n")
		fmt.Fprintf(w, "audit:      %d records (%d dropped since start)\n", r.Audit, r.Dropped)
		if r.AuditLost > 0 {
			fmt.Fprintf(w, "audit lost: %d records lost to damage or to a kill, found at this open\n", r.AuditLost)
		}
		for _, d := range r.Definitions {
			fmt.Fprintf(w, "\n== definition %s (trusted: %s)\n", d.Name, strings.Join(d.Trusted, " "))
			printInspect(w, d)
		}
		return
	}
	fmt.Fprintf(w, "condition:  %s\n", r.Condition)
	if r.Hash == "" {
		fmt.Fprintln(w, "definition: none")
	} else {
		fmt.Fprintf(w, "serial:     %d\nhash:       %s\ngeneration: %d\n", r.Serial, r.Hash, r.Generation)
	}
	defValues := 0
	for _, c := range r.Clients {
		defValues += len(c.Values)
	}
	// Say what is counted: the store keeps a copy of a client's values
	// per key, the definition (and coffer-companion) counts them once.
	fmt.Fprintf(w, "clients:    %d names, %d keys\nvalues:     %d in the definition, %d stored (a copy per client key; %d bytes sealed)\n",
		len(r.Clients), clientKeys(r.Clients), defValues, r.Values, r.ShardBytes)
	fmt.Fprintf(w, "disk:       %d bytes (tables %d, value log %d)\n", r.DiskBytes, r.LSMBytes, r.VLogBytes)
	if r.Name == "" || r.Audit > 0 {
		fmt.Fprintf(w, "audit:      %d records (%d dropped since start)\n", r.Audit, r.Dropped)
	}
	if r.AuditLost > 0 {
		fmt.Fprintf(w, "audit lost: %d records lost to damage or to a kill, found at this open\n", r.AuditLost)
	}
	if r.Kept != "" {
		fmt.Fprintf(w, "kept file:  %s\n", keptStatus(r.Kept))
	}
	for _, c := range r.Clients {
		fmt.Fprintf(w, "\nclient %q\n", c.Name)
		for _, k := range c.Keys {
			pk, _ := coffer.ParsePublicKey(k)
			fmt.Fprintf(w, "  key   %s (%s)\n", k, pk.Fingerprint())
		}
		for _, v := range c.Values {
			fmt.Fprintf(w, "  value %-32q %-14s %d bytes\n", v.Name, v.Kind, v.Bytes)
		}
	}
}

// clientKeys counts the keys of clients, as the store counts clients.
func clientKeys(cs []inspectClient) int {
	n := 0
	for _, c := range cs {
		n += len(c.Keys)
	}
	return n
}

const auditUsage = `Usage: coffer-server audit [options]

Print the fetch audit, oldest first: time, client fingerprint and name,
remote address, serial served, number of values and outcome (ok,
unknown-client, auth-failed, error). Never a value. A running server is
asked through its admin socket; a stopped one's store is read directly.

Options:
  --since WHEN   records at or after WHEN: a duration back from now (24h)
                 or an RFC 3339 time (default: all)
  --limit N      at most the newest N records (default 100; 0 for all)
  --follow       then print each new record as the running server writes
                 it, until interrupted
  --json         one JSON object per line
` + "\n" + configUsage

// auditLine is audit's JSON form of a record.
type auditLine struct {
	Time    time.Time `json:"time"`
	Client  string    `json:"client"`
	Name    string    `json:"name,omitempty"`
	Remote  string    `json:"remote,omitempty"`
	Serial  uint64    `json:"serial"`
	Values  int       `json:"values"`
	Outcome string    `json:"outcome"`
}

func cmdAudit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	build := configFlags(fs)
	since := fs.String("since", "", "duration or RFC 3339 time")
	limit := fs.Int("limit", 100, "newest N records")
	asJSON := fs.Bool("json", false, "JSON lines")
	follow := fs.Bool("follow", false, "print new records as they are written")
	if err := parseFlags(fs, args, stderr, auditUsage); err != nil {
		return err
	}
	from, err := parseSince(*since, time.Now())
	if err != nil || *limit < 0 {
		if err == nil {
			err = errors.New("--limit must not be negative")
		}
		return &usageError{cmd: "audit", err: err}
	}
	cfg, err := build(os.Getenv)
	if err != nil {
		return err
	}
	print := func(l *auditLine) error {
		if *asJSON {
			return json.NewEncoder(stdout).Encode(l)
		}
		_, err := fmt.Fprintf(stdout, "%s client=%s name=%s remote=%s serial=%d values=%d outcome=%s\n",
			l.Time.Format(time.RFC3339Nano), l.Client, strconv.Quote(l.Name), l.Remote, l.Serial, l.Values, l.Outcome)
		return err
	}
	c, route, err := connectAdmin(cfg)
	switch route {
	case routeRefused:
		return err
	case routeStore:
		if *follow {
			return withHint(fmt.Errorf("no coffer-server is running on %s", cfg.DataDir),
				"--follow shows records as a running server writes them")
		}
		return auditStore(cfg, from, *limit, stderr, print)
	}
	req := adminRequest{Cmd: adminAudit, Since: from, Limit: *limit, Follow: *follow}
	timeout := adminCallTimeout
	if *follow {
		timeout = 0
	}
	return adminCall(c, req, timeout, func(r *adminResponse) (bool, error) {
		switch {
		case r.Record != nil:
			return false, print(r.Record)
		case r.Skipped > 0:
			fmt.Fprintf(stderr, "coffer-server: %d records skipped: this reader fell behind\n", r.Skipped)
		}
		return r.End, nil
	})
}

// auditStore prints the audit from the store of a stopped server.
func auditStore(cfg *config.Server, from time.Time, limit int, stderr io.Writer, print func(*auditLine) error) error {
	st, lock, err := adminStore(cfg, "audit", stderr)
	if err != nil {
		return err
	}
	defer lock.release()
	defer st.Close()
	recs, err := st.AuditRecords(from, limit)
	if err != nil {
		return err
	}
	for _, r := range recs {
		l := auditLineOf(r)
		if err := print(&l); err != nil {
			return err
		}
	}
	return nil
}

// parseSince reads --since: empty for all, a duration back from now, or
// an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q is neither a duration (24h) nor an RFC 3339 time", s)
	}
	return t, nil
}
