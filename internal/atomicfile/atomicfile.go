// Package atomicfile replaces a regular file with new contents so that a
// reader sees the old file or the whole new one, never a part, and a
// crash after Write returns keeps the new one.
//
// It is the one writer behind every file coffer programs replace: the
// server's state and kept sealed files, the companion's sealed outputs and
// the client's --out, state and cache files (docs/client.md, "Files").
//
// Write and WriteOwned follow one sequence:
//
//  1. Lstat the target. A missing target is created; a regular file is
//     replaced; anything else (symbolic link, directory, named pipe,
//     socket, device) is refused with ErrNotRegular before anything is
//     created, so a refused target is left exactly as it was.
//  2. Create a temporary file .NAME.RANDOM.tmp in the target's directory
//     with O_CREATE|O_EXCL|O_NOFOLLOW and mode 0600, so neither a planted
//     file or symlink nor any umask can widen it.
//  3. Give it its owner and group (fchown) and its final mode (fchmod)
//     while it is still empty.
//  4. Write the data, fsync the file and close it.
//  5. Rename it over the target, then fsync the directory so the rename
//     itself is durable.
//
// A failure in steps 2 to 5 before the rename removes the temporary file
// and leaves the target as it was. A failure to fsync the directory after
// the rename is reported too: the target then holds the new contents, but
// a crash may bring the old ones back.
//
// A symbolic link is refused rather than replaced or followed: following
// it could write anywhere, and replacing it would silently turn a link an
// administrator made into a plain file. The check in step 1 races with
// whoever else can write the directory, but harmlessly: rename never writes
// through what it replaces, so at worst such a writer's own entry is
// replaced, which it could have removed anyway.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotRegular is wrapped by the error Write returns when the target
// exists and is not a regular file.
var ErrNotRegular = errors.New("atomicfile: refusing to replace what is not a regular file")

// Write replaces path with data, as described in the package doc, giving
// the file the permission bits of perm (whatever the umask) and leaving
// its owner and group those of the calling process.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteOwned(path, data, perm, -1, -1)
}

// WriteOwned is Write that also sets the file's owner uid and group gid,
// before any data is written; -1 leaves either unchanged, as in os.Chown.
func WriteOwned(path string, data []byte, perm fs.FileMode, uid, gid int) error {
	if err := checkTarget(path); err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var rnd [8]byte
	rand.Read(rnd[:]) // never fails (crypto/rand)
	tmp := filepath.Join(dir, "."+base+"."+hex.EncodeToString(rnd[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("atomicfile: creating a temporary file in %s: %w", dir, bare(err))
	}
	err = fill(f, data, perm, uid, gid)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing: %w", bare(cerr))
	}
	if err == nil {
		if rerr := os.Rename(tmp, path); rerr != nil {
			err = fmt.Errorf("renaming: %w", bare(rerr))
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: %s was replaced, but syncing its directory failed, so a crash may undo it: %w", path, err)
	}
	return nil
}

// checkTarget refuses a path that exists and is not a regular file.
func checkTarget(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("atomicfile: checking %s: %w", path, bare(err))
	}
	if fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("%w: %s is a %s", ErrNotRegular, path, kind(fi.Mode()))
}

// kind names a file type for an error message.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link (give the path it points to)"
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "file of type " + m.Type().String()
}

// fill sets the owner and mode of the still-empty temporary file, then
// writes data and syncs it.
func fill(f *os.File, data []byte, perm fs.FileMode, uid, gid int) error {
	if uid != -1 || gid != -1 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("setting owner and group: %w", bare(err))
		}
	}
	if err := f.Chmod(perm.Perm()); err != nil {
		return fmt.Errorf("setting mode: %w", bare(err))
	}
	if _, err := f.Write(data); err != nil {
		return bare(err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing: %w", bare(err))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return bare(err)
	}
	defer d.Close()
	return bare(d.Sync())
}

// bare strips the path from an *fs.PathError: the temporary file's name
// means nothing to the caller, who gets the target's instead.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
