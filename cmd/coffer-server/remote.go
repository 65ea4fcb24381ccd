package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
)

// A definition published at a URL (docs/server.md, "Several servers"):
// the server polls it, and each new version is loaded exactly as a file
// given to reload, through the same loader and the same checks. A sealed
// definition is encrypted to the server key and its author is checked,
// so the origin and the path to it are trusted with availability only.

// Fetch limits.
const (
	// maxFetchBytes bounds a fetched definition: the largest sealed file
	// (coffer.MaxSealedBytes) armored is about 4/3 of it.
	maxFetchBytes = coffer.MaxSealedBytes * 3 / 2
	// fetchTimeout bounds one fetch, from connecting to the last byte, so
	// a stalled origin cannot hold back the next poll for long.
	fetchTimeout = 30 * time.Second
	// maxFetchRedirects bounds redirects; each target must pass
	// config.CheckDefinitionURL like the configured URL.
	maxFetchRedirects = 3
)

// errNotModified reports that the origin holds the version fetched last.
var errNotModified = errors.New("not modified")

// remoteSource fetches the definition from its URL, conditionally on the
// last version seen. It is safe for concurrent use.
type remoteSource struct {
	url    *url.URL
	client *http.Client

	mu       sync.Mutex
	polls    map[string]uint64 // by result: fetched, not_modified, failed
	lastPoll pollStatus
	etag     string
	lastHash [32]byte     // of the last body handed to a load
	last     reloadResult // that load's outcome
	seen     bool
}

// Poll results counted in remoteSource.polls.
const (
	pollFetched     = "fetched"
	pollNotModified = "not_modified"
	pollFailed      = "failed"
)

// pollStatus is the last poll, for status.
type pollStatus struct {
	Every  float64   `json:"every_seconds"`
	Time   time.Time `json:"time,omitzero"`
	Result string    `json:"result,omitempty"` // fetched, not_modified or failed
	Error  string    `json:"error,omitempty"`
}

// polled counts one poll's result.
func (rs *remoteSource) polled(result string, err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.polls[result]++
	rs.lastPoll.Time, rs.lastPoll.Result, rs.lastPoll.Error = time.Now(), result, ""
	if err != nil {
		rs.lastPoll.Error = err.Error()
	}
}

// pollCounts returns the polls by result and the last poll.
func (rs *remoteSource) pollCounts() (map[string]uint64, pollStatus) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	m := map[string]uint64{pollFetched: rs.polls[pollFetched], pollNotModified: rs.polls[pollNotModified], pollFailed: rs.polls[pollFailed]}
	return m, rs.lastPoll
}

func newRemoteSource(u *url.URL) *remoteSource {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.IdleConnTimeout = 1, time.Minute
	c := &http.Client{Transport: tr, Timeout: fetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxFetchRedirects {
				return fmt.Errorf("more than %d redirects", maxFetchRedirects)
			}
			_, err := config.CheckDefinitionURL(req.URL.String())
			return err
		}}
	return &remoteSource{url: u, client: c, polls: map[string]uint64{}}
}

// redactedURL is the URL for logs and status: without its query, which
// may hold a signed token (an object store's pre-signed URL).
func redactedURL(u *url.URL) string {
	r := *u
	if r.RawQuery != "" {
		r.RawQuery = "…"
	}
	return r.String()
}

// fetch gets the definition unless the origin holds the version seen
// last: then it returns errNotModified and that version's load outcome.
// Errors name the URL without its query, never the body.
func (rs *remoteSource) fetch(ctx context.Context) (body []byte, etag string, last reloadResult, err error) {
	rs.mu.Lock()
	prevETag, prevHash, prev, seen := rs.etag, rs.lastHash, rs.last, rs.seen
	rs.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rs.url.String(), nil)
	if err != nil {
		return nil, "", prev, fmt.Errorf("fetching %s: %w", redactedURL(rs.url), err)
	}
	if prevETag != "" {
		req.Header.Set("If-None-Match", prevETag)
	}
	resp, err := rs.client.Do(req)
	if err != nil {
		return nil, "", prev, fmt.Errorf("fetching %s: %w", redactedURL(rs.url), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && seen:
		return nil, "", prev, errNotModified
	case resp.StatusCode != http.StatusOK:
		return nil, "", prev, fmt.Errorf("fetching %s: the origin answered %s", redactedURL(rs.url), strconv.Itoa(resp.StatusCode))
	case resp.ContentLength > maxFetchBytes:
		return nil, "", prev, fmt.Errorf("fetching %s: %d bytes, more than the limit of %d", redactedURL(rs.url), resp.ContentLength, maxFetchBytes)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxFetchBytes+1))
	if err != nil {
		return nil, "", prev, fmt.Errorf("fetching %s: %w", redactedURL(rs.url), err)
	}
	if len(body) > maxFetchBytes {
		return nil, "", prev, fmt.Errorf("fetching %s: more than the limit of %d bytes", redactedURL(rs.url), maxFetchBytes)
	}
	if seen && sha256.Sum256(body) == prevHash {
		rs.remember(resp.Header.Get("ETag"), body, prev)
		return nil, "", prev, errNotModified
	}
	return body, resp.Header.Get("ETag"), prev, nil
}

// remember records the outcome of loading body, fetched with etag, so
// that the next fetch is conditional on it.
func (rs *remoteSource) remember(etag string, body []byte, r reloadResult) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.etag, rs.lastHash, rs.last, rs.seen = etag, sha256.Sum256(body), r, true
}

// loadSealed loads file, fetched from the URL, as loadFile loads the
// file: the same checks against the store's current version.
func (l *loader) loadSealed(file []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer loadMemory()()
	bin, err := coffer.SealedBinary(file)
	if err != nil {
		return err
	}
	return l.importLocked(bin, storeVersion(l.st), "load")
}

// loadConfigured loads the configured definition, file or URL, at
// start-up.
func (l *loader) loadConfigured() error {
	if l.remote == nil {
		return l.loadFile()
	}
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	body, etag, _, err := l.remote.fetch(ctx)
	if err != nil {
		return err
	}
	err = l.loadSealed(body)
	l.remote.remember(etag, body, loadResult(l, err))
	return err
}

// readConfigured reads the configured definition, file or URL, for a
// rebuild.
func (l *loader) readConfigured() ([]byte, error) {
	if l.remote == nil {
		return coffer.ReadSealedFile(l.path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	rs := newRemoteSource(l.remote.url) // unconditional: a rebuild needs the bytes
	body, _, _, err := rs.fetch(ctx)
	if err != nil {
		return nil, err
	}
	return coffer.SealedBinary(body)
}

// poller fetches the definition URL every interval, less up to a fifth
// as jitter (so replicas spread their requests and each poll comes
// within the interval), and hands each new version to the daemon's loop.
type poller struct {
	rs       *remoteSource
	interval time.Duration
	log      *slog.Logger
	kick     chan struct{} // a poll now (SIGHUP)
}

// run polls until done. load runs one load in the daemon's loop.
func (p *poller) run(done <-chan struct{}, load func(file []byte) reloadResult) {
	for {
		wait := p.interval - rand.N(p.interval/5+1)
		t := time.NewTimer(wait)
		select {
		case <-done:
			t.Stop()
			return
		case <-p.kick:
			t.Stop()
		case <-t.C:
		}
		p.poll(done, load)
	}
}

// startPoller starts one poller for each definition that is a URL; the
// returned channel is closed once they have stopped (after d.done).
func (d *daemon) startPoller(cfg *config.Server) <-chan struct{} {
	stopped := make(chan struct{})
	d.pollers = map[*loader]*poller{}
	var wg sync.WaitGroup
	for _, ld := range d.lds {
		if ld.remote == nil {
			continue
		}
		p := &poller{rs: ld.remote, interval: cfg.DefinitionPoll, log: ld.log, kick: make(chan struct{}, 1)}
		d.pollers[ld] = p
		ld.remote.lastPoll.Every = cfg.DefinitionPoll.Seconds()
		ld.log.Info("polling the definition URL", "url", ld.path, "interval", cfg.DefinitionPoll.String())
		wg.Go(func() {
			p.run(d.done, func(file []byte) reloadResult {
				r, err := d.loadInLoop(ld, file, d.done)
				if err != nil {
					return reloadResult{Definition: ld.name, Reason: err.Error()}
				}
				return r
			})
		})
	}
	go func() {
		wg.Wait()
		close(stopped)
	}()
	return stopped
}

// poll fetches once and loads what is new.
func (p *poller) poll(done <-chan struct{}, load func(file []byte) reloadResult) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	body, etag, _, err := p.rs.fetch(ctx)
	switch {
	case errors.Is(err, errNotModified):
		p.rs.polled(pollNotModified, nil)
		p.log.Debug("definition URL not modified", "url", redactedURL(p.rs.url))
		return
	case err != nil:
		p.rs.polled(pollFailed, err)
		p.log.Warn("polling the definition URL failed; still serving the current definition", "err", err)
		return
	}
	p.rs.polled(pollFetched, nil)
	r := load(body)
	p.rs.remember(etag, body, r)
}
