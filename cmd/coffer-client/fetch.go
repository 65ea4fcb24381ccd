package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// Backoff between rounds over the servers: exponential with full jitter
// (a uniform delay in [0, min(backoffMax, backoffBase*2^round)]), so
// thousands of machines booting at once do not retry in step.
const (
	backoffBase = 250 * time.Millisecond
	backoffMax  = 10 * time.Second
)

// fetcher fetches the shard from the first server that serves it.
type fetcher struct {
	servers []string // host:port
	cfg     coffer.ClientConfig
	timeout time.Duration // per attempt
	wait    time.Duration // total deadline for retrying; 0 is one round
	log     io.Writer     // one line per retry
}

// fetchResult is a fetched shard and the server it came from.
type fetchResult struct {
	*coffer.Result
	addr string
}

// noAnswer ends a fetch in which no server gave an authenticated final
// answer before the deadline: every server was unreachable, busy, or sent
// answers that did not authenticate. It is the only failure after which
// the cache may be used (docs/client.md, "Robustness").
type noAnswer struct{ msg string }

func (e *noAnswer) Error() string { return e.msg }

// fetch tries the servers in a shuffled order, round after round with
// backoff, until one serves the shard or the deadline passes. Only an
// authenticated answer is final (docs/protocol.md §4.7): a sealed
// refusal, an unknown client (a sealed KeyNotFound of this session), a
// protocol violation inside an opened box. Everything else moves on to
// the next server and, with --wait, to another round: connection errors,
// timeouts, retryable server errors, stale servers (a replica that has
// not caught up may in a moment) and every answer that did not
// authenticate, whatever it claims, since anyone on the path can send
// it. The error is an *exitError; when no server gave a final answer it
// wraps a *noAnswer whose status verdict chose.
func (f *fetcher) fetch(ctx context.Context) (*fetchResult, error) {
	deadline := time.Now().Add(f.wait)
	order := append([]string(nil), f.servers...)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	last := make([]outcome, len(order)) // each server's last outcome; next until tried
	var fails []string                  // the last round's failures, for the final error
	var stale error
	for round := 0; ; round++ {
		var now []string
		for i, addr := range order {
			if f.wait > 0 && !time.Now().Before(deadline) {
				break
			}
			res, err := f.once(ctx, addr, deadline)
			if err == nil {
				return &fetchResult{res, addr}, nil
			}
			o := classify(err)
			// An attempt cut off by the --wait deadline says nothing new
			// about its server: keep what it answered before, so that the
			// status does not depend on where the deadline fell.
			if !cutByDeadline(err, f.wait, deadline) {
				last[i] = o
			}
			switch o {
			case stopAuth:
				return nil, authError(addr, err, f.cfg.Key.Public())
			case stopFailure:
				return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s: %w", addr, err)}
			case nextStale:
				stale = fmt.Errorf("%s: %w", addr, err)
			}
			now = append(now, attemptText(addr, err))
		}
		if len(now) > 0 {
			fails = now
		}
		remaining := time.Until(deadline)
		if remaining <= 0 || ctx.Err() != nil {
			return nil, f.giveUp(stale, verdict(last), fails)
		}
		d := min(rand.N(min(backoffMax, backoffBase<<min(round, 20))+1), remaining)
		fmt.Fprintf(f.log, "coffer-client: retry %d in %s (%s left): %s\n",
			round+1, d.Round(time.Millisecond), remaining.Round(time.Millisecond), strings.Join(fails, "; "))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// cutByDeadline reports whether an attempt failed because the --wait
// deadline ended it. A dial cut off by its context's deadline fails with
// context.DeadlineExceeded or, when the socket's own deadline fires
// first, with os.ErrDeadlineExceeded ("i/o timeout"): which one is a
// race inside the net package, and the second made the exit status
// depend on it (TestUnverifiedAnswers failed once with status 3 instead
// of 1 on a loaded machine).
func cutByDeadline(err error, wait time.Duration, deadline time.Time) bool {
	return wait > 0 && !time.Now().Before(deadline) &&
		(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded))
}

// outcome is what fetch does after one server failed, as decided by
// classify.
type outcome int

const (
	// next: try the next server (a connection error, a timeout, Error
	// busy, unavailable or internal, sealed or not).
	next outcome = iota
	// nextUnverifiedAuth: an answer that did not authenticate and says
	// the server does not hold the pinned key or refused our proof: a
	// plain Error{auth}, or a Link that does not open or is not for this
	// session. It proves nothing: try the next server.
	nextUnverifiedAuth
	// nextUnverified: any other answer that did not authenticate (a
	// plain Error{version} or {malformed}, an Error body that decodes
	// neither sealed nor plain, a KeyNotFound that does not open or is
	// replayed, a frame of the wrong type or length, a chunk that does
	// not open): try the next server.
	nextUnverified
	// nextStale: the server serves an older definition than required
	// (coffer.ErrRollback): try the next one; if none serves, status 1.
	nextStale
	// stopAuth: an authenticated refusal (a sealed Error{auth}, an
	// unknown client, a Link that opened for this session with an
	// unusable Se): stop at once with status 4 (exitAuth).
	stopAuth
	// stopFailure: any other authenticated error that no server or
	// retry will fix: stop at once with status 1 (exitFailure).
	stopFailure
)

var outcomeNames = [...]string{"next", "next-unverified-auth", "next-unverified", "next-stale", "stop-auth", "stop-failure"}

func (o outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// classify decides what a failed attempt means for the fetch. It is a
// pure function of err; the order of the cases matters, because an
// answer that did not authenticate must never be taken as the server's
// word (docs/protocol.md §4.7).
func classify(err error) outcome {
	var re *coffer.RemoteError
	switch {
	case errors.Is(err, coffer.ErrUnverified):
		if !errors.As(err, &re) {
			if errors.Is(err, coffer.ErrServerAuth) {
				return nextUnverifiedAuth
			}
			return nextUnverified
		}
		switch re.Code {
		case frame.CodeAuth:
			return nextUnverifiedAuth
		case frame.CodeBusy, frame.CodeUnavailable, frame.CodeInternal:
			return next
		}
		return nextUnverified
	case errors.Is(err, coffer.ErrServerAuth), errors.Is(err, coffer.ErrAuth),
		errors.Is(err, coffer.ErrUnknownClient):
		return stopAuth
	case errors.Is(err, coffer.ErrRollback):
		return nextStale
	case !coffer.Retryable(err):
		return stopFailure
	}
	return next
}

// verdict chooses the exit status of a fetch that ended without a final
// answer and without a stale server, from each server's last outcome
// (next for a server never tried): status 4 if any server's last answer
// was an unauthenticated auth refusal (what a wrong pinned key looks
// like), else status 1 if every server's last answer was some other
// unauthenticated answer (a version mismatch, or something on the path
// that alters replies), else status 3 (docs/client.md, "Exit status").
// It is a pure function of last.
func verdict(last []outcome) int {
	answered := 0
	for _, o := range last {
		switch o {
		case nextUnverifiedAuth:
			return exitAuth
		case nextUnverified:
			answered++
		}
	}
	if answered > 0 && answered == len(last) {
		return exitFailure
	}
	return exitUnreachable
}

// once runs one attempt against addr, bounded by --timeout and, when
// retrying, by the overall deadline.
func (f *fetcher) once(ctx context.Context, addr string, deadline time.Time) (*coffer.Result, error) {
	end := time.Now().Add(f.timeout)
	if f.wait > 0 && deadline.Before(end) {
		end = deadline
	}
	actx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(actx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cfg := f.cfg
	return coffer.Fetch(actx, conn, &cfg)
}

// giveUp reports a fetch that got no final answer before the deadline:
// a stale server's refusal if there was one (the cache is not used
// then), else a *noAnswer with the status verdict chose.
func (f *fetcher) giveUp(stale error, code int, fails []string) error {
	if stale != nil {
		return &exitError{code: exitFailure, err: stale,
			hints: []string{"the server serves an older definition than this client has seen (--min-serial, --state): a rolled-back or stale server"}}
	}
	within := "within " + f.wait.String()
	if f.wait == 0 {
		within = "(one attempt each; --wait retries)"
	}
	list := strings.Join(fails, "; ")
	var hints []string
	if strings.Contains(list, rateLimitedText) {
		hints = []string{"the server limits how often one client or address may fetch (docs/server.md, \"Limits\"): retry in a few seconds, or give --wait 30s to retry with backoff"}
	}
	switch code {
	case exitAuth:
		return &exitError{code: exitAuth,
			err: &noAnswer{fmt.Sprintf("no server proved the pinned server key %s; every answer was unauthenticated: %s", within, list)},
			hints: []string{"the pinned server key may be wrong: check --server-key against `coffer-companion pubkey` of the server's key file",
				"the replies were not authenticated, so anyone on the path could also have forged them"}}
	case exitFailure:
		return &exitError{code: exitFailure,
			err: &noAnswer{fmt.Sprintf("no server gave an authenticated answer %s; every answer was unauthenticated: %s", within, list)},
			hints: []string{"the servers may not speak coffer/2 as this client does (a coffer/1 server must be upgraded), or something on the path alters the replies",
				"the replies were not authenticated, so anyone on the path could also have forged them"}}
	}
	return &exitError{code: exitUnreachable, err: &noAnswer{fmt.Sprintf("no server answered %s: %s", within, list)}, hints: hints}
}

// rateLimitedText is how a refusal by a server's rate limit reads; the
// wire code is Error{busy}, sent by nothing else (docs/protocol.md §6).
const rateLimitedText = "rate limited"

// attemptText describes one failed attempt for the retry line and the
// final error. It quotes nothing the server sent: a RemoteError's text
// is fixed per code.
func attemptText(addr string, err error) string {
	var re *coffer.RemoteError
	if errors.As(err, &re) && re.Code == frame.CodeBusy {
		if re.Sealed {
			return addr + ": " + rateLimitedText + " (Error busy)"
		}
		return addr + ": " + rateLimitedText + " (Error busy, unauthenticated)"
	}
	return addr + ": " + err.Error()
}

// authError reports an authentication failure, which is never retried.
func authError(addr string, err error, client coffer.PublicKey) error {
	e := &exitError{code: exitAuth, err: fmt.Errorf("%s: %w", addr, err)}
	switch {
	case errors.Is(err, coffer.ErrUnknownClient):
		e.hints = []string{fmt.Sprintf("add this client's public key %s to the definition, then reseal and reload it", client)}
	case errors.Is(err, coffer.ErrServerAuth):
		e.hints = []string{"the server proved the pinned key but sent an unusable ephemeral key: a faulty server"}
	default:
		e.hints = []string{"the server refused this client's proof: check --key"}
	}
	return e
}
