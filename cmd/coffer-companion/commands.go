package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
)

const keygenUsage = `usage: coffer-companion keygen -o FILE

Write a new secret key file (mode 0600; an existing file is never
overwritten) and print its public key on stdout. The same kind of key
serves companions, servers and clients.

options:
  -o FILE   the secret key file to create (required)

example:
  coffer-companion keygen -o ~/.config/coffer/companion.key
`

func (c *cli) keygen(args []string) error {
	fs := newFlags("keygen")
	out := fs.String("o", "", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *out == "" || len(pos) != 0 {
		return usagef("keygen takes -o FILE and no arguments")
	}
	k, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := coffer.WriteKeyFile(*out, k); err != nil {
		if _, serr := os.Lstat(*out); serr == nil {
			return withHints(err, "choose another path, or remove the old key deliberately if it is no longer needed")
		}
		return err
	}
	fmt.Fprintln(c.stdout, k.Public())
	return nil
}

const pubkeyUsage = `usage: coffer-companion pubkey FILE

Print the public key (cofferpk1...) of a secret key file.

example:
  coffer-companion pubkey /etc/coffer/server.key
`

func (c *cli) pubkey(args []string) error {
	path, err := parseOne(newFlags("pubkey"), args, "key file")
	if err != nil {
		return err
	}
	k, err := coffer.LoadKeyFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, k.Public())
	return nil
}

const sealUsage = `usage: coffer-companion seal --key KEY --server PUBKEY [--previous OLD.sealed] [--armor] [-o OUT] FILE.toml
       coffer-companion seal --key KEY --server PUBKEY --force --serial N [--armor] [-o OUT] FILE.toml

Check a definition and seal it from the companion key to the server, so
that only the server can open it and the server can tell who sealed it.

The first definition has serial 1. Every later one names the file it
replaces with --previous: the serial becomes the previous serial plus one
and the previous file's hash goes inside, so the server refuses it if a
different change landed first (compare-and-swap). If the previous file was
sealed by another companion key, give its serial plus one with --serial.

--force --serial N skips the compare-and-swap: the server accepts the file
if N is above its current serial, whatever it is based on. Use it only to
recover (the previous file is lost); it can silently undo another change.

options:
  --key FILE        the companion's secret key file (default $COFFER_KEY)
  --server PUBKEY   the server's public key, or a file holding it (default $COFFER_SERVER_KEY)
  --previous FILE   the sealed file this one replaces
  --serial N        the serial, with --force or for a --previous sealed by another key
  --force           seal without a previous hash (see above)
  --armor           write the text form (safe to commit) instead of binary
  -o FILE           write here (mode 0600, atomically) instead of stdout

examples:
  coffer-companion seal --server cofferpk1... -o prod.sealed secrets.toml
  coffer-companion seal --previous prod.sealed -o prod.sealed secrets.toml
`

func (c *cli) seal(args []string) error {
	fs := newFlags("seal")
	var kf keyFlags
	kf.register(fs)
	previous := fs.String("previous", "", "")
	serial := fs.Uint64("serial", 0, "")
	force := fs.Bool("force", false, "")
	armor := fs.Bool("armor", false, "")
	out := fs.String("o", "", "")
	path, err := parseOne(fs, args, "definition file")
	if err != nil {
		return err
	}
	switch {
	case *force && *previous != "":
		return usagef("--force and --previous exclude each other")
	case *force && *serial == 0:
		return usagef("--force needs --serial N, above the server's current serial")
	case !*force && *previous == "" && *serial != 0:
		return usagef("--serial needs --previous or --force")
	}
	if err := checkStdout(*out, *armor); err != nil {
		return err
	}
	k, server, err := kf.load()
	if err != nil {
		return err
	}
	src, err := readSmallFile(path, config.MaxDefinitionBytes)
	if err != nil {
		return err
	}
	defer clear(src)
	env := coffer.Envelope{Serial: 1, Force: *force, TOML: src, Created: time.Now()}
	if *force {
		env.Serial = *serial
		fmt.Fprintf(c.stderr, "%s: warning: --force: serial %d will replace whatever definition the server holds, without checking it is based on it; a change made meanwhile is lost\n", prog, *serial)
	}
	if *previous != "" {
		if env.Serial, env.Previous, err = c.previous(k, server, *previous, *serial); err != nil {
			return err
		}
	}
	return c.sealOut(k, server, &env, *out, *armor)
}

// previous reads the file a new seal replaces: its hash, and the serial
// after it (from inside the box, or given when another key sealed it).
func (c *cli) previous(k *coffer.PrivateKey, server coffer.PublicKey, path string, serial uint64) (uint64, [32]byte, error) {
	bin, err := coffer.ReadSealedFile(path)
	if err != nil {
		return 0, [32]byte{}, err
	}
	h := coffer.SealedHash(bin)
	env, err := coffer.OpenEnvelope(k, server, bin)
	if err != nil {
		if errors.Is(err, coffer.ErrUntrustedAuthor) && serial > 1 {
			return serial, h, nil // sealed by another companion: trust the given serial
		}
		if errors.Is(err, coffer.ErrUntrustedAuthor) {
			return 0, h, withHints(fmt.Errorf("--previous %s: %w", path, err),
				"it was sealed by another companion key, so its serial cannot be read here; add --serial N with its serial plus one")
		}
		return 0, h, fmt.Errorf("--previous %s: %w", path, err)
	}
	clear(env.TOML)
	if serial != 0 && serial <= env.Serial {
		return 0, h, usagef("--serial %d is not above the previous serial %d", serial, env.Serial)
	}
	if serial == 0 {
		serial = env.Serial + 1
	}
	return serial, h, nil
}

// sealOut seals env and writes it to out, or stdout when out is empty.
func (c *cli) sealOut(k *coffer.PrivateKey, server coffer.PublicKey, env *coffer.Envelope, out string, armor bool) error {
	bin, err := coffer.SealDefinition(k, server, env, rand.Reader)
	if err != nil {
		return err
	}
	data := bin
	if armor {
		data = coffer.Armor(bin)
	}
	if out == "" {
		_, err := c.stdout.Write(data)
		return err
	}
	if err := writeFileAtomic(out, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	fmt.Fprintf(c.stderr, "%s: sealed serial %d to %s (hash %s)\n", prog, env.Serial, out, shortHash(coffer.SealedHash(bin)))
	return nil
}

// checkStdout refuses to write a binary file to a terminal.
func checkStdout(out string, armor bool) error {
	if out != "" || armor {
		return nil
	}
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return usagef("refusing to write a binary sealed file to a terminal; give -o FILE or --armor")
	}
	return nil
}

const openUsage = `usage: coffer-companion open --key KEY --server PUBKEY FILE.sealed

Print the definition inside a sealed file on stdout. The box key is shared
by the companion and the server, so the companion that sealed a file can
open it. Files sealed by another companion key do not open.

options:
  --key FILE        the companion's secret key file (default $COFFER_KEY)
  --server PUBKEY   the server's public key, or a file holding it (default $COFFER_SERVER_KEY)

example:
  coffer-companion open prod.sealed > secrets.toml
`

func (c *cli) open(args []string) error {
	fs := newFlags("open")
	var kf keyFlags
	kf.register(fs)
	path, err := parseOne(fs, args, "sealed file")
	if err != nil {
		return err
	}
	k, server, err := kf.load()
	if err != nil {
		return err
	}
	bin, err := coffer.ReadSealedFile(path)
	if err != nil {
		return err
	}
	env, err := coffer.OpenEnvelope(k, server, bin)
	if err != nil {
		return err
	}
	defer clear(env.TOML)
	_, err = c.stdout.Write(env.TOML)
	return err
}

const checkUsage = `usage: coffer-companion check FILE.toml

Validate a definition without sealing it: TOML syntax, names, value types,
public keys and limits (docs/definition.md). Prints a one-line summary.

example:
  coffer-companion check secrets.toml
`

func (c *cli) check(args []string) error {
	path, err := parseOne(newFlags("check"), args, "definition file")
	if err != nil {
		return err
	}
	src, err := readSmallFile(path, config.MaxDefinitionBytes)
	if err != nil {
		return err
	}
	defer clear(src)
	def, err := coffer.ParseDefinition(src)
	if err != nil {
		return err
	}
	defer def.Clear()
	keys, values := 0, 0
	for _, cl := range def.Clients {
		keys += len(cl.Keys)
		values += len(cl.Values)
	}
	fmt.Fprintf(c.stdout, "%s: ok: %d clients, %d public keys, %d values\n", path, len(def.Clients), keys, values)
	return nil
}

const inspectUsage = `usage: coffer-companion inspect [--key KEY --server PUBKEY] FILE.sealed

Print a sealed file's metadata, never a value. Without keys only what is
outside the box: the size, the hash and the author key it claims, which
is not verified. With --key and --server (or their environment variables)
the box is opened and the metadata inside is printed: author, server,
serial, previous hash, creation time, and the client and secret names.

options:
  --key FILE        the companion's secret key file (default $COFFER_KEY)
  --server PUBKEY   the server's public key, or a file holding it (default $COFFER_SERVER_KEY)
`

func (c *cli) inspect(args []string) error {
	fs := newFlags("inspect")
	var kf keyFlags
	kf.register(fs)
	path, err := parseOne(fs, args, "sealed file")
	if err != nil {
		return err
	}
	bin, err := coffer.ReadSealedFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "file:     %s (%d bytes in binary form)\n", path, len(bin))
	h := coffer.SealedHash(bin)
	fmt.Fprintf(c.stdout, "hash:     %s\n", hex.EncodeToString(h[:]))
	if !kf.given() {
		hint, err := coffer.PeekAuthor(bin)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "author:   %s (UNVERIFIED: read outside the box; give --key and --server to verify)\n", hint)
		return nil
	}
	k, server, err := kf.load()
	if err != nil {
		return err
	}
	env, err := coffer.OpenEnvelope(k, server, bin)
	if err != nil {
		return err
	}
	defer clear(env.TOML)
	c.printEnvelope(env)
	def, err := coffer.ParseDefinition(env.TOML)
	if err != nil {
		return fmt.Errorf("the definition inside does not parse: %w", err)
	}
	defer def.Clear()
	c.printClients(def)
	return nil
}

func (c *cli) printEnvelope(env *coffer.Envelope) {
	fmt.Fprintf(c.stdout, "author:   %s (verified)\n", env.Author)
	fmt.Fprintf(c.stdout, "server:   %s\n", env.Server)
	fmt.Fprintf(c.stdout, "serial:   %d\n", env.Serial)
	switch {
	case env.Force:
		fmt.Fprintf(c.stdout, "previous: none (forced: the server does not check what it replaces)\n")
	case env.Serial == 1:
		fmt.Fprintf(c.stdout, "previous: none (first definition)\n")
	default:
		fmt.Fprintf(c.stdout, "previous: %s\n", hex.EncodeToString(env.Previous[:]))
	}
	fmt.Fprintf(c.stdout, "created:  %s (informational)\n", env.Created.UTC().Format(time.RFC3339))
}

func (c *cli) printClients(def *coffer.Definition) {
	fmt.Fprintf(c.stdout, "clients:  %d\n", len(def.Clients))
	for _, cl := range def.Clients {
		names := make([]string, 0, len(cl.Values))
		for n := range cl.Values {
			names = append(names, n)
		}
		slices.Sort(names)
		fmt.Fprintf(c.stdout, "  %s (%d keys): %s\n", cl.Name, len(cl.Keys), strings.Join(names, ", "))
	}
}

// shortHash is the first 8 bytes of a hash in hex, for messages.
func shortHash(h [32]byte) string { return hex.EncodeToString(h[:8]) }
