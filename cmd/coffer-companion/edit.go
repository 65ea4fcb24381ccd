package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
)

const editUsage = `usage: coffer-companion edit --key KEY --server PUBKEY [--armor] FILE.sealed

Open a sealed definition into a private temporary file (mode 0600 in a
new 0700 directory), run $EDITOR on it (vi if unset), check the result and
seal it again over FILE with the next serial and FILE's hash as the
previous one. FILE is replaced atomically, and only if it did not change
while you edited. The plaintext file is removed in every case: success, no
change, invalid TOML (your edit is discarded), editor failure, or SIGTERM
or SIGHUP. SIGINT (Ctrl-C) is left to the editor while it runs and
aborts the edit otherwise.

The output keeps FILE's form (binary or armored); --armor writes armor.

options:
  --key FILE        the companion's secret key file (default $COFFER_KEY)
  --server PUBKEY   the server's public key, or a file holding it (default $COFFER_SERVER_KEY)
  --armor           write the text form

example:
  EDITOR=nano coffer-companion edit prod.sealed
`

func (c *cli) edit(args []string) error {
	fs := newFlags("edit")
	var kf keyFlags
	kf.register(fs)
	armor := fs.Bool("armor", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("edit takes one sealed file")
	}
	path := pos[0]
	k, server, err := kf.load()
	if err != nil {
		return err
	}
	raw, err := readSmallFile(path, 2*coffer.MaxSealedBytes)
	if err != nil {
		return err
	}
	bin, err := coffer.SealedBinary(raw)
	if err != nil {
		return err
	}
	env, err := coffer.OpenEnvelope(k, server, bin)
	if err != nil {
		return err
	}
	defer clear(env.TOML)
	edited, err := c.runEditor(env.TOML)
	if err != nil {
		return err
	}
	defer clear(edited)
	if bytes.Equal(edited, env.TOML) {
		fmt.Fprintf(c.stderr, "%s: no changes; %s left as it was\n", prog, path)
		return nil
	}
	next := coffer.Envelope{Serial: env.Serial + 1, Previous: coffer.SealedHash(bin), TOML: edited, Created: time.Now()}
	out, err := coffer.SealDefinition(k, server, &next, rand.Reader)
	if err != nil {
		return withHints(err, "your edit was discarded and nothing was written; fix the definition and edit again")
	}
	if *armor || !bytes.Equal(raw, bin) {
		out = coffer.Armor(out)
	}
	// Compare-and-swap on the file: refuse if it changed under us.
	now, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(now, raw) {
		return withHints(fmt.Errorf("%s changed while you were editing; nothing was written", path),
			"edit again on top of the new file")
	}
	if err := writeFileAtomic(path, out, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	fmt.Fprintf(c.stderr, "%s: sealed serial %d to %s\n", prog, next.Serial, path)
	return nil
}

// runEditor writes text to a private temporary file, runs $EDITOR on it
// and returns what the editor left. The temporary directory is removed
// before it returns, and by the signal handler if the process is asked
// to stop meanwhile.
func (c *cli) runEditor(text []byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "coffer-edit-")
	if err != nil {
		return nil, err
	}
	var once sync.Once
	cleanup := func() { once.Do(func() { os.RemoveAll(dir) }) }
	defer cleanup()
	var editing atomic.Bool
	var editor atomic.Pointer[os.Process]
	stop := handleSignals(&editing, func() {
		if p := editor.Load(); p != nil {
			p.Signal(syscall.SIGTERM)
		}
		cleanup()
		fmt.Fprintf(c.stderr, "%s: error: interrupted; the temporary plaintext was removed and nothing was written\n", prog)
		os.Exit(1)
	})
	defer stop()

	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "definition.toml")
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	_, werr := f.Write(text)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, werr
	}
	name := os.Getenv("EDITOR")
	if name == "" {
		name = "vi"
	}
	// $EDITOR may hold arguments ("code -w"); the shell splits them and
	// execs the editor, so signals reach it directly.
	cmd := exec.Command("/bin/sh", "-c", "exec "+name+` "$1"`, "sh", file)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stderr, os.Stderr
	editing.Store(true)
	if err = cmd.Start(); err == nil {
		editor.Store(cmd.Process)
		err = cmd.Wait()
		editor.Store(nil)
	}
	editing.Store(false)
	if err != nil {
		return nil, withHints(fmt.Errorf("editor %q failed: %w; nothing was written", name, err),
			"the temporary plaintext was removed; set $EDITOR to an editor that exits 0 when you save")
	}
	edited, err := readSmallFile(file, config.MaxDefinitionBytes)
	if err != nil {
		return nil, err
	}
	return edited, nil
}

// handleSignals calls abort (which stops the editor, removes the
// plaintext and exits) on SIGTERM or SIGHUP, and on SIGINT unless
// the editor is running (the editor owns Ctrl-C, and the terminal sends
// it to both of us). It returns a function that stops the handling.
func handleSignals(editing *atomic.Bool, abort func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-ch:
				if sig == syscall.SIGINT && editing.Load() {
					continue
				}
				abort()
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
