package frame

import (
	"errors"
	"fmt"
)

// Version is the only protocol version, coffer/2; there is no
// negotiation. coffer/1 (X25519 only) is refused with Error{version}.
const Version = 2

// Sizes of the fixed fields.
const (
	KeySize   = 32 // X25519 public key
	NonceSize = 24 // XSalsa20 nonce
	HashSize  = 32 // SHA-256
	Overhead  = 16 // Poly1305 tag added by a box

	// KEMKeySize is an ML-KEM-768 encapsulation key (FIPS 203), sent in
	// Hello's outer part.
	KEMKeySize = 1184
	// KEMCiphertextSize is an ML-KEM-768 ciphertext, sent inside Link's
	// box.
	KEMCiphertextSize = 1088
)

// Limits on what a Get may ask for and an OkGet may carry.
const (
	MaxNameBytes   = 128      // one secret name
	MaxGetNames    = 256      // names in one Get
	MaxChunkBytes  = 60 << 10 // shard bytes in one OkGet
	MaxShardBytes  = 16 << 20 // a whole shard, all chunks together
	MaxChunks      = MaxShardBytes/MaxChunkBytes + 1
	helloFixedSize = 1 + KeySize + KeySize + NonceSize + KEMKeySize
)

// The kinds named in the "h" field of each sealed plaintext. A receiver
// checks it, which stops reflection and cross-message confusion.
const (
	PurposeHello       = "hello"
	PurposeLink        = "link"
	PurposeKeyNotFound = "keynotfound"
	PurposeGet         = "get"
	PurposeOkGet       = "okget"
	PurposeBye         = "bye"
	PurposeError       = "error"
)

// ErrInvalid is wrapped by every Validate and Parse error.
var ErrInvalid = errors.New("frame: invalid body")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Hello is the plain outer part of a Hello body: everything the server
// may look at before the client's box has opened (docs/protocol.md §4.1).
type Hello struct {
	Version   byte
	Client    [KeySize]byte   // C_pub
	Ephemeral [KeySize]byte   // Ce_pub
	Nonce     [NonceSize]byte // n1
	KEMKey    []byte          // ek: the session's ML-KEM-768 encapsulation key; aliases the body
	Box       []byte          // seal(K(C,S), n1, HelloPayload); aliases the body
}

// ParseHello splits a Hello body into its fixed fields and the box. It
// checks lengths only; the version is checked by the caller so it can
// answer Error{version}.
func ParseHello(body []byte) (Hello, error) {
	var h Hello
	if len(body) < helloFixedSize+Overhead {
		return h, invalid("hello of %d bytes is too short", len(body))
	}
	h.Version = body[0]
	copy(h.Client[:], body[1:33])
	copy(h.Ephemeral[:], body[33:65])
	copy(h.Nonce[:], body[65:89])
	h.KEMKey = body[89:helloFixedSize]
	h.Box = body[helloFixedSize:]
	return h, nil
}

// Append appends the encoded Hello body to b.
func (h *Hello) Append(b []byte) []byte {
	b = append(b, h.Version)
	b = append(b, h.Client[:]...)
	b = append(b, h.Ephemeral[:]...)
	b = append(b, h.Nonce[:]...)
	b = append(b, h.KEMKey...)
	return append(b, h.Box...)
}

// NonceBox is the layout of Link and KeyNotFound bodies: a random nonce
// followed by a box.
type NonceBox struct {
	Nonce [NonceSize]byte
	Box   []byte // aliases the body
}

// ParseNonceBox splits a Link or KeyNotFound body.
func ParseNonceBox(body []byte) (NonceBox, error) {
	var nb NonceBox
	if len(body) < NonceSize+Overhead {
		return nb, invalid("body of %d bytes is too short for a nonce and a box", len(body))
	}
	copy(nb.Nonce[:], body[:NonceSize])
	nb.Box = body[NonceSize:]
	return nb, nil
}

// HelloPayload is sealed inside Hello under K(C,S). It repeats the outer
// fields so that they are authenticated (the ML-KEM encapsulation key as
// its SHA-256, K), and names the server key the client pinned.
type HelloPayload struct {
	H string `cbor:"h"`
	V uint64 `cbor:"v"`
	C []byte `cbor:"c"`
	S []byte `cbor:"s"`
	E []byte `cbor:"e"`
	K []byte `cbor:"k"` // SHA-256 of the outer ek
}

// Validate checks the kind, version and key lengths.
func (p *HelloPayload) Validate() error {
	if p.H != PurposeHello {
		return invalid("hello payload has the wrong kind")
	}
	if p.V != Version {
		return invalid("hello payload has version %d", p.V)
	}
	if err := checkLens(KeySize, "c", p.C, "s", p.S, "e", p.E); err != nil {
		return err
	}
	return checkLens(HashSize, "k", p.K)
}

// LinkPayload is sealed inside Link under K(S,Ce): the server's ephemeral
// key and its ML-KEM-768 ciphertext to the Hello's ek, bound to the
// transcript of the Hello it answers.
type LinkPayload struct {
	H  string `cbor:"h"`
	SE []byte `cbor:"se"`
	TH []byte `cbor:"th"`
	CT []byte `cbor:"ct"`
}

// Validate checks the kind and field lengths.
func (p *LinkPayload) Validate() error {
	if p.H != PurposeLink {
		return invalid("link payload has the wrong kind")
	}
	if err := checkLens(KeySize, "se", p.SE, "th", p.TH); err != nil {
		return err
	}
	return checkLens(KEMCiphertextSize, "ct", p.CT)
}

// KeyNotFoundPayload is sealed inside KeyNotFound under K(S,C).
type KeyNotFoundPayload struct {
	H  string `cbor:"h"`
	TH []byte `cbor:"th"`
}

// Validate checks the kind and the transcript hash length.
func (p *KeyNotFoundPayload) Validate() error {
	if p.H != PurposeKeyNotFound {
		return invalid("keynotfound payload has the wrong kind")
	}
	return checkLens(HashSize, "th", p.TH)
}

// GetPayload is sealed inside Get under k_cs with counter nonce 0. Names,
// when present, select values of the shard; absent means all.
type GetPayload struct {
	H     string   `cbor:"h"`
	TH    []byte   `cbor:"th"`
	Names []string `cbor:"names,omitempty"`
}

// Validate checks the kind, the transcript hash and the names.
func (p *GetPayload) Validate() error {
	if p.H != PurposeGet {
		return invalid("get payload has the wrong kind")
	}
	if err := checkLens(HashSize, "th", p.TH); err != nil {
		return err
	}
	if len(p.Names) > MaxGetNames {
		return invalid("get asks for %d names, limit %d", len(p.Names), MaxGetNames)
	}
	for _, n := range p.Names {
		if err := ValidName(n); err != nil {
			return err
		}
	}
	return nil
}

// ValidName checks a secret name: 1..MaxNameBytes bytes of ASCII letters,
// digits, '_', '-' and '.', not starting or ending with '.'.
func ValidName(n string) error {
	if len(n) == 0 || len(n) > MaxNameBytes {
		return invalid("name of %d bytes (want 1..%d)", len(n), MaxNameBytes)
	}
	if n[0] == '.' || n[len(n)-1] == '.' {
		return invalid("name %q starts or ends with '.'", n)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == '.'
		if !ok {
			return invalid("name %q has a character outside [A-Za-z0-9_.-]", n)
		}
	}
	return nil
}

// OkGetPayload is one chunk of a shard, sealed under k_sc with counter
// nonce I. Serial, DH, Def and Size are the same in every chunk; SH, the
// hash of the whole shard, is present in the last chunk only. Def names
// the definition the shard comes from when the server loads several
// (docs/protocol.md §4.4); it is absent for the definition named
// "default", so a server with one definition sends what it always sent.
type OkGetPayload struct {
	H      string `cbor:"h"`
	I      uint64 `cbor:"i"`
	Last   bool   `cbor:"last"`
	Serial uint64 `cbor:"serial"`
	DH     []byte `cbor:"dh"`
	Def    string `cbor:"def,omitempty"`
	Size   uint64 `cbor:"size"`
	SH     []byte `cbor:"sh,omitempty"`
	D      []byte `cbor:"d"`
}

// DefaultDefinition is the name of the definition an OkGet without def
// comes from.
const DefaultDefinition = "default"

// maxDefinitionNameBytes bounds a definition name.
const maxDefinitionNameBytes = 64

// ValidDefinitionName reports whether name is a definition name: 1 to 64
// of a-z, 0-9, '_' and '-', starting with a letter or digit (the rule
// of the server config's [[definitions]] names).
func ValidDefinitionName(name string) bool {
	if len(name) == 0 || len(name) > maxDefinitionNameBytes {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Validate checks the kind, lengths and bounds of one chunk.
func (p *OkGetPayload) Validate() error {
	if p.H != PurposeOkGet {
		return invalid("okget payload has the wrong kind")
	}
	if p.Serial == 0 {
		return invalid("okget serial is 0")
	}
	if p.Size > MaxShardBytes {
		return invalid("okget shard size %d exceeds limit %d", p.Size, MaxShardBytes)
	}
	if len(p.D) > MaxChunkBytes {
		return invalid("okget chunk of %d bytes exceeds limit %d", len(p.D), MaxChunkBytes)
	}
	if err := checkLens(HashSize, "dh", p.DH); err != nil {
		return err
	}
	if p.Def != "" && (p.Def == DefaultDefinition || !ValidDefinitionName(p.Def)) {
		return invalid("okget def is not a definition name other than %q", DefaultDefinition)
	}
	if p.Last {
		return checkLens(HashSize, "sh", p.SH)
	}
	if p.SH != nil {
		return invalid("okget sh present before the last chunk")
	}
	return nil
}

// ByePayload is sealed inside Bye under k_cs with counter nonce 1.
type ByePayload struct {
	H string `cbor:"h"`
}

// Validate checks the kind.
func (p *ByePayload) Validate() error {
	if p.H != PurposeBye {
		return invalid("bye payload has the wrong kind")
	}
	return nil
}

// ErrorCode is the numeric reason in an Error frame. Peers print fixed
// text for each code, never text from the wire.
type ErrorCode uint64

// Error codes (docs/protocol.md §6).
const (
	CodeMalformed   ErrorCode = 1 // a frame or body failed to parse
	CodeVersion     ErrorCode = 2 // the Hello version is not 2 (Version)
	CodeAuth        ErrorCode = 3 // a box failed to open or a binding check failed
	CodeBusy        ErrorCode = 4 // rate limited; retry with backoff
	CodeUnavailable ErrorCode = 5 // the server has no definition loaded
	CodeInternal    ErrorCode = 6 // the server failed to read its store
)

// String returns the fixed text for a code.
func (c ErrorCode) String() string {
	switch c {
	case CodeMalformed:
		return "malformed message"
	case CodeVersion:
		return "unsupported protocol version"
	case CodeAuth:
		return "authentication failed"
	case CodeBusy:
		return "server busy"
	case CodeUnavailable:
		return "server has no definition loaded"
	case CodeInternal:
		return "server internal error"
	}
	return fmt.Sprintf("unknown error code %d", uint64(c))
}

// ErrorBody is the body of an Error sent before the session keys exist:
// plain CBOR, and so unauthenticated.
type ErrorBody struct {
	Code ErrorCode `cbor:"code"`
}

// Validate checks that a code is present.
func (p *ErrorBody) Validate() error {
	if p.Code == 0 {
		return invalid("error without a code")
	}
	return nil
}

// ErrorPayload is the plaintext of an Error sealed under k_sc after Get.
type ErrorPayload struct {
	H    string    `cbor:"h"`
	Code ErrorCode `cbor:"code"`
}

// Validate checks the kind and that a code is present.
func (p *ErrorPayload) Validate() error {
	if p.H != PurposeError {
		return invalid("error payload has the wrong kind")
	}
	if p.Code == 0 {
		return invalid("error without a code")
	}
	return nil
}

// checkLens checks that each named byte string has exactly n bytes. The
// CBOR library would silently pad or truncate into an array, so bodies
// decode into slices and the length is checked here.
func checkLens(n int, pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		name, _ := pairs[i].(string)
		b, _ := pairs[i+1].([]byte)
		if len(b) != n {
			return invalid("field %s has %d bytes, want %d", name, len(b), n)
		}
	}
	return nil
}
