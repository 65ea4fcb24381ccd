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
	// ErrServerAuth: the peer could not prove it holds the pinned server
	// key (a wrong pinned key or a man in the middle).
	ErrServerAuth = errors.New("coffer: server authentication failed (wrong pinned server key or a man in the middle)")
	// ErrAuth: the server refused our proof (Error{auth}). Matched by a
	// *RemoteError with code auth.
	ErrAuth = errors.New("coffer: the server refused our authentication")
	// ErrRollback: the server sent a definition older than the client's
	// minimum serial; nothing of it was decoded.
	ErrRollback = errors.New("coffer: the server's definition is older than the minimum serial")
)

// ErrProtocol wraps every other malformed, reordered, dropped or
// duplicated reply from a server that has authenticated itself.
var ErrProtocol = errors.New("coffer: protocol violation by the server")

// errUnverified is an unauthenticated reply that could be forged by
// anyone on the path, such as a KeyNotFound that does not open.
var errUnverified = errors.New("coffer: unverifiable reply from the server")

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

// Is makes errors.Is(err, ErrAuth) true for an Error{auth}.
func (e *RemoteError) Is(target error) bool {
	return target == ErrAuth && e.Code == frame.CodeAuth
}

// Retryable reports whether err may go away if the client tries again
// later, with backoff (docs/protocol.md §6): Error{busy}, {unavailable}
// and {internal}, unverifiable replies, and transport errors. Errors that
// point at configuration or an attack (unknown client, server
// authentication, a refused proof, a version mismatch, malformed
// requests), protocol violations and rollback are not retryable.
func Retryable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrUnknownClient), errors.Is(err, ErrServerAuth),
		errors.Is(err, ErrRollback), errors.Is(err, ErrProtocol), errors.Is(err, context.Canceled):
		return false
	}
	var re *RemoteError
	if errors.As(err, &re) {
		switch re.Code {
		case frame.CodeBusy, frame.CodeUnavailable, frame.CodeInternal:
			return true
		}
		return false
	}
	if errors.Is(err, errUnverified) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
