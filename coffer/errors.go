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
	// ErrServerAuth: the peer answered with a Link that does not open, so
	// it could not prove it holds the pinned server key (a wrong pinned
	// key or a man in the middle). A plain Error{auth} in reply to Hello
	// is not this error but an unsealed *RemoteError: it proves nothing.
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

// Is makes errors.Is(err, ErrAuth) true for a sealed Error{auth}.
func (e *RemoteError) Is(target error) bool {
	return target == ErrAuth && e.Code == frame.CodeAuth && e.Sealed
}

// Retryable reports whether err may go away if the client tries again
// later or another server, with backoff (docs/protocol.md §6):
// Error{busy}, {unavailable} and {internal}, every unsealed Error
// (whatever its code: anyone on the path can forge one), unverifiable
// replies, and transport errors. Sealed errors that point at
// configuration (a refused proof, a version mismatch, malformed
// requests), an unknown client, a Link that does not open
// (ErrServerAuth), protocol violations and rollback are not retryable.
// A caller that gets an unsealed Error{auth} or {version} from every
// server should stop rather than retry for ever: that is what a wrong
// pinned key or a version mismatch looks like (coffer-client stops
// after one such round).
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
		if !re.Sealed {
			return true
		}
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
