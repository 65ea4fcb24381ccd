package coffer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuthorKeyText(t *testing.T) {
	k := authorKey(0x42)
	s := k.Public().String()
	if !strings.HasPrefix(s, authorPublicPrefix) {
		t.Fatalf("got %q, want the %s prefix", s, authorPublicPrefix)
	}
	got, err := ParseAuthorPublicKey(strings.ToUpper(s))
	if err != nil || got != k.Public() {
		t.Fatalf("ParseAuthorPublicKey(upper case) = %v, %v; want the key back", got, err)
	}
	for _, f := range []string{"%v", "%s", "%x", "%#v", "%+v"} {
		if out := fmt.Sprintf(f, k); strings.Contains(out, k.text()[len(authorSecretPrefix):]) || !strings.Contains(out, "redacted") {
			t.Errorf("Printf(%s) of an author key = %q, want redacted", f, out)
		}
	}
}

// TestKeyKindsNeverMix: each key text is refused wherever another kind
// belongs, with an error that names the kind given (issue 12 §1), and
// secret key text is never printed, whatever was expected (issue 12 §5).
func TestKeyKindsNeverMix(t *testing.T) {
	x := sealedKey(t, 0x31)
	a := authorKey(0x32)
	sk := sealingKey(t, x)
	texts := map[string]string{
		"x25519 public": x.Public().String(),
		"x25519 secret": x.text(),
		"author public": a.Public().String(),
		"author secret": a.text(),
		"sealing":       sk.String(),
	}
	parsers := map[string]func(string) error{
		"x25519 public": func(s string) error { _, err := ParsePublicKey(s); return err },
		"author public": func(s string) error { _, err := ParseAuthorPublicKey(s); return err },
		"sealing":       func(s string) error { _, err := ParseSealingKey(s); return err },
	}
	for pname, parse := range parsers {
		for tname, text := range texts {
			t.Run(tname+" as "+pname, func(t *testing.T) {
				err := parse(text)
				if tname == pname {
					if err != nil {
						t.Fatalf("got %v, want the key to parse", err)
					}
					return
				}
				if err == nil {
					t.Fatal("parsed a key of another kind")
				}
				secret := strings.HasSuffix(tname, "secret")
				if secret && !errors.Is(err, ErrSecretKeyGiven) {
					t.Errorf("got %v, want ErrSecretKeyGiven", err)
				}
				if !secret && (!errors.Is(err, ErrKeyFormat) || !strings.Contains(err.Error(), "this is")) {
					t.Errorf("got %v, want ErrKeyFormat naming the kind given", err)
				}
				if strings.Contains(err.Error(), text[len(text)-20:]) {
					t.Errorf("error %q quotes the key text", err)
				}
			})
		}
	}
}

func TestSealingKeyText(t *testing.T) {
	x := sealedKey(t, 0x33)
	sk := sealingKey(t, x)
	s := sk.String()
	got, err := ParseSealingKey(s)
	if err != nil || got.X25519 != x.Public() || !bytes.Equal(got.mlkem.Bytes(), sk.mlkem.Bytes()) {
		t.Fatalf("ParseSealingKey: %v; want the key back", err)
	}
	again := sealingKey(t, x)
	if again.String() != s {
		t.Errorf("the sealing key of one key file differs between derivations")
	}
	if other := sealingKey(t, sealedKey(t, 0x34)); other.String()[len(sealingPrefix)+60:] == s[len(sealingPrefix)+60:] {
		t.Errorf("two key files give the same ML-KEM key")
	}
	typo := []byte(s)
	typo[100] = map[bool]byte{true: 'b', false: 'a'}[typo[100] == 'a']
	if _, err := ParseSealingKey(string(typo)); !errors.Is(err, ErrKeyChecksum) && !errors.Is(err, ErrKeyFormat) {
		t.Errorf("typo: got %v, want a checksum or format error", err)
	}
	// An encapsulation key with a coefficient at or above q is not a
	// valid FIPS 203 encoding, even with a good checksum.
	raw := make([]byte, sealingKeyBytes)
	p := x.Public()
	copy(raw, p[:])
	for i := KeySize; i < len(raw); i++ {
		raw[i] = 0xff
	}
	if _, err := ParseSealingKey(encodeKey(sealingPrefix, raw)); !errors.Is(err, ErrKeyFormat) {
		t.Errorf("invalid ML-KEM key: got %v, want ErrKeyFormat", err)
	}
}

func TestAuthorKeyFile(t *testing.T) {
	dir := t.TempDir()
	a := authorKey(0x35)
	x := sealedKey(t, 0x36)
	ap, xp := filepath.Join(dir, "author.key"), filepath.Join(dir, "server.key")
	if err := WriteAuthorKeyFile(ap, a); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(xp, x); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(ap)
	if !strings.Contains(string(data), "Ed25519, an author's signing key") || !strings.Contains(string(data), a.Public().String()) {
		t.Errorf("author key file does not say its kind and public key:\n%s", data)
	}
	got, err := LoadAuthorKeyFile(ap)
	if err != nil || got.Public() != a.Public() {
		t.Fatalf("LoadAuthorKeyFile: %v", err)
	}
	if _, err := LoadKeyFile(ap); !errors.Is(err, ErrKeyKind) || !strings.Contains(err.Error(), "author") {
		t.Errorf("LoadKeyFile(author key) = %v, want ErrKeyKind naming the author kind", err)
	}
	if _, err := LoadAuthorKeyFile(xp); !errors.Is(err, ErrKeyKind) || !strings.Contains(err.Error(), "X25519") {
		t.Errorf("LoadAuthorKeyFile(X25519 key) = %v, want ErrKeyKind naming the X25519 kind", err)
	}
	if err := WriteAuthorKeyFile(ap, a); err == nil {
		t.Error("WriteAuthorKeyFile overwrote a key file")
	}
	if fi, _ := os.Stat(ap); fi.Mode().Perm() != 0o600 {
		t.Errorf("author key file mode %04o, want 0600", fi.Mode().Perm())
	}
}

// FuzzParseAuthorKeyText fuzzes the author and sealing key texts, which
// users paste into TOML and flags: no panic, an accepted key prints back
// to a text that parses to it, and no error quotes secret key text.
func FuzzParseAuthorKeyText(f *testing.F) {
	x := sealedKey(f, 0x37)
	f.Add(authorKey(0x38).Public().String())
	f.Add(authorKey(0x38).text())
	f.Add(sealingKey(f, x).String())
	f.Add(x.Public().String())
	f.Add("cofferauthorpk1")
	f.Add("cofferseal1")
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParseAuthorPublicKey(s); err == nil {
			if again, err := ParseAuthorPublicKey(p.String()); err != nil || again != p {
				t.Fatalf("accepted %q, which prints as %q and parses back as %v", s, p, err)
			}
		} else if hasPrefixFold([]byte(strings.TrimSpace(s)), authorSecretPrefix) && len(s) > 30 && strings.Contains(err.Error(), strings.TrimSpace(s)) {
			t.Fatalf("error quotes secret key text: %v", err)
		}
		if k, err := ParseSealingKey(s); err == nil {
			again, err := ParseSealingKey(k.String())
			if err != nil || again.X25519 != k.X25519 || !bytes.Equal(again.mlkem.Bytes(), k.mlkem.Bytes()) {
				t.Fatalf("accepted sealing key does not print and parse back: %v", err)
			}
		}
	})
}
