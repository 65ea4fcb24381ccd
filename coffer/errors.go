package coffer

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/coffer-project/coffer/frame"
)

// Errors a client acts on. None of them carries key bytes or values.
var (
	// ErrUnknownClient: the server proved it holds the pinned key and
	// that it has no shard for our key (a sealed KeyNotFound).
	ErrUnknownClient = errors.New("coffer: the server does not know this client key")
	// ErrServerAuth: the peer answered with a Link that failed its checks
	// (docs/protocol.md §4.2). A Link that is too short, does not open or
	// names another session's th1 proves nothing, so its error matches
	// ErrUnverified too and is not final; only a Link that opened for
	// this session but carries an unusable Se (the key holder's own
	// word) is final. A plain Error{auth} in reply to Hello is not this
	// error but an unsealed *RemoteError.
	ErrServerAuth = errors.New("coffer: server authentication failed (wrong pinned server key or a man in the middle)")
	// ErrAuth: the server refused our proof in a sealed Error{auth}.
	// Matched by a sealed *RemoteError with code auth only; an unsealed
	// one can be forged by anyone on the path.
	ErrAuth = errors.New("coffer: the server refused our authentication")
	// ErrRollback: the server sent a definition older than the client's
	// minimum serial; nothing of it was decoded.
	ErrRollback = errors.New("coffer: the server's definition is older than the minimum serial")
)

// ErrProtocol wraps every other malformed, reordered, dropped or
// duplicated reply. When the reply did not authenticate (a chunk that
// does not open under its counter, a frame of the wrong type or length)
// the error matches ErrUnverified too; otherwise the server itself sent
// it and it is final.
var ErrProtocol = errors.New("coffer: protocol violation by the server")

// ErrUnverified is matched by the error of every session that ended on
// an answer that did not authenticate (docs/protocol.md §4.7): a plain
// Error of any code, a Link or KeyNotFound that does not open or does
// not belong to this session, an Error body that decodes neither sealed
// nor plain, a frame of the wrong type or length, an OkGet that does not
// open under its counter. Anyone on the path can send such an answer, so
// it is never final: a caller tries the next server, retries, and may
// fall back to its cache. Transport errors (EOF, resets, timeouts) do
// not match it; they are retryable anyway.
var ErrUnverified = errors.New("coffer: unauthenticated reply")

// unverifiedError marks err as the end of a session on an answer that
// did not authenticate: it matches err and ErrUnverified, with err's
// text.
type unverifiedError struct{ err error }

func (e *unverifiedError) Error() string   { return e.err.Error() }
func (e *unverifiedError) Unwrap() []error { return []error{e.err, ErrUnverified} }

func unverified(err error) error { return &unverifiedError{err} }

// RemoteError is an Error frame from the server. The message is fixed
// text per code; nothing the peer sends is ever printed.
type RemoteError struct {
	Code frame.ErrorCode
	// Sealed reports whether the Error came sealed under the session
	// key, so it is known to come from the server. An unsealed Error can
	// be forged by anyone on the path.
	Sealed bool
}

func (e *RemoteError) Error() string {
	if e.Sealed {
		return "coffer: server error: " + e.Code.String()
	}
	return "coffer: server error (unauthenticated): " + e.Code.String()
}

// Is makes errors.Is(err, ErrAuth) true for a sealed Error{auth}, and
// errors.Is(err, ErrUnverified) true for every unsealed Error.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case ErrAuth:
		return e.Code == frame.CodeAuth && e.Sealed
	case ErrUnverified:
		return !e.Sealed
	}
	return false
}

// Retryable reports whether err may go away if the client tries again
// later or another server, with backoff (docs/protocol.md §4.7, §6):
// every answer that did not authenticate (ErrUnverified: whatever it
// claims, anyone on the path can send it), Error{busy}, {unavailable}
// and {internal}, and transport errors. Only authenticated answers are
// final: sealed errors that point at configuration (a refused proof, a
// version mismatch, malformed requests), an unknown client (a sealed
// KeyNotFound of this session), a Link that opened for this session
// with an unusable Se, protocol violations inside opened boxes and
// rollback are not retryable. A caller that only ever gets unverified
// answers should say so when it gives up: from every server, an
// unsealed Error{auth} or a Link that does not open is what a wrong
// pinned key looks like.
func Retryable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrUnverified):
		return true
	case errors.Is(err, ErrUnknownClient), errors.Is(err, ErrServerAuth),
		errors.Is(err, ErrRollback), errors.Is(err, ErrProtocol), errors.Is(err, context.Canceled):
		return false
	}
	var re *RemoteError
	if errors.As(err, &re) {
		if !re.Sealed {
			return true
		}
		switch re.Code {
		case frame.CodeBusy, frame.CodeUnavailable, frame.CodeInternal:
			return true
		}
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
