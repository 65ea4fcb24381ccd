package coffer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 96)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// authorKey returns a fixed author key.
func authorKey(seed byte) *AuthorKey {
	var b [32]byte
	for i := range b {
		b[i] = seed
	}
	return NewAuthorKey(&b)
}

// sealingKey returns a server key's sealing key.
func sealingKey(t testing.TB, k *PrivateKey) *SealingKey {
	t.Helper()
	sk, err := k.SealingKey()
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

type sealedFixture struct {
	author, other, stranger *AuthorKey
	server, otherServer     *PrivateKey
	sealing, otherSealing   *SealingKey
	web, worker1, worker2   PublicKey
}

func newSealedFixture(t testing.TB) *sealedFixture {
	fx := &sealedFixture{
		author: authorKey(0xa1), other: authorKey(0xa2), stranger: authorKey(0xee),
		server: sealedKey(t, 0x51), otherServer: sealedKey(t, 0x52),
		web: sealedKey(t, 0xc1).Public(), worker1: sealedKey(t, 0xc2).Public(), worker2: sealedKey(t, 0xc3).Public(),
	}
	fx.sealing, fx.otherSealing = sealingKey(t, fx.server), sealingKey(t, fx.otherServer)
	return fx
}

// trusted is the fixture server's trusted list: author and other.
func (fx *sealedFixture) trusted() []AuthorPublicKey {
	return []AuthorPublicKey{fx.other.Public(), fx.author.Public()}
}

func (fx *sealedFixture) toml(extra string) []byte {
	return []byte(fmt.Sprintf("[clients]\nweb = %q\nworker = [%q, %q]\n[web]\ndb_password = %q\nport = 5432\n%s",
		fx.web, fx.worker1, fx.worker2, sealedCanary, extra))
}

// seal seals a definition by fx.author to fx.server with deterministic
// X25519 and file keys (ML-KEM reads crypto/rand).
func (fx *sealedFixture) seal(t testing.TB, env Envelope) []byte {
	t.Helper()
	if env.TOML == nil {
		env.TOML = fx.toml("")
	}
	if env.Created.IsZero() {
		env.Created = time.Unix(1_700_000_000, 0)
	}
	b, err := SealDefinition(fx.author, fx.sealing, &env, bytes.NewReader(bytes.Repeat([]byte{byte(env.Serial)}, 64)))
	if err != nil {
		t.Fatalf("SealDefinition: %v", err)
	}
	return b
}

// sealRaw signs body with signer and encrypts it to server naming hint
// as the author, to build files SealDefinition would refuse.
func sealRaw(t testing.TB, signer *AuthorKey, hint AuthorPublicKey, server *SealingKey, body []byte) []byte {
	t.Helper()
	pt := append(signer.sign(signedMessage(body)), body...)
	return sealPT(t, signer, hint, server, pt)
}

// sealPT encrypts a payload (sig || body) as it is.
func sealPT(t testing.TB, copyFor *AuthorKey, hint AuthorPublicKey, server *SealingKey, pt []byte) []byte {
	t.Helper()
	b, err := sealPayload(copyFor, hint, server, pt, 0, bytes.NewReader(make([]byte, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// body encodes an envelope body by fx.author for fx.server.
func (fx *sealedFixture) body(t testing.TB, f func(*envelopeBody)) []byte {
	t.Helper()
	a, s := fx.author.Public(), fx.server.Public()
	created := int64(1_700_000_000)
	b := envelopeBody{H: envelopeKind, V: envelopeVersion, A: a[:], S: s[:], Serial: 1, Created: &created, TOML: fx.toml("")}
	if f != nil {
		f(&b)
	}
	pt, err := frame.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func TestSealOpenRoundTrip(t *testing.T) {
	fx := newSealedFixture(t)
	created := time.Unix(1_700_000_123, 0).UTC()
	file := fx.seal(t, Envelope{Serial: 1, Created: created})
	t.Run("server", func(t *testing.T) {
		env, err := openSigned(fx.server, fx.trusted(), file)
		if err != nil {
			t.Fatal(err)
		}
		if env.Author != fx.author.Public() || env.Server != fx.server.Public() || env.Serial != 1 ||
			!env.Created.Equal(created) || env.Force || env.Previous != [32]byte{} || !bytes.Equal(env.TOML, fx.toml("")) {
			t.Errorf("got envelope %+v", env)
		}
	})
	t.Run("author", func(t *testing.T) {
		env, err := OpenEnvelope(fx.author, file)
		if err != nil || !bytes.Equal(env.TOML, fx.toml("")) {
			t.Fatalf("got %v, want the author to open its own file", err)
		}
	})
	t.Run("other author", func(t *testing.T) {
		if _, err := OpenEnvelope(fx.other, file); !errors.Is(err, ErrNotOwnFile) {
			t.Fatalf("got %v, want ErrNotOwnFile", err)
		}
	})
	t.Run("definition", func(t *testing.T) {
		def, v, err := OpenDefinition(fx.server, fx.trusted(), file, nil)
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
		_, v, err := OpenDefinition(fx.server, fx.trusted(), text, nil)
		if err != nil || v.Hash != SealedHash(file) {
			t.Errorf("got %v, hash %x; want the armored file to open with the binary form's hash", err, v.Hash)
		}
	})
}

// TestSealedNeedsBothHalves shows a sealed file does not open with the
// X25519 secret alone (the ML-KEM half broken by a wrong decapsulation
// key) nor with the ML-KEM secret alone (a wrong X25519 key), and opens
// with both.
func TestSealedNeedsBothHalves(t *testing.T) {
	fx := newSealedFixture(t)
	file := fx.seal(t, Envelope{Serial: 1})
	p, err := splitSealed(file)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := fx.server.sealingDecapsulationKey()
	if err != nil {
		t.Fatal(err)
	}
	wrongDK, err := fx.otherServer.sealingDecapsulationKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		x    *PrivateKey
		dk   *mlkem.DecapsulationKey768
		ok   bool
	}{
		{"both halves", fx.server, dk, true},
		{"X25519 secret with a wrong ML-KEM key", fx.server, wrongDK, false},
		{"ML-KEM secret with a wrong X25519 key", fx.otherServer, dk, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := decapsulate(tc.x, tc.dk, &p.hybrid)
			if err != nil {
				t.Fatal(err)
			}
			_, body, err := p.openPayload(k, p.wrapServer, ErrWrongServer)
			if tc.ok != (err == nil) {
				t.Fatalf("got %v, want success %v", err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, ErrWrongServer) {
				t.Errorf("got %v, want ErrWrongServer", err)
			}
			if tc.ok && !bytes.Contains(body, []byte(sealedCanary)) {
				t.Errorf("opened body lacks the definition")
			}
		})
	}
	// The same through the server's loader: the other server's key pair
	// opens nothing sealed to this one.
	if _, _, err := OpenDefinition(fx.otherServer, fx.trusted(), file, nil); !errors.Is(err, ErrWrongServer) {
		t.Errorf("other server: got %v, want ErrWrongServer", err)
	}
}

// TestStolenServerKeyCannotForge is the attacker of issue 12 §1: it
// holds the server's secret key and everything public (the trusted
// authors' public keys, genuine sealed files for this server and for
// another), so it can read every definition and encrypt anything to the
// server. Every file it can make is refused, each for its own reason.
func TestStolenServerKeyCannotForge(t *testing.T) {
	fx := newSealedFixture(t)
	v1 := fx.seal(t, Envelope{Serial: 1})
	cur := &Version{Serial: 1, Hash: SealedHash(v1)}
	v2 := fx.seal(t, Envelope{Serial: 2, Previous: cur.Hash})
	env2 := Envelope{Serial: 2, Previous: cur.Hash, TOML: fx.toml(""), Created: time.Unix(1_700_000_000, 0)}
	forOther, err := SealDefinition(fx.author, fx.otherSealing, &env2, bytes.NewReader(make([]byte, 64)))
	if err != nil {
		t.Fatal(err)
	}
	// What the stolen key reads: the signed payload of a genuine file.
	read := func(server *PrivateKey, file []byte) (sig, body []byte) {
		p, err := splitSealed(file)
		if err != nil {
			t.Fatal(err)
		}
		dk, _ := server.sealingDecapsulationKey()
		k, err := decapsulate(server, dk, &p.hybrid)
		if err != nil {
			t.Fatal(err)
		}
		sig, body, err = p.openPayload(k, p.wrapServer, ErrWrongServer)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(sig), bytes.Clone(body)
	}
	a := fx.author.Public()
	sig2, body2 := read(fx.server, v2)
	// The attacker's own client key goes into web's keys.
	evil := sealedKey(t, 0x99).Public()
	modified := bytes.Replace(body2, []byte(fx.web.String()), []byte(evil.String()), 1)
	if bytes.Equal(modified, body2) {
		t.Fatal("test setup: the body does not contain web's key")
	}
	withSig := func(sig, body []byte) []byte { return append(bytes.Clone(sig), body...) }
	sigO, bodyO := read(fx.otherServer, forOther)
	sig1, body1 := read(fx.server, v1)
	tests := []struct {
		name string
		file []byte
		is   error
		why  string
	}{
		{"modified genuine file re-encrypted with its signature kept",
			sealPT(t, fx.stranger, a, fx.sealing, withSig(sig2, modified)), ErrBadSignature, "changed after signing"},
		{"signature moved onto another file's content",
			sealPT(t, fx.stranger, a, fx.sealing, withSig(sig2, body1)), ErrBadSignature, "changed after signing"},
		{"signed content for another server moved into a file for this one",
			sealPT(t, fx.stranger, a, fx.sealing, withSig(sigO, bodyO)), ErrWrongServer, "signed for server"},
		{"another trusted author claimed",
			sealPT(t, fx.stranger, fx.other.Public(), fx.sealing, withSig(sig2, body2)), ErrBadSignature, "but trusted author"},
		{"signature by an untrusted key",
			sealRaw(t, fx.stranger, fx.stranger.Public(), fx.sealing, fx.body(t, func(b *envelopeBody) {
				s := fx.stranger.Public()
				b.A, b.Serial, b.Prev = s[:], 2, cur.Hash[:]
			})), ErrUntrustedAuthor, "untrusted"},
		{"untrusted key's signature under a trusted author's name",
			sealRaw(t, fx.stranger, a, fx.sealing, fx.body(t, func(b *envelopeBody) { b.Serial, b.Prev = 2, cur.Hash[:] })),
			ErrBadSignature, "changed after signing"},
		{"genuine signed content replayed in a new encryption",
			sealPT(t, fx.stranger, a, fx.sealing, withSig(sig1, body1)), ErrRollback, "not above"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def, _, err := OpenDefinition(fx.server, fx.trusted(), tc.file, cur)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.why) || def != nil {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.is, tc.why)
			}
			if strings.Contains(err.Error(), sealedCanary) {
				t.Errorf("error contains a secret: %v", err)
			}
		})
	}
	// The genuine serial 2 is accepted, so the refusals above are not
	// about the serial or the chain.
	if _, _, err := OpenDefinition(fx.server, fx.trusted(), v2, cur); err != nil {
		t.Fatalf("genuine serial 2: %v", err)
	}
}

// TestOldFormatRefused: a format 1 file (a NaCl box, sealed by the
// companion of before signatures) is refused with the line that says how
// to reseal.
func TestOldFormatRefused(t *testing.T) {
	fx := newSealedFixture(t)
	old, err := os.ReadFile(filepath.Join("testdata", "sealed-v1.armored"))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := SealedBinary(old)
	if err != nil || bin[len(sealedMagic)] != 1 {
		t.Fatalf("fixture: %v, want a format 1 file", err)
	}
	_, _, err = OpenDefinition(fx.server, fx.trusted(), old, nil)
	if !errors.Is(err, ErrOldFormat) || !strings.Contains(err.Error(), "reseal") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v, want ErrOldFormat in one line that says how to reseal", err)
	}
	if _, err := OpenEnvelope(fx.author, old); !errors.Is(err, ErrOldFormat) {
		t.Errorf("OpenEnvelope: got %v, want ErrOldFormat", err)
	}
	if _, err := PeekAuthor(old); !errors.Is(err, ErrOldFormat) {
		t.Errorf("PeekAuthor: got %v, want ErrOldFormat", err)
	}
}

// TestSerialBounds: a serial may rise by at most MaxSerialStep, and no
// serial reaches MaxSerial, so 2^64-1 is never installed.
func TestSerialBounds(t *testing.T) {
	fx := newSealedFixture(t)
	v1 := fx.seal(t, Envelope{Serial: 1})
	cur := &Version{Serial: 1, Hash: SealedHash(v1)}
	forced := func(serial uint64) []byte {
		return sealRaw(t, fx.author, fx.author.Public(), fx.sealing, fx.body(t, func(b *envelopeBody) { b.Serial, b.Force = serial, true }))
	}
	tests := []struct {
		name   string
		serial uint64
		cur    *Version
		is     error
	}{
		{"step at the limit", 1 + MaxSerialStep, cur, nil},
		{"step one past the limit", 2 + MaxSerialStep, cur, ErrSerialJump},
		{"2^64-1 over serial 1", 1<<64 - 1, cur, ErrSerialJump},
		{"first definition at the limit", MaxSerialStep, nil, nil},
		{"first definition one past the limit", MaxSerialStep + 1, nil, ErrSerialJump},
		{"2^64-1 as the first definition", 1<<64 - 1, nil, ErrSerialJump},
		{"MaxSerial over MaxSerial-1", MaxSerial, &Version{Serial: MaxSerial - 1, Hash: [32]byte{1}}, ErrSerialJump},
		{"MaxSerial-1 over MaxSerial-2", MaxSerial - 1, &Version{Serial: MaxSerial - 2, Hash: [32]byte{1}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, v, err := OpenDefinition(fx.server, fx.trusted(), forced(tc.serial), tc.cur)
			if tc.is == nil {
				if err != nil || v.Serial != tc.serial {
					t.Fatalf("got %v, serial %d; want serial %d accepted", err, v.Serial, tc.serial)
				}
				return
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
		})
	}
	env := Envelope{Serial: 1<<64 - 1, Force: true, TOML: fx.toml("")}
	if _, err := SealDefinition(fx.author, fx.sealing, &env, bytes.NewReader(make([]byte, 64))); !errors.Is(err, ErrSerialJump) {
		t.Errorf("SealDefinition of serial 2^64-1: got %v, want ErrSerialJump", err)
	}
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
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		bad := []byte(last)
		bad[i-1] = alphabet[strings.IndexByte(alphabet, bad[i-1])^1] // the lowest bit is always unused
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
	trusted := fx.trusted()
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
		b, err := SealDefinition(fx.author, fx.otherSealing, &env, bytes.NewReader(make([]byte, 64)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	untrusted := func() []byte {
		env := Envelope{Serial: 1, TOML: fx.toml(""), Created: time.Unix(1, 0)}
		b, err := SealDefinition(fx.stranger, fx.sealing, &env, bytes.NewReader(make([]byte, 64)))
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
		{"flipped hint byte", flip(v1, hintOffset), nil, ErrWrongServer},
		{"flipped ephemeral key byte", flip(v1, ephemeralOffset), nil, ErrWrongServer},
		{"flipped ML-KEM ciphertext byte", flip(v1, mlkemOffset+100), nil, ErrWrongServer},
		{"flipped server wrap byte", flip(v1, wrapServerOffset), nil, ErrWrongServer},
		{"flipped author copy byte", flip(v1, wrapAuthorOffset), nil, ErrWrongServer},
		{"flipped payload byte", flip(v1, len(v1)-1), nil, ErrWrongServer},
		{"flipped magic", flip(v1, 0), nil, ErrMalformedDefinition},
		{"unknown version", flip(v1, len(sealedMagic)), nil, ErrMalformedDefinition},
		{"format 1", append([]byte(sealedMagic+"\x01"), v1[len(sealedMagic)+1:]...), nil, ErrOldFormat},
		{"truncated", v1[:minSealedBytes-1], nil, ErrMalformedDefinition},
		{"truncated payload", v1[:len(v1)-1], nil, ErrWrongServer},
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
	t.Run("no definition text", func(t *testing.T) {
		_, err := SealDefinition(fx.author, fx.sealing, &Envelope{Serial: 1}, bytes.NewReader(make([]byte, 64)))
		if !errors.Is(err, ErrMalformedDefinition) || !strings.Contains(err.Error(), "no definition") {
			t.Fatalf("got %v, want ErrMalformedDefinition naming the missing text", err)
		}
	})
}

// TestOpenEnvelopeMalformed signs and seals envelopes SealDefinition
// would refuse and checks both openers refuse each.
func TestOpenEnvelopeMalformed(t *testing.T) {
	fx := newSealedFixture(t)
	a, s := fx.author.Public(), fx.server.Public()
	enc := func(b any) []byte {
		pt, err := frame.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return pt
	}
	mod := func(f func(*envelopeBody)) []byte { return fx.body(t, f) }
	o := fx.other.Public()
	osk := fx.otherServer.Public()
	good := fx.body(t, nil)
	tests := []struct {
		name string
		body []byte
		is   error
	}{
		{"good", good, nil},
		{"wrong kind", mod(func(b *envelopeBody) { b.H = "hello" }), ErrMalformedDefinition},
		{"wrong version", mod(func(b *envelopeBody) { b.V = 1 }), ErrMalformedDefinition},
		{"serial 0", mod(func(b *envelopeBody) { b.Serial = 0 }), ErrMalformedDefinition},
		{"short author", mod(func(b *envelopeBody) { b.A = a[:31] }), ErrMalformedDefinition},
		{"short server", mod(func(b *envelopeBody) { b.S = s[:31] }), ErrMalformedDefinition},
		{"author differs from hint", mod(func(b *envelopeBody) { b.A = o[:] }), ErrMalformedDefinition},
		{"no created", mod(func(b *envelopeBody) { b.Created = nil }), ErrMalformedDefinition},
		{"no toml", mod(func(b *envelopeBody) { b.TOML = nil }), ErrMalformedDefinition},
		{"serial 1 with prev", mod(func(b *envelopeBody) { b.Prev = make([]byte, 32) }), ErrMalformedDefinition},
		{"serial 2 without prev", mod(func(b *envelopeBody) { b.Serial = 2 }), ErrMalformedDefinition},
		{"short prev", mod(func(b *envelopeBody) { b.Serial, b.Prev = 2, make([]byte, 31) }), ErrMalformedDefinition},
		{"forced with prev", mod(func(b *envelopeBody) { b.Serial, b.Force, b.Prev = 2, true, make([]byte, 32) }), ErrMalformedDefinition},
		{"serial 2^64-1", mod(func(b *envelopeBody) { b.Serial, b.Force = 1<<64-1, true }), ErrSerialJump},
		{"unknown field", enc(map[string]any{"h": envelopeKind, "v": envelopeVersion, "a": a[:], "s": s[:], "serial": 1, "created": 1, "toml": []byte{}, "x": 1}), ErrMalformedDefinition},
		{"non-canonical", append([]byte{0xb8, 0x06}, good[1:]...), ErrMalformedDefinition},
		{"explicit force false", enc(map[string]any{"h": envelopeKind, "v": envelopeVersion, "a": a[:], "s": s[:], "serial": 1, "created": 1, "force": false, "toml": []byte{}}), ErrMalformedDefinition},
		{"trailing bytes", append(bytes.Clone(good), 0), ErrMalformedDefinition},
		{"not cbor", []byte("not cbor"), ErrMalformedDefinition},
		{"empty", []byte{}, ErrMalformedDefinition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := sealRaw(t, fx.author, a, fx.sealing, tc.body)
			env, err := openSigned(fx.server, fx.trusted(), file)
			env2, err2 := OpenEnvelope(fx.author, file)
			if tc.is == nil {
				if err != nil || err2 != nil {
					t.Fatalf("got %v and %v, want success", err, err2)
				}
				return
			}
			if !errors.Is(err, tc.is) || env != nil {
				t.Fatalf("server: got %v, want %v", err, tc.is)
			}
			if !errors.Is(err2, tc.is) || env2 != nil {
				t.Fatalf("author: got %v, want %v", err2, tc.is)
			}
		})
	}
	t.Run("names another server", func(t *testing.T) {
		file := sealRaw(t, fx.author, a, fx.sealing, mod(func(b *envelopeBody) { b.S = osk[:] }))
		if _, err := openSigned(fx.server, fx.trusted(), file); !errors.Is(err, ErrWrongServer) {
			t.Fatalf("got %v, want ErrWrongServer", err)
		}
	})
	t.Run("payload shorter than a signature", func(t *testing.T) {
		file := sealPT(t, fx.author, a, fx.sealing, make([]byte, 63))
		if _, err := openSigned(fx.server, fx.trusted(), file); !errors.Is(err, ErrMalformedDefinition) {
			t.Fatalf("got %v, want ErrMalformedDefinition", err)
		}
	})
}

// TestOpenDefinitionClientKeys checks the keys the server refuses inside
// an otherwise valid file.
func TestOpenDefinitionClientKeys(t *testing.T) {
	fx := newSealedFixture(t)
	a, s := fx.author.Public(), fx.server.Public()
	t.Run("server key", func(t *testing.T) {
		toml := []byte(fmt.Sprintf("[clients]\nc = %q\n[c]\nx = %q\n", s, sealedCanary))
		file := sealRaw(t, fx.author, a, fx.sealing, fx.body(t, func(b *envelopeBody) { b.TOML = toml }))
		_, _, err := OpenDefinition(fx.server, fx.trusted(), file, nil)
		if !errors.Is(err, ErrMalformedDefinition) || strings.Contains(err.Error(), sealedCanary) {
			t.Errorf("got %v, want ErrMalformedDefinition", err)
		}
		env := Envelope{Serial: 1, TOML: toml}
		if _, err := SealDefinition(fx.author, fx.sealing, &env, bytes.NewReader(make([]byte, 64))); !errors.Is(err, ErrMalformedDefinition) {
			t.Errorf("SealDefinition: got %v, want ErrMalformedDefinition", err)
		}
	})
	t.Run("author key as a client key", func(t *testing.T) {
		toml := []byte(fmt.Sprintf("[clients]\nc = %q\n[c]\nx = %q\n", a, sealedCanary))
		env := Envelope{Serial: 1, TOML: toml}
		_, err := SealDefinition(fx.author, fx.sealing, &env, bytes.NewReader(make([]byte, 64)))
		if !errors.Is(err, ErrKeyFormat) || !strings.Contains(err.Error(), "author") || strings.Contains(err.Error(), sealedCanary) {
			t.Errorf("got %v, want ErrKeyFormat naming the author key kind", err)
		}
	})
	t.Run("invalid toml inside", func(t *testing.T) {
		file := sealRaw(t, fx.author, a, fx.sealing, fx.body(t, func(b *envelopeBody) {
			b.TOML = []byte("[clients]\nc = \"" + sealedCanary + "\"\n")
		}))
		_, _, err := OpenDefinition(fx.server, fx.trusted(), file, nil)
		if !errors.Is(err, ErrMalformedDefinition) || strings.Contains(err.Error(), sealedCanary) {
			t.Errorf("got %v, want ErrMalformedDefinition without the value", err)
		}
	})
}

func TestSealDefinitionRefuses(t *testing.T) {
	fx := newSealedFixture(t)
	var h [32]byte
	h[0] = 1
	weak := &SealingKey{mlkem: fx.sealing.mlkem}
	tests := []struct {
		name   string
		server *SealingKey
		env    Envelope
		want   string
	}{
		{"serial 0", fx.sealing, Envelope{}, "serial 0"},
		{"serial 2 without previous", fx.sealing, Envelope{Serial: 2}, "without the previous"},
		{"serial 1 with previous", fx.sealing, Envelope{Serial: 1, Previous: h}, "serial 1 carries"},
		{"weak server key", weak, Envelope{Serial: 1}, "low-order"},
		{"other author in envelope", fx.sealing, Envelope{Serial: 1, Author: fx.other.Public()}, "differ"},
		{"invalid toml", fx.sealing, Envelope{Serial: 1, TOML: []byte("[clients]\nc = [\"" + sealedCanary + "\"]\n")}, "line 2"},
		{"array value", fx.sealing, Envelope{Serial: 1, TOML: fx.toml("a = [\"" + sealedCanary + "\"]\n")}, "arrays"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env.TOML == nil {
				tc.env.TOML = fx.toml("")
			}
			_, err := SealDefinition(fx.author, tc.server, &tc.env, bytes.NewReader(make([]byte, 64)))
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

// FuzzOpenEnvelope fuzzes the server's opener with the file as given,
// and with a body signed by a trusted author and sealed to the server, so
// that the decoder behind the signature is reached. An accepted envelope
// must seal again to a file that opens to the same envelope.
func FuzzOpenEnvelope(f *testing.F) {
	fx := newSealedFixture(f)
	v1 := fx.seal(f, Envelope{Serial: 1})
	body := fx.body(f, func(b *envelopeBody) { b.Serial, b.Prev, b.TOML = 3, make([]byte, 32), []byte("[clients]\n") })
	f.Add(v1, body)
	f.Add(fx.seal(f, Envelope{Serial: 1, Name: "team-a"}), fx.body(f, func(b *envelopeBody) { b.Name = "team-a" }))
	f.Add(Armor(v1), []byte{0xa0})
	f.Add([]byte(sealedMagic), []byte("not cbor"))
	f.Fuzz(func(t *testing.T, file, body []byte) {
		if env, err := openSigned(fx.server, fx.trusted(), file); err == nil {
			checkReseal(t, fx, env)
		}
		if bin, err := SealedBinary(file); err == nil {
			if env, err := openSigned(fx.server, fx.trusted(), bin); err == nil {
				checkReseal(t, fx, env)
			}
		}
		env, err := openSigned(fx.server, fx.trusted(), sealRaw(t, fx.author, fx.author.Public(), fx.sealing, body))
		if err != nil {
			if !errors.Is(err, ErrMalformedDefinition) && !errors.Is(err, ErrWrongServer) && !errors.Is(err, ErrSerialJump) {
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
	b, err := SealDefinition(fx.author, fx.sealing, &again, bytes.NewReader(make([]byte, 64)))
	if err != nil {
		if errors.Is(err, ErrMalformedDefinition) {
			return // a client key equal to the server's
		}
		t.Fatalf("accepted envelope does not seal again: %v", err)
	}
	got, err := OpenEnvelope(fx.author, b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Serial != env.Serial || got.Previous != env.Previous || got.Force != env.Force || got.Name != env.Name ||
		!got.Created.Equal(env.Created) || !bytes.Equal(got.TOML, env.TOML) {
		t.Fatalf("resealed envelope differs: %+v vs %+v", got, env)
	}
}

// TestSealedGoldenFiles opens two format 2 files sealed when the format
// was made (testdata/sealed-v2-serial{1,2}.armored, by the fixture's
// author to the fixture's server). A change to a label, an offset, the
// combiner or the envelope that would strand existing files fails here;
// such a change needs a new format version instead.
func TestSealedGoldenFiles(t *testing.T) {
	fx := newSealedFixture(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v1, v2 := read("sealed-v2-serial1.armored"), read("sealed-v2-serial2.armored")
	def, cur, err := OpenDefinition(fx.server, fx.trusted(), v1, nil)
	if err != nil {
		t.Fatalf("serial 1: %v", err)
	}
	if cur.Serial != 1 || def.Author != fx.author.Public() || !def.Created.Equal(time.Unix(1_800_000_000, 0)) {
		t.Errorf("serial 1: got version %+v, author %s, created %v", cur, def.Author, def.Created)
	}
	def.Clear()
	if _, cur, err = OpenDefinition(fx.server, fx.trusted(), v2, &cur); err != nil || cur.Serial != 2 {
		t.Fatalf("serial 2 over serial 1: %v", err)
	}
	env, err := OpenEnvelope(fx.author, v2)
	if err != nil || !bytes.Equal(env.TOML, fx.toml("extra = 2\n")) {
		t.Fatalf("the author's copy: %v", err)
	}
}

// TestWriteSealedGoldenFiles rewrites the golden files when
// COFFER_WRITE_GOLDEN=1 (only when the fixture's keys change, as when the
// server key gained its independent ML-KEM seed; never for a format
// change, which needs a new version).
func TestWriteSealedGoldenFiles(t *testing.T) {
	if os.Getenv("COFFER_WRITE_GOLDEN") != "1" {
		t.Skip("set COFFER_WRITE_GOLDEN=1 to rewrite testdata/sealed-v2-serial{1,2}.armored")
	}
	fx := newSealedFixture(t)
	b1, err := SealDefinition(fx.author, fx.sealing, &Envelope{Serial: 1, Created: time.Unix(1_800_000_000, 0), TOML: fx.toml("")}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := SealDefinition(fx.author, fx.sealing, &Envelope{Serial: 2, Previous: SealedHash(b1), Created: time.Unix(1_800_000_100, 0), TOML: fx.toml("extra = 2\n")}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"sealed-v2-serial1.armored": b1, "sealed-v2-serial2.armored": b2} {
		if err := os.WriteFile(filepath.Join("testdata", name), Armor(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSignedInPlace: the signed message built over the payload's own
// buffer is signedMessage's, without an allocation, and the signature is
// copied out before the label overwrites it; split buffers are copied.
func TestSignedInPlace(t *testing.T) {
	sig := bytes.Repeat([]byte{0xAB}, ed25519.SignatureSize)
	body := []byte("the signed body of a definition")
	want := signedMessage(body)
	pt := append(bytes.Clone(sig), body...)
	s, msg := signedInPlace(pt[:ed25519.SignatureSize], pt[ed25519.SignatureSize:])
	if !bytes.Equal(s[:], sig) || !bytes.Equal(msg, want) {
		t.Fatalf("in place: sig %x, msg %q", s, msg)
	}
	if &msg[len(msg)-1] != &pt[len(pt)-1] {
		t.Fatal("in place: the message is not the payload's buffer")
	}
	if !bytes.Equal(pt[ed25519.SignatureSize:], body) {
		t.Fatal("in place: the body changed")
	}
	if n := testing.AllocsPerRun(10, func() {
		pt := pt // the label is already there; rewriting it is harmless
		signedInPlace(pt[:ed25519.SignatureSize], pt[ed25519.SignatureSize:])
	}); n != 0 {
		t.Fatalf("in place: %v allocations", n)
	}
	s, msg = signedInPlace(bytes.Clone(sig), bytes.Clone(body))
	if !bytes.Equal(s[:], sig) || !bytes.Equal(msg, want) {
		t.Fatalf("split: sig %x, msg %q", s, msg)
	}
}

// TestEnvelopeInMatchesBody: the struct the opener decodes has the
// sealer's fields, tags and order, the TOML's type aside, so both accept
// and give one encoding. frame.FuzzUnmarshalAliased checks that the two
// decodings agree; this keeps the structs from drifting apart.
func TestEnvelopeInMatchesBody(t *testing.T) {
	in, body := reflect.TypeOf(envelopeIn{}), reflect.TypeOf(envelopeBody{})
	if in.NumField() != body.NumField() {
		t.Fatalf("%d fields against %d", in.NumField(), body.NumField())
	}
	for i := range in.NumField() {
		a, b := in.Field(i), body.Field(i)
		if a.Name != b.Name || a.Tag != b.Tag {
			t.Errorf("field %d: %s %q against %s %q", i, a.Name, a.Tag, b.Name, b.Tag)
		}
		if a.Name != "TOML" && a.Type != b.Type {
			t.Errorf("field %s: %v against %v", a.Name, a.Type, b.Type)
		}
	}
}

// TestOpenLeavesTOMLInPlaintext: the TOML an opened envelope carries is
// the one sealed, and clearing it clears the secret part of the opened
// payload (decodeEnvelope leaves it there).
func TestOpenLeavesTOMLInPlaintext(t *testing.T) {
	fx := newSealedFixture(t)
	toml := fleetTOML(t, 3)
	file := fx.seal(t, Envelope{Serial: 1, TOML: bytes.Clone(toml)})
	env, err := openSigned(fx.server, fx.trusted(), file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(env.TOML, toml) {
		t.Fatal("opened TOML differs from the sealed one")
	}
	if cap(env.TOML) != len(env.TOML) {
		t.Errorf("TOML has spare capacity %d: an append would write over the fields after it", cap(env.TOML)-len(env.TOML))
	}
	// The same steps as openSigned, keeping the payload: clearing the
	// envelope's TOML leaves no byte of it in the payload.
	p, err := splitSealed(file)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := fx.server.sealingDecapsulationKey()
	if err != nil {
		t.Fatal(err)
	}
	kS, err := decapsulate(fx.server, dk, &p.hybrid)
	if err != nil {
		t.Fatal(err)
	}
	_, body, err := p.openPayload(kS, p.wrapServer, ErrWrongServer)
	if err != nil {
		t.Fatal(err)
	}
	me := fx.server.Public()
	env, err = decodeSigned(body, p.author, &me)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, toml) {
		t.Fatal("the payload does not hold the TOML")
	}
	clear(env.TOML)
	if bytes.Contains(body, toml[:16]) {
		t.Error("the payload still holds the TOML after the envelope's TOML was cleared: it was a copy")
	}
}
