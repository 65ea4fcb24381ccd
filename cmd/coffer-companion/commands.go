package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/frame"
)

const keygenUsage = `usage: coffer-companion keygen [--author] -o FILE
       coffer-companion keygen --upgrade FILE

Write a new secret key file (mode 0600; an existing file is never
overwritten) and print its public key on stdout. stderr says which kind
of key was made; the key file says it too.

Without --author the key is an X25519 key (cofferpk1...), for a server or
a client. With --author it is an author's Ed25519 signing key
(cofferauthorpk1...): the key that signs sealed definitions, whose public
key goes into the server's trusted list. The kinds never stand in for each
other.

options:
  --author  make an author's signing key
  -o FILE   the secret key file to create (required)

examples:
  coffer-companion keygen --author -o ~/.config/coffer/author.key
  coffer-companion keygen -o /etc/coffer/server.key

--upgrade FILE adds an ML-KEM-768 sealing seed to a server key file made
before key files had one (in place, atomically, mode 0600) and prints
the new sealing key; definitions sealed to the old sealing key must be
resealed to it.
`

func (c *cli) keygen(args []string) error {
	fs := newFlags("keygen")
	out := fs.String("o", "", "")
	author := fs.Bool("author", false, "")
	upgrade := fs.String("upgrade", "", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *upgrade != "" {
		if *out != "" || *author || len(pos) != 0 {
			return usagef("keygen --upgrade FILE takes no other flag or argument")
		}
		return c.upgradeKey(*upgrade)
	}
	if *out == "" || len(pos) != 0 {
		return usagef("keygen takes -o FILE and no arguments")
	}
	var pub, kind string
	if *author {
		k, err := coffer.GenerateAuthorKey(rand.Reader)
		if err != nil {
			return err
		}
		err = coffer.WriteAuthorKeyFile(*out, k)
		pub, kind = k.Public().String(), "an author's signing key (Ed25519); its public key goes into the server's trusted list"
		if err != nil {
			return keygenError(*out, err)
		}
	} else {
		k, err := coffer.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		err = coffer.WriteKeyFile(*out, k)
		pub, kind = k.Public().String(), "an X25519 key, for a server or a client"
		if err != nil {
			return keygenError(*out, err)
		}
	}
	fmt.Fprintf(c.stderr, "%s: wrote %s to %s\n", prog, kind, *out)
	fmt.Fprintln(c.stdout, pub)
	return nil
}

// upgradeKey adds an ML-KEM-768 sealing seed to a server key file made
// before the seed existed, and prints the new sealing key.
func (c *cli) upgradeKey(path string) error {
	if err := coffer.UpgradeKeyFile(path, rand.Reader); err != nil {
		if errors.Is(err, coffer.ErrHasSealingSeed) {
			return withHints(err, "nothing to do: its sealing key is what coffer-companion pubkey --sealing prints")
		}
		return err
	}
	k, err := coffer.LoadKeyFile(path)
	if err != nil {
		return err
	}
	sk, err := k.SealingKey()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "%s: added an ML-KEM-768 sealing seed to %s; its new sealing key follows: give it to authors (definitions sealed to the old one no longer open: reseal them)\n", prog, path)
	fmt.Fprintln(c.stdout, sk.String())
	return nil
}

func keygenError(out string, err error) error {
	if _, serr := os.Lstat(out); serr == nil {
		return withHints(err, "choose another path, or remove the old key deliberately if it is no longer needed")
	}
	return err
}

const pubkeyUsage = `usage: coffer-companion pubkey [--sealing] FILE

Print the public key of a secret key file: cofferpk1... for an X25519
key, cofferauthorpk1... for an author's signing key.

With --sealing, FILE is a server's key file, and the output is the
server's sealing key in its file form: two comment lines and one
cofferseal1... line (the server's X25519 key and the ML-KEM-768 key
derived from the same key file, with a checksum). Save it and give the
file, or paste the cofferseal1 line, to 'seal --server-key'. Clients keep
pinning the short cofferpk1 key.

examples:
  coffer-companion pubkey ~/.config/coffer/author.key
  coffer-companion pubkey --sealing /etc/coffer/server.key > server.sealing
`

func (c *cli) pubkey(args []string) error {
	fs := newFlags("pubkey")
	sealing := fs.Bool("sealing", false, "")
	path, err := parseOne(fs, args, "key file")
	if err != nil {
		return err
	}
	k, err := coffer.LoadKeyFile(path)
	if errors.Is(err, coffer.ErrKeyKind) && !*sealing {
		a, aerr := coffer.LoadAuthorKeyFile(path)
		if aerr != nil {
			return aerr
		}
		fmt.Fprintln(c.stdout, a.Public())
		return nil
	}
	if err != nil {
		if errors.Is(err, coffer.ErrKeyKind) {
			return withHints(err, "--sealing needs the server's key file, not an author key")
		}
		return err
	}
	if !*sealing {
		fmt.Fprintln(c.stdout, k.Public())
		return nil
	}
	sk, err := k.SealingKey()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "# coffer server sealing key (X25519 + ML-KEM-768), public: give it to 'coffer-companion seal --server-key'\n")
	fmt.Fprintf(c.stdout, "# server key (what clients pin): %s\n", k.Public())
	fmt.Fprintln(c.stdout, sk)
	return nil
}

const sealUsage = `usage: coffer-companion seal --key AUTHOR.key --server-key SEALING [--previous OLD.sealed] [--armor] [-o OUT] FILE.toml
       coffer-companion seal --key AUTHOR.key --server-key SEALING --force --serial N [--armor] [-o OUT] FILE.toml
       coffer-companion seal --key AUTHOR.key --server-key SEALING --new-chain [--armor] [-o OUT] FILE.toml

Check a definition, sign it with the author key and encrypt it to the
server (X25519 + ML-KEM-768), so that only the server can read it and the
server accepts it only if a trusted author signed it. The author can open
its own files again (open, edit, --previous); other authors cannot.

The first definition has serial 1. Every later one names the file it
replaces with --previous: the serial becomes the previous serial plus one
and the previous file's hash goes inside, so the server refuses it if a
different change landed first (compare-and-swap). If the previous file was
sealed by another author key, give its serial plus one with --serial.

When -o names an existing file and neither --previous, --force nor
--new-chain is given, that file is the previous one: sealing again over
prod.sealed goes on from its serial, in its form (armored stays armored).
If it cannot be opened (another author's file without --serial, another
server, not a sealed file) nothing is written. --new-chain starts again
at serial 1 over it, on purpose.

--force --serial N skips the compare-and-swap: the server accepts the file
if N is above its current serial, whatever it is based on. Use it only to
recover (the previous file is lost, or it is in the old format 1); it can
silently undo another change. The server refuses a serial more than 2^32
above its current one.

options:
  --key FILE        the author's secret key file (default $COFFER_KEY)
  --server-key SEALING  the server's sealing key (cofferseal1...), or the file
                    'coffer-companion pubkey --sealing SERVER.key' writes
                    (default $COFFER_SERVER_KEY)
  --previous FILE   the sealed file this one replaces
  --serial N        the serial, with --force or for a --previous sealed by another key
  --force           seal without a previous hash (see above)
  --new-chain       serial 1 even if -o exists (a new server, a new chain)
  --definition NAME the definition this file is for, on a server that loads
                    several ([[definitions]] in its config); signed into the
                    file, and the server loads it only as that definition.
                    Default: the previous file's, or "default" (no name)
  --armor           write the text form (safe to commit) instead of binary
  -o FILE           write here (atomically) instead of stdout
  --mode MODE       the mode of the -o file, octal; default: the existing
                    file's mode, or 0644 for a new one (a sealed file is
                    safe to publish, and the server must read it)

examples:
  coffer-companion seal --key author.key --server-key server.sealing -o prod.sealed secrets.toml
  coffer-companion seal -o prod.sealed secrets.toml    # again: serial 2, chained
`

func (c *cli) seal(args []string) error {
	fs := newFlags("seal")
	var kf keyFlags
	kf.register(fs)
	previous := fs.String("previous", "", "")
	serial := fs.Uint64("serial", 0, "")
	force := fs.Bool("force", false, "")
	newChain := fs.Bool("new-chain", false, "")
	armor := fs.Bool("armor", false, "")
	definition := fs.String("definition", "", "")
	var mode modeFlag
	mode.register(fs)
	out := fs.String("o", "", "")
	path, err := parseOne(fs, args, "definition file")
	if err != nil {
		return err
	}
	if *definition != "" && !frame.ValidDefinitionName(*definition) {
		return usagef("--definition %q is not a definition name: 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit", *definition)
	}
	switch {
	case *newChain && (*force || *previous != "" || *serial != 0):
		return usagef("--new-chain excludes --previous, --force and --serial")
	case *force && *previous != "":
		return usagef("--force and --previous exclude each other")
	case *force && *serial == 0:
		return usagef("--force needs --serial N, above the server's current serial")
	case *serial >= coffer.MaxSerial:
		return usagef("--serial %d is not below %d", *serial, uint64(coffer.MaxSerial))
	}
	implicit := !*force && !*newChain && *previous == "" && exists(*out)
	if implicit {
		*previous = *out // chain from the file -o replaces (docs/files.md, "Serials")
		*armor = *armor || isArmored(*out)
	}
	if !*force && *previous == "" && *serial != 0 {
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
	env := coffer.Envelope{Serial: 1, Force: *force, TOML: src, Created: time.Now(), Name: *definition}
	if *force {
		env.Serial = *serial
		fmt.Fprintf(c.stderr, "%s: warning: --force: serial %d will replace whatever definition the server holds, without checking it is based on it; a change made meanwhile is lost\n", prog, *serial)
	}
	if *newChain && exists(*out) {
		fmt.Fprintf(c.stderr, "%s: warning: --new-chain: %s is replaced by serial 1; a server that holds a higher serial refuses it\n", prog, *out)
	}
	if *previous != "" {
		what := "--previous"
		if implicit {
			what = "-o"
		}
		var prevName string
		if env.Serial, env.Previous, prevName, err = c.previous(k, server, what, *previous, *serial); err != nil {
			if implicit {
				return implicitChainError(*out, err)
			}
			return err
		}
		switch {
		case prevName == "": // sealed by another author: its name cannot be read
		case *definition == "":
			env.Name = prevName // a chain stays in its definition
		case *definition != prevName:
			return withHints(fmt.Errorf("--definition %s, but %s %s was sealed for definition %s; nothing was written", *definition, what, *previous, prevName),
				"a definition's chain keeps its name: drop --definition, or start the other definition's chain with its own -o")
		}
	}
	if implicit {
		fmt.Fprintf(c.stderr, "%s: -o %s exists: chaining from it (serial %d, its hash as the previous one)\n", prog, *out, env.Serial)
	}
	return c.sealOut(k, server, &env, *out, *armor, mode.forTarget(*out))
}

// exists reports whether path names something (a missing -o is "").
func exists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Lstat(path)
	return err == nil
}

// isArmored reports whether the file at path starts like the armored
// form, so that resealing over it keeps its form.
func isArmored(path string) bool {
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		return false // never open a FIFO or device: it could block
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [10]byte
	n, _ := io.ReadFull(f, head[:])
	return string(head[:n]) == "-----BEGIN"
}

// implicitChainError explains why seal -o over an existing file refused:
// the chain could not be followed, so the file is left as it was.
func implicitChainError(out string, err error) error {
	hint := "to start a new chain at serial 1 over it deliberately, add --new-chain"
	if errors.Is(err, coffer.ErrNotOwnFile) {
		return withHints(fmt.Errorf("cannot chain from the existing file: %w; %s was left as it was", err, out),
			"it was sealed by another author key: add --serial N with its serial plus one", hint)
	}
	return withHints(fmt.Errorf("cannot chain from the existing file: %w; %s was left as it was", err, out),
		"give another -o, or --previous with the file this one replaces", hint)
}

// previous reads the file a new seal replaces: its hash, and the serial
// after it (from inside, or given when another author sealed it).
// what names the flag that gave path, for errors.
func (c *cli) previous(k *coffer.AuthorKey, server *coffer.SealingKey, what, path string, serial uint64) (uint64, [32]byte, string, error) {
	bin, err := coffer.ReadSealedFile(path)
	if err != nil {
		return 0, [32]byte{}, "", err
	}
	h := coffer.SealedHash(bin)
	env, err := coffer.OpenEnvelope(k, bin)
	if err != nil {
		if errors.Is(err, coffer.ErrNotOwnFile) && serial > 1 {
			return serial, h, "", nil // sealed by another author: trust the given serial
		}
		if errors.Is(err, coffer.ErrNotOwnFile) {
			return 0, h, "", withHints(fmt.Errorf("%s %s: %w", what, path, err),
				"it was sealed by another author key, so its serial cannot be read here; add --serial N with its serial plus one")
		}
		return 0, h, "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	clear(env.TOML)
	if env.Server != server.X25519 {
		return 0, h, "", withHints(fmt.Errorf("%s %s was sealed for server %s, not for --server-key %s", what, path, env.Server, server.X25519),
			"give the sealing key of the server the previous file was sealed to")
	}
	if serial != 0 && serial <= env.Serial {
		return 0, h, "", usagef("--serial %d is not above the previous serial %d", serial, env.Serial)
	}
	if serial == 0 {
		serial = env.Serial + 1
	}
	return serial, h, env.Name, nil
}

// sealOut seals env and writes it to out, or stdout when out is empty.
// mode is the new file's mode.
func (c *cli) sealOut(k *coffer.AuthorKey, server *coffer.SealingKey, env *coffer.Envelope, out string, armor bool, mode os.FileMode) error {
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
	if err := writeFileAtomic(out, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	fmt.Fprintf(c.stderr, "%s: sealed serial %d of definition %s to %s (hash %s)\n", prog, env.Serial, env.Name, out, shortHash(coffer.SealedHash(bin)))
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

const openUsage = `usage: coffer-companion open --key AUTHOR.key [--server-key SEALING] FILE.sealed

Print the definition inside a sealed file on stdout. A sealed file keeps a
copy of its key for the author that sealed it, so that author opens it
with its own key; files sealed by another author key do not open. The
author's signature is checked. With --server-key, the file must also be
sealed for that server.

options:
  --key FILE        the author's secret key file (default $COFFER_KEY)
  --server-key SEALING  the server's sealing key, or its file (default $COFFER_SERVER_KEY)

example:
  coffer-companion open --key author.key prod.sealed > secrets.toml
`

func (c *cli) open(args []string) error {
	fs := newFlags("open")
	var kf keyFlags
	kf.register(fs)
	path, err := parseOne(fs, args, "sealed file")
	if err != nil {
		return err
	}
	env, err := openOwn(&kf, path)
	if err != nil {
		return err
	}
	defer clear(env.TOML)
	_, err = c.stdout.Write(env.TOML)
	return err
}

// openOwn opens a sealed file with the author key of kf, and checks it is
// for kf's server when one is given.
func openOwn(kf *keyFlags, path string) (*coffer.Envelope, error) {
	k, server, err := kf.loadAuthor()
	if err != nil {
		return nil, err
	}
	bin, err := coffer.ReadSealedFile(path)
	if err != nil {
		return nil, err
	}
	env, err := coffer.OpenEnvelope(k, bin)
	if err != nil {
		return nil, err
	}
	if server != nil && env.Server != server.X25519 {
		clear(env.TOML)
		return nil, fmt.Errorf("%w: %s was sealed for server %s, not for --server-key %s", coffer.ErrWrongServer, path, env.Server, server.X25519)
	}
	return env, nil
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
	keys, values, shared := 0, 0, 0
	for _, cl := range def.Clients {
		keys += len(cl.Keys)
		values += len(cl.Values)
		shared += sharedCount(def, cl)
	}
	if len(def.Shared) == 0 {
		fmt.Fprintf(c.stdout, "%s: ok: %d clients, %d public keys, %d values\n", path, len(def.Clients), keys, values)
		return nil
	}
	fmt.Fprintf(c.stdout, "%s: ok: %d clients, %d public keys, %d values given to clients (%d of them from %s)\n",
		path, len(def.Clients), keys, values, shared, plural(len(def.Shared), "[shared] group"))
	return nil
}

// sharedCount is the number of cl's values that come from [shared] groups.
func sharedCount(def *coffer.Definition, cl coffer.DefinitionClient) int {
	n := 0
	for _, g := range def.Shared {
		if slices.Contains(cl.Include, g.Name) {
			n += len(g.Names)
		}
	}
	return n
}

// plural is "1 word" or "n words".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

const inspectUsage = `usage: coffer-companion inspect [--key AUTHOR.key [--server-key SEALING]] FILE.sealed

Print a sealed file's metadata, never a value. Without --key only what is
outside the encryption: the size, the hash and the author key the file
claims, which is not verified. With --key (the author's own key; or
$COFFER_KEY) the file is opened and its signature checked, and the
metadata inside is printed: author, server, serial, previous hash,
creation time, and the client and secret names.

options:
  --key FILE        the author's secret key file (default $COFFER_KEY)
  --server-key SEALING  the server's sealing key, or its file (default $COFFER_SERVER_KEY)
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
	if kf.key == "" {
		hint, err := coffer.PeekAuthor(bin)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "author:   %s (UNVERIFIED: read outside the encryption; give --key to verify)\n", hint)
		return nil
	}
	env, err := openOwn(&kf, path)
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
	fmt.Fprintf(c.stdout, "author:   %s (signature verified)\n", env.Author)
	fmt.Fprintf(c.stdout, "server:   %s\n", env.Server)
	fmt.Fprintf(c.stdout, "definition: %s\n", env.Name)
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

// printClients prints each client's value names, counting the values it
// gets (shared ones included, as its shard holds them), then the [shared]
// groups and who includes them.
func (c *cli) printClients(def *coffer.Definition) {
	fmt.Fprintf(c.stdout, "clients:  %d\n", len(def.Clients))
	users := make(map[string][]string)
	for _, cl := range def.Clients {
		names := make([]string, 0, len(cl.Values))
		for n := range cl.Values {
			names = append(names, n)
		}
		slices.Sort(names)
		count := plural(len(cl.Values), "value")
		if n := sharedCount(def, cl); n > 0 {
			count += fmt.Sprintf(", %d of them shared", n)
		}
		line := fmt.Sprintf("  %s (%s, %s): %s", cl.Name, plural(len(cl.Keys), "public key"), count, strings.Join(names, ", "))
		if len(cl.Include) > 0 {
			line += "; include: " + strings.Join(cl.Include, ", ")
		}
		fmt.Fprintln(c.stdout, line)
		for _, g := range cl.Include {
			users[g] = append(users[g], cl.Name)
		}
	}
	if len(def.Shared) == 0 {
		return
	}
	fmt.Fprintf(c.stdout, "shared:   %s\n", plural(len(def.Shared), "group"))
	for _, g := range def.Shared {
		by := "included by no client"
		if len(users[g.Name]) > 0 {
			by = "included by " + strings.Join(users[g.Name], ", ")
		}
		fmt.Fprintf(c.stdout, "  %s (%s): %s; %s\n", g.Name, plural(len(g.Names), "value"), strings.Join(g.Names, ", "), by)
	}
}

// shortHash is the first 8 bytes of a hash in hex, for messages.
func shortHash(h [32]byte) string { return hex.EncodeToString(h[:8]) }
