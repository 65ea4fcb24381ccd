package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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

// errUnreachable marks a fetch that ended because no server answered in
// time: the only failure after which the cache may be used.
var errUnreachable = errors.New("no server answered")

// fetch tries the servers in a shuffled order, round after round with
// backoff, until one serves the shard or the deadline passes. It fails
// over on connection errors, timeouts, retryable server errors, unsealed
// Errors (anyone on the path can forge one) and stale servers (a replica
// that has not caught up may in a moment), and stops at once on an
// authentication failure or an unknown client. A round in which every
// server answered an unsealed Error{auth}, {version} or {malformed} ends
// the fetch too: that is a wrong pinned key or a version mismatch, and
// waiting will not fix it. The error is an *exitError.
func (f *fetcher) fetch(ctx context.Context) (*fetchResult, error) {
	deadline := time.Now().Add(f.wait)
	order := append([]string(nil), f.servers...)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var fails []string // the last round's failures, for the final error
	var stale error
	for round := 0; ; round++ {
		var now []string
		var plainAuth, plainOther int // unsealed Error{auth}, and {version} or {malformed}
		for _, addr := range order {
			if f.wait > 0 && !time.Now().Before(deadline) {
				break
			}
			res, err := f.once(ctx, addr, deadline)
			if err == nil {
				return &fetchResult{res, addr}, nil
			}
			switch classify(err) {
			case stopAuth:
				return nil, authError(addr, err, f.cfg.Key.Public())
			case stopFailure:
				return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s: %w", addr, err)}
			case nextPlainAuth:
				plainAuth++
			case nextPlainRefusal:
				plainOther++
			case nextStale:
				stale = fmt.Errorf("%s: %w", addr, err)
			}
			now = append(now, addr+": "+err.Error())
		}
		if len(now) > 0 {
			fails = now
		}
		if n := plainAuth + plainOther; n > 0 && n == len(order) {
			return nil, plainErrors(plainAuth > 0, now)
		}
		remaining := time.Until(deadline)
		if remaining <= 0 || ctx.Err() != nil {
			return nil, f.giveUp(stale, fails)
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

// outcome is what fetch does after one server failed, as decided by
// classify.
type outcome int

const (
	// next: try the next server (a connection error, a timeout, a
	// retryable server error, an unsealed Error of another code).
	next outcome = iota
	// nextPlainAuth: an unsealed Error{auth}, which proves nothing about
	// the server: try the next one. A round in which every server gave
	// this or nextPlainRefusal ends the fetch (plainErrors), with status
	// 4 (exitAuth) if any gave this.
	nextPlainAuth
	// nextPlainRefusal: an unsealed Error{version} or {malformed}: try
	// the next server; a round of only these ends with status 1.
	nextPlainRefusal
	// nextStale: the server serves an older definition than required
	// (coffer.ErrRollback): try the next one; if none serves, status 1.
	nextStale
	// stopAuth: the server's key is not the pinned one, or it refused
	// this client: stop at once with status 4 (exitAuth).
	stopAuth
	// stopFailure: any other error that no server or retry will fix:
	// stop at once with status 1 (exitFailure).
	stopFailure
)

var outcomeNames = [...]string{"next", "next-plain-auth", "next-plain-refusal", "next-stale", "stop-auth", "stop-failure"}

func (o outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// classify decides what a failed attempt means for the fetch. It is a
// pure function of err; the order of the cases matters, because an
// unsealed Error must never be taken as the server's word.
func classify(err error) outcome {
	var re *coffer.RemoteError
	switch {
	case errors.As(err, &re) && !re.Sealed:
		switch re.Code {
		case frame.CodeAuth:
			return nextPlainAuth
		case frame.CodeVersion, frame.CodeMalformed:
			return nextPlainRefusal
		}
		return next
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

func (f *fetcher) giveUp(stale error, fails []string) error {
	if stale != nil {
		return &exitError{code: exitFailure, err: stale,
			hints: []string{"the server serves an older definition than this client has seen (--min-serial, --state): a rolled-back or stale server"}}
	}
	within := "within " + f.wait.String()
	if f.wait == 0 {
		within = "(one attempt each; --wait retries)"
	}
	return &exitError{code: exitUnreachable,
		err: fmt.Errorf("%w %s: %s", errUnreachable, within, strings.Join(fails, "; "))}
}

// plainErrors reports a round in which every server answered an unsealed
// Error{auth} (auth), or {version} or {malformed}.
func plainErrors(auth bool, fails []string) error {
	if auth {
		return &exitError{code: exitAuth,
			err: fmt.Errorf("every server refused authentication in an unauthenticated reply: %s", strings.Join(fails, "; ")),
			hints: []string{"check --server-key against `coffer-companion pubkey` of the server's key file",
				"the reply was not sealed, so anyone on the path could also have forged it"}}
	}
	return &exitError{code: exitFailure,
		err: fmt.Errorf("every server refused the request in an unauthenticated reply: %s", strings.Join(fails, "; ")),
		hints: []string{"the servers may not speak coffer/1 as this client does; check both versions",
			"the reply was not sealed, so anyone on the path could also have forged it"}}
}

// authError reports an authentication failure, which is never retried.
func authError(addr string, err error, client coffer.PublicKey) error {
	e := &exitError{code: exitAuth, err: fmt.Errorf("%s: %w", addr, err)}
	switch {
	case errors.Is(err, coffer.ErrUnknownClient):
		e.hints = []string{fmt.Sprintf("add this client's public key %s to the definition, then reseal and reload it", client)}
	case errors.Is(err, coffer.ErrServerAuth):
		e.hints = []string{"check --server-key against `coffer-companion pubkey` of the server's key file"}
	default:
		e.hints = []string{"the server refused this client's proof: check --key"}
	}
	return e
}
