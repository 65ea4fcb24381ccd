package coffer

import (
	"crypto/mlkem"

	"bytes"
	"errors"
	"fmt"
	"github.com/coffer-project/coffer/internal/atomicfile"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// maxKeyFileBytes bounds what LoadKeyFile reads: a key file is one key
// line and a few comments, and a larger file is not one (docs/files.md).
const maxKeyFileBytes = 4 << 10

// keyFileMode is the only mode a secret key file is created with.
const keyFileMode fs.FileMode = 0o600

// Key file errors. None of them carries key material.
var (
	// ErrKeyFileMode: a secret key file can be read or written by group or
	// others. Wrapped in an error that names the path, the mode and the fix.
	ErrKeyFileMode = errors.New("coffer: key file is accessible by group or others")
	// ErrKeyFileFormat: the file is not a coffer secret key file.
	ErrKeyFileFormat = errors.New("coffer: not a coffer secret key file")
)

// WriteKeyFile creates path holding k's secret text form and comments
// with the key's kind, the creation time and the public key. It never
// overwrites: the file is created with O_EXCL and O_NOFOLLOW, mode 0600
// whatever the umask, synced, and removed again if any step fails.
func WriteKeyFile(path string, k *PrivateKey) error {
	text := x25519KeyFileText(k, time.Now())
	defer clear(text)
	return createKeyFile(path, text)
}

// x25519KeyFileText is an X25519 key file's content: the coffersk1 line
// and, when k has one, the cofferkemsk1 line of its ML-KEM-768 sealing
// seed. The caller clears it.
func x25519KeyFileText(k *PrivateKey, now time.Time) []byte {
	secret := k.text()
	if k.sealingSeed != nil {
		secret += "\n" + encodeKey(sealingSeedPrefix, k.sealingSeed[:])
	}
	return keyFileText("X25519, a server's or a client's", k.Public().String(), secret, now)
}

// UpgradeKeyFile adds an ML-KEM-768 sealing seed read from rand to the
// X25519 key file at path, in place: the file is read with LoadKeyFile's
// checks and replaced atomically with mode 0600. A file that has a seed
// already is refused with ErrHasSealingSeed and left as it is.
func UpgradeKeyFile(path string, rand io.Reader) error {
	k, err := LoadKeyFile(path)
	if err != nil {
		return err
	}
	if err := k.AddSealingSeed(rand); err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	text := x25519KeyFileText(k, time.Now())
	defer clear(text)
	if err := atomicfile.Write(path, text, keyFileMode); err != nil {
		return fmt.Errorf("coffer: rewriting key file %s: %w", path, err)
	}
	return nil
}

// WriteAuthorKeyFile is WriteKeyFile for an author's signing key.
func WriteAuthorKeyFile(path string, k *AuthorKey) error {
	text := keyFileText("Ed25519, an author's signing key", k.Public().String(), k.text(), time.Now())
	defer clear(text)
	return createKeyFile(path, text)
}

func createKeyFile(path string, text []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, keyFileMode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("coffer: key file %s already exists; a key file is never overwritten", path)
		}
		return fmt.Errorf("coffer: creating key file: %w", err)
	}
	err = writeKeyFile(f, text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("coffer: writing key file %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func writeKeyFile(f *os.File, text []byte) error {
	// The umask can only clear bits, but Chmod makes the mode exact, and
	// the Stat checks what the file system actually recorded.
	if err := f.Chmod(keyFileMode); err != nil {
		return err
	}
	if fi, err := f.Stat(); err != nil {
		return err
	} else if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: mode %04o after create", ErrKeyFileMode, fi.Mode().Perm())
	}
	if _, err := f.Write(text); err != nil {
		return err
	}
	return f.Sync()
}

// keyFileText is the file's content; the caller clears it.
func keyFileText(kind, public, secret string, now time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# coffer secret key (%s). Keep it private: mode 0600, never shared.\n", kind)
	fmt.Fprintf(&b, "# created: %s\n", now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# public key: %s\n", public)
	b.WriteString(secret)
	b.WriteByte('\n')
	return b.Bytes()
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("coffer: syncing directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("coffer: syncing directory: %w", err)
	}
	return nil
}

// LoadKeyFile reads an X25519 secret key file. It opens with O_NOFOLLOW,
// checks the opened file (not the path) is a regular file without group
// or other permission bits, reads at most 4 KiB and parses it with
// ParseKeyFile. Errors name the path and, for a mode problem, the mode
// and the fix.
func LoadKeyFile(path string) (*PrivateKey, error) {
	data, err := readKeyFile(path)
	defer clear(data)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// LoadAuthorKeyFile is LoadKeyFile for an author's signing key file.
func LoadAuthorKeyFile(path string) (*AuthorKey, error) {
	data, err := readKeyFile(path)
	defer clear(data)
	if err != nil {
		return nil, err
	}
	k, err := ParseAuthorKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// readKeyFile reads a key file with LoadKeyFile's checks; the caller
// clears the result.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("coffer: key file %s is a symbolic link; give the path of the file itself", path)
		}
		return nil, fmt.Errorf("coffer: opening key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("coffer: key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("coffer: key file %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; fix: chmod 600 %s", ErrKeyFileMode, path, perm, path)
	}
	if fi.Size() > maxKeyFileBytes {
		return nil, fmt.Errorf("%w: %s has %d bytes, more than %d", ErrKeyFileFormat, path, fi.Size(), maxKeyFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		clear(data)
		return nil, fmt.Errorf("coffer: reading key file %s: %w", path, err)
	}
	return data, nil
}

// ErrKeyKind: a key file holds a key of another kind than the one asked
// for (an author's signing key where an X25519 key belongs, or the other
// way round). It is wrapped in an error that names both kinds.
var ErrKeyKind = errors.New("coffer: key file of the wrong kind")

// ParseKeyFile parses the content of an X25519 secret key file: lines
// that are empty or start with '#', and exactly one coffersk1 line
// (docs/files.md). Errors give line numbers, never line content.
//
// One cofferkemsk1 line may follow: the key's ML-KEM-768 sealing seed.
func ParseKeyFile(data []byte) (*PrivateKey, error) {
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrKeyFileFormat, maxKeyFileBytes)
	}
	// The seed line is taken out (its line left empty, so line numbers
	// stay right) and the rest parsed as before.
	rest := bytes.Clone(data)
	defer clear(rest)
	var seed *[mlkem.SeedSize]byte
	lines := bytes.SplitAfter(rest, []byte("\n"))
	for i, line := range lines {
		if !hasPrefixFold(bytes.TrimSpace(line), sealingSeedPrefix) {
			continue
		}
		if seed != nil {
			clear(seed[:])
			return nil, fmt.Errorf("%w: line %d: a second %s line", ErrKeyFileFormat, i+1, sealingSeedPrefix)
		}
		seed = new([mlkem.SeedSize]byte)
		if err := decodeKey(sealingSeedPrefix, string(bytes.TrimSpace(line)), seed[:]); err != nil {
			clear(seed[:])
			return nil, fmt.Errorf("%w: line %d: %w", ErrKeyFileFormat, i+1, err)
		}
		for j := range line {
			if line[j] != '\n' {
				line[j] = ' '
			}
		}
	}
	var raw [KeySize]byte
	defer clear(raw[:])
	if err := parseKeyFile(rest, secretPrefix, raw[:]); err != nil {
		if seed != nil {
			clear(seed[:])
		}
		return nil, err
	}
	k, err := NewPrivateKey(&raw)
	if err != nil {
		return nil, err
	}
	k.sealingSeed = seed
	return k, nil
}

// ParseAuthorKeyFile parses an author's secret key file: ParseKeyFile's
// rules with one cofferauthorsk1 line.
func ParseAuthorKeyFile(data []byte) (*AuthorKey, error) {
	var seed [KeySize]byte
	defer clear(seed[:])
	if err := parseKeyFile(data, authorSecretPrefix, seed[:]); err != nil {
		return nil, err
	}
	return NewAuthorKey(&seed), nil
}

// secretKinds names the secret key kinds for ErrKeyKind.
var secretKinds = map[string]string{
	secretPrefix:       "an X25519 key file (a server's or a client's)",
	authorSecretPrefix: "an author's signing key file",
}

// parseKeyFile finds the one key line of prefix in data and decodes it
// into out.
func parseKeyFile(data []byte, prefix string, out []byte) error {
	if len(data) > maxKeyFileBytes {
		return fmt.Errorf("%w: more than %d bytes", ErrKeyFileFormat, maxKeyFileBytes)
	}
	found := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if found++; found > 1 {
			return fmt.Errorf("%w: line %d: a second key line", ErrKeyFileFormat, i+1)
		}
		for p, kind := range secretKinds {
			if p != prefix && hasPrefixFold(line, p) {
				return fmt.Errorf("%w: line %d: this is %s; want %s", ErrKeyKind, i+1, kind, secretKinds[prefix])
			}
		}
		for _, k := range keyKinds {
			if !k.secret && hasPrefixFold(line, k.prefix) {
				return fmt.Errorf("%w: line %d is %s; give the secret key file", ErrKeyFileFormat, i+1, k.name)
			}
		}
		if err := decodeKey(prefix, string(line), out); err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrKeyFileFormat, i+1, err)
		}
	}
	if found == 0 {
		return fmt.Errorf("%w: no %s line", ErrKeyFileFormat, prefix)
	}
	return nil
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}
