package coffer_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coffer-project/coffer/coffer"
)

// kfKey returns a deterministic private key for key file tests.
func kfKey(t testing.TB, seed byte) *coffer.PrivateKey {
	t.Helper()
	k, err := coffer.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 96)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyFileRoundTrip(t *testing.T) {
	k := kfKey(t, 1)
	path := filepath.Join(t.TempDir(), "companion.key")
	if err := coffer.WriteKeyFile(path, k); err != nil {
		t.Fatalf("WriteKeyFile: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("got mode %04o, want 0600", got)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte("# public key: "+k.Public().String()+"\n")) || !bytes.Contains(data, []byte("\ncoffersk1")) {
		t.Errorf("got key file\n%s\nwant a public key comment and a coffersk1 line", data)
	}
	got, err := coffer.LoadKeyFile(path)
	if err != nil {
		t.Fatalf("LoadKeyFile: %v", err)
	}
	if got.Public() != k.Public() {
		t.Errorf("got public key %s, want %s", got.Public(), k.Public())
	}
}

// TestKeyFileUmask checks the mode is 0600 even with a permissive umask.
func TestKeyFileUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "k")
	if err := coffer.WriteKeyFile(path, kfKey(t, 2)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

func TestKeyFileNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	t.Run("existing file", func(t *testing.T) {
		path := filepath.Join(dir, "exists")
		os.WriteFile(path, []byte("precious"), 0o600)
		err := coffer.WriteKeyFile(path, kfKey(t, 3))
		if err == nil || !strings.Contains(err.Error(), "never overwritten") {
			t.Errorf("got %v, want a refusal", err)
		}
		if data, _ := os.ReadFile(path); string(data) != "precious" {
			t.Errorf("file changed to %q", data)
		}
	})
	t.Run("dangling symlink", func(t *testing.T) {
		target := filepath.Join(dir, "target")
		link := filepath.Join(dir, "link")
		os.Symlink(target, link)
		if err := coffer.WriteKeyFile(link, kfKey(t, 3)); err == nil {
			t.Error("got nil, want a refusal to write through a symlink")
		}
		if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("symlink target was created (%v)", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		if err := coffer.WriteKeyFile(filepath.Join(dir, "no", "k"), kfKey(t, 3)); err == nil {
			t.Error("got nil, want an error")
		}
	})
}

func TestLoadKeyFileRefusals(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	k := kfKey(t, 4)
	if err := coffer.WriteKeyFile(good, k); err != nil {
		t.Fatal(err)
	}
	goodData, _ := os.ReadFile(good)
	secretLine := ""
	for _, l := range strings.Split(string(goodData), "\n") {
		if strings.HasPrefix(l, "coffersk1") {
			secretLine = l
		}
	}
	// A key with one character changed: its checksum fails.
	typo := secretLine[:20] + string("ab"[boolIdx(secretLine[20] == 'a')]) + secretLine[21:]
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	link := filepath.Join(dir, "link")
	os.Symlink(good, link)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		is         error
		want       []string
	}{
		{"mode 0644", write("m644", string(goodData), 0o644), coffer.ErrKeyFileMode, []string{"mode 0644", "chmod 600 " + filepath.Join(dir, "m644")}},
		{"mode 0640", write("m640", string(goodData), 0o640), coffer.ErrKeyFileMode, []string{"mode 0640", "chmod 600"}},
		{"mode 0604", write("m604", string(goodData), 0o604), coffer.ErrKeyFileMode, []string{"mode 0604"}},
		{"mode 0620", write("m620", string(goodData), 0o620), coffer.ErrKeyFileMode, []string{"mode 0620"}},
		{"symlink", link, nil, []string{"symbolic link"}},
		{"directory", dir, nil, []string{"not a regular file"}},
		{"fifo", fifo, nil, []string{"not a regular file"}},
		{"missing", filepath.Join(dir, "missing"), os.ErrNotExist, nil},
		{"too large", write("big", string(goodData)+strings.Repeat("#\n", 2100), 0o600), coffer.ErrKeyFileFormat, []string{"bytes"}},
		{"empty", write("empty", "", 0o600), coffer.ErrKeyFileFormat, []string{"no coffersk1 line"}},
		{"public key", write("pub", k.Public().String()+"\n", 0o600), coffer.ErrKeyFileFormat, []string{"public key"}},
		{"two keys", write("two", secretLine+"\n"+secretLine+"\n", 0o600), coffer.ErrKeyFileFormat, []string{"line 2"}},
		{"checksum", write("typo", "# c\n"+typo+"\n", 0o600), coffer.ErrKeyChecksum, []string{"line 2"}},
		{"truncated", write("trunc", secretLine[:40]+"\n", 0o600), coffer.ErrKeyFormat, []string{"line 1"}},
		{"garbage", write("garbage", "hello world\n", 0o600), coffer.ErrKeyFormat, []string{"line 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := coffer.LoadKeyFile(tc.path)
			if err == nil {
				t.Fatalf("got key %v, want an error", got)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secretLine[9:30]) || strings.Contains(err.Error(), typo[9:30]) {
				t.Errorf("error contains key material: %v", err)
			}
		})
	}
}

func boolIdx(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestParseKeyFileForms(t *testing.T) {
	k := kfKey(t, 5)
	path := filepath.Join(t.TempDir(), "k")
	coffer.WriteKeyFile(path, k)
	data, _ := os.ReadFile(path)
	var line string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "coffersk1") {
			line = l
		}
	}
	for name, in := range map[string]string{
		"bare":       line,
		"crlf":       "# c\r\n" + line + "\r\n",
		"upper case": strings.ToUpper(line),
		"indented":   "\n\n   " + line + "  \n# trailing comment\n",
	} {
		t.Run(name, func(t *testing.T) {
			got, err := coffer.ParseKeyFile([]byte(in))
			if err != nil {
				t.Fatalf("ParseKeyFile: %v", err)
			}
			if got.Public() != k.Public() {
				t.Errorf("got %s, want %s", got.Public(), k.Public())
			}
		})
	}
}

// FuzzParseKeyFile checks that no input panics, that an accepted key
// writes back to a file that parses to the same key, and that errors do
// not quote key lines.
func FuzzParseKeyFile(f *testing.F) {
	k := kfKey(f, 6)
	dir := f.TempDir()
	coffer.WriteKeyFile(filepath.Join(dir, "k"), k)
	data, _ := os.ReadFile(filepath.Join(dir, "k"))
	f.Add(data)
	f.Add([]byte(k.Public().String()))
	f.Add([]byte("# only a comment\n"))
	f.Add([]byte("coffersk1aaaa\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := coffer.ParseKeyFile(in)
		if err != nil {
			for _, l := range bytes.Split(in, []byte("\n")) {
				l = bytes.TrimSpace(l)
				if len(l) > 16 && strings.Contains(err.Error(), string(l)) {
					t.Fatalf("error %q quotes an input line", err)
				}
			}
			return
		}
		p := filepath.Join(t.TempDir(), "k")
		if err := coffer.WriteKeyFile(p, got); err != nil {
			t.Fatal(err)
		}
		again, err := coffer.LoadKeyFile(p)
		if err != nil || again.Public() != got.Public() || again.HasSealingSeed() != got.HasSealingSeed() {
			t.Fatalf("rewritten key file: %v", err)
		}
	})
}

// FuzzLoadKeyText fuzzes the one-line public key text form, which users
// paste into TOML and flags.
func FuzzLoadKeyText(f *testing.F) {
	f.Add(kfKey(f, 7).Public().String())
	f.Add(coffer.PublicKey{}.String())
	f.Add("cofferpk1")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := coffer.ParsePublicKey(s)
		if err != nil {
			return
		}
		// keys.go ignores the 2 unused low bits of the last base32
		// character, so a key has 4 spellings (seed 4124ad60e44e880a);
		// all of them must name the same key as its printed form.
		again, err := coffer.ParsePublicKey(p.String())
		if err != nil || again != p || len(strings.TrimSpace(s)) != len(p.String()) {
			t.Fatalf("accepted %q, which prints as %q and parses back as %v", s, p.String(), err)
		}
		if err := coffer.CheckPublicKey(&p); err != nil {
			t.Fatalf("accepted a key CheckPublicKey refuses: %v", err)
		}
	})
}

// TestParseKeyFileWhitespaceAndSize pins docs/files.md: lines end at LF,
// each line is trimmed of Unicode white space (tabs, CR, NBSP...), a
// line that is then empty or starts with '#' is a comment, and the 4 KiB
// limit is inclusive: 4096 bytes are read, 4097 refused.
func TestParseKeyFileWhitespaceAndSize(t *testing.T) {
	k := kfKey(t, 8)
	dir := t.TempDir()
	coffer.WriteKeyFile(filepath.Join(dir, "k"), k)
	data, _ := os.ReadFile(filepath.Join(dir, "k"))
	var line string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "coffersk1") {
			line = l
		}
	}
	pad := func(n int) string { // a file of exactly n bytes around the key line
		head := line + "\n#"
		return head + strings.Repeat("x", n-len(head)-1) + "\n"
	}
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"tabs around the key", "\t" + line + "\t\n", true},
		{"whitespace-only lines", " \t \n\t\n" + line + "\n \r\n", true},
		{"tab before a comment", "\t# comment\n" + line + "\n", true},
		{"no-break spaces around the key", "\u00a0" + line + "\u00a0\n", true},
		{"CR alone is not a line end", "# c\r" + line + "\n", false},
		{"space inside the key", line[:30] + " " + line[30:] + "\n", false},
		{"exactly 4096 bytes", pad(4096), true},
		{"4097 bytes", pad(4097), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := coffer.ParseKeyFile([]byte(tc.in))
			if tc.ok && (err != nil || got.Public() != k.Public()) {
				t.Fatalf("ParseKeyFile: %v, want the key", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("ParseKeyFile accepted it, want an error")
			}
			p := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(p, []byte(tc.in), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := coffer.LoadKeyFile(p); (err == nil) != tc.ok {
				t.Errorf("LoadKeyFile: %v, want ok %v", err, tc.ok)
			}
		})
	}
}
