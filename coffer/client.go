package coffer

import (
	"bytes"
	"context"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// ClientConfig is what a client needs for one Fetch.
type ClientConfig struct {
	Key    *PrivateKey // the client's static key; required
	Server PublicKey   // the pinned server key
	// Names selects values of the shard; empty means all of them.
	Names []string
	// MinSerial refuses a definition with a lower serial (ErrRollback):
	// the larger of --min-serial and the serial remembered for Server.
	MinSerial uint64
	// MinSerialFor, when set, raises MinSerial for the definition the
	// answer names (Result.Definition): a server that loads several
	// definitions numbers each on its own, so a client remembers a serial
	// per definition. It is called once, at the first OkGet.
	MinSerialFor func(definition string) uint64
	// Rand is the randomness; nil means crypto/rand. Fetch reads Ce
	// (32 bytes), then the seed of its ML-KEM-768 key (64 bytes, d || z
	// of FIPS 203), then n1 (24 bytes), and nothing else.
	Rand io.Reader
}

// ErrGetTooLarge: the names asked for would make a Get larger than one
// Get frame may be. It is known before connecting; see CheckNames.
var ErrGetTooLarge = errors.New("coffer: the names asked for do not fit in one Get")

// CheckNames reports whether a Get asking for names can be sent
// (docs/protocol.md §4.3, §7): at most frame.MaxGetNames names, each
// valid, and a Get body of at most the Get frame limit (4,096 bytes). The
// body is the deterministic CBOR encoding of {h: "get", th: 32 bytes,
// names} plus the 16-byte tag, so its size depends on the names alone and
// is known before connecting: 66 bytes, plus 2 for the array header (3
// from 256 names; 1 below 24), plus for each name its length and 1 (2
// from 24 bytes). Fetch checks it before it writes anything; a program
// should check it where it reads the names. Errors wrap ErrGetTooLarge
// or frame.ErrInvalid, and name no name but a bad one, quoted.
func CheckNames(names []string) error {
	if len(names) == 0 {
		return nil // the whole shard: a fixed 60-byte Get
	}
	p := frame.GetPayload{H: frame.PurposeGet, TH: make([]byte, frame.HashSize), Names: names}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("coffer: names: %w", err)
	}
	pt, err := frame.Marshal(&p)
	if err != nil {
		return fmt.Errorf("coffer: encoding get: %w", err)
	}
	limit, _ := frame.TypeGet.Limit()
	if n := len(pt) + frame.Overhead; n > limit {
		return fmt.Errorf("%w: %d names make a Get of %d bytes, limit %d (ask for fewer, or for all)", ErrGetTooLarge, len(names), n, limit)
	}
	return nil
}

// Result is a fetched shard and the definition it came from.
type Result struct {
	Shard   frame.Shard
	Version Version
	// Definition names the definition the shard comes from:
	// frame.DefaultDefinition unless the server loads several and the
	// client's key is in a named one (docs/protocol.md §4.4).
	Definition string
}

// Fetch runs one coffer/2 session on conn and returns the client's shard
// (docs/protocol.md §4). It does not close conn. A shard is returned only
// when every chunk opened in order, the whole shard's hash matched and
// its serial is at least cfg.MinSerial; nothing partial is ever
// returned. The deadline and cancellation of ctx apply to conn. See
// Retryable for which errors are worth retrying.
func Fetch(ctx context.Context, conn net.Conn, cfg *ClientConfig) (*Result, error) {
	if cfg.Key == nil {
		return nil, errors.New("coffer: client key not set")
	}
	if err := CheckNames(cfg.Names); err != nil {
		return nil, err
	}
	server := cfg.Server
	if err := CheckPublicKey(&server); err != nil {
		return nil, fmt.Errorf("pinned server key: %w", err)
	}
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	ss, err := cfg.Key.boxKey(&server)
	if err != nil {
		return nil, fmt.Errorf("pinned server key: %w", err)
	}
	cl := &clientSession{cfg: cfg, c: conn, server: server, ss: ss}
	defer cl.clear()
	res, err := cl.run()
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("coffer: fetch: %w", context.Cause(ctx))
	}
	// The connection's deadline is ctx's, and its timer can fire before
	// ctx's own: report that as the context's deadline too.
	if err != nil && hasDeadline && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline) {
		return nil, fmt.Errorf("coffer: fetch: %w", context.DeadlineExceeded)
	}
	return res, err
}

// clientSession is the client's state for one session, written straight
// down like the server's. K(C,S) is computed by the caller, so a
// benchmark can precompute it.
type clientSession struct {
	cfg    *ClientConfig
	c      net.Conn
	server PublicKey
	ss     *[32]byte     // K(C,S)
	e      *ephemeralKey // Ce
	es     *[32]byte     // K(Ce,S)
	dk     *mlkem.DecapsulationKey768
	th     hash
	cs, sc *cipherState
	pt     []byte // plaintext buffer, cleared at the end
}

func (cl *clientSession) clear() {
	for _, k := range []*[32]byte{cl.ss, cl.es} {
		if k != nil {
			clear(k[:])
		}
	}
	cl.e.clear()
	cl.e = nil
	cl.dk = nil // crypto/mlkem offers no way to clear it
	cl.cs.clear()
	cl.sc.clear()
	clear(cl.pt[:cap(cl.pt)])
}

func (cl *clientSession) run() (*Result, error) {
	if err := cl.sealHello(); err != nil {
		return nil, err
	}
	f, err := frame.Read(cl.c, frame.TypeLink, frame.TypeKeyNotFound, frame.TypeError)
	if err != nil {
		return nil, readError("reading link", err)
	}
	switch f.Type {
	case frame.TypeKeyNotFound:
		return nil, cl.openKeyNotFound(f)
	case frame.TypeError:
		// Plain, so it proves nothing: a server without the pinned key
		// answers Error{auth}, but so can anyone on the path. It stays an
		// unsealed *RemoteError (ErrUnverified), not ErrServerAuth, so a
		// caller tries another server (docs/protocol.md §4.7).
		return nil, helloRefused(plainRemoteError(f))
	}
	if err := cl.openLink(f); err != nil {
		return nil, err
	}
	if err := cl.sealGet(); err != nil {
		return nil, err
	}
	res, err := cl.readShard()
	if err != nil {
		return nil, err
	}
	cl.sealBye()
	return res, nil
}

// sealHello sends Hello. Randomness: Ce (32 bytes), the ML-KEM-768
// seed (64 bytes), then n1 (24 bytes).
func (cl *clientSession) sealHello() error {
	r := cl.cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	var err error
	// A client makes one ephemeral key per process: the ladder is cheaper
	// than building the fixed-base tables (newLadderEphemeralKey).
	if cl.e, err = newLadderEphemeralKey(r); err != nil {
		return err
	}
	if cl.dk, err = newKEMKey(r); err != nil {
		return err
	}
	n, err := readNonce(r)
	if err != nil {
		return fmt.Errorf("coffer: reading randomness: %w", err)
	}
	c, e := cl.cfg.Key.Public(), cl.e.Public()
	ek := cl.dk.EncapsulationKey().Bytes()
	k := kemKeyHash(ek)
	p := frame.HelloPayload{H: frame.PurposeHello, V: frame.Version, C: c[:], S: cl.server[:], E: e[:], K: k[:]}
	h := frame.Hello{Version: frame.Version, Client: c, Ephemeral: e, Nonce: n, KEMKey: ek}
	var outer [1 + 2*frame.KeySize + frame.NonceSize + frame.KEMKeySize]byte // Hello's outer fields
	b, err := appendSealed(make([]byte, 0, maxHandshakeFrame), frame.TypeHello, h.Append(outer[:0]), &p, &n, cl.ss)
	if err != nil {
		return fmt.Errorf("coffer: hello: %w", err)
	}
	if _, err := cl.c.Write(b); err != nil {
		return fmt.Errorf("writing hello: %w", err)
	}
	th0 := transcriptStart(&cl.server)
	cl.th = mixFrame(&th0, b)
	// K(Ce,S) only opens Link: computed while the server works on Hello.
	if cl.es, err = cl.e.boxKey(&cl.server); err != nil {
		return fmt.Errorf("pinned server key: %w", err)
	}
	return nil
}

// errKeyNotFoundUnverified: a KeyNotFound that does not open, or opens
// but names another session's th1 (a recorded one, replayed).
var errKeyNotFoundUnverified = unverified(errors.New("coffer: a keynotfound that does not open or is not for this session"))

// errLinkUnverified: a Link that is too short, does not open, or opens
// but names another session's th1.
var errLinkUnverified = unverified(ErrServerAuth)

// openKeyNotFound turns a KeyNotFound that proves itself for this
// session into ErrUnknownClient, which is final; any other is an
// unverified reply (docs/protocol.md §4.6).
func (cl *clientSession) openKeyNotFound(f frame.Frame) error {
	var p frame.KeyNotFoundPayload
	if cl.openSealed(f, cl.ss, &p) != nil || !equalHash(p.TH, &cl.th) {
		return errKeyNotFoundUnverified
	}
	return ErrUnknownClient
}

// openLink checks Link (the server's proof of S, bound to Ce and th1) and
// derives the session keys: two ladders and one ML-KEM decapsulation. A
// Link that does not open for this session proves nothing
// (ErrUnverified); one that does but whose Se is unusable is the key
// holder's word, a final ErrServerAuth (docs/protocol.md §4.2).
func (cl *clientSession) openLink(f frame.Frame) error {
	var p frame.LinkPayload
	if cl.openSealed(f, cl.es, &p) != nil || !equalHash(p.TH, &cl.th) {
		return errLinkUnverified
	}
	sePub := PublicKey(p.SE)
	if CheckPublicKey(&sePub) != nil {
		return ErrServerAuth
	}
	ee, err := cl.e.boxKey(&sePub)
	if err != nil {
		return ErrServerAuth
	}
	defer clear(ee[:])
	se, err := cl.cfg.Key.boxKey(&sePub)
	if err != nil {
		return ErrServerAuth
	}
	defer clear(se[:])
	// ct was checked for its length by Validate, the one way
	// decapsulation fails (FIPS 203 decapsulation has implicit rejection).
	kem, err := sessionDecapsulate(cl.dk, p.CT)
	if err != nil {
		return ErrServerAuth
	}
	defer clear(kem[:])
	cl.e.clear()
	cl.e = nil
	cl.dk = nil
	cl.th = mixFrame(&cl.th, f.Raw)
	if cl.cs, cl.sc, err = sessionKeys(&cl.th, kem, cl.es, cl.ss, ee, se); err != nil {
		return fmt.Errorf("coffer: deriving session keys: %w", err)
	}
	return nil
}

// sealGet sends Get under k_cs, counter 0. Fetch has checked the names
// with CheckNames.
func (cl *clientSession) sealGet() error {
	p := frame.GetPayload{H: frame.PurposeGet, TH: cl.th[:], Names: cl.cfg.Names}
	if err := cl.writeSealed(frame.TypeGet, &p); err != nil {
		return fmt.Errorf("writing get: %w", err)
	}
	return nil
}

// writeSealed sends v as one frame of type t under k_cs and its next
// counter: Get, then Bye (docs/protocol.md §3). The plaintext is cleared.
func (cl *clientSession) writeSealed(t frame.Type, v any) error {
	n, err := cl.cs.next()
	if err != nil {
		return err
	}
	b, err := appendSealed(nil, t, nil, v, &n, &cl.cs.key)
	if err != nil {
		return err
	}
	_, err = cl.c.Write(b)
	return err
}

// openSealed opens the box in f into v and validates it. With a key, the
// body is a nonce and the box under key and that nonce (Link,
// KeyNotFound); with a nil key, the box under k_sc and its next counter
// (an OkGet chunk, a sealed Error). A box that does not open gives
// errOpen; a payload that does not decode or validate, the decoder's or
// Validate's error. The plaintext is cleared before it returns.
func (cl *clientSession) openSealed(f frame.Frame, key *[32]byte, v interface{ Validate() error }) error {
	var (
		pt  []byte
		err error
	)
	if key != nil {
		var nb frame.NonceBox
		if nb, err = frame.ParseNonceBox(f.Body()); err != nil {
			return err
		}
		n := nonce(nb.Nonce)
		pt, err = open(cl.pt[:0], nb.Box, &n, key)
	} else {
		pt, err = cl.sc.open(cl.pt[:0], f.Body())
	}
	if err != nil {
		return errOpen
	}
	cl.pt = pt
	defer clear(pt)
	if err := frame.Unmarshal(pt, v); err != nil {
		return err
	}
	return v.Validate()
}

// readShard reads OkGet chunks until the last one (docs/protocol.md §4.4).
// Each must open under k_sc with the next counter and carry that number,
// the same serial, definition hash and size; the total may not pass the
// declared size; the last carries the hash of the whole. The serial is
// checked against MinSerial at the first chunk, before anything is
// buffered, and the shard is decoded only once it is complete.
func (cl *clientSession) readShard() (*Result, error) {
	var (
		first frame.OkGetPayload
		buf   []byte
	)
	defer func() { clear(buf[:cap(buf)]) }()
	for i := uint64(0); i < frame.MaxChunks; i++ {
		f, err := frame.Read(cl.c, frame.TypeOkGet, frame.TypeError)
		if err != nil {
			return nil, readError(fmt.Sprintf("reading okget %d", i), err)
		}
		if f.Type == frame.TypeError {
			return nil, cl.openError(f)
		}
		var p frame.OkGetPayload
		if err := cl.openSealed(f, nil, &p); errors.Is(err, errOpen) {
			return nil, unverified(fmt.Errorf("%w: okget %d did not open (reordered, dropped, duplicated or altered)", ErrProtocol, i))
		} else if err != nil {
			return nil, fmt.Errorf("%w: okget %d: %w", ErrProtocol, i, err)
		}
		if p.I != i {
			return nil, fmt.Errorf("%w: okget numbered %d, want %d", ErrProtocol, p.I, i)
		}
		if i == 0 {
			floor := cl.cfg.MinSerial
			if cl.cfg.MinSerialFor != nil {
				def := p.Def
				if def == "" {
					def = frame.DefaultDefinition
				}
				floor = max(floor, cl.cfg.MinSerialFor(def))
			}
			if p.Serial < floor {
				return nil, fmt.Errorf("%w: serial %d, minimum %d", ErrRollback, p.Serial, floor)
			}
			first = p
			buf = make([]byte, 0, p.Size)
		} else if p.Serial != first.Serial || p.Size != first.Size || !bytes.Equal(p.DH, first.DH) || p.Def != first.Def {
			return nil, fmt.Errorf("%w: okget %d changes serial, definition or size", ErrProtocol, i)
		}
		if uint64(len(buf))+uint64(len(p.D)) > first.Size {
			return nil, fmt.Errorf("%w: okget chunks exceed the declared size %d", ErrProtocol, first.Size)
		}
		buf = append(buf, p.D...)
		clear(p.D)
		if p.Last {
			return finishShard(buf, &p)
		}
	}
	return nil, fmt.Errorf("%w: more than %d okget chunks", ErrProtocol, frame.MaxChunks)
}

// finishShard checks the complete shard against the last chunk's size
// and hash and decodes it.
func finishShard(buf []byte, last *frame.OkGetPayload) (*Result, error) {
	if uint64(len(buf)) != last.Size {
		return nil, fmt.Errorf("%w: shard of %d bytes, declared %d", ErrProtocol, len(buf), last.Size)
	}
	sum := sha256.Sum256(buf)
	if !equalHash(last.SH, (*hash)(&sum)) {
		return nil, fmt.Errorf("%w: shard hash mismatch", ErrProtocol)
	}
	shard, err := frame.DecodeShard(buf)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	res := &Result{Shard: shard, Version: Version{Serial: last.Serial}, Definition: last.Def}
	if res.Definition == "" {
		res.Definition = frame.DefaultDefinition
	}
	copy(res.Version.Hash[:], last.DH)
	return res, nil
}

// openError reads an Error after Get: sealed under k_sc when the server
// opened our Get, plain when it did not.
func (cl *clientSession) openError(f frame.Frame) error {
	var p frame.ErrorPayload
	switch err := cl.openSealed(f, nil, &p); {
	case errors.Is(err, errOpen):
		return plainRemoteError(f)
	case err != nil:
		return fmt.Errorf("%w: malformed sealed error", ErrProtocol)
	}
	return &RemoteError{Code: p.Code, Sealed: true}
}

// helloRefused adds a hint to a plain Error that refused our Hello for
// its version or form: a well-formed coffer/2 Hello gets Error{version}
// from a server of another version, and Error{malformed} from a coffer/1
// server, whose Hello limit of 256 bytes it passes (docs/protocol.md
// §4.8). The error stays the unsealed *RemoteError it was.
func helloRefused(err error) error {
	var re *RemoteError
	if !errors.As(err, &re) {
		return err
	}
	switch re.Code {
	case frame.CodeVersion:
		return fmt.Errorf("%w (the server does not speak coffer/2: upgrade the server)", err)
	case frame.CodeMalformed:
		return fmt.Errorf("%w (the server could not read a coffer/2 hello: if it runs coffer/1, upgrade the server)", err)
	}
	return err
}

// errErrorUnverified: an Error body that decodes neither sealed nor plain.
var errErrorUnverified = unverified(errors.New("coffer: an error reply that decodes neither sealed nor plain"))

// plainRemoteError decodes an unsealed Error body.
func plainRemoteError(f frame.Frame) error {
	var p frame.ErrorBody
	if frame.Unmarshal(f.Body(), &p) != nil || p.Validate() != nil {
		return errErrorUnverified
	}
	return &RemoteError{Code: p.Code}
}

// readError wraps an error of frame.Read. A frame of an unknown or
// unexpected type, or too long for its type, is a protocol violation
// that nothing authenticated (ErrUnverified); a short read is a
// transport error, retryable as such.
func readError(what string, err error) error {
	if errors.Is(err, frame.ErrUnknownType) || errors.Is(err, frame.ErrUnexpected) || errors.Is(err, frame.ErrTooLong) {
		return unverified(fmt.Errorf("%w: %s: %w", ErrProtocol, what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// sealBye sends Bye under k_cs, counter 1. The server closes either way,
// so a failure here is ignored.
func (cl *clientSession) sealBye() {
	cl.writeSealed(frame.TypeBye, &frame.ByePayload{H: frame.PurposeBye})
}
