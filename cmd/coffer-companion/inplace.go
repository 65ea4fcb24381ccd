package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// inPlace is a sealed file opened to be changed and sealed over itself
// (edit, set, unset): the next file chains from it.
type inPlace struct {
	path string
	raw  []byte // the file as read, to refuse a change made meanwhile
	bin  []byte // its binary form
	env  *coffer.Envelope
}

// openInPlace reads and opens path with the author key; it must be sealed
// for server. The caller clears f.env.TOML.
func openInPlace(k *coffer.AuthorKey, server *coffer.SealingKey, path string) (*inPlace, error) {
	raw, err := readSmallFile(path, 2*coffer.MaxSealedBytes)
	if err != nil {
		return nil, err
	}
	bin, err := coffer.SealedBinary(raw)
	if err != nil {
		return nil, err
	}
	env, err := coffer.OpenEnvelope(k, bin)
	if err != nil {
		return nil, err
	}
	if env.Server != server.X25519 {
		clear(env.TOML)
		return nil, fmt.Errorf("%w: %s was sealed for server %s, not for --server %s", coffer.ErrWrongServer, path, env.Server, server.X25519)
	}
	return &inPlace{path: path, raw: raw, bin: bin, env: env}, nil
}

// next is the envelope of the file that replaces f: the next serial, f's
// hash as the previous one, f's definition name. The caller sets TOML.
func (f *inPlace) next() coffer.Envelope {
	return coffer.Envelope{Serial: f.env.Serial + 1, Previous: coffer.SealedHash(f.bin), Created: time.Now(), Name: f.env.Name}
}

// writeInPlace replaces f's file with the sealed file out, in f's form
// (armored stays armored; armor forces it) and with its mode unless
// --mode says otherwise, only if the file did not change since it was
// read (compare-and-swap on the file).
func (c *cli) writeInPlace(f *inPlace, out []byte, armor bool, mode *modeFlag) error {
	if armor || !bytes.Equal(f.raw, f.bin) {
		out = coffer.Armor(out)
	}
	now, err := os.ReadFile(f.path)
	if err != nil || !bytes.Equal(now, f.raw) {
		return withHints(fmt.Errorf("%s changed while you were editing; nothing was written", f.path),
			"edit again on top of the new file")
	}
	if err := writeFileAtomic(f.path, out, mode.forTarget(f.path)); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	return nil
}
