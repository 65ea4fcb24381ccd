package coffer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPublicKeyTextRoundTrip(t *testing.T) {
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 96)))
	if err != nil {
		t.Fatal(err)
	}
	p := k.Public()
	s := p.String()
	got, err := ParsePublicKey(strings.ToUpper(s))
	if err != nil || got != p {
		t.Fatalf("ParsePublicKey(upper case) = %v, %v; want the key back", got, err)
	}
	if len(p.Fingerprint()) != 16 {
		t.Errorf("Fingerprint() = %q, want 16 hex characters", p.Fingerprint())
	}
}

func TestPublicKeyTextRejects(t *testing.T) {
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 96)))
	if err != nil {
		t.Fatal(err)
	}
	s := k.Public().String()
	last := s[len(s)-1]
	// 36 bytes take 58 base32 characters; the last one carries 3 bits of
	// data and 2 unused bits that must be zero. Flipping its lowest bit
	// changes only an unused bit: the same key, a second spelling.
	alt := keyEncodingAlphabet[(strings.IndexByte(keyEncodingAlphabet, last) ^ 1)]
	typo := s[:20] + string(rune(s[20]^1)) + s[21:]
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"non-canonical last character", s[:len(s)-1] + string(alt), ErrKeyFormat},
		{"typo", typo, nil}, // ErrKeyChecksum or ErrKeyFormat, depending on the character
		{"truncated", s[:len(s)-1], ErrKeyFormat},
		{"secret prefix", "coffersk1" + s[len(publicPrefix):], ErrSecretKeyGiven},
		{"empty", "", ErrKeyFormat},
		{"zero key", PublicKey{}.String(), ErrWeakKey},
		{"high bit", func() string { var p PublicKey; p[0], p[31] = 9, 0x80; return p.String() }(), ErrWeakKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublicKey(tc.in)
			if err == nil {
				t.Fatalf("ParsePublicKey(%q) succeeded, want an error", tc.in)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("ParsePublicKey(%q) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestLowOrderPointsFailECDH(t *testing.T) {
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{3}, 96)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range lowOrder {
		p := lowOrder[i]
		if CheckPublicKey(&p) == nil {
			t.Errorf("CheckPublicKey(lowOrder[%d]) = nil, want ErrWeakKey", i)
		}
		if _, err := k.dh(&p); err == nil {
			t.Errorf("dh(lowOrder[%d]) succeeded; the table holds a point that is not of small order", i)
		}
	}
}

func TestPrivateKeyNeverPrints(t *testing.T) {
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{5}, 96)))
	if err != nil {
		t.Fatal(err)
	}
	secret := k.text()
	for _, s := range []string{k.String(), k.GoString(), fmt.Sprintf("%v %+v %#v %x %s", k, k, k, k, k)} {
		if strings.Contains(s, secret[len(secretPrefix):len(secretPrefix)+10]) {
			t.Errorf("formatted key %q contains key text", s)
		}
	}
}

// TestPublicKeyTextForms pins docs/protocol.md §8: the prefix and the
// base32 are read case-insensitively, each on its own, and surrounding
// Unicode white space is trimmed; white space inside is not.
func TestPublicKeyTextForms(t *testing.T) {
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{10}, 96)))
	if err != nil {
		t.Fatal(err)
	}
	s := k.Public().String()
	body := s[len(publicPrefix):]
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"upper-case prefix", "COFFERPK1" + body, true},
		{"mixed-case prefix", "CoFfErPk1" + body, true},
		{"upper-case base32", "cofferpk1" + strings.ToUpper(body), true},
		{"mixed case", "cofferPK1" + strings.ToUpper(body[:20]) + body[20:], true},
		{"tabs and newline around", "\t" + s + "\r\n", true},
		{"no-break spaces around", "\u00a0" + s + "\u00a0", true},
		{"space inside", s[:30] + " " + s[30:], false},
		{"padding", s + "=", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePublicKey(tc.in)
			if tc.ok && (err != nil || got != k.Public()) {
				t.Fatalf("ParsePublicKey(%q) = %v, %v; want the key", tc.in, got, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("ParsePublicKey(%q) succeeded, want an error", tc.in)
			}
		})
	}
}
