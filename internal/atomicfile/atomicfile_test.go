package atomicfile_test

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/coffer-project/coffer/internal/atomicfile"
)

// entry is what a test can see of a directory entry without opening it.
type entry struct {
	mode fs.FileMode
	ino  uint64
	size int64
	link string
}

func snapshot(t *testing.T, path string) entry {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	e := entry{mode: fi.Mode(), ino: fi.Sys().(*syscall.Stat_t).Ino, size: fi.Size()}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if e.link, err = os.Readlink(path); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// names lists dir, so a test can see that no temporary file was left.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range ents {
		ns = append(ns, e.Name())
	}
	return ns
}

func TestRefusesWhatIsNotRegular(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"fifo", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		}},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to a regular file", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "target")
			if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if got, _ := os.ReadFile(target); string(got) != "keep" {
					t.Errorf("symlink target: got %q, want %q", got, "keep")
				}
			})
		}},
		{"dangling symlink", func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(t.TempDir(), "none"), path); err != nil {
				t.Fatal(err)
			}
		}},
		{"character device", func(t *testing.T, path string) {
			if os.Geteuid() != 0 {
				t.Skip("mknod needs root")
			}
			// Major 1, minor 3 is what /dev/null is, made here so that
			// no real device node is ever at risk.
			if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
				t.Skipf("mknod: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out")
			tt.make(t, path)
			before := snapshot(t, path)
			err := atomicfile.Write(path, []byte("secret"), 0o600)
			if !errors.Is(err, atomicfile.ErrNotRegular) {
				t.Fatalf("got %v, want ErrNotRegular", err)
			}
			if after := snapshot(t, path); after != before {
				t.Errorf("target changed: got %+v, want %+v", after, before)
			}
			if ns := names(t, dir); len(ns) != 1 || ns[0] != "out" {
				t.Errorf("directory holds %q, want only the target", ns)
			}
			if bytes.Contains([]byte(err.Error()), []byte("secret")) {
				t.Errorf("error %q quotes the data", err)
			}
		})
	}
}

func TestModeWhateverTheUmask(t *testing.T) {
	for _, tt := range []struct {
		name  string
		umask int
		perm  fs.FileMode
	}{
		{"restrictive umask, group-readable file", 0o077, 0o640},
		{"restrictive umask, public file", 0o777, 0o644},
		{"permissive umask, private file", 0o000, 0o600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			old := syscall.Umask(tt.umask)
			err := atomicfile.Write(path, []byte("data"), tt.perm)
			syscall.Umask(old)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode(); got != tt.perm {
				t.Errorf("got mode %v, want %v", got, tt.perm)
			}
		})
	}
}

func TestReplacesRegularFile(t *testing.T) {
	for _, tt := range []struct {
		name string
		perm fs.FileMode
	}{
		{"keeps 0644", 0o644},
		{"changes to 0600", 0o600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out")
			if err := os.WriteFile(path, []byte("old contents, longer"), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o644) // whatever the umask
			if err := atomicfile.Write(path, []byte("new"), tt.perm); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode(); got != tt.perm {
				t.Errorf("got mode %v, want %v", got, tt.perm)
			}
			if got, _ := os.ReadFile(path); string(got) != "new" {
				t.Errorf("got %q, want %q", got, "new")
			}
			if ns := names(t, dir); len(ns) != 1 {
				t.Errorf("directory holds %q, want only the target", ns)
			}
		})
	}
}

func TestOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file away needs root")
	}
	path := filepath.Join(t.TempDir(), "out")
	if err := atomicfile.WriteOwned(path, []byte("data"), 0o640, 4242, 4343); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 4242 || st.Gid != 4343 || fi.Mode() != 0o640 {
		t.Errorf("got uid %d gid %d mode %v, want 4242 4343 -rw-r-----", st.Uid, st.Gid, fi.Mode())
	}
}

// TestFailedWrite makes the write itself fail (a file size limit, with
// SIGXFSZ ignored so the write returns EFBIG): the target must keep its
// old contents and the temporary file must be gone.
func TestFailedWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 16, Max: old.Max}); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	err := atomicfile.Write(path, bytes.Repeat([]byte("x"), 1024), 0o600)
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("got %v, want EFBIG", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("target: got %q, want %q", got, "old")
	}
	if ns := names(t, dir); len(ns) != 1 || ns[0] != "out" {
		t.Errorf("directory holds %q, want only the target", ns)
	}
}

func TestMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "out")
	if err := atomicfile.Write(path, []byte("data"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want ErrNotExist", err)
	}
}
