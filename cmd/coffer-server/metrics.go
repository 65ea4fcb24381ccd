package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/shard"
)

// The metrics listener (docs/server.md, "Metrics") serves /metrics in
// the Prometheus text exposition format, version 0.0.4, written out here:
// a dozen families do not need a client library. Labels are fixed sets
// (outcomes, buckets, load results, store parts); no client name, key or
// address is ever a label, so the series do not grow with the fleet.

// Metrics listener limits: a scraper sends one small GET.
const (
	metricsReadHeaderTimeout = 5 * time.Second
	metricsWriteTimeout      = 10 * time.Second
	metricsMaxHeaderBytes    = 8 << 10
)

// metricsSnapshot is everything one scrape reports, read at one moment.
type metricsSnapshot struct {
	start       time.Time
	sessions    [len(sessionOutcomes)]uint64
	limits      [len(limitBuckets)]uint64
	durationCum []uint64 // cumulative per sessionSecondsBuckets, then +Inf
	durationSum float64
	handshakes  int
	unverified  uint64 // audit events over the unauthenticated budget
	auditHanded uint64
	store       shard.Live
	diskBytes   int64
	serial      uint64
	definitions []definitionSerial // with several definitions (or a named one): each one's serial
	served      bool
	installed   time.Time
	last        reloadResult
	loads       map[string]uint64
	polls       map[string]uint64 // nil when the definition is a file
}

// metricsSnapshotOf reads d's counters.
func (d *daemon) metricsSnapshot() metricsSnapshot {
	m := metricsSnapshot{start: d.live.start, handshakes: d.srv.HandshakesInFlight(), unverified: d.srv.AuditDropped(),
		auditHanded: d.live.auditHanded.Load(), installed: d.live.installedAt()}
	for i := range m.sessions {
		m.sessions[i] = d.live.sessions[i].Load()
	}
	for i := range m.limits {
		m.limits[i] = d.live.limits[i].Load()
	}
	m.durationCum, m.durationSum = d.live.duration.snapshot()
	m.store, _ = d.ld.st.Live() // after Close: zeros, and the listener is closing too
	m.diskBytes = diskBytes(d.dataDir)
	if v := d.ld.servedVersion(); v != nil {
		m.serial, m.served = v.Serial, true
	}
	if len(d.lds) > 1 || d.ld.name != config.DefaultDefinitionName {
		for _, ld := range d.lds {
			ds := definitionSerial{name: ld.name}
			if v := ld.servedVersion(); v != nil {
				ds.serial = v.Serial
			}
			m.definitions = append(m.definitions, ds)
		}
	}
	m.last, m.loads = d.live.lastLoad()
	if d.ld.remote != nil {
		m.polls, _ = d.ld.remote.pollCounts()
	}
	return m
}

// definitionSerial is one definition's served serial, 0 when none.
type definitionSerial struct {
	name   string // a definition name: plain, needs no escaping in a label
	serial uint64
}

// writeMetrics writes m in the text exposition format.
func writeMetrics(w io.Writer, m *metricsSnapshot) error {
	bw := bufio.NewWriter(w)
	family := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	sample := func(name, labels string, v float64) {
		if labels != "" {
			labels = "{" + labels + "}"
		}
		fmt.Fprintf(bw, "%s%s %s\n", name, labels, strconv.FormatFloat(v, 'g', -1, 64))
	}
	family("coffer_sessions_total", "counter", "Connections ended since start, by audit outcome; one closed before its Hello counts as error.")
	for i, o := range sessionOutcomes {
		sample("coffer_sessions_total", `outcome="`+o+`"`, float64(m.sessions[i]))
	}
	family("coffer_session_duration_seconds", "histogram", "Time from accept to close of each connection.")
	for i, b := range sessionSecondsBuckets {
		sample("coffer_session_duration_seconds_bucket", `le="`+strconv.FormatFloat(b, 'g', -1, 64)+`"`, float64(m.durationCum[i]))
	}
	total := m.durationCum[len(m.durationCum)-1]
	sample("coffer_session_duration_seconds_bucket", `le="+Inf"`, float64(total))
	sample("coffer_session_duration_seconds_sum", "", m.durationSum)
	sample("coffer_session_duration_seconds_count", "", float64(total))
	family("coffer_handshakes_in_flight", "gauge", "Connections between accept and an opened Get.")
	sample("coffer_handshakes_in_flight", "", float64(m.handshakes))
	family("coffer_rate_limited_total", "counter", "Sessions refused by a rate limit since start, by the limit's config key.")
	for i, b := range limitBuckets {
		sample("coffer_rate_limited_total", `bucket="`+b+`"`, float64(m.limits[i]))
	}
	family("coffer_audit_records_written_total", "counter", "Audit records the store accepted since start.")
	sample("coffer_audit_records_written_total", "", float64(m.auditHanded-min(m.auditHanded, m.store.AuditDropped)))
	family("coffer_audit_records_dropped_total", "counter", "Audit records dropped since start because the store's queue was full.")
	sample("coffer_audit_records_dropped_total", "", float64(m.store.AuditDropped))
	family("coffer_audit_unverified_dropped_total", "counter", "Audit events of sessions that opened no Get, not recorded since start because they were over their budget.")
	sample("coffer_audit_unverified_dropped_total", "", float64(m.unverified))
	family("coffer_audit_records", "gauge", "Audit records kept in the store.")
	sample("coffer_audit_records", "", float64(m.store.AuditRecords))
	family("coffer_definition_serial", "gauge", "Serial of the definition served; 0 when none is. With several definitions, one sample per definition, labelled with its name.")
	if m.definitions == nil {
		sample("coffer_definition_serial", "", float64(m.serial))
	}
	for _, ds := range m.definitions {
		sample("coffer_definition_serial", `definition="`+ds.name+`"`, float64(ds.serial))
	}
	family("coffer_definition_loaded_timestamp_seconds", "gauge", "When this process installed the definition served (Unix time); 0 when none is.")
	sample("coffer_definition_loaded_timestamp_seconds", "", unixSeconds(m.installed))
	family("coffer_definition_last_load_timestamp_seconds", "gauge", "When the last load (start-up, reload, SIGHUP or poll) ended (Unix time).")
	sample("coffer_definition_last_load_timestamp_seconds", "", unixSeconds(m.last.Time))
	family("coffer_definition_last_load_success", "gauge", "1 if the last load was accepted (new or already current), 0 if refused.")
	sample("coffer_definition_last_load_success", "", boolFloat(m.last.Accepted))
	family("coffer_definition_loads_total", "counter", "Loads since start, by result: accepted (a new definition), unchanged, refused.")
	for _, r := range []string{loadAccepted, loadUnchanged, loadRefused} {
		sample("coffer_definition_loads_total", `result="`+r+`"`, float64(m.loads[r]))
	}
	if m.polls != nil {
		family("coffer_definition_polls_total", "counter", "Polls of the definition URL since start, by result: fetched (a new version), not_modified, failed.")
		for _, r := range []string{pollFetched, pollNotModified, pollFailed} {
			sample("coffer_definition_polls_total", `result="`+r+`"`, float64(m.polls[r]))
		}
	}
	family("coffer_store_bytes", "gauge", "Disk space used by the files in the data directory.")
	sample("coffer_store_bytes", "", float64(m.diskBytes))
	family("coffer_start_time_seconds", "gauge", "When the server started (Unix time).")
	sample("coffer_start_time_seconds", "", unixSeconds(m.start))
	return bw.Flush()
}

// diskBytes sums the blocks used by the regular files under dir; files
// that vanish while Badger compacts are skipped.
func diskBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsContentType is the text exposition format's media type.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// listenMetrics binds the metrics listener, if configured. A host other
// than loopback is served (the operator wrote it out), with a warning:
// the metrics hold no secret, but they tell anyone who can reach them how
// busy the server is and which serial it serves.
func listenMetrics(cfg *config.Server, log *slog.Logger) (net.Listener, error) {
	addr := cfg.MetricsAddr()
	if addr == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, withHint(fmt.Errorf("metrics listener: %w", err), "change metrics_listen or --metrics-listen")
	}
	host, _, _ := net.SplitHostPort(addr)
	if !config.IsLoopbackHost(host) {
		log.Warn("metrics served beyond loopback; restrict who can reach them", "addr", l.Addr().String())
	}
	log.Info("metrics listening", "addr", l.Addr().String())
	return l, nil
}

// serveMetrics serves /metrics on l until the returned stop is called.
func (d *daemon) serveMetrics(l net.Listener) (stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		m := d.metricsSnapshot()
		w.Header().Set("Content-Type", metricsContentType)
		writeMetrics(w, &m)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: metricsReadHeaderTimeout, WriteTimeout: metricsWriteTimeout,
		MaxHeaderBytes: metricsMaxHeaderBytes, ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Warn("metrics listener failed", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), metricsWriteTimeout)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}
}
