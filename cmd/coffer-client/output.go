package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/coffer-project/coffer/frame"
	"github.com/coffer-project/coffer/internal/atomicfile"
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

// writeFileAtomic replaces path with data through atomicfile, with the
// mode, owner and group of spec. Only a regular file is replaced (or a new
// one created); a symlink, FIFO, device, socket or directory at path is
// refused and left as it was (docs/client.md, "Files: --out").
func writeFileAtomic(path string, data []byte, spec fileSpec) error {
	return atomicfile.WriteOwned(path, data, spec.mode, spec.uid, spec.gid)
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
