package hardening_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
)

// TestBadDefinitions: corrupted, truncated, wrong-key, untrusted, older
// and forked sealed files are refused on reload with a logged reason, the
// current definition keeps being served, and the next good file still
// loads (nothing was lost or half-applied).
func TestBadDefinitions(t *testing.T) {
	f := newFixture(t, relaxedLimits, "web")
	older := f.next(t, "one")
	prevOfTwo := f.Last
	f.next(t, "two")
	p := f.start(t)
	p.mustServe(t, "web", "two")
	good := f.Seal(t, f.Author, 3, f.Last, f.defTOML("three"))
	other := genKey(t)
	flip := func(off int) []byte {
		b := append([]byte{}, good...)
		b[off] ^= 0x01
		return b
	}
	cases := []struct {
		name   string
		sealed []byte
	}{
		{"flipped first byte", flip(0)},
		{"flipped byte 20", flip(20)},
		{"flipped middle byte", flip(len(good) / 2)},
		{"flipped last byte", flip(len(good) - 1)},
		{"truncated to nothing", nil},
		{"truncated to 10 bytes", good[:10]},
		{"truncated to half", good[:len(good)/2]},
		{"truncated by one byte", good[:len(good)-1]},
		{"appended byte", append(append([]byte{}, good...), 0)},
		{"armored garbage", []byte("-----BEGIN COFFER DEFINITION-----\n" + canary + "\n-----END COFFER DEFINITION-----\n")},
		{"sealed to another server key", e2e.Seal(t, f.Author, other, 3, f.Last, f.defTOML("evil"))},
		{"untrusted companion", f.Seal(t, f.Stranger, 3, f.Last, f.defTOML("evil"))},
		{"older serial", older},
		{"same serial, other content", f.Seal(t, f.Author, 2, prevOfTwo, f.defTOML("fork"))},
		{"wrong previous hash", f.Seal(t, f.Author, 3, [32]byte{1}, f.defTOML("fork"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.Write(t, tc.sealed)
			line := p.reload()
			if !strings.Contains(line, "refused") || !strings.Contains(line, "reason=") {
				t.Errorf("got %q, want a refusal with its reason", line)
			}
			t.Logf("%s", line[strings.Index(line, "msg="):])
			p.WaitReady()
			p.mustServe(t, "web", "two")
		})
	}
	f.Write(t, good)
	if line := p.reload(); !strings.Contains(line, "serving definition") {
		t.Fatalf("the good file after the bad ones: %s", line)
	}
	p.mustServe(t, "web", "three")
	p.checkMemory(t, "after the bad definitions")
	p.Stop()
	f.audit(t)
}

// readyOrExit waits for READY=1 or the process's exit; it reports
// whether the server became ready.
func (p *proc) readyOrExit(d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-p.Notify:
			if ok && strings.Contains(m, "READY=1") {
				return true
			}
		case <-p.Done():
			return false
		case <-deadline:
			p.T().Fatalf("neither ready nor exited after %v; log:\n%s", d, p.Logs.All())
		}
	}
}

// TestCorruptStore damages the Badger directory of a stopped server in
// several ways. On restart the server must either serve the right
// definition (after rebuilding from the kept sealed file, or because the
// damage did not matter) or refuse to start with a clear error; it must
// never serve wrong data.
func TestCorruptStore(t *testing.T) {
	damage := []struct {
		name string
		do   func(t *testing.T, f *fixture)
	}{
		{"flipped bytes in every file", func(t *testing.T, f *fixture) {
			eachFile(t, f, func(path string, b []byte) []byte {
				for off := 0; off < len(b); off += 97 {
					b[off] ^= 0xff
				}
				return b
			})
		}},
		{"zeroed tables and logs", func(t *testing.T, f *fixture) {
			eachFile(t, f, func(path string, b []byte) []byte {
				if strings.HasSuffix(path, ".sst") || strings.HasSuffix(path, ".vlog") || strings.HasSuffix(path, ".mem") {
					clear(b)
				}
				return b
			})
		}},
		{"KEYREGISTRY deleted", func(t *testing.T, f *fixture) {
			if err := os.Remove(filepath.Join(f.DataDir, "db", "KEYREGISTRY")); err != nil {
				t.Fatal(err)
			}
		}},
		{"MANIFEST truncated", func(t *testing.T, f *fixture) {
			eachFile(t, f, func(path string, b []byte) []byte {
				if filepath.Base(path) == "MANIFEST" {
					return b[:len(b)/2]
				}
				return b
			})
		}},
		{"tables truncated", func(t *testing.T, f *fixture) {
			eachFile(t, f, func(path string, b []byte) []byte {
				if strings.HasSuffix(path, ".sst") {
					return b[:len(b)-len(b)/3]
				}
				return b
			})
		}},
		{"another server key", func(t *testing.T, f *fixture) {
			os.Remove(f.KeyFile)
			if err := coffer.WriteKeyFile(f.KeyFile, genKey(t)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			f := newFixture(t, relaxedLimits, "web")
			f.next(t, "one")
			p := f.start(t)
			p.mustServe(t, "web", "one")
			p.Stop()
			d.do(t, f)
			p = f.launch(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, f.Args()...)...)
			if !p.readyOrExit(60 * time.Second) {
				var ee *exec.ExitError
				if !errors.As(p.Err(), &ee) || ee.ExitCode() != 1 {
					t.Errorf("refused with %v, want exit status 1", p.Err())
				}
				if !strings.Contains(p.Logs.All(), "coffer-server: error:") {
					t.Errorf("refused without a clear error:\n%s", p.Logs.All())
				}
				t.Logf("refused to start: %s", lastLines(p.Logs.All(), 2))
				return
			}
			line, _ := p.Logs.Wait(t, 0, `msg=listening .*addr=`)
			p.Addr = line[strings.Index(line, "addr=")+5:]
			p.Addr = strings.Fields(p.Addr)[0]
			r, err := p.fetch("web")
			if err != nil {
				t.Fatalf("started but does not serve: %v\n%s", err, p.Logs.All())
			}
			if err := wantShard(r, "one"); err != nil {
				t.Fatalf("started and served wrong data: %v", err)
			}
			t.Logf("served the right definition; log: %s", grepLines(p.Logs.All(), "corrupt|rebuil|quarantin|mismatch"))
			p.checkMemory(t, "after a corrupt store")
			p.Stop()
		})
	}
}

func eachFile(t *testing.T, f *fixture, fn func(path string, b []byte) []byte) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(f.DataDir, "db", "*"))
	for _, path := range paths {
		if filepath.Base(path) == "LOCK" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if err := os.WriteFile(path, fn(path, b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

func grepLines(s, re string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range strings.Split(re, "|") {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, " | ")
}

// TestFullDisk puts the data directory on a small tmpfs, fills it, and
// reloads a bigger definition: the load fails with a clear error, the
// previous definition is still served, and once space is back the same
// file loads and survives a restart.
func TestFullDisk(t *testing.T) {
	f := newFixture(t, relaxedLimits, "web")
	mnt := filepath.Join(f.Dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=200m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	f.DataDir = filepath.Join(mnt, "data")
	f.next(t, "one")
	p := f.start(t)
	p.mustServe(t, "web", "one")

	// Fill the file system, leaving nothing, then room for the sealed
	// file only, then a little more, so that the load fails at each of
	// its writes in turn: keeping the sealed file, Badger's log, its
	// tables, the state file.
	filler := filepath.Join(mnt, "filler")
	f.extra = 3000 // about 0.5 MB of values
	big := f.next(t, "two")
	loaded := false
	for _, leave := range []int64{0, int64(len(big)) + 16<<10, 4 * int64(len(big)), 24<<20 + 4*int64(len(big))} {
		fill(t, filler, leave)
		var st syscall.Statfs_t
		syscall.Statfs(mnt, &st)
		// Sessions on a full disk: each adds an audit record.
		for range 100 {
			p.mustServe(t, "web", "one")
		}
		line := p.reload()
		select {
		case <-p.Done():
			t.Fatalf("the server died on a full disk (%v); log:\n%s", p.Err(), lastLines(p.Logs.All(), 10))
		default:
		}
		p.WaitReady()
		if strings.Contains(line, "serving definition") {
			t.Logf("%d bytes free: the load fit", st.Bavail*uint64(st.Bsize))
			p.mustServe(t, "web", "two")
			loaded = true
			break
		}
		if !strings.Contains(line, "refused") {
			t.Errorf("reload on a full disk: got %q, want a refusal", line)
		}
		t.Logf("%d bytes free: %s", st.Bavail*uint64(st.Bsize), line[strings.Index(line, "msg="):])
		p.mustServe(t, "web", "one")
		os.Remove(filler)
	}
	if !loaded {
		// Space is back: the same file loads.
		os.Remove(filler)
		if line := p.reload(); !strings.Contains(line, "serving definition") {
			t.Fatalf("after freeing space: %s", line)
		}
	}
	os.Remove(filler)
	p.mustServe(t, "web", "two")
	p.checkMemory(t, "after the full disk")
	p.Stop()
	p = f.start(t)
	p.mustServe(t, "web", "two")
	p.Stop()
}

// fill writes to path until the file system is full, then gives back
// leave bytes.
func fill(t *testing.T, path string, leave int64) {
	t.Helper()
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for len(buf) >= 4096 {
		k, err := w.Write(buf)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			buf = buf[:len(buf)/2]
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Truncate(max(0, n-leave)); err != nil {
		t.Fatal(err)
	}
}
