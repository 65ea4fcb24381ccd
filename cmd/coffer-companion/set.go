package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
)

const setUsage = `usage: coffer-companion set [--client CLIENT | --shared GROUP] [options] FILE.sealed NAME < VALUE

Set one string value without an editor: read the value from stdin (never
from the command line, where other users and the shell history see it),
change that one line of the definition inside FILE (comments and the rest
of the text are kept) and seal it over FILE with the next serial and
FILE's hash as the previous one, as edit does. One trailing newline is
removed from the value; an empty value is refused.

--client says whose value it is; without it, the one client that has a
value NAME of its own, or the only client. --shared GROUP sets it in a
[shared.GROUP] table (docs/definition.md, "Shared values"). A value that
the text cannot take in place (a multi-line string, an inline table) is
refused with a pointer to edit; nothing is written.

options:
  --client CLIENT   the client whose value it is
  --shared GROUP    the [shared] group whose value it is
  --key FILE        the author's secret key file (default $COFFER_KEY)
  --server-key SEALING  the server's sealing key, or its file (default $COFFER_SERVER_KEY)
  --armor           write the text form
  --mode MODE       the file's new mode, octal (default: FILE's mode)

example:
  printf %s "$NEW_PASSWORD" | coffer-companion set --client web prod.sealed db.password
`

const unsetUsage = `usage: coffer-companion unset [--client CLIENT | --shared GROUP] [options] FILE.sealed NAME

Remove one value (its line) from the definition inside FILE and seal it
over FILE with the next serial, as set does. Options as for set.

example:
  coffer-companion unset --client web prod.sealed old_token
`

// change is one set or unset: its flags and the file it reseals.
type change struct {
	kf            keyFlags
	client, group string
	armor         bool
	mode          modeFlag
}

func (ch *change) register(fs *flag.FlagSet) {
	ch.kf.register(fs)
	fs.StringVar(&ch.client, "client", "", "")
	fs.StringVar(&ch.group, "shared", "", "")
	fs.BoolVar(&ch.armor, "armor", false, "")
	ch.mode.register(fs)
}

func (c *cli) set(args []string) error {
	var ch change
	fs := newFlags("set")
	ch.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 3 {
		return usagef("set takes FILE and NAME; the value is read from stdin, never from the command line")
	}
	if len(pos) != 2 {
		return usagef("set takes FILE and NAME")
	}
	return c.change(&ch, pos[0], pos[1], true)
}

func (c *cli) unset(args []string) error {
	var ch change
	fs := newFlags("unset")
	ch.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("unset takes FILE and NAME")
	}
	return c.change(&ch, pos[0], pos[1], false)
}

// change sets (reading stdin) or unsets name in the file at path and
// reseals it in place.
func (c *cli) change(ch *change, path, name string, set bool) error {
	if ch.client != "" && ch.group != "" {
		return usagef("--client and --shared exclude each other")
	}
	k, server, err := ch.kf.load()
	if err != nil {
		return err
	}
	f, err := openInPlace(k, server, path)
	if err != nil {
		return err
	}
	defer clear(f.env.TOML)
	table, err := ch.table(f.env.TOML, name)
	if err != nil {
		return err
	}
	text, err := changedText(f.env.TOML, table, name, set)
	if err != nil {
		return withHints(err, "nothing was written")
	}
	defer clear(text)
	next := f.next()
	next.TOML = text
	out, err := coffer.SealDefinition(k, server, &next, rand.Reader)
	if err != nil {
		return withHints(err, "nothing was written")
	}
	if err := c.writeInPlace(f, out, ch.armor, &ch.mode); err != nil {
		return err
	}
	verb := "unset"
	if set {
		verb = "set"
	}
	fmt.Fprintf(c.stderr, "%s: %s %q of %s; sealed serial %d of definition %s to %s\n", prog, verb, name, table, next.Serial, next.Name, path)
	return nil
}

// changedText returns src with name set to the value read from stdin, or
// removed.
func changedText(src []byte, table config.Table, name string, set bool) ([]byte, error) {
	if !set {
		return config.UnsetValue(src, table, name)
	}
	value, err := readValue(os.Stdin, name)
	if err != nil {
		return nil, err
	}
	defer clear(value)
	return config.SetValue(src, table, name, value)
}

// table is the table the change acts on: --shared, --client, or else the
// one client with a value name of its own, or the only client.
func (ch *change) table(src []byte, name string) (config.Table, error) {
	if ch.group != "" {
		return config.Table{Shared: true, Name: ch.group}, nil
	}
	if ch.client != "" {
		return config.Table{Name: ch.client}, nil
	}
	def, err := config.ParseDefinition(src)
	if err != nil {
		return config.Table{}, err
	}
	defer def.Clear()
	var owners []string
	for _, cl := range def.Clients {
		if _, ok := cl.Values[name]; ok && !fromShared(def, cl, name) {
			owners = append(owners, cl.Name)
		}
	}
	switch {
	case len(owners) == 1:
		return config.Table{Name: owners[0]}, nil
	case len(owners) == 0 && len(def.Clients) == 1:
		return config.Table{Name: def.Clients[0].Name}, nil
	}
	return config.Table{}, usagef("say whose value %q is with --client CLIENT or --shared GROUP (%d clients have one of their own)", name, len(owners))
}

// fromShared reports whether cl's value name comes from a group it includes.
func fromShared(def *config.Definition, cl config.DefinitionClient, name string) bool {
	for _, g := range def.Shared {
		if slices.Contains(cl.Include, g.Name) && slices.Contains(g.Names, name) {
			return true
		}
	}
	return false
}

// readValue reads a value of at most config.MaxDefinitionBytes from r,
// without one trailing newline (\n or \r\n). Buffers it outgrows are
// cleared, so no copy of the value is left behind.
func readValue(r io.Reader, name string) ([]byte, error) {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintf(os.Stderr, "%s: reading the value of %q from stdin (shown as typed; pipe it to keep it off the screen); end with Ctrl-D\n", prog, name)
		}
	}
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > config.MaxDefinitionBytes {
				clear(buf)
				return nil, fmt.Errorf("the value on stdin is longer than %d bytes", config.MaxDefinitionBytes)
			}
			bigger := make([]byte, len(buf), 2*cap(buf))
			copy(bigger, buf)
			clear(buf)
			buf = bigger
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			clear(buf)
			return nil, fmt.Errorf("reading the value from stdin: %w", err)
		}
	}
	if n := len(buf); n > 0 && buf[n-1] == '\n' {
		buf = buf[:n-1]
		if n > 1 && buf[n-2] == '\r' {
			buf = buf[:n-2]
		}
	}
	if len(buf) == 0 {
		return nil, withHints(fmt.Errorf("the value of %q read from stdin is empty; nothing was written", name),
			"pipe the value in: printf %s \"$VALUE\" | coffer-companion set ...; an empty value can be written with edit")
	}
	return buf, nil
}
