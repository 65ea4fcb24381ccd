package main

import (
	"crypto/rand"
	"encoding/hex"
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
	"syscall"
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
		fmt.Fprintln(stderr, "coffer-server: error: -o FILE is required")
		fmt.Fprint(stderr, keygenUsage)
		return errUsage
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

const reloadUsage = `Usage: coffer-server reload [options]

Make the running server load the sealed definition again, by sending it
SIGHUP; the server's log says whether the definition was accepted. Under
systemd use 'systemctl reload coffer-server' instead. The server is found
through the lock file in the data directory.

Options:
  --config FILE, --data DIR   as for serve (see 'coffer-server serve -h')
`

func cmdReload(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	build := configFlags(fs)
	if err := parseFlags(fs, args, stderr, reloadUsage); err != nil {
		return err
	}
	cfg, err := build(os.Getenv)
	if err != nil {
		return err
	}
	h, ok, err := runningServer(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("finding the server: %w", err)
	}
	if !ok || h.role != "serve" {
		return withHint(fmt.Errorf("no coffer-server is running on %s", cfg.DataDir),
			"start it, or pass the --data or --config it runs with")
	}
	if err := syscall.Kill(h.pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signalling pid %d: %w", h.pid, err)
	}
	fmt.Fprintf(stderr, "coffer-server: sent SIGHUP to pid %d; its log tells whether the definition was accepted\n", h.pid)
	return nil
}

// adminStore opens the store for an admin command: it takes the data
// directory's lock, so it fails clearly while the server runs (Badger
// holds an exclusive flock and has no read-only mode next to a writer).
func adminStore(cfg *config.Server, role string, stderr io.Writer) (*shard.Store, *lockFile, error) {
	if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, withHint(fmt.Errorf("no store at %s", cfg.DataDir), "pass the --data or --config the server runs with")
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
	st, err := openStore(cfg.DataDir, key, cfg, log, false)
	if err != nil {
		lock.release()
		return nil, nil, err
	}
	return st, lock, nil
}

const inspectUsage = `Usage: coffer-server inspect [options]

Print the stored definition: serial, hash, clients with their key
fingerprints, and each client's secret names with kinds and sizes (never a
value), then the store's size. The server must not be running (the store
allows one process at a time).

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
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	build := configFlags(fs)
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseFlags(fs, args, stderr, inspectUsage); err != nil {
		return err
	}
	cfg, err := build(os.Getenv)
	if err != nil {
		return err
	}
	st, lock, err := adminStore(cfg, "inspect", stderr)
	if err != nil {
		return err
	}
	defer lock.release()
	defer st.Close()
	stats, err := st.Stats()
	if err != nil {
		return err
	}
	var clients []inspectClient
	if stats.HasCurrent {
		if clients, err = storedClients(st, stats.Generation); err != nil {
			return err
		}
	}
	if *asJSON {
		return printInspectJSON(stdout, &stats, clients)
	}
	printInspect(stdout, &stats, clients)
	return nil
}

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

func printInspect(w io.Writer, s *shard.Stats, clients []inspectClient) {
	fmt.Fprintf(w, "condition:  %s\n", s.Condition)
	if !s.HasCurrent {
		fmt.Fprintln(w, "definition: none")
	} else {
		fmt.Fprintf(w, "serial:     %d\nhash:       %x\ngeneration: %d\n", s.Version.Serial, s.Version.Hash, s.Generation)
	}
	fmt.Fprintf(w, "clients:    %d\nvalues:     %d (%d bytes sealed)\n", s.Clients, s.Values, s.ShardBytes)
	fmt.Fprintf(w, "disk:       %d bytes (tables %d, value log %d)\n", s.DiskBytes, s.LSMBytes, s.VLogBytes)
	fmt.Fprintf(w, "audit:      %d records (%d dropped since start)\n", s.AuditRecords, s.AuditDropped)
	if s.AuditLost > 0 {
		fmt.Fprintf(w, "audit lost: %d records lost to damage, found at this open\n", s.AuditLost)
	}
	if s.Kept != "" {
		fmt.Fprintf(w, "kept file:  %s\n", keptStatus(s.Kept))
	}
	for _, c := range clients {
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

func printInspectJSON(w io.Writer, s *shard.Stats, clients []inspectClient) error {
	out := struct {
		Condition  string          `json:"condition"`
		Serial     uint64          `json:"serial,omitempty"`
		Hash       string          `json:"hash,omitempty"`
		Generation uint64          `json:"generation,omitempty"`
		Clients    []inspectClient `json:"clients"`
		Values     int             `json:"values"`
		DiskBytes  int64           `json:"disk_bytes"`
		Audit      int             `json:"audit_records"`
		AuditLost  uint64          `json:"audit_lost,omitempty"`
		Kept       string          `json:"kept_file,omitempty"`
	}{Condition: s.Condition.String(), Clients: clients, Values: s.Values, DiskBytes: s.DiskBytes, Audit: s.AuditRecords,
		AuditLost: s.AuditLost, Kept: s.Kept}
	if s.HasCurrent {
		out.Serial, out.Hash, out.Generation = s.Version.Serial, hex.EncodeToString(s.Version.Hash[:]), s.Generation
	}
	if out.Clients == nil {
		out.Clients = []inspectClient{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

const auditUsage = `Usage: coffer-server audit [options]

Print the fetch audit, oldest first: time, client fingerprint and name,
remote address, serial served, number of values and outcome (ok,
unknown-client, auth-failed, error). Never a value. The server must not
be running (the store allows one process at a time).

Options:
  --since WHEN   records at or after WHEN: a duration back from now (24h)
                 or an RFC 3339 time (default: all)
  --limit N      at most the newest N records (default 100; 0 for all)
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
	if err := parseFlags(fs, args, stderr, auditUsage); err != nil {
		return err
	}
	from, err := parseSince(*since, time.Now())
	if err != nil || *limit < 0 {
		if err == nil {
			err = errors.New("--limit must not be negative")
		}
		fmt.Fprintf(stderr, "coffer-server: error: %v\n", err)
		fmt.Fprint(stderr, auditUsage)
		return errUsage
	}
	cfg, err := build(os.Getenv)
	if err != nil {
		return err
	}
	st, lock, err := adminStore(cfg, "audit", stderr)
	if err != nil {
		return err
	}
	defer lock.release()
	defer st.Close()
	recs, err := st.AuditRecords(from, *limit)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, r := range recs {
		l := auditLine{Time: r.Time.UTC(), Client: coffer.PublicKey(r.Client).Fingerprint(), Name: r.Name,
			Remote: r.Remote, Serial: r.Serial, Values: r.Values, Outcome: r.Outcome}
		if *asJSON {
			if err := enc.Encode(l); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%s client=%s name=%s remote=%s serial=%d values=%d outcome=%s\n",
			l.Time.Format(time.RFC3339Nano), l.Client, strconv.Quote(l.Name), l.Remote, l.Serial, l.Values, l.Outcome)
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
