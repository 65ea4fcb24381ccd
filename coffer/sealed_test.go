package coffer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// sealedCanary is a secret value planted in definitions; no error may
// contain it.
const sealedCanary = "canary-sealed-5e1f0c"

// sealedKey returns a fixed private key.
func sealedKey(t testing.TB, seed byte) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type sealedFixture struct {
	author, other, server, otherServer *PrivateKey
	web, worker1, worker2              PublicKey
}

func newSealedFixture(t testing.TB) *sealedFixture {
	return &sealedFixture{
		author: sealedKey(t, 0xa1), other: sealedKey(t, 0xa2),
		server: sealedKey(t, 0x51), otherServer: sealedKey(t, 0x52),
		web: sealedKey(t, 0xc1).Public(), worker1: sealedKey(t, 0xc2).Public(), worker2: sealedKey(t, 0xc3).Public(),
	}
}

func (fx *sealedFixture) toml(extra string) []byte {
	return []byte(fmt.Sprintf("[clients]\nweb = %q\nworker = [%q, %q]\n[web]\ndb_password = %q\nport = 5432\n%s",
		fx.web, fx.worker1, fx.worker2, sealedCanary, extra))
}

// seal seals a definition with a deterministic nonce.
func (fx *sealedFixture) seal(t testing.TB, env Envelope) []byte {
	t.Helper()
	if env.TOML == nil {
		env.TOML = fx.toml("")
	}
	if env.Created.IsZero() {
		env.Created = time.Unix(1_700_000_000, 0)
	}
	b, err := SealDefinition(fx.author, fx.server.Public(), &env, bytes.NewReader(bytes.Repeat([]byte{byte(env.Serial)}, 24)))
	if err != nil {
		t.Fatalf("SealDefinition: %v", err)
	}
	return b
}

// sealRaw seals any plaintext under K(author, server) with the given
// outer hint, to build envelopes SealDefinition would refuse.
func sealRaw(t testing.TB, author *PrivateKey, server, hint PublicKey, pt []byte) []byte {
	t.Helper()
	key, err := author.boxKey(&server)
	if err != nil {
		t.Fatal(err)
	}
	var n nonce
	out := append([]byte(sealedMagic), sealedVersion)
	out = append(out, hint[:]...)
	out = append(out, n[:]...)
	return seal(out, pt, &n, key)
}

func TestSealOpenRoundTrip(t *testing.T) {
	fx := newSealedFixture(t)
	created := time.Unix(1_700_000_123, 0).UTC()
	file := fx.seal(t, Envelope{Serial: 1, Created: created})
	t.Run("server", func(t *testing.T) {
		env, err := OpenEnvelope(fx.server, fx.author.Public(), file)
		if err != nil {
			t.Fatal(err)
		}
		if env.Author != fx.author.Public() || env.Server != fx.server.Public() || env.Serial != 1 ||
			!env.Created.Equal(created) || env.Force || env.Previous != [32]byte{} || !bytes.Equal(env.TOML, fx.toml("")) {
			t.Errorf("got envelope %+v", env)
		}
	})
	t.Run("author", func(t *testing.T) {
		env, err := OpenEnvelope(fx.author, fx.server.Public(), file)
		if err != nil || !bytes.Equal(env.TOML, fx.toml("")) {
			t.Fatalf("got %v, want the author to open its own file", err)
		}
	})
	t.Run("definition", func(t *testing.T) {
		def, v, err := OpenDefinition(fx.server, []PublicKey{fx.other.Public(), fx.author.Public()}, file, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v.Serial != 1 || v.Hash != SealedHash(file) {
			t.Errorf("got version %+v, want serial 1 and the file hash", v)
		}
		if len(def.Clients) != 2 || def.Clients[0].Name != "web" || def.Clients[1].Name != "worker" {
			t.Fatalf("got clients %+v", def.Clients)
		}
		if got := def.Clients[1].Keys; len(got) != 2 || got[0] != fx.worker1 || got[1] != fx.worker2 {
			t.Errorf("got worker keys %v", got)
		}
		if v := def.Clients[0].Values["db_password"]; v.Kind != frame.KindString || string(v.Text) != sealedCanary {
			t.Errorf("got db_password %+v", v)
		}
		if def.Author != fx.author.Public() || !def.Created.Equal(created) || def.Forced {
			t.Errorf("got metadata %v %v %v", def.Author, def.Created, def.Forced)
		}
	})
	t.Run("armor", func(t *testing.T) {
		text := Armor(file)
		lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
		if lines[0] != strings.TrimSpace(armorBegin) || lines[len(lines)-1] != strings.TrimSpace(armorEnd) {
			t.Errorf("got armor lines %q ... %q", lines[0], lines[len(lines)-1])
		}
		for i, l := range lines[1 : len(lines)-2] {
			if len(l) != armorLineChars {
				t.Errorf("line %d has %d characters, want %d", i+2, len(l), armorLineChars)
			}
		}
		bin, err := Dearmor(text)
		if err != nil || !bytes.Equal(bin, file) {
			t.Fatalf("Dearmor: %v", err)
		}
		_, v, err := OpenDefinition(fx.server, []PublicKey{fx.author.Public()}, text, nil)
		if err != nil || v.Hash != SealedHash(file) {
			t.Errorf("got %v, hash %x; want the armored file to open with the binary form's hash", err, v.Hash)
		}
	})
}

func TestDearmorStrict(t *testing.T) {
	fx := newSealedFixture(t)
	good := string(Armor(fx.seal(t, Envelope{Serial: 1})))
	body := strings.TrimSuffix(strings.TrimPrefix(good, armorBegin), armorEnd)
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	last := lines[len(lines)-1]
	tests := map[string]string{
		"crlf":              strings.ReplaceAll(good, "\n", "\r\n"),
		"no end":            strings.TrimSuffix(good, armorEnd),
		"no final newline":  strings.TrimSuffix(good, "\n"),
		"trailing data":     good + "x",
		"leading space":     " " + good,
		"blank line":        armorBegin + "\n" + body + armorEnd,
		"empty body":        armorBegin + armorEnd,
		"short middle line": armorBegin + lines[0][:63] + "\n" + lines[0][63:] + strings.Join(lines[1:], "\n") + "\n" + armorEnd,
		"long line":         armorBegin + lines[0] + lines[1][:1] + "\n" + lines[1][1:] + "\n" + strings.Join(lines[2:], "\n") + "\n" + armorEnd,
		"not base64":        armorBegin + strings.Join(lines[:len(lines)-1], "\n") + "\n" + strings.Repeat("!", len(last)) + "\n" + armorEnd,
		"lower case header": strings.Replace(good, "BEGIN COFFER", "begin coffer", 1),
	}
	// Non-canonical padding: change the last character before '=' so
	// that unused bits are set.
	if i := strings.IndexByte(last, '='); i > 0 {
		bad := []byte(last)
		bad[i-1] = map[bool]byte{true: 'B', false: 'A'}[bad[i-1] == 'A']
		tests["padding bits"] = armorBegin + strings.Join(lines[:len(lines)-1], "\n") + "\n" + string(bad) + "\n" + armorEnd
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Dearmor([]byte(text)); !errors.Is(err, ErrMalformedDefinition) {
				t.Errorf("got %v, want ErrMalformedDefinition", err)
			}
		})
	}
}

// TestOpenDefinitionRules drives every refusal of the server's loader.
func TestOpenDefinitionRules(t *testing.T) {
	fx := newSealedFixture(t)
	trusted := []PublicKey{fx.author.Public(), fx.other.Public()}
	v1 := fx.seal(t, Envelope{Serial: 1})
	h1 := SealedHash(v1)
	cur1 := &Version{Serial: 1, Hash: h1}
	v2 := fx.seal(t, Envelope{Serial: 2, Previous: h1, TOML: fx.toml("extra = 1\n")})
	cur2 := &Version{Serial: 2, Hash: SealedHash(v2)}
	// A concurrent edit of the same base v1, sealed after v2 landed.
	v2b := fx.seal(t, Envelope{Serial: 2, Previous: h1, TOML: fx.toml("extra = 2\n")})
	v3wrong := fx.seal(t, Envelope{Serial: 3, Previous: h1})
	forced := fx.seal(t, Envelope{Serial: 9, Force: true})
	forcedLow := fx.seal(t, Envelope{Serial: 2, Force: true})

	otherServer := func() []byte {
		env := Envelope{Serial: 1, TOML: fx.toml(""), Created: time.Unix(1, 0)}
		b, err := SealDefinition(fx.author, fx.otherServer.Public(), &env, bytes.NewReader(make([]byte, 24)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	untrusted := func() []byte {
		env := Envelope{Serial: 1, TOML: fx.toml(""), Created: time.Unix(1, 0)}
		b, err := SealDefinition(sealedKey(t, 0xee), fx.server.Public(), &env, bytes.NewReader(make([]byte, 24)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	swapHint := bytes.Clone(v1)
	otherPub := fx.other.Public()
	copy(swapHint[len(sealedMagic)+1:], otherPub[:])
	zeroHint := bytes.Clone(v1)
	copy(zeroHint[len(sealedMagic)+1:], make([]byte, 32))
	tooBig := append([]byte(sealedMagic), make([]byte, MaxSealedBytes)...)

	tests := []struct {
		name string
		file []byte
		cur  *Version
		is   error
	}{
		{"first load", v1, nil, nil},
		{"first load at a later serial is trust on first use", v2, nil, nil},
		{"next serial with previous hash", v2, cur1, nil},
		{"same file again", v1, cur1, ErrSameDefinition},
		{"older serial", v1, cur2, ErrRollback},
		{"concurrent edit of the same base", v2b, cur2, ErrRollback},
		{"previous hash mismatch", v3wrong, cur2, ErrPreviousMismatch},
		{"forced above current", forced, cur2, nil},
		{"forced not above current", forcedLow, cur2, ErrRollback},
		{"untrusted author", untrusted, nil, ErrUntrustedAuthor},
		{"sealed for another server", otherServer, nil, ErrWrongServer},
		{"hint swapped to another trusted author", swapHint, nil, ErrWrongServer},
		{"low-order hint", zeroHint, nil, ErrMalformedDefinition},
		{"flipped box byte", flip(v1, len(v1)-1), nil, ErrWrongServer},
		{"flipped nonce byte", flip(v1, sealedHeaderSize-1), nil, ErrWrongServer},
		{"flipped magic", flip(v1, 0), nil, ErrMalformedDefinition},
		{"unknown version", flip(v1, len(sealedMagic)), nil, ErrMalformedDefinition},
		{"truncated", v1[:sealedHeaderSize+frame.Overhead-1], nil, ErrMalformedDefinition},
		{"truncated box", v1[:len(v1)-1], nil, ErrWrongServer},
		{"empty", nil, nil, ErrMalformedDefinition},
		{"too big", tooBig, nil, ErrMalformedDefinition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def, v, err := OpenDefinition(fx.server, trusted, tc.file, tc.cur)
			if tc.is == nil {
				if err != nil || def == nil || v.Hash != SealedHash(tc.file) {
					t.Fatalf("got %v, want success", err)
				}
				if wantForced := bytes.Equal(tc.file, forced); def.Forced != wantForced {
					t.Errorf("got Forced %v, want %v", def.Forced, wantForced)
				}
				return
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
			if def != nil || v != (Version{}) {
				t.Errorf("got definition or version with an error")
			}
			if strings.Contains(err.Error(), sealedCanary) {
				t.Errorf("error contains a secret: %v", err)
			}
		})
	}
}

// TestOpenEnvelopeMalformed seals envelopes SealDefinition would refuse
// and checks the opener refuses each.
func TestOpenEnvelopeMalformed(t *testing.T) {
	fx := newSealedFixture(t)
	a, s := fx.author.Public(), fx.server.Public()
	created := int64(1)
	good := func() envelopeBody {
		return envelopeBody{H: envelopeKind, V: envelopeVersion, A: a[:], S: s[:], Serial: 1, Created: &created, TOML: fx.toml("")}
	}
	enc := func(b any) []byte {
		pt, err := frame.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return pt
	}
	mod := func(f func(*envelopeBody)) []byte {
		b := good()
		f(&b)
		return enc(b)
	}
	o := fx.other.Public()
	tests := []struct {
		name string
		hint PublicKey
		pt   []byte
		is   error
	}{
		{"good", a, enc(good()), nil},
		{"wrong kind", a, mod(func(b *envelopeBody) { b.H = "hello" }), ErrMalformedDefinition},
		{"wrong version", a, mod(func(b *envelopeBody) { b.V = 2 }), ErrMalformedDefinition},
		{"serial 0", a, mod(func(b *envelopeBody) { b.Serial = 0 }), ErrMalformedDefinition},
		{"short author", a, mod(func(b *envelopeBody) { b.A = a[:31] }), ErrMalformedDefinition},
		{"short server", a, mod(func(b *envelopeBody) { b.S = s[:31] }), ErrMalformedDefinition},
		{"author differs from hint", a, mod(func(b *envelopeBody) { b.A = o[:] }), ErrMalformedDefinition},
		{"names another server", a, mod(func(b *envelopeBody) { b.S = o[:] }), ErrWrongServer},
		{"no created", a, mod(func(b *envelopeBody) { b.Created = nil }), ErrMalformedDefinition},
		{"no toml", a, mod(func(b *envelopeBody) { b.TOML = nil }), ErrMalformedDefinition},
		{"serial 1 with prev", a, mod(func(b *envelopeBody) { b.Prev = make([]byte, 32) }), ErrMalformedDefinition},
		{"serial 2 without prev", a, mod(func(b *envelopeBody) { b.Serial = 2 }), ErrMalformedDefinition},
		{"short prev", a, mod(func(b *envelopeBody) { b.Serial, b.Prev = 2, make([]byte, 31) }), ErrMalformedDefinition},
		{"forced with prev", a, mod(func(b *envelopeBody) { b.Serial, b.Force, b.Prev = 2, true, make([]byte, 32) }), ErrMalformedDefinition},
		{"unknown field", a, enc(map[string]any{"h": envelopeKind, "v": 1, "a": a[:], "s": s[:], "serial": 1, "created": 1, "toml": []byte{}, "x": 1}), ErrMalformedDefinition},
		{"non-canonical", a, append([]byte{0xb8, 0x06}, enc(good())[1:]...), ErrMalformedDefinition},
		{"explicit force false", a, enc(map[string]any{"h": envelopeKind, "v": 1, "a": a[:], "s": s[:], "serial": 1, "created": 1, "force": false, "toml": []byte{}}), ErrMalformedDefinition},
		{"trailing bytes", a, append(enc(good()), 0), ErrMalformedDefinition},
		{"not cbor", a, []byte("not cbor"), ErrMalformedDefinition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := sealRaw(t, fx.author, s, tc.hint, tc.pt)
			env, err := OpenEnvelope(fx.server, a, file)
			if tc.is == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tc.is) || env != nil {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
		})
	}
}

// TestOpenDefinitionClientKeys checks the keys the server refuses inside
// an otherwise valid file.
func TestOpenDefinitionClientKeys(t *testing.T) {
	fx := newSealedFixture(t)
	a, s := fx.author.Public(), fx.server.Public()
	created := int64(1)
	for name, key := range map[string]PublicKey{"author key": a, "server key": s} {
		t.Run(name, func(t *testing.T) {
			toml := []byte(fmt.Sprintf("[clients]\nc = %q\n[c]\nx = %q\n", key, sealedCanary))
			pt, _ := frame.Marshal(envelopeBody{H: envelopeKind, V: envelopeVersion, A: a[:], S: s[:], Serial: 1, Created: &created, TOML: toml})
			_, _, err := OpenDefinition(fx.server, []PublicKey{a}, sealRaw(t, fx.author, s, a, pt), nil)
			if !errors.Is(err, ErrMalformedDefinition) || strings.Contains(err.Error(), sealedCanary) {
				t.Errorf("got %v, want ErrMalformedDefinition", err)
			}
			env := Envelope{Serial: 1, TOML: toml}
			if _, err := SealDefinition(fx.author, s, &env, bytes.NewReader(make([]byte, 24))); !errors.Is(err, ErrMalformedDefinition) {
				t.Errorf("SealDefinition: got %v, want ErrMalformedDefinition", err)
			}
		})
	}
	t.Run("invalid toml inside", func(t *testing.T) {
		pt, _ := frame.Marshal(envelopeBody{H: envelopeKind, V: envelopeVersion, A: a[:], S: s[:], Serial: 1, Created: &created,
			TOML: []byte("[clients]\nc = \"" + sealedCanary + "\"\n")})
		_, _, err := OpenDefinition(fx.server, []PublicKey{a}, sealRaw(t, fx.author, s, a, pt), nil)
		if !errors.Is(err, ErrMalformedDefinition) || strings.Contains(err.Error(), sealedCanary) {
			t.Errorf("got %v, want ErrMalformedDefinition without the value", err)
		}
	})
}

func TestSealDefinitionRefuses(t *testing.T) {
	fx := newSealedFixture(t)
	s := fx.server.Public()
	var h [32]byte
	h[0] = 1
	tests := []struct {
		name   string
		server PublicKey
		env    Envelope
		want   string
	}{
		{"serial 0", s, Envelope{}, "serial 0"},
		{"serial 2 without previous", s, Envelope{Serial: 2}, "without the previous"},
		{"serial 1 with previous", s, Envelope{Serial: 1, Previous: h}, "serial 1 carries"},
		{"weak server key", PublicKey{}, Envelope{Serial: 1}, "low-order"},
		{"server is the author", fx.author.Public(), Envelope{Serial: 1}, "own key"},
		{"other author in envelope", s, Envelope{Serial: 1, Author: fx.other.Public()}, "differ"},
		{"invalid toml", s, Envelope{Serial: 1, TOML: []byte("[clients]\nc = [\"" + sealedCanary + "\"]\n")}, "line 2"},
		{"array value", s, Envelope{Serial: 1, TOML: fx.toml("a = [\"" + sealedCanary + "\"]\n")}, "arrays"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env.TOML == nil {
				tc.env.TOML = fx.toml("")
			}
			_, err := SealDefinition(fx.author, tc.server, &tc.env, bytes.NewReader(make([]byte, 24)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), sealedCanary) {
				t.Errorf("error contains a secret: %v", err)
			}
		})
	}
}

func TestReadSealedFile(t *testing.T) {
	fx := newSealedFixture(t)
	dir := t.TempDir()
	bin := fx.seal(t, Envelope{Serial: 1})
	for name, content := range map[string][]byte{"binary": bin, "armored": Armor(bin)} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, content, 0o600)
		got, err := ReadSealedFile(p)
		if err != nil || !bytes.Equal(got, bin) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	big := filepath.Join(dir, "big")
	f, _ := os.Create(big)
	f.Truncate(int64(maxArmoredBytes) + 1)
	f.Close()
	if _, err := ReadSealedFile(big); !errors.Is(err, ErrMalformedDefinition) {
		t.Errorf("oversized file: got %v, want ErrMalformedDefinition", err)
	}
	if _, err := ReadSealedFile(dir); !errors.Is(err, ErrMalformedDefinition) {
		t.Errorf("directory: got %v, want ErrMalformedDefinition", err)
	}
	if a, err := PeekAuthor(Armor(bin)); err != nil || a != fx.author.Public() {
		t.Errorf("PeekAuthor: got %v, %v", a, err)
	}
}

// FuzzOpenEnvelope fuzzes both the file as given and a plaintext sealed
// under the fixture's keys, so that the decoder behind the box is
// reached. An accepted envelope must seal again to a file that opens to
// the same envelope.
func FuzzOpenEnvelope(f *testing.F) {
	fx := newSealedFixture(f)
	a, s := fx.author.Public(), fx.server.Public()
	v1 := fx.seal(f, Envelope{Serial: 1})
	created := int64(1_700_000_000)
	pt, _ := frame.Marshal(envelopeBody{H: envelopeKind, V: envelopeVersion, A: a[:], S: s[:], Serial: 3,
		Prev: make([]byte, 32), Created: &created, TOML: []byte("[clients]\n")})
	f.Add(v1, pt)
	f.Add(Armor(v1), []byte{0xa0})
	f.Add([]byte(sealedMagic), []byte("not cbor"))
	f.Fuzz(func(t *testing.T, file, pt []byte) {
		if env, err := OpenEnvelope(fx.server, a, file); err == nil {
			checkReseal(t, fx, env)
		}
		env, err := OpenEnvelope(fx.server, a, sealRaw(t, fx.author, s, a, pt))
		if err != nil {
			if !errors.Is(err, ErrMalformedDefinition) && !errors.Is(err, ErrWrongServer) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		checkReseal(t, fx, env)
	})
}

func checkReseal(t *testing.T, fx *sealedFixture, env *Envelope) {
	if _, err := ParseDefinition(env.TOML); err != nil {
		return // SealDefinition refuses what the server would refuse
	}
	again := *env
	again.TOML = bytes.Clone(env.TOML)
	b, err := SealDefinition(fx.author, fx.server.Public(), &again, bytes.NewReader(make([]byte, 24)))
	if err != nil {
		if errors.Is(err, ErrMalformedDefinition) {
			return // client keys equal to the author's or server's
		}
		t.Fatalf("accepted envelope does not seal again: %v", err)
	}
	got, err := OpenEnvelope(fx.server, fx.author.Public(), b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Serial != env.Serial || got.Previous != env.Previous || got.Force != env.Force ||
		!got.Created.Equal(env.Created) || !bytes.Equal(got.TOML, env.TOML) {
		t.Fatalf("resealed envelope differs: %+v vs %+v", got, env)
	}
}
