package coffer

import (
	"bytes"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withSeed returns a copy of k's X25519 secret with the given sealing
// seed (nil: none).
func withSeed(t *testing.T, k *PrivateKey, seed []byte) *PrivateKey {
	t.Helper()
	raw := [KeySize]byte(k.k.Bytes())
	c, err := NewPrivateKey(&raw)
	if err != nil {
		t.Fatal(err)
	}
	if seed != nil {
		c.sealingSeed = (*[mlkem.SeedSize]byte)(bytes.Clone(seed))
	}
	return c
}

// TestSealingSeedIndependent: the ML-KEM half of a server's sealing key
// comes from the key file's own seed, not from the X25519 secret. Two
// keys with one X25519 secret and different seeds have different sealing
// keys, and a file sealed to one opens with neither the other nor the
// X25519 secret with the seed that coffer used to derive from it (what an
// attacker who broke X25519 would compute).
func TestSealingSeedIndependent(t *testing.T) {
	fx := newSealedFixture(t)
	a := withSeed(t, fx.server, bytes.Repeat([]byte{1}, mlkem.SeedSize))
	b := withSeed(t, fx.server, bytes.Repeat([]byte{2}, mlkem.SeedSize))
	secret := fx.server.k.Bytes()
	derived, err := hkdf.Key(sha256.New, secret, nil, "coffer-def/2 server ml-kem-768 seed", mlkem.SeedSize)
	if err != nil {
		t.Fatal(err)
	}
	attacker := withSeed(t, fx.server, derived)
	ska, skb := sealingKey(t, a), sealingKey(t, b)
	if ska.String() == skb.String() || ska.X25519 != skb.X25519 {
		t.Fatal("two seeds gave one sealing key, or the X25519 half changed")
	}
	file, err := SealDefinition(fx.author, ska, &Envelope{Serial: 1, Created: time.Unix(1_700_000_000, 0), TOML: fx.toml("")}, bytes.NewReader(bytes.Repeat([]byte{9}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenDefinition(a, fx.trusted(), file, nil); err != nil {
		t.Fatalf("the right seed: %v", err)
	}
	for name, k := range map[string]*PrivateKey{"other seed": b, "X25519 secret and the old derived seed": attacker} {
		if def, _, err := OpenDefinition(k, fx.trusted(), file, nil); err == nil {
			def.Clear()
			t.Errorf("%s opened the file", name)
		}
	}
	if _, _, err := OpenDefinition(withSeed(t, fx.server, nil), fx.trusted(), file, nil); !errors.Is(err, ErrNoSealingSeed) {
		t.Errorf("no seed: got %v, want ErrNoSealingSeed", err)
	}
	if _, err := withSeed(t, fx.server, nil).SealingKey(); !errors.Is(err, ErrNoSealingSeed) {
		t.Errorf("SealingKey without a seed: got %v", err)
	}
}

// TestKeyFileSeedLine: the seed is written, read back, and refused when
// doubled or damaged, with line numbers and no key material in errors.
func TestKeyFileSeedLine(t *testing.T) {
	k := sealedKey(t, 0x51)
	text := x25519KeyFileText(k, time.Unix(0, 0))
	got, err := ParseKeyFile(text)
	if err != nil {
		t.Fatal(err)
	}
	if got.sealingSeed == nil || *got.sealingSeed != *k.sealingSeed || got.Public() != k.Public() {
		t.Fatal("seed or key lost in the round trip")
	}
	lines := strings.Split(string(text), "\n")
	seedLine := lines[len(lines)-2]
	if !strings.HasPrefix(seedLine, sealingSeedPrefix) {
		t.Fatalf("last line %.12q is not the seed", seedLine)
	}
	for name, bad := range map[string]string{
		"two seed lines": string(text) + seedLine + "\n",
		"damaged seed":   strings.Replace(string(text), seedLine, seedLine[:len(seedLine)-1]+"a", 1),
		"seed alone":     seedLine + "\n",
	} {
		_, err := ParseKeyFile([]byte(bad))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), seedLine[len(sealingSeedPrefix):len(sealingSeedPrefix)+12]) {
			t.Errorf("%s: error shows key material: %v", name, err)
		}
	}
	// A key file without the seed line still loads, without a seed.
	old := withSeed(t, k, nil)
	got, err = ParseKeyFile(x25519KeyFileText(old, time.Unix(0, 0)))
	if err != nil || got.sealingSeed != nil {
		t.Fatalf("key file without a seed: %v, seed %v", err, got != nil && got.sealingSeed != nil)
	}
}

// TestUpgradeKeyFile: keygen --upgrade's library half adds a seed in
// place, keeps mode 0600 and the X25519 key, refuses a second upgrade and
// a file others can read, and changes nothing when it refuses.
func TestUpgradeKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.key")
	old := withSeed(t, sealedKey(t, 0x51), nil)
	if err := os.WriteFile(path, x25519KeyFileText(old, time.Unix(0, 0)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := UpgradeKeyFile(path, bytes.NewReader(bytes.Repeat([]byte{4}, 64))); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyFile(path)
	if err != nil || k.sealingSeed == nil || k.Public() != old.Public() {
		t.Fatalf("after upgrade: %v (seed %v)", err, k != nil && k.sealingSeed != nil)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o after upgrade", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if err := UpgradeKeyFile(path, bytes.NewReader(bytes.Repeat([]byte{5}, 64))); !errors.Is(err, ErrHasSealingSeed) {
		t.Errorf("second upgrade: got %v, want ErrHasSealingSeed", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("a refused upgrade changed the file")
	}
	open := filepath.Join(dir, "open.key")
	os.WriteFile(open, x25519KeyFileText(old, time.Unix(0, 0)), 0o600)
	os.Chmod(open, 0o640)
	before, _ = os.ReadFile(open)
	if err := UpgradeKeyFile(open, bytes.NewReader(bytes.Repeat([]byte{4}, 64))); !errors.Is(err, ErrKeyFileMode) {
		t.Errorf("group-readable file: got %v, want ErrKeyFileMode", err)
	}
	if after, _ := os.ReadFile(open); !bytes.Equal(before, after) {
		t.Error("a refused upgrade changed the group-readable file")
	}
}
