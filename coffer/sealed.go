package coffer

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/coffer-project/coffer/frame"
)

// The sealed definition file, format 2 (docs/files.md, "Sealed definition"):
//
//	"coffer-def\x00" || ver (1) = 2 || A (32) || E (32) || C (1088) || wrapS (48) || wrapA (48) || payload
//
// A is the author's Ed25519 public key, a hint outside the encryption. E
// is the ephemeral X25519 key and C the ML-KEM-768 ciphertext (hybrid.go).
// wrapS is the file key sealed under the hybrid key for the server, wrapA
// the same file key sealed for the author (so it can open its own file),
// each with ChaCha20-Poly1305 under the bytes before wrapS as associated
// data. The payload is the file key's ChaCha20-Poly1305 sealing of
//
//	sig (64) || body
//
// under the whole header as associated data, where body is the CBOR
// envelope and sig the author's Ed25519 signature of signatureLabel ||
// body. The server decodes the body only once the signature holds.
const (
	sealedMagic      = "coffer-def\x00"
	sealedVersion    = 2
	hintOffset       = len(sealedMagic) + 1
	ephemeralOffset  = hintOffset + ed25519.PublicKeySize
	mlkemOffset      = ephemeralOffset + KeySize
	wrapServerOffset = mlkemOffset + mlkem.CiphertextSize768
	wrapAuthorOffset = wrapServerOffset + wrappedKeySize
	sealedHeaderSize = wrapAuthorOffset + wrappedKeySize
	envelopeKind     = "definition"
	envelopeVersion  = 2
	signatureLabel   = "coffer-def/2 signature\x00"
)

// oldSealedVersion is the format before author signatures: a NaCl box
// between two X25519 keys, which the server's key alone could forge.
const oldSealedVersion = 1

// Serial bounds (docs/files.md, "Serials"). A definition may raise the
// serial by at most MaxSerialStep over the current one (a first
// definition, with nothing current, is at most MaxSerialStep), so a
// mistaken or hostile --serial cannot use up the serial space: 2^31
// accepted files at the largest step are needed to reach MaxSerial, and
// serials at or above it are refused everywhere.
const (
	MaxSerialStep = 1 << 32
	MaxSerial     = 1<<63 - 1
)

// MaxSealedBytes bounds a sealed definition in its binary form, checked
// before the file is read, so a huge file cannot exhaust memory.
const MaxSealedBytes = 64 << 20

// minSealedBytes is the smallest possible file: a header and the payload
// of a signature and an empty body.
const minSealedBytes = sealedHeaderSize + ed25519.SignatureSize + chacha20poly1305.Overhead

// Errors of sealed definitions. The server acts on each; none carries a
// secret.
var (
	// ErrMalformedDefinition: the file, the envelope or the TOML inside
	// breaks a format rule.
	ErrMalformedDefinition = errors.New("coffer: malformed sealed definition")
	// ErrOldFormat: the file is in sealed format 1, which had no author
	// signature. The error says how to reseal.
	ErrOldFormat = errors.New("coffer: sealed definition in format 1 (no author signature) is refused; reseal the TOML with an author key: coffer-companion seal --key AUTHOR.key --server SEALING-KEY --force --serial N FILE.toml, N above the current serial")
	// ErrUntrustedAuthor: the file names an author key that is not trusted.
	ErrUntrustedAuthor = errors.New("coffer: definition by an untrusted author key")
	// ErrBadSignature: the author's signature does not verify: the signed
	// content was changed, or the file claims another author than the one
	// that signed it.
	ErrBadSignature = errors.New("coffer: the author's signature on the definition does not verify")
	// ErrWrongServer: the file does not open with this server's keys
	// (sealed for another server, or altered), or its signed content names
	// another server.
	ErrWrongServer = errors.New("coffer: sealed definition does not open with this server key (sealed for another server, or altered)")
	// ErrNotOwnFile: the author's copy of the file key does not open with
	// this author key; only the author that sealed a file can open it
	// without the server's key.
	ErrNotOwnFile = errors.New("coffer: sealed definition was not sealed by this author key")
	// ErrSerialJump: the serial rises by more than MaxSerialStep, or
	// reaches MaxSerial.
	ErrSerialJump = errors.New("coffer: definition serial jumps too far")
	// ErrPreviousMismatch: the file replaces a definition other than the
	// current one; someone else's change landed first (compare-and-swap).
	ErrPreviousMismatch = errors.New("coffer: sealed definition is based on another definition than the current one")
	// ErrSameDefinition: the file is the current definition; loading it
	// again is a no-op.
	ErrSameDefinition = errors.New("coffer: sealed definition is the current definition")
)

// Envelope is the signed content of a sealed definition. Author signed
// it; Server is the X25519 key of the server it is for; Previous is the
// SealedHash of the file it replaces, required when Serial > 1 unless
// Force is set, and zero otherwise.
type Envelope struct {
	Author   AuthorPublicKey
	Server   PublicKey
	Serial   uint64
	Previous [32]byte
	Force    bool      // skip the previous-hash check; the serial must still go up
	Created  time.Time // seconds; informational only
	TOML     []byte    // the definition source
	// Name is the definition's name on a server that loads several
	// (docs/definition.md, "Splitting a fleet"). It is signed with the
	// rest, and a server loads the file only as the definition of that
	// name. "" and DefaultDefinitionName are the default one, which is
	// sealed without a name: files sealed before names existed are
	// default ones.
	Name string
}

// DefaultDefinitionName is the name of the definition a file without a
// name belongs to.
const DefaultDefinitionName = frame.DefaultDefinition

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
	Name    string `cbor:"name,omitempty"` // absent for the default definition
}

// envelopeIn is envelopeBody as it is decoded: the same fields, tags and
// order (TestEnvelopeInMatchesBody), with the TOML left in the plaintext
// (frame.RawBytes) instead of copied out of it.
type envelopeIn struct {
	H       string         `cbor:"h"`
	V       uint64         `cbor:"v"`
	A       []byte         `cbor:"a"`
	S       []byte         `cbor:"s"`
	Serial  uint64         `cbor:"serial"`
	Prev    []byte         `cbor:"prev,omitempty"`
	Force   bool           `cbor:"force,omitempty"`
	Created *int64         `cbor:"created"`
	TOML    frame.RawBytes `cbor:"toml"`
	Name    string         `cbor:"name,omitempty"`
}

// body returns in as an envelopeBody, sharing its slices.
func (in *envelopeIn) body() envelopeBody {
	return envelopeBody{H: in.H, V: in.V, A: in.A, S: in.S, Serial: in.Serial, Prev: in.Prev,
		Force: in.Force, Created: in.Created, TOML: in.TOML.Content, Name: in.Name}
}

// validate checks the kind, version, lengths and the serial/prev rules.
// It does not know which keys to expect; the openers check those.
func (b *envelopeBody) validate() error {
	switch {
	case b.H != envelopeKind:
		return malformed("envelope kind %q", b.H)
	case b.V != envelopeVersion:
		return malformed("envelope version %d", b.V)
	case len(b.A) != ed25519.PublicKeySize || len(b.S) != KeySize:
		return malformed("author or server key of the wrong length")
	case b.Serial == 0:
		return malformed("serial 0")
	case b.Serial >= MaxSerial:
		return fmt.Errorf("%w: serial %d is not below %d", ErrSerialJump, b.Serial, uint64(MaxSerial))
	case b.Created == nil:
		return malformed("no creation time")
	case b.TOML == nil:
		return malformed("no definition")
	case b.Name != "" && (b.Name == DefaultDefinitionName || !frame.ValidDefinitionName(b.Name)):
		return malformed("definition name is not 1 to 64 of a-z, 0-9, '_' and '-' (the default definition is sealed without one)")
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

// SealDefinition signs env with author and encrypts it to server, and
// returns the binary file. It fills env.Author and env.Server (which must
// be zero or equal to the keys given) and env.Created when zero, checks
// the serial and previous-hash rules, and parses the TOML with
// ParseDefinition so that nothing the server would refuse is sealed. rand
// supplies the ephemeral X25519 key and the file key; the ML-KEM
// encapsulation reads crypto/rand.
func SealDefinition(author *AuthorKey, server *SealingKey, env *Envelope, rand io.Reader) ([]byte, error) {
	if env.TOML == nil {
		// The server would refuse the file ("no definition"): say so now.
		return nil, malformed("no definition text to seal")
	}
	if err := env.fill(author.Public(), server.X25519); err != nil {
		return nil, err
	}
	def, err := ParseDefinition(env.TOML)
	if err != nil {
		return nil, err
	}
	def.Clear()
	if err := def.checkKeys(env.Server); err != nil {
		return nil, err
	}
	pt, err := signedPayload(author, env)
	defer clear(pt)
	if err != nil {
		return nil, err
	}
	size := sealedHeaderSize + len(pt) + chacha20poly1305.Overhead
	if size > MaxSealedBytes {
		return nil, malformed("sealed file of %d bytes exceeds the limit of %d", size, MaxSealedBytes)
	}
	return sealPayload(author, author.Public(), server, pt, size, rand)
}

// signedPayload encodes env and returns sig || body.
func signedPayload(author *AuthorKey, env *Envelope) ([]byte, error) {
	created := env.Created.Unix()
	body := envelopeBody{H: envelopeKind, V: envelopeVersion, A: env.Author[:], S: env.Server[:],
		Serial: env.Serial, Force: env.Force, Created: &created, TOML: env.TOML}
	if env.Name != DefaultDefinitionName {
		body.Name = env.Name
	}
	if env.Serial > 1 && !env.Force {
		body.Prev = env.Previous[:]
	}
	// One buffer: room for the signature, then the body. The label goes
	// just before the body for signing, and the signature over it: no
	// other copy of the definition is made, so none is left uncleared.
	pt := make([]byte, ed25519.SignatureSize, ed25519.SignatureSize+len(env.TOML)+envelopeRoom)
	pt, err := frame.AppendMarshal(pt, body)
	if err != nil {
		clear(pt)
		return nil, fmt.Errorf("coffer: encoding envelope: %w", err)
	}
	msg := pt[ed25519.SignatureSize-len(signatureLabel):]
	copy(msg, signatureLabel)
	copy(pt, author.sign(msg))
	return pt, nil
}

// envelopeRoom bounds an envelope body's encoding beyond its TOML: the
// field names, two keys, a hash, a name and the numbers.
const envelopeRoom = 512

// signedMessage is what the author signs: a label naming the format, then
// the body (which names the author, the server, the serial, the previous
// hash, the force flag, the creation time and the definition).
func signedMessage(body []byte) []byte {
	m := make([]byte, 0, len(signatureLabel)+len(body))
	return append(append(m, signatureLabel...), body...)
}

// signedInPlace returns a copy of sig and the signed message
// (signatureLabel || body). When body directly follows sig in one buffer,
// as in the payload openPayload opens, the label is written over the
// signature's last bytes and the message is that buffer: copying a
// 25,000-client body was about 15 MiB and a fifth of opening it
// (BenchmarkOpenDefinitionFleet/signed). Otherwise body is copied.
func signedInPlace(sig, body []byte) (s [ed25519.SignatureSize]byte, msg []byte) {
	copy(s[:], sig)
	n := len(sig)
	if n == ed25519.SignatureSize && len(body) > 0 && cap(sig) > n && &sig[:n+1][n] == &body[0] {
		msg = sig[n-len(signatureLabel) : n+len(body)]
		copy(msg, signatureLabel)
		return s, msg
	}
	return s, signedMessage(body)
}

// sealPayload encrypts pt (sig || body) to the server and to author's
// copy, names hint as the author, and returns the file (of size bytes).
func sealPayload(author *AuthorKey, hint AuthorPublicKey, server *SealingKey, pt []byte, size int, rand io.Reader) ([]byte, error) {
	h, kS, err := server.encapsulate(rand)
	if err != nil {
		return nil, err
	}
	defer clear(kS[:])
	kA, err := author.authorCopyKey(h.ephemeral)
	if err != nil {
		return nil, err
	}
	defer clear(kA[:])
	var fk [fileKeySize]byte
	defer clear(fk[:])
	if _, err := io.ReadFull(rand, fk[:]); err != nil {
		return nil, fmt.Errorf("coffer: reading randomness: %w", err)
	}
	out := make([]byte, 0, size)
	out = append(out, sealedMagic...)
	out = append(out, sealedVersion)
	out = append(out, hint[:]...)
	out = append(out, h.ephemeral[:]...)
	out = append(out, h.mlkemCT[:]...)
	prefix := out[:wrapServerOffset]
	out = aeadSeal(out, kS, fk[:], prefix)
	out = aeadSeal(out, kA, fk[:], prefix)
	return aeadSeal(out, &fk, pt, out[:sealedHeaderSize]), nil
}

// fill sets and checks the envelope's keys, creation time and serial rules.
func (env *Envelope) fill(author AuthorPublicKey, server PublicKey) error {
	if err := CheckPublicKey(&server); err != nil {
		return fmt.Errorf("server key: %w", err)
	}
	if (env.Author != AuthorPublicKey{} && env.Author != author) || (env.Server != PublicKey{} && env.Server != server) {
		return errors.New("coffer: envelope keys differ from the sealing keys")
	}
	env.Author, env.Server = author, server
	if env.Name == "" {
		env.Name = DefaultDefinitionName
	}
	if !frame.ValidDefinitionName(env.Name) {
		return fmt.Errorf("coffer: definition name %q is not 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit", env.Name)
	}
	if env.Created.IsZero() {
		env.Created = time.Now()
	}
	env.Created = env.Created.Truncate(time.Second)
	switch {
	case env.Serial == 0:
		return malformed("serial 0")
	case env.Serial >= MaxSerial:
		return fmt.Errorf("%w: serial %d is not below %d", ErrSerialJump, env.Serial, uint64(MaxSerial))
	}
	hasPrev := env.Previous != [32]byte{}
	if env.Force {
		hasPrev = false // ignored, not sealed
	}
	return checkPrev(env.Serial, env.Force, hasPrev, true)
}

// sealedParts are a binary file's fields, sliced out of it.
type sealedParts struct {
	author               AuthorPublicKey // unauthenticated hint
	hybrid               hybridHeader
	wrapServer, wrapSelf []byte
	prefix, header       []byte // associated data of the wraps and of the payload
	payload              []byte
}

// splitSealed checks the magic, the version and the size, and slices a
// binary file into its parts. It decodes nothing inside the encryption.
func splitSealed(bin []byte) (*sealedParts, error) {
	if len(bin) < len(sealedMagic)+1 || string(bin[:len(sealedMagic)]) != sealedMagic {
		return nil, malformed("not a sealed definition")
	}
	switch v := bin[len(sealedMagic)]; {
	case v == oldSealedVersion:
		return nil, ErrOldFormat
	case v != sealedVersion:
		return nil, malformed("format version %d, want %d", v, sealedVersion)
	}
	if len(bin) < minSealedBytes {
		return nil, malformed("%d bytes is too short", len(bin))
	}
	p := &sealedParts{
		wrapServer: bin[wrapServerOffset:wrapAuthorOffset],
		wrapSelf:   bin[wrapAuthorOffset:sealedHeaderSize],
		prefix:     bin[:wrapServerOffset],
		header:     bin[:sealedHeaderSize],
		payload:    bin[sealedHeaderSize:],
	}
	copy(p.author[:], bin[hintOffset:])
	copy(p.hybrid.ephemeral[:], bin[ephemeralOffset:])
	copy(p.hybrid.mlkemCT[:], bin[mlkemOffset:])
	return p, nil
}

// PeekAuthor returns the author key written outside the encryption of a
// sealed file (binary or armored). It is not authenticated: use it only
// to say who claims to have sealed the file.
func PeekAuthor(file []byte) (AuthorPublicKey, error) {
	bin, err := SealedBinary(file)
	if err != nil {
		return AuthorPublicKey{}, err
	}
	p, err := splitSealed(bin)
	if err != nil {
		return AuthorPublicKey{}, err
	}
	return p.author, nil
}

// openPayload decrypts the payload with the file key wrapped in wrap
// under key, and splits it into signature and body. A tag that fails is
// reported as fail.
func (p *sealedParts) openPayload(key *[32]byte, wrap []byte, fail error) (sig, body []byte, err error) {
	fk, err := aeadOpen(key, wrap, p.prefix)
	if err != nil {
		return nil, nil, fail
	}
	defer clear(fk)
	pt, err := aeadOpen((*[32]byte)(fk), p.payload, p.header)
	if err != nil {
		return nil, nil, fail
	}
	if len(pt) < ed25519.SignatureSize {
		clear(pt)
		return nil, nil, malformed("payload shorter than a signature")
	}
	return pt[:ed25519.SignatureSize], pt[ed25519.SignatureSize:], nil
}

// OpenEnvelope opens a sealed file (binary or armored) with the copy of
// the file key kept for its author, so the author that sealed a file can
// read it back (edit, --previous) without the server's key. It checks the
// author's own signature and decodes the envelope strictly. Files sealed
// by another author key give ErrNotOwnFile. The caller owns the result
// and should clear TOML when done.
func OpenEnvelope(author *AuthorKey, file []byte) (*Envelope, error) {
	bin, err := SealedBinary(file)
	if err != nil {
		return nil, err
	}
	p, err := splitSealed(bin)
	if err != nil {
		return nil, err
	}
	if p.author != author.Public() {
		return nil, fmt.Errorf("%w: the file names author %s", ErrNotOwnFile, p.author)
	}
	kA, err := author.authorCopyKey(p.hybrid.ephemeral)
	if err != nil {
		return nil, err
	}
	defer clear(kA[:])
	sig, body, err := p.openPayload(kA, p.wrapSelf, ErrNotOwnFile)
	if err != nil {
		return nil, err
	}
	s, msg := signedInPlace(sig, body)
	if !ed25519.Verify(p.author[:], msg, s[:]) {
		clear(body)
		return nil, ErrBadSignature
	}
	env, err := decodeSigned(body, p.author, nil)
	if err != nil {
		clear(body)
		return nil, err
	}
	return env, nil // env.TOML is in body (decodeEnvelope); the caller clears it
}

// openSigned is the server's opening: decapsulate with the server's two
// keys, require a trusted author, verify its signature, and only then
// decode the body, which must name this author and this server.
func openSigned(server *PrivateKey, trusted []AuthorPublicKey, bin []byte) (*Envelope, error) {
	p, err := splitSealed(bin)
	if err != nil {
		return nil, err
	}
	dk, err := server.sealingDecapsulationKey()
	if err != nil {
		return nil, err
	}
	kS, err := decapsulate(server, dk, &p.hybrid)
	if err != nil {
		return nil, ErrWrongServer
	}
	defer clear(kS[:])
	sig, body, err := p.openPayload(kS, p.wrapServer, ErrWrongServer)
	if err != nil {
		return nil, err
	}
	s, msg := signedInPlace(sig, body)
	if err := verifyAuthor(trusted, p.author, s[:], msg); err != nil {
		clear(body)
		return nil, err
	}
	me := server.Public()
	env, err := decodeSigned(body, p.author, &me)
	if err != nil {
		clear(body)
		return nil, err
	}
	return env, nil // env.TOML is in body (decodeEnvelope); the caller clears it
}

// verifyAuthor requires the named author to be trusted and its signature
// of msg (signatureLabel || body) to hold. When it does not, it says
// whether another trusted author signed the content (a file claiming the
// wrong author) or none did (the content was changed after signing).
func verifyAuthor(trusted []AuthorPublicKey, author AuthorPublicKey, sig, msg []byte) error {
	if !slices.Contains(trusted, author) {
		return fmt.Errorf("%w: %s", ErrUntrustedAuthor, author)
	}
	if ed25519.Verify(author[:], msg, sig) {
		return nil
	}
	for _, t := range trusted {
		if t != author && ed25519.Verify(t[:], msg, sig) {
			return fmt.Errorf("%w: the file names author %s, but trusted author %s signed it", ErrBadSignature, author, t)
		}
	}
	return fmt.Errorf("%w for author %s: the content was changed after signing", ErrBadSignature, author)
}

// decodeSigned decodes an authenticated body, which must name author and,
// if server is not nil, that server.
func decodeSigned(body []byte, author AuthorPublicKey, server *PublicKey) (*Envelope, error) {
	env, err := decodeEnvelope(body)
	if err != nil {
		return nil, err
	}
	switch {
	case env.Author != author:
		clear(env.TOML)
		return nil, malformed("the signed author differs from the one the file names")
	case server != nil && env.Server != *server:
		clear(env.TOML)
		return nil, fmt.Errorf("%w: it was signed for server %s", ErrWrongServer, env.Server)
	}
	return env, nil
}

// decodeEnvelope decodes and validates the plaintext, refusing any
// encoding but the deterministic one, so a file has one meaning:
// frame.UnmarshalAliased re-encodes what it decoded and requires the
// exact bytes back. (A second re-encoding here cost a load about 0.1 s
// for a 6 MiB definition, docs/server.md, "Load time".) The TOML is left
// in pt, not copied: on success env.TOML aliases pt, and the caller
// keeps pt and clears env.TOML, the only secret part of it, when done
// (copying it out and re-encoding it were two allocations of its size,
// about 0.2 s of a 16 MiB load). On error nothing aliases pt.
func decodeEnvelope(pt []byte) (*Envelope, error) {
	var in envelopeIn
	if err := frame.UnmarshalAliased(pt, &in, &in.TOML); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedDefinition, err)
	}
	b := in.body()
	if err := b.validate(); err != nil {
		return nil, err
	}
	env := &Envelope{Serial: b.Serial, Force: b.Force, Created: time.Unix(*b.Created, 0).UTC(), TOML: b.TOML, Name: b.Name}
	if env.Name == "" {
		env.Name = DefaultDefinitionName
	}
	copy(env.Author[:], b.A)
	copy(env.Server[:], b.S)
	copy(env.Previous[:], b.Prev)
	return env, nil
}

// SealedHash is the SHA-256 of a sealed file's binary form: the hash a
// later definition names as its previous one, and Version.Hash.
func SealedHash(bin []byte) [32]byte { return sha256.Sum256(bin) }

// rollbackError is a definition whose serial does not go up. It matches
// ErrRollback, the sentinel shared with the client side.
type rollbackError struct{ serial, current uint64 }

func (e *rollbackError) Error() string {
	return fmt.Sprintf("coffer: definition serial %d is not above the current serial %d (an older file, or a replay)", e.serial, e.current)
}

func (e *rollbackError) Unwrap() error { return ErrRollback }

// OpenDefinition is the server's loader. It opens a sealed file (either
// form) encrypted to server, requires its author to be in trusted and the
// author's signature to hold before it decodes anything inside, checks
// serial and previous hash against cur, and parses the definition:
//
//   - the same file as cur: ErrSameDefinition (a no-op; nothing returned);
//   - serial not above cur.Serial: ErrRollback;
//   - serial more than MaxSerialStep above cur.Serial (above MaxSerialStep
//     when cur is nil): ErrSerialJump;
//   - previous hash not cur.Hash, unless the file is forced: ErrPreviousMismatch;
//   - cur == nil (first load, no state): trust on first use.
//
// Client keys equal to the server's key are refused. On success it
// returns the definition, with Author, Created and Forced set, and the
// file's Version. Nothing is kept on error.
func OpenDefinition(server *PrivateKey, trusted []AuthorPublicKey, file []byte, cur *Version) (*Definition, Version, error) {
	return openDefinition(server, trusted, file, func(env *Envelope, v Version) error {
		return checkVersion(env, v, cur)
	})
}

// OpenStoredDefinition is OpenDefinition for the file a store rebuilds
// from: one the server accepted before, whose hash the caller has checked
// against its state. It applies every check but the serial rules, which
// the file passed when it was accepted.
func OpenStoredDefinition(server *PrivateKey, trusted []AuthorPublicKey, file []byte) (*Definition, Version, error) {
	return openDefinition(server, trusted, file, func(*Envelope, Version) error { return nil })
}

func openDefinition(server *PrivateKey, trusted []AuthorPublicKey, file []byte, check func(*Envelope, Version) error) (*Definition, Version, error) {
	bin, err := SealedBinary(file)
	if err != nil {
		return nil, Version{}, err
	}
	env, err := openSigned(server, trusted, bin)
	if err != nil {
		return nil, Version{}, err
	}
	defer clear(env.TOML)
	v := Version{Serial: env.Serial, Hash: SealedHash(bin)}
	if err := check(env, v); err != nil {
		return nil, Version{}, err
	}
	def, err := ParseDefinition(env.TOML)
	if err != nil {
		return nil, Version{}, fmt.Errorf("%w: %w", ErrMalformedDefinition, err)
	}
	if err := def.checkKeys(env.Server); err != nil {
		def.Clear()
		return nil, Version{}, err
	}
	def.Author, def.Created, def.Forced, def.Name = env.Author, env.Created, env.Force, env.Name
	return def, v, nil
}

// checkVersion applies the serial and compare-and-swap rules.
func checkVersion(env *Envelope, v Version, cur *Version) error {
	base := uint64(0)
	if cur != nil {
		base = cur.Serial
	}
	switch {
	case cur != nil && v.Hash == cur.Hash:
		return ErrSameDefinition
	case cur != nil && env.Serial <= cur.Serial:
		return &rollbackError{serial: env.Serial, current: cur.Serial}
	case env.Serial-base > MaxSerialStep:
		return fmt.Errorf("%w: serial %d is more than %d above the current serial %d; use the next serial",
			ErrSerialJump, env.Serial, uint64(MaxSerialStep), base)
	case cur == nil:
		return nil
	case !env.Force && env.Previous != cur.Hash:
		return fmt.Errorf("%w: serial %d replaces a definition other than the current serial %d; seal your change again on top of the current file",
			ErrPreviousMismatch, env.Serial, cur.Serial)
	}
	return nil
}
