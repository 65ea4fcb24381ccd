package coffer

import (
	"time"

	"github.com/coffer-project/coffer/frame"
)

// Rate-limit buckets named in SessionEnd.Limit, spelt as the server
// config's [limits] keys (docs/server.md, "Limits").
const (
	LimitHandshakesPerAddress     = "max_handshakes_per_address"
	LimitFailedAuthPerAddress     = "failed_auth_per_address"
	LimitUnknownClients           = "unknown_clients"
	LimitUnknownClientsPerAddress = "unknown_clients_per_address"
	LimitPerClient                = "per_client"
)

// SessionEnd describes one connection's end for metrics. It holds no key,
// name or address, so a fleet of clients makes no more series than one.
type SessionEnd struct {
	Duration time.Duration // from accept to close
	Outcome  string        // as AuditEvent.Outcome; OutcomeError for a connection closed before its Hello
	Limit    string        // the bucket that refused the session (Limit*), or ""
}

// limited is the failure of a session a rate limit refused: Error{busy},
// with the bucket recorded for SessionEnd.
func limited(bucket, reason string) *failure {
	f := fail(frame.CodeBusy, OutcomeError, reason)
	f.limit = bucket
	return f
}

// bucket returns the rate-limit bucket that refused the session, or ""
// (also for a nil f).
func (f *failure) bucket() string {
	if f == nil {
		return ""
	}
	return f.limit
}

// HandshakesInFlight returns the sessions between accept and an opened
// Get (or their end), over all source addresses.
func (s *Server) HandshakesInFlight() int {
	s.init()
	return int(s.handshakes.total.Load())
}

// observe reports the end of ss to s.Observe, if set.
func (s *Server) observe(ss *session, outcome string, fl *failure) {
	if s.Observe == nil {
		return
	}
	e := SessionEnd{Duration: time.Since(ss.start), Outcome: outcome}
	if fl != nil {
		e.Limit = fl.limit
	}
	s.Observe(e)
}
