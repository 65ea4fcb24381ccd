package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/shard"
)

// The running server's side of the admin commands: each reads the live
// store through the server's own handle, so nothing has to be stopped.

// statusReport is status's answer (docs/server.md, "Status").
type statusReport struct {
	Running    bool          `json:"running"`
	Pid        int           `json:"pid,omitempty"`
	Version    string        `json:"version,omitempty"`
	Started    time.Time     `json:"started,omitzero"`
	Uptime     float64       `json:"uptime_seconds,omitempty"`
	Definition string        `json:"definition"` // the configured file or URL
	Serial     uint64        `json:"serial,omitempty"`
	Hash       string        `json:"hash,omitempty"`
	Loaded     time.Time     `json:"loaded,omitzero"` // when this process installed the served definition
	LastLoad   *reloadResult `json:"last_load,omitempty"`
	Poll       *pollStatus   `json:"poll,omitempty"` // when the definition is a URL
	Condition  string        `json:"condition"`
	// ClientKeys counts client keys (a client may have several), Values
	// the values of the current definition summed over its clients.
	ClientKeys  int               `json:"client_keys"`
	Values      int               `json:"values"`
	Sessions    map[string]uint64 `json:"sessions,omitempty"`     // by outcome, since start
	RateLimited map[string]uint64 `json:"rate_limited,omitempty"` // by bucket, since start
	Handshakes  int               `json:"handshakes_in_flight"`
	AuditKept   int               `json:"audit_records"`
	AuditDrop   uint64            `json:"audit_dropped"` // since start, by the store's full queue
	// AuditUnverified counts events of sessions that opened no Get and were
	// over the server's budget for them (coffer.Server.AuditDropped).
	AuditUnverified uint64 `json:"audit_unverified_dropped"`
	StoreBytes      int64  `json:"store_bytes"` // on disk
	// Definitions lists every configured definition when there are
	// several; the fields above are then the first one's (and the audit
	// trail's, which the data directory's own store keeps).
	Definitions []definitionStatus `json:"definitions,omitempty"`
}

// definitionStatus is one definition in status.
type definitionStatus struct {
	Name       string        `json:"name"`
	Source     string        `json:"source"` // the configured file or URL
	Serial     uint64        `json:"serial,omitempty"`
	Hash       string        `json:"hash,omitempty"`
	Condition  string        `json:"condition"`
	ClientKeys int           `json:"client_keys"`
	Values     int           `json:"values"`
	Authors    []string      `json:"trusted"` // the author keys trusted for it
	StoreBytes int64         `json:"store_bytes"`
	LastLoad   *reloadResult `json:"last_load,omitempty"`
}

// definitionStatuses reports each loader's definition.
func definitionStatuses(lds []*loader) ([]definitionStatus, error) {
	out := make([]definitionStatus, 0, len(lds))
	for _, ld := range lds {
		s, err := ld.st.Stats()
		if err != nil {
			return nil, fmt.Errorf("definition %q: %w", ld.name, err)
		}
		ds := definitionStatus{Name: ld.name, Source: ld.path, Condition: s.Condition.String(),
			ClientKeys: s.Clients, Values: s.Values, StoreBytes: s.DiskBytes, Authors: []string{}}
		for _, a := range ld.trusted {
			ds.Authors = append(ds.Authors, a.String())
		}
		if v := ld.servedVersion(); v != nil {
			ds.Serial, ds.Hash = v.Serial, hex.EncodeToString(v.Hash[:])
		}
		if last := ld.lastLoad(); !last.Time.IsZero() {
			ds.LastLoad = &last
		}
		out = append(out, ds)
	}
	return out, nil
}

// status builds the running server's report.
func (d *daemon) status() (*statusReport, error) {
	s, err := d.ld.st.Stats()
	if err != nil {
		return nil, err
	}
	as := s
	if d.audit != d.ld.st {
		if as, err = d.audit.Stats(); err != nil {
			return nil, err
		}
	}
	s.AuditRecords, s.AuditDropped = as.AuditRecords, as.AuditDropped
	now := time.Now()
	r := &statusReport{Running: true, Pid: os.Getpid(), Version: version(), Started: d.live.start,
		Uptime: now.Sub(d.live.start).Seconds(), Definition: d.ld.path, Condition: s.Condition.String(),
		ClientKeys: s.Clients, Values: s.Values, Handshakes: d.srv.HandshakesInFlight(),
		AuditKept: s.AuditRecords, AuditDrop: s.AuditDropped, AuditUnverified: d.srv.AuditDropped(), StoreBytes: s.DiskBytes,
		Sessions: map[string]uint64{}, RateLimited: map[string]uint64{}}
	if v := d.ld.servedVersion(); v != nil {
		r.Serial, r.Hash = v.Serial, hex.EncodeToString(v.Hash[:])
	}
	last, _ := d.live.lastLoad()
	if !last.Time.IsZero() {
		r.LastLoad = &last
	}
	r.Loaded = d.live.installedAt()
	if len(d.lds)+len(d.unserved) > 1 {
		if r.Definitions, err = definitionStatuses(d.lds); err != nil {
			return nil, err
		}
		r.Definitions = append(r.Definitions, d.unserved...)
	}
	if d.ld.remote != nil {
		_, p := d.ld.remote.pollCounts()
		r.Poll = &p
	}
	for i, o := range sessionOutcomes {
		r.Sessions[o] = d.live.sessions[i].Load()
	}
	for i, b := range limitBuckets {
		r.RateLimited[b] = d.live.limits[i].Load()
	}
	return r, nil
}

// handleAdmin answers one admin request on the running server.
func (d *daemon) handleAdmin(req adminRequest, send func(*adminResponse) error, done <-chan struct{}) error {
	switch req.Cmd {
	case adminStatus:
		r, err := d.status()
		if err != nil {
			return err
		}
		return send(&adminResponse{Status: r})
	case adminReload:
		lds := d.lds
		if req.Definition != "" {
			ld := d.loader(req.Definition)
			for _, u := range d.unserved {
				if u.Name == req.Definition {
					return fmt.Errorf("admin: definition %q is not served: its store did not open at start (%s); restart the server once it is repaired", u.Name, u.Condition)
				}
			}
			if ld == nil {
				return fmt.Errorf("%w: no definition of that name is configured", errAdminRequest)
			}
			lds = []*loader{ld}
		}
		var rs []reloadResult
		for _, ld := range lds {
			r, err := d.requestReload(ld, done)
			if err != nil {
				return err
			}
			rs = append(rs, r)
		}
		resp := &adminResponse{Reload: &rs[0]}
		for i := range rs {
			if !rs[i].Accepted {
				resp.Reload = &rs[i]
				break
			}
		}
		if len(rs) > 1 {
			resp.Reloads = rs
		}
		return send(resp)
	case adminInspect:
		r, err := inspectStore(d.audit)
		if err != nil {
			return err
		}
		if len(d.lds)+len(d.unserved) > 1 || d.ld.name != config.DefaultDefinitionName {
			for _, ld := range d.lds {
				dr, err := inspectStore(ld.st)
				if err != nil {
					return fmt.Errorf("definition %q: %w", ld.name, err)
				}
				dr.Name = ld.name
				for _, a := range ld.trusted {
					dr.Trusted = append(dr.Trusted, a.String())
				}
				r.Definitions = append(r.Definitions, dr)
			}
			for _, u := range d.unserved {
				r.Definitions = append(r.Definitions, &inspectReport{Name: u.Name, Trusted: u.Authors, Condition: u.Condition, Clients: []inspectClient{}})
			}
		}
		return send(&adminResponse{Inspect: r})
	case adminAudit:
		return d.sendAudit(req, send, done)
	}
	return fmt.Errorf("%w: unknown command", errAdminRequest)
}

// reloadRequest asks the daemon's loop for a load; the loop answers on
// reply (buffered, so it never waits for a peer that left).
type reloadRequest struct {
	ld    *loader
	file  []byte // fetched from the definition URL; nil: read the file
	reply chan reloadResult
}

// requestReload runs a load in the daemon's loop, serialised with SIGHUP
// and the definition poller, and returns its outcome.
func (d *daemon) requestReload(ld *loader, done <-chan struct{}) (reloadResult, error) {
	if ld.remote != nil {
		return d.reloadRemote(ld, done)
	}
	return d.loadInLoop(ld, nil, done)
}

// reloadRemote fetches the definition URL now and loads what it holds:
// the outcome of the version loaded last if the origin still holds it,
// a refusal naming the fetch error if the origin fails.
func (d *daemon) reloadRemote(ld *loader, done <-chan struct{}) (reloadResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	body, etag, last, err := ld.remote.fetch(ctx)
	switch {
	case errors.Is(err, errNotModified):
		return last, nil
	case err != nil:
		r := loadResult(ld, err)
		d.live.loaded(r)
		return r, nil
	}
	r, err := d.loadInLoop(ld, body, done)
	if err == nil {
		ld.remote.remember(etag, body, r)
	}
	return r, err
}

// loadInLoop runs one load in the daemon's loop and waits for it.
func (d *daemon) loadInLoop(ld *loader, file []byte, done <-chan struct{}) (reloadResult, error) {
	req := reloadRequest{ld: ld, file: file, reply: make(chan reloadResult, 1)}
	select {
	case d.reloads <- req:
	case <-done:
		return reloadResult{}, errors.New("admin: the server is stopping")
	}
	select {
	case r := <-req.reply:
		return r, nil
	case <-done:
		return reloadResult{}, errors.New("admin: the server is stopping")
	}
}

// inspectStore reads the current definition's clients and the store's
// counts: inspect's answer, from a running server or a stopped one.
func inspectStore(st *shard.Store) (*inspectReport, error) {
	s, err := st.Stats()
	if err != nil {
		return nil, err
	}
	r := &inspectReport{Condition: s.Condition.String(), Clients: []inspectClient{}, Values: s.Values,
		ShardBytes: s.ShardBytes, DiskBytes: s.DiskBytes, LSMBytes: s.LSMBytes, VLogBytes: s.VLogBytes,
		Audit: s.AuditRecords, Dropped: s.AuditDropped, AuditLost: s.AuditLost, Kept: s.Kept}
	if s.HasCurrent {
		r.Serial, r.Hash, r.Generation = s.Version.Serial, hex.EncodeToString(s.Version.Hash[:]), s.Generation
		if r.Clients, err = storedClients(st, s.Generation); err != nil {
			return nil, fmt.Errorf("%w (a reload replaced the definition meanwhile? try again)", err)
		}
	}
	return r, nil
}

// sendAudit sends the stored records the request selects, then, with
// follow, each new record as the server hands it to the store, until the
// peer leaves or the server stops.
func (d *daemon) sendAudit(req adminRequest, send func(*adminResponse) error, done <-chan struct{}) error {
	var sub *auditSub
	if req.Follow {
		// Subscribe before reading the store, so no record falls between.
		if sub = d.feed.subscribe(); sub == nil {
			return errors.New("admin: too many audit followers")
		}
		defer d.feed.unsubscribe(sub)
	}
	recs, err := d.audit.AuditRecords(req.Since, req.Limit)
	if err != nil {
		return err
	}
	var last time.Time
	for _, rec := range recs {
		l := auditLineOf(rec)
		if err := send(&adminResponse{Record: &l}); err != nil {
			return err
		}
		last = rec.Time
	}
	if !req.Follow {
		return send(&adminResponse{End: true})
	}
	var skipped uint64
	for {
		select {
		case l := <-sub.ch:
			if !l.Time.After(last) {
				continue // already sent from the store
			}
			if n := sub.skipped.Load(); n != skipped {
				if err := send(&adminResponse{Skipped: n - skipped}); err != nil {
					return err
				}
				skipped = n
			}
			if err := send(&adminResponse{Record: &l}); err != nil {
				return err
			}
		case <-done: // the server stops, or the peer left
			return send(&adminResponse{End: true})
		}
	}
}

// auditLineOf is a record in the admin protocol's and audit's JSON form.
func auditLineOf(r shard.AuditRecord) auditLine {
	return auditLine{Time: r.Time.UTC(), Client: coffer.PublicKey(r.Client).Fingerprint(), Name: r.Name,
		Remote: r.Remote, Serial: r.Serial, Values: r.Values, Outcome: r.Outcome}
}

// Audit feed bounds.
const (
	// maxAuditFollowers bounds the audit --follow connections.
	maxAuditFollowers = 8
	// auditFollowQueue is each follower's queue; a follower that falls
	// further behind skips records (and is told how many), so a slow
	// reader never slows a session.
	auditFollowQueue = 1024
)

// auditFeed hands each audit record to the followers. publish never
// blocks, and costs one atomic load with no follower.
type auditFeed struct {
	n    atomic.Int32
	mu   sync.Mutex
	subs map[*auditSub]struct{}
}

type auditSub struct {
	ch      chan auditLine
	skipped atomic.Uint64
}

func (f *auditFeed) subscribe() *auditSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) >= maxAuditFollowers {
		return nil
	}
	if f.subs == nil {
		f.subs = map[*auditSub]struct{}{}
	}
	s := &auditSub{ch: make(chan auditLine, auditFollowQueue)}
	f.subs[s] = struct{}{}
	f.n.Store(int32(len(f.subs)))
	return s
}

func (f *auditFeed) unsubscribe(s *auditSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, s)
	f.n.Store(int32(len(f.subs)))
}

func (f *auditFeed) publish(r shard.AuditRecord) {
	if f.n.Load() == 0 {
		return
	}
	l := auditLineOf(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		select {
		case s.ch <- l:
		default:
			s.skipped.Add(1)
		}
	}
}
