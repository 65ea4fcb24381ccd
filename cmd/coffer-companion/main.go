// Command coffer-companion generates keys and seals secrets definitions
// so that only the coffer server can open them and the server can tell a
// trusted author signed them (docs/definition.md, docs/files.md).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coffer-project/coffer/cmd/internal/buildinfo"
	"github.com/coffer-project/coffer/cmd/internal/flagerr"
	"github.com/coffer-project/coffer/cmd/internal/harden"
	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/internal/atomicfile"
)

const prog = "coffer-companion"

// Environment variables standing in for the common flags.
const (
	envKey       = "COFFER_KEY"
	envServerKey = "COFFER_SERVER_KEY"
)

const mainUsage = `usage: coffer-companion COMMAND [options] [arguments]

Generate keys and seal secrets definitions for a coffer server.

commands:
  keygen [--author] -o FILE   write a new secret key file, print its public key
  keygen --upgrade FILE       add the ML-KEM-768 sealing seed to an older server key file
  pubkey [--sealing] FILE     print the public key (or server sealing key) of a key file
  seal [options] FILE.toml    seal a definition to the server
  open [options] FILE.sealed  print the definition inside a sealed file
  edit [options] FILE.sealed  edit a sealed definition in $EDITOR and re-seal it
  set [options] FILE.sealed NAME
                              set one value, read from stdin, and re-seal
  unset [options] FILE.sealed NAME
                              remove one value and re-seal
  check FILE.toml             validate a definition without sealing it
  inspect [options] FILE.sealed
                              print a sealed file's metadata (no secrets)
  diff [options] OLD.sealed NEW.sealed
                              list clients, keys and names changed (no secrets)
  version                     print the version (also -version)

Run 'coffer-companion COMMAND -h' for a command's options.

environment:
  COFFER_KEY         default for --key (the author's secret key file)
  COFFER_SERVER_KEY  default for --server-key (the server's sealing key, or its file;
                     --server still works, with a warning)

exit status: 0 success, 1 failure, 2 usage error; diff: 0 same, 1 different,
2 trouble.
`

func main() {
	if err := harden.Process(); err != nil { // plaintext definitions, keys
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", prog, err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: its usage text and its body, which gets the
// arguments after the command name.
type command struct {
	usage string
	run   func(c *cli, args []string) error
}

var commands = map[string]command{
	"keygen":  {keygenUsage, (*cli).keygen},
	"pubkey":  {pubkeyUsage, (*cli).pubkey},
	"seal":    {sealUsage, (*cli).seal},
	"open":    {openUsage, (*cli).open},
	"edit":    {editUsage, (*cli).edit},
	"check":   {checkUsage, (*cli).check},
	"inspect": {inspectUsage, (*cli).inspect},
	"set":     {setUsage, (*cli).set},
	"unset":   {unsetUsage, (*cli).unset},
	"diff":    {diffUsage, (*cli).diff},
}

// cli carries the output streams of one run.
type cli struct {
	stdout, stderr io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, mainUsage)
		return 0
	}
	if args[0] == "version" || buildinfo.IsFlag(args[0]) {
		fmt.Fprintln(stdout, buildinfo.Version(prog))
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: error: unknown command %q\n", prog, args[0])
		fmt.Fprintln(stderr, flagerr.Pointer(prog, ""))
		return 2
	}
	c := &cli{stdout: stdout, stderr: stderr}
	err := cmd.run(c, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, cmd.usage)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: error: %s\n", prog, ue.msg)
		for _, h := range ue.hints {
			fmt.Fprintf(stderr, "hint: %s\n", h)
		}
		fmt.Fprintln(stderr, flagerr.Pointer(prog, args[0]))
		return 2
	case errors.Is(err, errDiffer):
		return 1
	}
	fmt.Fprintf(stderr, "%s: error: %s\n", prog, oneLine(err.Error()))
	for _, h := range hints(err) {
		fmt.Fprintf(stderr, "hint: %s\n", h)
	}
	if es := (*exitStatus)(nil); errors.As(err, &es) {
		return es.code
	}
	return 1
}

// usageError is a command line mistake: exit 2, with its hints and a
// pointer to the command's -h.
type usageError struct {
	msg   string
	hints []string
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// hinted is an error with hint lines for the user.
type hinted struct {
	err   error
	hints []string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

func withHints(err error, hints ...string) error { return &hinted{err: err, hints: hints} }

// hints returns the hint lines for an error: its own, or a general one
// for a class of errors.
func hints(err error) []string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hints
	}
	var de *config.DefinitionError
	switch {
	case errors.As(err, &de):
		return []string{"the definition format and its limits are in docs/definition.md"}
	case errors.Is(err, coffer.ErrKeyChecksum):
		return []string{"a public key has a typo or was cut short; copy it again from 'coffer-companion pubkey'"}
	case errors.Is(err, coffer.ErrKeyFormat), errors.Is(err, coffer.ErrWeakKey):
		return []string{"public keys look like cofferpk1...; print one with 'coffer-companion pubkey KEYFILE'"}
	case errors.Is(err, coffer.ErrWrongServer):
		return []string{"check --server-key: it must be the sealing key of the server the file was sealed to"}
	case errors.Is(err, coffer.ErrOldFormat):
		return []string{"the server's current serial is in its log and in 'coffer-server check'"}
	}
	return nil
}

// oneLine keeps an error on one line of stderr.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// newFlags returns a FlagSet that reports errors to the caller only.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses flags anywhere among the arguments and returns the
// positional ones. "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			msg, hints := flagerr.Explain(fs, err)
			return nil, &usageError{msg: msg, hints: hints}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" && len(args) > 0 {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseOne is parseArgs for a subcommand that takes exactly one
// argument; what names it in the usage error.
func parseOne(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usagef("%s takes one %s", fs.Name(), what)
	}
	return pos[0], nil
}

// keyFlags are --key (the author's key file) and --server-key (the server's
// sealing key) with their environment defaults.
type keyFlags struct {
	key, server string
}

func (kf *keyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&kf.key, "key", os.Getenv(envKey), "")
	fs.StringVar(&kf.server, "server-key", os.Getenv(envServerKey), "")
	fs.Func("server", "deprecated spelling of --server-key", func(v string) error {
		fmt.Fprintf(os.Stderr, "%s: warning: --server is deprecated; use --server-key\n", prog)
		kf.server = v
		return nil
	})
}

// given reports whether either was set, by flag or environment.
func (kf *keyFlags) given() bool { return kf.key != "" || kf.server != "" }

// load reads the author key file and the server's sealing key; both are
// required.
func (kf *keyFlags) load() (*coffer.AuthorKey, *coffer.SealingKey, error) {
	if kf.server == "" {
		return nil, nil, usagef("--server-key is required (or set %s)", envServerKey)
	}
	return kf.loadAuthor()
}

// loadAuthor reads the author key file, and the server's sealing key if
// one is given (nil otherwise).
func (kf *keyFlags) loadAuthor() (*coffer.AuthorKey, *coffer.SealingKey, error) {
	if kf.key == "" {
		return nil, nil, usagef("--key is required (or set %s)", envKey)
	}
	var server *coffer.SealingKey
	if kf.server != "" {
		var err error
		if server, err = parseServerKey(kf.server); err != nil {
			return nil, nil, err
		}
	}
	k, err := coffer.LoadAuthorKeyFile(kf.key)
	if err != nil {
		if errors.Is(err, coffer.ErrKeyKind) {
			return nil, nil, withHints(fmt.Errorf("--key: %w", err),
				"definitions are signed with an author key: make one with 'coffer-companion keygen --author -o author.key' and add its public key to the server's trusted list")
		}
		return nil, nil, err
	}
	return k, server, nil
}

// parseServerKey takes a sealing key's text, or the path of a file whose
// first line that is not a comment is one (the output of 'pubkey
// --sealing'). Key text of another kind is refused with an error that
// names it, and never printed.
func parseServerKey(s string) (*coffer.SealingKey, error) {
	// Key text of any kind is parsed as key text, never opened as a path:
	// an error about a missing file would print a pasted secret key.
	low := strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"cofferseal1", "cofferpk1", "coffersk1", "cofferauthorpk1", "cofferauthorsk1"} {
		if strings.HasPrefix(low, p) {
			return parseSealingText(s)
		}
	}
	data, err := readSmallFile(s, 16<<10)
	if err != nil {
		return nil, withHints(fmt.Errorf("--server-key: %w", err), sealingHint)
	}
	defer clear(data)
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, err := parseSealingText(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		return k, nil
	}
	return nil, withHints(fmt.Errorf("--server-key: %s holds no sealing key", s), sealingHint)
}

const sealingHint = "give the server's sealing key (cofferseal1...) or the file 'coffer-companion pubkey --sealing SERVER.key' writes"

func parseSealingText(s string) (*coffer.SealingKey, error) {
	k, err := coffer.ParseSealingKey(s)
	if err != nil {
		return nil, withHints(fmt.Errorf("--server-key: %w", err), sealingHint)
	}
	return k, nil
}

// readSmallFile reads a regular file of at most max bytes, checking the
// size before reading.
func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s has %d bytes, more than the limit of %d", path, fi.Size(), max)
	}
	// One buffer sized from Stat: io.ReadAll's doubling would leave
	// copies of a secret file behind that nothing clears.
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, max+1)); err != nil {
		clear(buf.Bytes())
		return nil, err
	}
	data := buf.Bytes()
	if int64(len(data)) > max {
		clear(data)
		return nil, fmt.Errorf("%s grew past the limit of %d bytes", path, max)
	}
	return data, nil
}

// writeFileAtomic replaces path with data and gives it mode; only a
// regular file is replaced (or a new one created), see atomicfile.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}
