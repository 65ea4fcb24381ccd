package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/coffer-project/coffer/frame"
)

// defaultFileMode is the mode of every file coffer-client writes unless
// --mode says otherwise.
const defaultFileMode os.FileMode = 0o600

// fileSpec is how an output file is created: its final mode and, when
// not -1, its owner and group.
type fileSpec struct {
	mode     os.FileMode
	uid, gid int
}

var privateFile = fileSpec{mode: defaultFileMode, uid: -1, gid: -1}

// parseMode parses --mode: octal, at most 0770. Other bits are refused,
// because a secret file must never be world-readable.
func parseMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("--mode %q is not an octal file mode like 0600 or 0640", s)
	}
	if m&0o007 != 0 {
		return 0, fmt.Errorf("--mode %s gives other users access to secrets; use at most 0770", s)
	}
	if m&0o600 == 0 {
		return 0, fmt.Errorf("--mode %s leaves the owner without access", s)
	}
	return os.FileMode(m), nil
}

// lookupOwner resolves --owner and --group, names or numeric ids; "" is
// -1 (unchanged).
func lookupOwner(owner, group string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner != "" {
		id := owner
		if _, err := strconv.Atoi(owner); err != nil {
			u, err := user.Lookup(owner)
			if err != nil {
				return 0, 0, fmt.Errorf("--owner %q: no such user", owner)
			}
			id = u.Uid
		}
		if uid, err = strconv.Atoi(id); err != nil || uid < 0 {
			return 0, 0, fmt.Errorf("--owner %q: bad user id", owner)
		}
	}
	if group != "" {
		id := group
		if _, err := strconv.Atoi(group); err != nil {
			g, err := user.LookupGroup(group)
			if err != nil {
				return 0, 0, fmt.Errorf("--group %q: no such group", group)
			}
			id = g.Gid
		}
		if gid, err = strconv.Atoi(id); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("--group %q: bad group id", group)
		}
	}
	return uid, gid, nil
}

// writeFileAtomic writes data to path through a private temporary file
// in the same directory: created with O_EXCL|O_NOFOLLOW and mode 0600
// (so no umask can widen it), given its owner and group with fchown and
// its final mode with fchmod while still private, synced, then renamed
// over path. A failure removes the temporary file and leaves path as it
// was. Readers of path see the old file or the whole new one.
func writeFileAtomic(path string, data []byte, spec fileSpec) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("creating a temporary file in %s: %w", dir, bareErr(err))
	}
	err = fillFile(f, data, spec)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

func fillFile(f *os.File, data []byte, spec fileSpec) error {
	if spec.uid != -1 || spec.gid != -1 {
		if err := f.Chown(spec.uid, spec.gid); err != nil {
			return fmt.Errorf("setting owner and group: %w", bareErr(err))
		}
	}
	if err := f.Chmod(spec.mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// syncDir makes a rename durable; a failure only weakens durability,
// so it is ignored.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// writeDir writes one file per value into dir, each named by its secret
// name and holding exactly the value's text. The directory must exist.
// Each file is replaced atomically; the set as a whole is not, and files
// of names no longer in the shard are left alone (docs/client.md).
func writeDir(dir string, s frame.Shard, spec fileSpec) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--out %s: %w", dir, bareErr(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("--out %s is not a directory (give --format to write one file)", dir)
	}
	for _, n := range sortedNames(s) {
		if err := frame.ValidName(n); err != nil {
			return err
		}
		b := s[n].AppendText(nil)
		err := writeFileAtomic(filepath.Join(dir, n), b, spec)
		clear(b)
		if err != nil {
			return err
		}
	}
	return nil
}

// bareErr strips the path from an *os.PathError when the message names
// the path already.
func bareErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
