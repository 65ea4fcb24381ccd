package coffer

import (
	"bytes"
	"errors"
	"fmt"
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
// with the creation time and the public key. It never overwrites: the
// file is created with O_EXCL and O_NOFOLLOW, mode 0600 whatever the
// umask, synced, and removed again if any step fails.
func WriteKeyFile(path string, k *PrivateKey) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, keyFileMode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("coffer: key file %s already exists; a key file is never overwritten", path)
		}
		return fmt.Errorf("coffer: creating key file: %w", err)
	}
	text := keyFileText(k, time.Now())
	defer clear(text)
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
func keyFileText(k *PrivateKey, now time.Time) []byte {
	var b bytes.Buffer
	b.WriteString("# coffer secret key (X25519). Keep it private: mode 0600, never shared.\n")
	fmt.Fprintf(&b, "# created: %s\n", now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# public key: %s\n", k.Public())
	b.WriteString(k.text())
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

// LoadKeyFile reads a secret key file. It opens with O_NOFOLLOW, checks
// the opened file (not the path) is a regular file without group or other
// permission bits, reads at most 4 KiB and parses it with ParseKeyFile.
// Errors name the path and, for a mode problem, the mode and the fix.
func LoadKeyFile(path string) (*PrivateKey, error) {
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
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("coffer: reading key file %s: %w", path, err)
	}
	k, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// ParseKeyFile parses the content of a secret key file: lines that are
// empty or start with '#', and exactly one coffersk1 line (docs/files.md).
// Errors give line numbers, never line content.
func ParseKeyFile(data []byte) (*PrivateKey, error) {
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrKeyFileFormat, maxKeyFileBytes)
	}
	var raw [KeySize]byte
	defer clear(raw[:])
	found := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if found++; found > 1 {
			return nil, fmt.Errorf("%w: line %d: a second key line", ErrKeyFileFormat, i+1)
		}
		if hasPrefixFold(line, publicPrefix) {
			return nil, fmt.Errorf("%w: line %d is a public key; give the secret key file", ErrKeyFileFormat, i+1)
		}
		if err := decodeKey(secretPrefix, string(line), raw[:]); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrKeyFileFormat, i+1, err)
		}
	}
	if found == 0 {
		return nil, fmt.Errorf("%w: no %s line", ErrKeyFileFormat, secretPrefix)
	}
	return NewPrivateKey(&raw)
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}
