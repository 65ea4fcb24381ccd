package coffer

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// The sealed definition file (docs/files.md, "Sealed definition"):
//
//	"coffer-def\x00" || ver (1) || A_pub (32) || n (24) || box(K(A,S), n, CBOR envelope)
//
// A_pub outside the box is only a hint to pick the author's key; the
// envelope inside repeats it, names the server and carries the rest.
const (
	sealedMagic      = "coffer-def\x00"
	sealedVersion    = 1
	sealedHeaderSize = len(sealedMagic) + 1 + KeySize + frame.NonceSize
	envelopeKind     = "definition"
	envelopeVersion  = 1
)

// MaxSealedBytes bounds a sealed definition in its binary form, checked
// before the file is read, so a huge file cannot exhaust memory.
const MaxSealedBytes = 64 << 20

// The armored text form: the binary form in base64, 64 characters a line.
const (
	armorBegin     = "-----BEGIN COFFER DEFINITION-----\n"
	armorEnd       = "-----END COFFER DEFINITION-----\n"
	armorLineChars = 64
)

// maxArmoredBytes is the armored size of a MaxSealedBytes file.
var maxArmoredBytes = armoredLen(MaxSealedBytes)

// Errors of sealed definitions. The server acts on each; none carries a
// secret.
var (
	// ErrMalformedDefinition: the file, the envelope or the TOML inside
	// breaks a format rule.
	ErrMalformedDefinition = errors.New("coffer: malformed sealed definition")
	// ErrUntrustedAuthor: the file names an author key that is not trusted.
	ErrUntrustedAuthor = errors.New("coffer: definition sealed by an untrusted companion key")
	// ErrWrongServer: the box does not open with this key pair (sealed for
	// another server, by another author, or altered), or it names another
	// server inside.
	ErrWrongServer = errors.New("coffer: sealed definition does not open with this server key (sealed for another server, or altered)")
	// ErrPreviousMismatch: the file replaces a definition other than the
	// current one; someone else's change landed first (compare-and-swap).
	ErrPreviousMismatch = errors.New("coffer: sealed definition is based on another definition than the current one")
	// ErrSameDefinition: the file is the current definition; loading it
	// again is a no-op.
	ErrSameDefinition = errors.New("coffer: sealed definition is the current definition")
)

// Envelope is the content of a sealed definition's box. Author and Server
// are the two keys of the box; Previous is the SealedHash of the file it
// replaces, required when Serial > 1 unless Force is set, and zero
// otherwise.
type Envelope struct {
	Author, Server PublicKey
	Serial         uint64
	Previous       [32]byte
	Force          bool      // skip the previous-hash check; the serial must still go up
	Created        time.Time // seconds; informational only
	TOML           []byte    // the definition source
}

// envelopeBody is the CBOR form of an Envelope.
type envelopeBody struct {
	H       string `cbor:"h"`
	V       uint64 `cbor:"v"`
	A       []byte `cbor:"a"`
	S       []byte `cbor:"s"`
	Serial  uint64 `cbor:"serial"`
	Prev    []byte `cbor:"prev,omitempty"`
	Force   bool   `cbor:"force,omitempty"`
	Created *int64 `cbor:"created"`
	TOML    []byte `cbor:"toml"`
}

// validate checks the kind, version, lengths and the serial/prev rules.
// It does not know which keys to expect; openEnvelope checks those.
func (b *envelopeBody) validate() error {
	switch {
	case b.H != envelopeKind:
		return malformed("envelope kind %q", b.H)
	case b.V != envelopeVersion:
		return malformed("envelope version %d", b.V)
	case len(b.A) != KeySize || len(b.S) != KeySize:
		return malformed("author or server key of the wrong length")
	case b.Serial == 0:
		return malformed("serial 0")
	case b.Created == nil:
		return malformed("no creation time")
	case b.TOML == nil:
		return malformed("no definition")
	}
	return checkPrev(b.Serial, b.Force, len(b.Prev) > 0, len(b.Prev) == 32)
}

// checkPrev: a forced or first definition has no previous hash; any other
// has one of 32 bytes.
func checkPrev(serial uint64, force, present, goodLen bool) error {
	switch {
	case force && present:
		return malformed("a forced definition carries a previous hash")
	case !force && serial == 1 && present:
		return malformed("serial 1 carries a previous hash")
	case !force && serial > 1 && !present:
		return malformed("serial %d without the previous definition's hash", serial)
	case present && !goodLen:
		return malformed("previous hash of the wrong length")
	}
	return nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedDefinition}, args...)...)
}

// SealDefinition seals env from author to server and returns the binary
// file. It fills env.Author and env.Server (which must be zero or equal
// to the keys given) and env.Created when zero, checks the serial and
// previous-hash rules, and parses the TOML with ParseDefinition so that
// nothing the server would refuse is sealed. rand supplies the nonce.
func SealDefinition(author *PrivateKey, server PublicKey, env *Envelope, rand io.Reader) ([]byte, error) {
	if err := env.fill(author.Public(), server); err != nil {
		return nil, err
	}
	def, err := ParseDefinition(env.TOML)
	if err != nil {
		return nil, err
	}
	def.Clear()
	if err := def.checkKeys(env.Author, env.Server); err != nil {
		return nil, err
	}
	created := env.Created.Unix()
	body := envelopeBody{H: envelopeKind, V: envelopeVersion, A: env.Author[:], S: env.Server[:],
		Serial: env.Serial, Force: env.Force, Created: &created, TOML: env.TOML}
	if env.Serial > 1 && !env.Force {
		body.Prev = env.Previous[:]
	}
	pt, err := frame.Marshal(body)
	defer clear(pt)
	if err != nil {
		return nil, fmt.Errorf("coffer: encoding envelope: %w", err)
	}
	if sealedHeaderSize+len(pt)+frame.Overhead > MaxSealedBytes {
		return nil, malformed("sealed file of %d bytes exceeds the limit of %d", sealedHeaderSize+len(pt)+frame.Overhead, MaxSealedBytes)
	}
	n, err := readNonce(rand)
	if err != nil {
		return nil, fmt.Errorf("coffer: reading randomness: %w", err)
	}
	key, err := author.boxKey(&server)
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	out := make([]byte, 0, sealedHeaderSize+len(pt)+frame.Overhead)
	out = append(out, sealedMagic...)
	out = append(out, sealedVersion)
	out = append(out, env.Author[:]...)
	out = append(out, n[:]...)
	return seal(out, pt, &n, key), nil
}

// fill sets and checks the envelope's keys, creation time and serial rules.
func (env *Envelope) fill(author, server PublicKey) error {
	if err := CheckPublicKey(&server); err != nil {
		return fmt.Errorf("server key: %w", err)
	}
	if server == author {
		return errors.New("coffer: the server key is the companion's own key")
	}
	if (env.Author != PublicKey{} && env.Author != author) || (env.Server != PublicKey{} && env.Server != server) {
		return errors.New("coffer: envelope keys differ from the sealing keys")
	}
	env.Author, env.Server = author, server
	if env.Created.IsZero() {
		env.Created = time.Now()
	}
	env.Created = env.Created.Truncate(time.Second)
	if env.Serial == 0 {
		return malformed("serial 0")
	}
	hasPrev := env.Previous != [32]byte{}
	if env.Force {
		hasPrev = false // ignored, not sealed
	}
	return checkPrev(env.Serial, env.Force, hasPrev, true)
}

// PeekAuthor returns the author key written outside the box of a sealed
// file (binary or armored). It is not authenticated: use it only to pick
// the key to open the box with.
func PeekAuthor(file []byte) (PublicKey, error) {
	bin, err := SealedBinary(file)
	if err != nil {
		return PublicKey{}, err
	}
	return peekAuthor(bin)
}

func peekAuthor(bin []byte) (PublicKey, error) {
	var a PublicKey
	if len(bin) < sealedHeaderSize+frame.Overhead {
		return a, malformed("%d bytes is too short", len(bin))
	}
	if string(bin[:len(sealedMagic)]) != sealedMagic {
		return a, malformed("not a sealed definition")
	}
	if v := bin[len(sealedMagic)]; v != sealedVersion {
		return a, malformed("format version %d, want %d", v, sealedVersion)
	}
	copy(a[:], bin[len(sealedMagic)+1:])
	if err := CheckPublicKey(&a); err != nil {
		return PublicKey{}, malformed("author key: %v", err)
	}
	return a, nil
}

// OpenEnvelope opens a sealed file (binary or armored) with the box key
// K(k, peer): the server passes its key and the author's, an author its
// own key and the server's (the box key is shared, so an author can open
// what it sealed). It checks that the author inside equals the one
// outside and that the two keys inside are k's and peer's, and decodes
// the envelope strictly (canonical CBOR only). The caller owns the result
// and should clear TOML when done.
func OpenEnvelope(k *PrivateKey, peer PublicKey, file []byte) (*Envelope, error) {
	bin, err := SealedBinary(file)
	if err != nil {
		return nil, err
	}
	hint, err := peekAuthor(bin)
	if err != nil {
		return nil, err
	}
	me := k.Public()
	if peer == me || (hint != peer && hint != me) {
		return nil, fmt.Errorf("%w: the file names author %s", ErrUntrustedAuthor, hint)
	}
	key, err := k.boxKey(&peer)
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	var n nonce
	copy(n[:], bin[len(sealedMagic)+1+KeySize:])
	pt, err := open(nil, bin[sealedHeaderSize:], &n, key)
	if err != nil {
		return nil, ErrWrongServer
	}
	defer clear(pt)
	env, err := decodeEnvelope(pt)
	if err != nil {
		return nil, err
	}
	if env.Author != hint {
		clear(env.TOML)
		return nil, malformed("the author inside the box differs from the one outside")
	}
	if !(env.Author == peer && env.Server == me) && !(env.Author == me && env.Server == peer) {
		clear(env.TOML)
		return nil, fmt.Errorf("%w: it names server %s", ErrWrongServer, env.Server)
	}
	return env, nil
}

// decodeEnvelope decodes and validates the plaintext, refusing any
// encoding but the deterministic one, so a file has one meaning:
// frame.Unmarshal re-encodes what it decoded and requires the exact
// bytes back. (A second re-encoding here cost a load about 0.1 s for a
// 6 MiB definition, docs/server.md, "Load time".)
func decodeEnvelope(pt []byte) (*Envelope, error) {
	var b envelopeBody
	if err := frame.Unmarshal(pt, &b); err != nil {
		clear(b.TOML)
		return nil, fmt.Errorf("%w: %w", ErrMalformedDefinition, err)
	}
	if err := b.validate(); err != nil {
		clear(b.TOML)
		return nil, err
	}
	env := &Envelope{Serial: b.Serial, Force: b.Force, Created: time.Unix(*b.Created, 0).UTC(), TOML: b.TOML}
	copy(env.Author[:], b.A)
	copy(env.Server[:], b.S)
	copy(env.Previous[:], b.Prev)
	return env, nil
}

// SealedHash is the SHA-256 of a sealed file's binary form: the hash a
// later definition names as its previous one, and Version.Hash.
func SealedHash(bin []byte) [32]byte { return sha256.Sum256(bin) }

// Armor returns the text form of a binary sealed file: a BEGIN line, the
// base64 of the file in lines of 64 characters, and an END line.
func Armor(bin []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(bin)
	out := make([]byte, 0, armoredLen(len(bin)))
	out = append(out, armorBegin...)
	for len(enc) > 0 {
		n := min(len(enc), armorLineChars)
		out = append(out, enc[:n]...)
		out = append(out, '\n')
		enc = enc[n:]
	}
	return append(out, armorEnd...)
}

func armoredLen(n int) int {
	chars := base64.StdEncoding.EncodedLen(n)
	return len(armorBegin) + chars + (chars+armorLineChars-1)/armorLineChars + len(armorEnd)
}

// Dearmor returns the binary form of an armored file. It accepts only what
// Armor produces: the exact BEGIN and END lines, full 64-character lines,
// canonical padded base64, LF line ends and nothing after the END line.
func Dearmor(text []byte) ([]byte, error) {
	if len(text) > maxArmoredBytes {
		return nil, malformed("armored file of %d bytes exceeds the limit", len(text))
	}
	if !bytes.HasPrefix(text, []byte(armorBegin)) || !bytes.HasSuffix(text, []byte(armorEnd)) ||
		len(text) <= len(armorBegin)+len(armorEnd) {
		return nil, malformed("armor without its BEGIN and END lines")
	}
	body := text[len(armorBegin) : len(text)-len(armorEnd)]
	b64 := make([]byte, 0, len(body))
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 || i > armorLineChars || i == 0 {
			return nil, malformed("armor line of the wrong length")
		}
		if i < armorLineChars && i+1 != len(body) {
			return nil, malformed("short armor line before the last")
		}
		b64 = append(b64, body[:i]...)
		body = body[i+1:]
	}
	bin := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Strict().Decode(bin, b64)
	if err != nil {
		return nil, malformed("armor is not canonical base64")
	}
	bin = bin[:n]
	if base64.StdEncoding.EncodeToString(bin) != string(b64) {
		return nil, malformed("armor is not canonical base64")
	}
	return bin, nil
}

// SealedBinary returns the binary form of a sealed file given in either
// form, checking the size limit.
func SealedBinary(file []byte) ([]byte, error) {
	if bytes.HasPrefix(file, []byte(armorBegin)) {
		return Dearmor(file)
	}
	if len(file) > MaxSealedBytes {
		return nil, malformed("%d bytes exceeds the limit of %d", len(file), MaxSealedBytes)
	}
	if !bytes.HasPrefix(file, []byte(sealedMagic)) {
		return nil, malformed("not a sealed definition (neither the binary nor the armored form)")
	}
	return file, nil
}

// ReadSealedFile reads a sealed definition from path, in either form, and
// returns its binary form. The size is checked on the opened file before
// reading, and the read is bounded in case the file grows meanwhile.
func ReadSealedFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("coffer: opening sealed definition: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("coffer: sealed definition %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrMalformedDefinition, path)
	}
	if fi.Size() > int64(maxArmoredBytes) {
		return nil, fmt.Errorf("%w: %s has %d bytes, more than the limit", ErrMalformedDefinition, path, fi.Size())
	}
	// One buffer sized from Stat, as os.ReadFile does: io.ReadAll's
	// doubling copies a 6 MiB file about 15 times over (docs/server.md,
	// "Load time").
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, int64(maxArmoredBytes)+1)); err != nil {
		return nil, fmt.Errorf("coffer: reading sealed definition %s: %w", path, err)
	}
	bin, err := SealedBinary(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return bin, nil
}

// rollbackError is a definition whose serial does not go up. It matches
// ErrRollback, the sentinel shared with the client side.
type rollbackError struct{ serial, current uint64 }

func (e *rollbackError) Error() string {
	return fmt.Sprintf("coffer: definition serial %d is not above the current serial %d (an older file, or a replay)", e.serial, e.current)
}

func (e *rollbackError) Unwrap() error { return ErrRollback }

// OpenDefinition is the server's loader. It opens a sealed file (either
// form) whose outer author hint is in trusted, sealed to server, checks
// serial and previous hash against cur, and parses the definition:
//
//   - the same file as cur: ErrSameDefinition (a no-op; nothing returned);
//   - serial not above cur.Serial: ErrRollback;
//   - previous hash not cur.Hash, unless the file is forced: ErrPreviousMismatch;
//   - cur == nil (first load, no state): trust on first use, any serial.
//
// Client keys equal to the author's or the server's key are refused. On
// success it returns the definition, with Author, Created and Forced set,
// and the file's Version. Nothing is kept on error.
func OpenDefinition(server *PrivateKey, trusted []PublicKey, file []byte, cur *Version) (*Definition, Version, error) {
	bin, err := SealedBinary(file)
	if err != nil {
		return nil, Version{}, err
	}
	author, err := peekAuthor(bin)
	if err != nil {
		return nil, Version{}, err
	}
	if !containsKey(trusted, author) {
		return nil, Version{}, fmt.Errorf("%w: %s", ErrUntrustedAuthor, author)
	}
	env, err := OpenEnvelope(server, author, bin)
	if err != nil {
		return nil, Version{}, err
	}
	defer clear(env.TOML)
	v := Version{Serial: env.Serial, Hash: SealedHash(bin)}
	if err := checkVersion(env, v, cur); err != nil {
		return nil, Version{}, err
	}
	def, err := ParseDefinition(env.TOML)
	if err != nil {
		return nil, Version{}, fmt.Errorf("%w: %w", ErrMalformedDefinition, err)
	}
	if err := def.checkKeys(env.Author, env.Server); err != nil {
		def.Clear()
		return nil, Version{}, err
	}
	def.Author, def.Created, def.Forced = env.Author, env.Created, env.Force
	return def, v, nil
}

// checkVersion applies the serial and compare-and-swap rules.
func checkVersion(env *Envelope, v Version, cur *Version) error {
	switch {
	case cur == nil:
		return nil
	case v.Hash == cur.Hash:
		return ErrSameDefinition
	case env.Serial <= cur.Serial:
		return &rollbackError{serial: env.Serial, current: cur.Serial}
	case !env.Force && env.Previous != cur.Hash:
		return fmt.Errorf("%w: serial %d replaces a definition other than the current serial %d; seal your change again on top of the current file",
			ErrPreviousMismatch, env.Serial, cur.Serial)
	}
	return nil
}

func containsKey(keys []PublicKey, k PublicKey) bool {
	for _, t := range keys {
		if t == k {
			return true
		}
	}
	return false
}
