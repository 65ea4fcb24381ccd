// Command coffer-server is the coffer daemon: it loads sealed definitions
// into its encrypted store and serves each client its shard over coffer/2
// (docs/server.md).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coffer-project/coffer/cmd/internal/buildinfo"
	"github.com/coffer-project/coffer/cmd/internal/flagerr"
	// Imported under another name: package main has its own harden, the
	// serve-only steps (harden_linux.go).
	hardenproc "github.com/coffer-project/coffer/cmd/internal/harden"
)

const usage = `Usage: coffer-server [command] [options]

Commands:
  serve     run the daemon (the default when no command is given)
  check     check the config, key file, data directory and sealed definition;
            exit status 0 when ready to serve, 1 when not
  status    report on the server: serial served, sessions, limits, uptime
  inspect   print the stored definition: serial, hash, clients, names, sizes
  audit     print the fetch audit (--follow: new records as they come)
  reload    make the running server load its definition; wait for the outcome
  keygen    write a new server key file (0600, never overwrites)
  version   print the version

status, inspect, audit and reload ask a running server through its admin
socket; status, inspect and audit read the store of a stopped one. Run
'coffer-server COMMAND -h' for a command's options. Configuration comes
from --config (default /etc/coffer/server.toml), COFFER_* variables and
flags, in increasing order of precedence (docs/server.md).

Exit status: 0 success, 1 failure, 2 usage or configuration error (a flag,
a COFFER_* variable, the config file, a trusted key).
`

// cliError is a failure with hint lines for the operator.
type cliError struct {
	err   error
	hints []string
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// withHint wraps err with hint lines printed after the error.
func withHint(err error, hints ...string) error {
	if err == nil {
		return nil
	}
	return &cliError{err: err, hints: hints}
}

// usageError is a usage or configuration error (a flag, a COFFER_*
// variable, the config file, a trusted key): exit 2, printed as the
// error, its hints and a pointer to cmd's -h.
type usageError struct {
	cmd   string
	err   error
	hints []string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// asUsage makes err a usage error of cmd, keeping its hints.
func asUsage(cmd string, err error) error {
	if err == nil {
		return nil
	}
	ue := &usageError{cmd: cmd, err: err}
	var ce *cliError
	if errors.As(err, &ce) {
		ue.hints = ce.hints
	}
	return ue
}

// exitStatus is returned by a command that wants a particular exit code
// without printing an error (check's "not ready").
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	// Every command may hold the server key or secrets: serve, check,
	// inspect, audit, keygen.
	if err := hardenproc.Process(); err != nil {
		fmt.Fprintf(os.Stderr, "coffer-server: error: %v\n", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		if len(rest) > 0 && isVersionFlag(rest[0]) {
			fmt.Fprintln(stdout, version())
			return 0
		}
		if len(args) > 0 && isHelpFlag(args[0]) {
			fmt.Fprint(stderr, usage)
			return 0
		}
		err = cmdServe(rest, stdout, stderr)
	case "check":
		err = cmdCheck(rest, stdout, stderr)
	case "status":
		err = cmdStatus(rest, stdout, stderr)
	case "inspect":
		err = cmdInspect(rest, stdout, stderr)
	case "audit":
		err = cmdAudit(rest, stdout, stderr)
	case "reload":
		err = cmdReload(rest, stdout, stderr)
	case "keygen":
		err = cmdKeygen(rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
		return 0
	case "help":
		fmt.Fprint(stderr, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "coffer-server: error: unknown command %q\n", cmd)
		fmt.Fprintln(stderr, flagerr.Pointer("coffer-server", ""))
		return 2
	}
	return exitCode(err, stderr)
}

// exitCode prints err, if any, and maps it to the exit code.
func exitCode(err error, stderr io.Writer) int {
	var st exitStatus
	var ce *cliError
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "coffer-server: error: %v\n", ue.err)
		for _, h := range ue.hints {
			fmt.Fprintf(stderr, "hint: %s\n", h)
		}
		fmt.Fprintln(stderr, flagerr.Pointer("coffer-server", ue.cmd))
		return 2
	case errors.As(err, &st):
		return int(st)
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "coffer-server: error: %v\n", ce.err)
		for _, h := range ce.hints {
			fmt.Fprintf(stderr, "hint: %s\n", h)
		}
		return 1
	}
	fmt.Fprintf(stderr, "coffer-server: error: %v\n", err)
	return 1
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "--h" || s == "-help" || s == "--help"
}

func isVersionFlag(s string) bool { return buildinfo.IsFlag(s) }

// version returns the module version and VCS revision from the build info.
func version() string { return buildinfo.Version("coffer-server") }

// parseFlags parses args with fs, printing help as usage text. It
// returns flag.ErrHelp for -h, and a *usageError for a flag error or a
// stray positional argument (printed once, with a pointer to -h).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, text string) error {
	return parseFlagsArgs(fs, args, stderr, text, 0)
}

// parseFlagsArgs is parseFlags for a command that takes up to maxArgs
// arguments after its options.
func parseFlagsArgs(fs *flag.FlagSet, args []string, stderr io.Writer, text string, maxArgs int) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, text)
			return flag.ErrHelp
		}
		msg, hints := flagerr.Explain(fs, err)
		return &usageError{cmd: fs.Name(), err: errors.New(msg), hints: hints}
	}
	if fs.NArg() > maxArgs {
		return &usageError{cmd: fs.Name(), err: fmt.Errorf("unexpected argument %q", fs.Arg(maxArgs))}
	}
	return nil
}
