package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/coffer-project/coffer/config"
)

const statusUsage = `Usage: coffer-server status [options]

Report on the server: whether it runs, the serial and hash it serves and
when it loaded them, the last load's outcome, clients, sessions by
outcome and rate-limit refusals since it started, handshakes in flight,
the audit, the store's size and the uptime. A running server answers
through its admin socket (docs/server.md, "Admin socket"); for a stopped
one, status says so and reads the store.

Options:
  --json                     one JSON object instead of text
` + "\n" + configUsage

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	return reportCommand(args, stdout, stderr, "status", statusUsage, statusOf,
		func(w io.Writer, r *statusReport) { printStatus(w, r, time.Now()) })
}

// reportCommand runs a command that prints one report of the server,
// running or stopped (status, inspect): its flags are the config's and
// --json; of builds the report, print writes its text form.
func reportCommand[R any](args []string, stdout, stderr io.Writer, name, usage string,
	of func(*config.Server, io.Writer) (R, error), print func(io.Writer, R)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	build := configFlags(fs)
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseFlags(fs, args, stderr, usage); err != nil {
		return err
	}
	cfg, err := build(os.Getenv)
	if err != nil {
		return err
	}
	r, err := of(cfg, stderr)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	print(stdout, r)
	return nil
}

// statusOf asks the running server, or reads the store of a stopped one.
func statusOf(cfg *config.Server, stderr io.Writer) (*statusReport, error) {
	c, route, err := connectAdmin(cfg)
	switch route {
	case routeRefused:
		return nil, err
	case routeStore:
		return storeStatus(cfg, stderr)
	}
	var r *statusReport
	err = adminCall(c, adminRequest{Cmd: adminStatus}, adminCallTimeout, func(resp *adminResponse) (bool, error) {
		if r = resp.Status; r == nil {
			return false, errors.New("admin socket: the answer holds no status")
		}
		return true, nil
	})
	return r, err
}

// storeStatus is the status of a stopped server: what its store holds.
func storeStatus(cfg *config.Server, stderr io.Writer) (*statusReport, error) {
	r := &statusReport{Definition: cfg.Definition, Condition: "no store"}
	if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	st, lock, err := adminStore(cfg, "status", stderr)
	if err != nil {
		// Still report that the server is not running; the store's
		// condition says why it could not be read (no key, no access).
		r.Condition = "not readable: " + err.Error()
		return r, nil
	}
	defer lock.release()
	defer st.Close()
	ir, err := inspectStore(st)
	if err != nil {
		return nil, err
	}
	r.Condition, r.Serial, r.Hash, r.ClientKeys, r.Values = ir.Condition, ir.Serial, ir.Hash, clientKeys(ir.Clients), ir.Values
	r.AuditKept, r.StoreBytes = ir.Audit, ir.DiskBytes
	return r, nil
}

// printStatus writes the human form of r.
func printStatus(w io.Writer, r *statusReport, now time.Time) {
	if !r.Running {
		fmt.Fprintln(w, "server:      not running")
	} else {
		fmt.Fprintf(w, "server:      running, pid %d, up %s (since %s)\n", r.Pid,
			time.Duration(r.Uptime*float64(time.Second)).Round(time.Second), r.Started.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "version:     %s\n", r.Version)
	}
	fmt.Fprintf(w, "definition:  %s\n", r.Definition)
	if p := r.Poll; p != nil {
		what := "none yet"
		if !p.Time.IsZero() {
			what = fmt.Sprintf("%s ago, %s", now.Sub(p.Time).Round(time.Millisecond), strings.ReplaceAll(p.Result, "_", " "))
			if p.Error != "" {
				what += ": " + p.Error
			}
		}
		fmt.Fprintf(w, "polled:      every %s; last poll %s\n", time.Duration(p.Every*float64(time.Second)), what)
	}
	if r.Hash == "" {
		fmt.Fprintln(w, "serving:     nothing (no definition loaded)")
	} else {
		fmt.Fprintf(w, "serving:     serial %d, hash %s\n", r.Serial, r.Hash)
	}
	if !r.Loaded.IsZero() {
		fmt.Fprintf(w, "loaded:      %s (%s ago)\n", r.Loaded.UTC().Format(time.RFC3339), now.Sub(r.Loaded).Round(time.Second))
	}
	if l := r.LastLoad; l != nil {
		what := "accepted, new definition"
		switch {
		case !l.Accepted:
			what = "refused: " + l.Reason
		case !l.Changed:
			what = "accepted, already current"
		}
		fmt.Fprintf(w, "last load:   %s, %s\n", l.Time.UTC().Format(time.RFC3339), what)
	}
	if len(r.Definitions) > 0 {
		fmt.Fprintf(w, "definitions: %d\n", len(r.Definitions))
		for _, d := range r.Definitions {
			served := "nothing"
			if d.Hash != "" {
				served = fmt.Sprintf("serial %d, hash %s", d.Serial, d.Hash)
			}
			fmt.Fprintf(w, "  %-20s %s; %s, %d client keys; from %s; trusted %s\n", d.Name, served, d.Condition, d.ClientKeys, d.Source, strings.Join(d.Authors, " "))
			if l := d.LastLoad; l != nil && !l.Accepted {
				fmt.Fprintf(w, "  %-20s last load refused: %s\n", "", l.Reason)
			}
		}
	}
	fmt.Fprintf(w, "store:       %s, %d client keys, %d stored values (a copy per client key), %d bytes on disk\n", r.Condition, r.ClientKeys, r.Values, r.StoreBytes)
	fmt.Fprintf(w, "audit:       %d records kept", r.AuditKept)
	if r.Running {
		fmt.Fprintf(w, ", %d dropped since start (queue full), %d unauthenticated over their budget", r.AuditDrop, r.AuditUnverified)
	}
	fmt.Fprintln(w)
	if !r.Running {
		return
	}
	fmt.Fprintf(w, "sessions:    %s (since start)\n", counts(r.Sessions, sessionOutcomes[:]))
	fmt.Fprintf(w, "rate limits: %s (refusals since start)\n", counts(r.RateLimited, limitBuckets[:]))
	fmt.Fprintf(w, "handshakes:  %d in flight\n", r.Handshakes)
}

// counts formats m's entries in the order of keys.
func counts(m map[string]uint64, keys []string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
