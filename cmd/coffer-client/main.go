// Command coffer-client fetches this machine's secrets from coffer-server
// and prints them, writes them to files, or execs a program with them in
// its environment (docs/client.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/buildinfo"
	"github.com/coffer-project/coffer/cmd/internal/flagerr"
	"github.com/coffer-project/coffer/cmd/internal/harden"
	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// Exit statuses (docs/client.md, "Exit status").
const (
	exitOK          = 0
	exitFailure     = 1 // any other failure
	exitUsage       = 2 // usage or configuration error
	exitUnreachable = 3 // no server answered within --wait, and no usable cache
	exitAuth        = 4 // authentication failed or unknown client
)

// exitError is an error with the exit status it ends the run with and
// the hint lines printed after it.
type exitError struct {
	code  int
	err   error
	hints []string
	usage bool // a usage error: a pointer to -h follows the hints
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...), usage: true}
}

// flagError is an error of FlagSet.Parse, explained when reported.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }

func configErr(err error) error { return &exitError{code: exitUsage, err: err} }

const mainUsage = `usage: coffer-client <command> [flags] [args]

Fetch this machine's secrets from coffer-server over coffer/2.

Commands:
  get [NAME...]          print the secrets (env, dotenv, json, toml or raw),
                         or write them to files with --out
  exec [flags] -- CMD    run CMD with the secrets in its environment
  check                  diagnose config, key file, servers; prints no secrets
  version                print the version (also -version)

Run coffer-client <command> -h for the options of each command.

` + commonUsage

func main() {
	// A whole shard passes through this process (docs/client.md, "What
	// never leaves the process").
	if err := harden.Process(); err != nil {
		fmt.Fprintf(os.Stderr, "coffer-client: error: %v\n", err)
		os.Exit(exitFailure)
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// env is the process environment the run sees; tests replace it.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	flags  *flag.FlagSet // the command's, once made: names it in usage errors
	// usageText is the command's usage, printed for -h.
	usageText string
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "get":
		err = e.get(args[1:])
	case "exec":
		err = e.exec(args[1:])
	case "check":
		err = e.check(args[1:])
	case "agent":
		err = e.agent(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, mainUsage)
		return exitOK
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, buildinfo.Version("coffer-client"))
		return exitOK
	default:
		err = usageErr("unknown command %q", args[0])
	}
	return e.report(err)
}

// report prints err on stderr, once, and returns the exit status.
func (e *env) report(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stderr, e.usageText)
		return exitOK
	}
	var xe *exitError
	if !errors.As(err, &xe) {
		xe = &exitError{code: exitFailure, err: err}
	}
	if xe.err == nil {
		return xe.code // exec --watch passing on its program's status: nothing to say
	}
	msg, hints := xe.err.Error(), xe.hints
	var fe *flagError
	if errors.As(xe.err, &fe) && e.flags != nil {
		msg, hints = flagerr.Explain(e.flags, fe.err)
	}
	fmt.Fprintf(e.stderr, "coffer-client: error: %s\n", msg)
	for _, h := range hints {
		fmt.Fprintf(e.stderr, "hint: %s\n", h)
	}
	if xe.usage {
		cmd := ""
		if e.flags != nil {
			cmd = e.flags.Name()
		}
		fmt.Fprintln(e.stderr, flagerr.Pointer("coffer-client", cmd))
	}
	return xe.code
}

// newFlagSet makes a subcommand's flag set: -h prints usage (status 0);
// a parse error is reported by report, once, with a pointer to -h
// (status 2).
func (e *env) newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	e.flags = fs
	e.usageText = usage
	return fs
}

// parseErr turns a flag package error into a usage exit; -h prints the
// usage.
func parseErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &exitError{code: exitUsage, err: &flagError{err}, usage: true}
}

// session is what every command needs after configuration: settings,
// the loaded key and the remembered serial.
type session struct {
	*settings
	key   *coffer.PrivateKey
	seen  state  // the state file's contents
	floor uint64 // the least serial of any definition: --min-serial (and in watch mode the one in use)
}

// floorFor is the least serial accepted from the definition named def:
// floor, or the serial remembered for the pinned key and def if higher.
func (s *session) floorFor(def string) uint64 {
	return max(s.floor, s.seen[stateKey{s.serverKey, def}])
}

// open resolves the configuration, loads the key file and the state.
// Every error is a configuration error (status 2), except an unreadable
// state file (status 1).
func (e *env) open(fs *flag.FlagSet, c *commonFlags) (*session, error) {
	st, err := resolve(fs, c, e.getenv)
	if err != nil {
		return nil, configErr(err)
	}
	key, err := coffer.LoadKeyFile(st.keyFile)
	if err != nil {
		return nil, configErr(fmt.Errorf("key file: %w", err))
	}
	s := &session{settings: st, key: key, floor: st.minSerial}
	if st.state != "" {
		if s.seen, err = readState(st.state); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// shard is a fetched (or cached) shard with where it came from.
type shard struct {
	values  frame.Shard
	res     *fetchResult // nil when it came from the cache
	whole   bool         // all of this client's values, not selected NAMEs
	fetched time.Time

	cacheSerial uint64 // the cache's serial when res is nil (watch mode)
}

// fetchShard fetches the shard, falling back to the cache only when no
// server gave a final answer in time (unreachable, busy, or only
// answers that did not authenticate). It never returns a partial shard.
func (e *env) fetchShard(s *session, names []string) (*shard, error) {
	f := &fetcher{
		servers: s.servers,
		cfg:     coffer.ClientConfig{Key: s.key, Server: s.serverKey, Names: names, MinSerial: s.floor, MinSerialFor: s.floorFor},
		timeout: s.timeout,
		wait:    s.wait,
		log:     e.stderr,
	}
	res, err := f.fetch(context.Background())
	if err == nil {
		if res.Version.Serial < s.floorFor(res.Definition) {
			return nil, fmt.Errorf("%s: %w", res.addr, coffer.ErrRollback)
		}
		if err := checkNames(res.Shard, names); err != nil {
			return nil, err
		}
		return &shard{values: res.Shard, res: res, whole: len(names) == 0, fetched: time.Now()}, nil
	}
	var na *noAnswer
	if !errors.As(err, &na) || s.cache == "" {
		return nil, err
	}
	ce, cerr := readCache(s.cache, s.key, cachePolicy{server: s.serverKey, floorFor: s.floorFor,
		maxAge: s.maxAge, names: names, now: time.Now()})
	if cerr != nil {
		var xe *exitError
		if errors.As(err, &xe) {
			xe.hints = append(xe.hints, cerr.Error())
		}
		return nil, err
	}
	fmt.Fprintf(e.stderr, "coffer-client: warning: %v\n", err)
	fmt.Fprintf(e.stderr, "coffer-client: warning: using the cache %s: serial %d, fetched %s ago\n",
		s.cache, ce.Version.Serial, time.Since(ce.Fetched).Round(time.Second))
	return &shard{values: ce.Shard, cacheSerial: ce.Version.Serial}, nil
}

// commit records a shard fetched from a server: the state's serial, then
// the cache, which only a whole shard replaces, so a cache always holds
// every value. It runs only after the output succeeded.
func (e *env) commit(s *session, sh *shard) error {
	if sh.res == nil {
		return nil
	}
	if s.state != "" {
		if s.stateDefault {
			if err := os.MkdirAll(filepath.Dir(s.state), 0o700); err != nil {
				return fmt.Errorf("state directory: %w", err)
			}
		}
		if err := recordSerial(s.state, s.serverKey, sh.res.Definition, sh.res.Version.Serial); err != nil {
			return err
		}
	}
	if s.cache != "" && sh.whole {
		if err := writeCache(s.cache, s.key, s.serverKey, sh.res.Result, sh.fetched); err != nil {
			return fmt.Errorf("cache %s: %w", s.cache, err)
		}
	}
	return nil
}

// checkNameArgs validates and deduplicates NAME arguments.
func checkNameArgs(names []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if err := frame.ValidName(n); err != nil {
			return nil, usageErr("bad secret name %q: want 1 to %d of [A-Za-z0-9_.-], not starting or ending with '.'", n, frame.MaxNameBytes)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	// The Get must fit its frame; the rule is known before connecting, so a
	// request that cannot fit is a usage error, not a failed session.
	if err := coffer.CheckNames(out); err != nil {
		return nil, usageErr("%d secret names do not fit in one request: %v", len(out), err)
	}
	return out, nil
}
