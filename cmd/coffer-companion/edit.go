package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
)

const editUsage = `usage: coffer-companion edit --key AUTHOR.key --server-key SEALING [--armor] [--mode MODE] FILE.sealed

Open a sealed definition (one this author key sealed) into a private temporary file (mode 0600 in a
new 0700 directory), run $EDITOR on it (vi if unset), check the result and
seal it again over FILE with the next serial and FILE's hash as the
previous one. FILE is replaced atomically, and only if it did not change
while you edited.

If the result does not check (TOML syntax, names, keys, limits), the
editor opens again on your text with the error in a comment block at the
top (line, column and key, never a value); fix it and save to seal. Quit
without saving (the file exactly as shown) to give up: the edit is then
discarded and FILE left as it was (exit 1).

The plaintext file is removed in every case: success, no change, giving
up, editor failure, or SIGTERM or SIGHUP. SIGINT (Ctrl-C) is left to the editor while it runs and
aborts the edit otherwise.

The temporary directory is made in $TMPDIR if set; else in
$XDG_RUNTIME_DIR if it is a directory, else in /dev/shm if it is a
writable directory (both are usually in memory), else in /tmp.

On SIGTERM or SIGHUP the editor gets SIGTERM and up to 2 seconds to exit
(then SIGKILL); the directory is removed after it exits, with anything the
editor saved there (nano writes NAME.save), and nothing is sealed.

The output keeps FILE's form (binary or armored); --armor writes armor.

options:
  --key FILE        the author's secret key file (default $COFFER_KEY)
  --server-key SEALING  the server's sealing key, or its file (default $COFFER_SERVER_KEY)
  --armor           write the text form
  --mode MODE       the file's new mode, octal (default: FILE's mode)

example:
  EDITOR=nano coffer-companion edit prod.sealed
`

func (c *cli) edit(args []string) error {
	fs := newFlags("edit")
	var kf keyFlags
	kf.register(fs)
	armor := fs.Bool("armor", false, "")
	var mode modeFlag
	mode.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("edit takes one sealed file")
	}
	k, server, err := kf.load()
	if err != nil {
		return err
	}
	f, err := openInPlace(k, server, pos[0])
	if err != nil {
		return err
	}
	defer clear(f.env.TOML)
	next := f.next()
	out, err := c.editUntilValid(k, server, f.path, f.env.TOML, &next)
	if err != nil || out == nil {
		return err
	}
	if err := c.writeInPlace(f, out, *armor, &mode); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "%s: sealed serial %d of definition %s to %s\n", prog, next.Serial, next.Name, f.path)
	return nil
}

// maxEditRounds bounds how often an edit that does not check reopens the
// editor: a scripted $EDITOR that always writes the same mistake with a
// change would otherwise loop forever.
const maxEditRounds = 100

// editHeaderPrefix starts each line of the error block shown above a
// definition that did not check; such lines at the top are removed before
// the definition is checked again and sealed.
const editHeaderPrefix = "# coffer-companion:"

// editUntilValid runs the editor on text until the result checks and
// seals (returned), the first save is unchanged (nil, nil: nothing to do),
// or the user gives up: a save left exactly as shown after an error. Each
// round that does not check reopens the editor on the same text with the
// error in a comment block at the top (docs/definition.md, "Editing a
// sealed file"). next gets the edited TOML, which the caller clears.
func (c *cli) editUntilValid(k *coffer.AuthorKey, server *coffer.SealingKey, path string, text []byte, next *coffer.Envelope) ([]byte, error) {
	shown, owned := text, false // owned: shown is ours to clear
	defer func() {
		if owned {
			clear(shown)
		}
	}()
	for round := 1; ; round++ {
		edited, err := runEditor(shown)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(edited, shown) {
			clear(edited)
			if round == 1 {
				fmt.Fprintf(c.stderr, "%s: no changes; %s left as it was\n", prog, path)
				return nil, nil
			}
			return nil, fmt.Errorf("the definition did not check and was saved unchanged: your edit was discarded and %s left as it was", path)
		}
		out, err := checkAndSeal(k, server, edited, next)
		if err == nil || round == maxEditRounds {
			clear(edited)
			if err != nil {
				err = withHints(err, fmt.Sprintf("the definition did not check %d times: your edit was discarded and nothing was written", round))
			}
			return out, err
		}
		fmt.Fprintf(c.stderr, "%s: %s; reopening the editor\n", prog, oneLine(err.Error()))
		if owned {
			clear(shown)
		}
		shown, owned = withErrorHeader(err, edited), true
		clear(edited)
	}
}

// checkAndSeal checks edited as the next round would show it, under an
// error block of the same number of lines, so that an error's line is the
// line the user sees; then it seals it without the block.
func checkAndSeal(k *coffer.AuthorKey, server *coffer.SealingKey, edited []byte, next *coffer.Envelope) ([]byte, error) {
	view := withErrorHeader(errors.New("placeholder"), edited)
	defer clear(view)
	if len(view) > config.MaxDefinitionBytes {
		view = edited // near the size limit: lines may be off, but the limit is the file's own
	}
	def, err := coffer.ParseDefinition(view)
	if err != nil {
		return nil, err
	}
	def.Clear()
	next.TOML = withoutErrorHeader(edited)
	return coffer.SealDefinition(k, server, next, rand.Reader)
}

// withErrorHeader returns body (without any old error block) under a new
// one naming err, which by the definition errors' rule names a line, a
// column and a key, never a value.
func withErrorHeader(err error, body []byte) []byte {
	body = withoutErrorHeader(body)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s this definition does not check, and nothing was sealed:\n", editHeaderPrefix)
	fmt.Fprintf(&b, "%s   %s\n", editHeaderPrefix, oneLine(err.Error()))
	fmt.Fprintf(&b, "%s fix it and save to seal; quit without saving to discard the edit.\n", editHeaderPrefix)
	fmt.Fprintf(&b, "%s (lines starting with %q are removed before sealing)\n", editHeaderPrefix, editHeaderPrefix)
	out := make([]byte, 0, b.Len()+len(body))
	return append(append(out, b.Bytes()...), body...)
}

// withoutErrorHeader returns text after its leading error block lines; it
// shares text's bytes.
func withoutErrorHeader(text []byte) []byte {
	for bytes.HasPrefix(text, []byte(editHeaderPrefix)) {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			return text[len(text):]
		}
		text = text[i+1:]
	}
	return text
}

// editorStopTimeout bounds how long an aborted edit waits for the editor
// after asking it to stop (an editor may save its buffer first, as nano
// writes NAME.save) before it kills it: the plaintext directory is removed
// only once no editor can write into it, and a stuck editor must not keep
// the companion from exiting.
const editorStopTimeout = 2 * time.Second

// errInterrupted ends an edit that a signal aborted.
var errInterrupted = errors.New("interrupted; the temporary plaintext was removed and nothing was written")

// runEditor writes text to a private temporary file, runs $EDITOR on it
// and returns what the editor left. The temporary directory is removed
// before it returns. Signals are caught for the whole time the plaintext
// exists, and any SIGTERM or SIGHUP in that time, or a SIGINT outside the
// editor, makes it return errInterrupted, never the edited text.
func runEditor(text []byte) ([]byte, error) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	dir, err := mkdirPrivate()
	if err != nil {
		return nil, err
	}
	edited, err := editIn(dir, text, sigs)
	if rerr := os.RemoveAll(dir); rerr != nil {
		clear(edited)
		return nil, withHints(fmt.Errorf("removing the temporary plaintext: %w; nothing was written", rerr),
			"remove "+dir+" by hand")
	}
	// Stop catching only now that the plaintext is gone; a signal that
	// came after the editor exited still aborts.
	signal.Stop(sigs)
	if err == nil && len(sigs) > 0 {
		clear(edited)
		return nil, errInterrupted
	}
	return edited, err
}

// mkdirPrivate creates the directory for the plaintext. Its parent is
// $TMPDIR if set; else $XDG_RUNTIME_DIR or /dev/shm, the first in which a
// directory can be made (both are usually tmpfs, so the plaintext never
// reaches a disk); else os.TempDir().
func mkdirPrivate() (string, error) {
	if os.Getenv("TMPDIR") == "" {
		for _, parent := range []string{os.Getenv("XDG_RUNTIME_DIR"), "/dev/shm"} {
			if !filepath.IsAbs(parent) {
				continue // unset, or relative, which the XDG spec says to ignore
			}
			if dir, err := mkdirPrivateIn(parent); err == nil {
				return dir, nil
			}
		}
	}
	return mkdirPrivateIn(os.TempDir())
}

// mkdirPrivateIn creates a new 0700 directory in parent.
func mkdirPrivateIn(parent string) (string, error) {
	dir, err := os.MkdirTemp(parent, "coffer-edit-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.Remove(dir)
		return "", err
	}
	return dir, nil
}

// editIn writes text to a file in dir, runs $EDITOR on it and reads it
// back. The caller removes dir.
func editIn(dir string, text []byte, sigs <-chan os.Signal) ([]byte, error) {
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
	if len(sigs) > 0 {
		return nil, errInterrupted
	}
	name := os.Getenv("EDITOR")
	if name == "" {
		name = "vi"
	}
	// $EDITOR may hold arguments ("code -w"); the shell splits them and
	// execs the editor, so signals reach it directly.
	cmd := exec.Command("/bin/sh", "-c", "exec "+name+` "$1"`, "sh", file)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stderr, os.Stderr
	if err = cmd.Start(); err == nil {
		err = waitEditor(cmd, sigs)
	}
	if errors.Is(err, errInterrupted) {
		return nil, err
	}
	if err != nil {
		return nil, withHints(fmt.Errorf("editor %q failed: %w; nothing was written", name, err),
			"the temporary plaintext was removed; set $EDITOR to an editor that exits 0 when you save")
	}
	return readSmallFile(file, config.MaxDefinitionBytes)
}

// waitEditor waits for the started editor to exit and returns its error.
// SIGINT is left to the editor (the terminal sends Ctrl-C to both of us).
// On SIGTERM or SIGHUP it asks the editor to stop, waits for it to exit,
// killing it after editorStopTimeout, and returns errInterrupted.
func waitEditor(cmd *exec.Cmd, sigs <-chan os.Signal) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case err := <-exited:
			return err
		case sig := <-sigs:
			if sig == syscall.SIGINT {
				continue
			}
			cmd.Process.Signal(syscall.SIGTERM)
			timer := time.NewTimer(editorStopTimeout)
			select {
			case <-exited:
			case <-timer.C:
				cmd.Process.Kill()
				<-exited
			}
			timer.Stop()
			return errInterrupted
		}
	}
}
