package shard

import (
	"fmt"
	"syscall"
)

// minFreeBytes is the free space the store keeps in reserve. Badger
// writes its memtable log, value log and new tables through mmap of
// sparse files, so on a full file system a write does not fail with
// ENOSPC: the process dies of SIGBUS (found by the hardening full-disk
// test). Checking free space before each import and each audit batch
// turns the common case into an error; a disk filled by someone else
// between two checks can still crash the server, which then restarts on
// a consistent store.
const minFreeBytes = 16 << 20

// checkSpace returns an error wrapping syscall.ENOSPC when the file
// system holding dir has less than minFreeBytes plus need bytes free.
// A failing statfs is not an error: the write itself will tell.
func checkSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if want := minFreeBytes + need; free < want {
		return fmt.Errorf("shard: %d bytes free in %s, want at least %d: %w", free, dir, want, syscall.ENOSPC)
	}
	return nil
}
