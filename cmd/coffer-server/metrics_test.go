package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/shard"
)

// exposition is a parsed text exposition: each family's type, and each
// series (name plus sorted labels as written) with its value.
type exposition struct {
	types  map[string]string
	series map[string]float64
	order  []string
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelRE      = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"$`)
)

// parseExposition parses the text format strictly, as an independent
// check of writeMetrics: HELP then TYPE before a family's samples, known
// types, valid names and labels, one sample per series, float values,
// samples only of declared families (with a histogram's suffixes), a
// final newline, and no label that could carry a client's identity.
func parseExposition(text string) (*exposition, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("no final newline")
	}
	e := &exposition{types: map[string]string{}, series: map[string]float64{}}
	helped := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n := i + 1
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, help, _ := strings.Cut(rest, " ")
			if !metricNameRE.MatchString(name) || help == "" || helped[name] {
				return nil, fmt.Errorf("line %d: bad or repeated HELP", n)
			}
			helped[name] = true
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			switch typ {
			case "counter", "gauge", "histogram":
			default:
				return nil, fmt.Errorf("line %d: type %q", n, typ)
			}
			if !helped[name] || e.types[name] != "" {
				return nil, fmt.Errorf("line %d: TYPE without HELP, or repeated", n)
			}
			e.types[name] = typ
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			return nil, fmt.Errorf("line %d: unexpected %q", n, line)
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(value, " ") {
			return nil, fmt.Errorf("line %d: not 'series value'", n)
		}
		name, labels := series, ""
		if j := strings.IndexByte(series, '{'); j >= 0 {
			if !strings.HasSuffix(series, "}") {
				return nil, fmt.Errorf("line %d: unclosed labels", n)
			}
			name, labels = series[:j], series[j+1:len(series)-1]
			for _, l := range strings.Split(labels, ",") {
				m := labelRE.FindStringSubmatch(l)
				if m == nil {
					return nil, fmt.Errorf("line %d: label %q", n, l)
				}
				switch m[1] {
				case "outcome", "bucket", "result", "part", "le", "definition": // a definition name is the operator's, not a client's
				default:
					return nil, fmt.Errorf("line %d: label %q is not one of the fixed sets", n, m[1])
				}
			}
		}
		if !metricNameRE.MatchString(name) {
			return nil, fmt.Errorf("line %d: name %q", n, name)
		}
		family := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && e.types[b] == "histogram" {
				family = b
			}
		}
		if e.types[family] == "" {
			return nil, fmt.Errorf("line %d: sample of undeclared family %q", n, family)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(v) {
			return nil, fmt.Errorf("line %d: value %q", n, value)
		}
		if e.types[family] == "counter" && (v < 0 || !strings.HasSuffix(name, "_total")) {
			return nil, fmt.Errorf("line %d: counter %s must end in _total and not be negative", n, name)
		}
		if _, dup := e.series[series]; dup {
			return nil, fmt.Errorf("line %d: series %s repeated", n, series)
		}
		e.series[series] = v
		e.order = append(e.order, series)
	}
	return e, e.checkHistograms()
}

// checkHistograms checks that buckets rise with le, end at +Inf, and
// that +Inf equals _count.
func (e *exposition) checkHistograms() error {
	for name, typ := range e.types {
		if typ != "histogram" {
			continue
		}
		prevLe, prev := math.Inf(-1), -1.0
		var inf float64
		seenInf := false
		for _, s := range e.order {
			le, ok := strings.CutPrefix(s, name+`_bucket{le="`)
			if !ok {
				continue
			}
			b, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64)
			if err != nil || b <= prevLe || e.series[s] < prev {
				return fmt.Errorf("%s: bucket %s out of order", name, s)
			}
			prevLe, prev = b, e.series[s]
			if math.IsInf(b, 1) {
				inf, seenInf = e.series[s], true
			}
		}
		if !seenInf || inf != e.series[name+"_count"] {
			return fmt.Errorf("%s: +Inf bucket %v, count %v", name, inf, e.series[name+"_count"])
		}
	}
	return nil
}

// testSnapshot is a snapshot with every field set.
func testSnapshot() *metricsSnapshot {
	h := newHistogram(sessionSecondsBuckets)
	for _, v := range []float64{0.0004, 0.002, 0.002, 0.3, 45} {
		h.observe(v)
	}
	m := &metricsSnapshot{start: time.Unix(1_700_000_000, 0), handshakes: 2, auditHanded: 10,
		store: shard.Live{AuditRecords: 7, AuditDropped: 3}, diskBytes: 1 << 20, serial: 42, served: true,
		installed: time.Unix(1_700_000_100, 500_000_000), last: reloadResult{Accepted: false, Time: time.Unix(1_700_000_200, 0)},
		loads: map[string]uint64{loadAccepted: 1, loadRefused: 2}, polls: map[string]uint64{pollNotModified: 9, pollFailed: 1}}
	m.sessions = [len(sessionOutcomes)]uint64{100, 1, 2, 3}
	m.limits = [len(limitBuckets)]uint64{5, 0, 0, 1, 0}
	m.durationCum, m.durationSum = h.snapshot()
	return m
}

func TestWriteMetrics(t *testing.T) {
	var b bytes.Buffer
	if err := writeMetrics(&b, testSnapshot()); err != nil {
		t.Fatal(err)
	}
	e, err := parseExposition(b.String())
	if err != nil {
		t.Fatalf("%v in\n%s", err, b.String())
	}
	for series, want := range map[string]float64{
		`coffer_sessions_total{outcome="ok"}`:                 100,
		`coffer_sessions_total{outcome="error"}`:              3,
		`coffer_rate_limited_total{bucket="per_client"}`:      5,
		`coffer_session_duration_seconds_bucket{le="0.001"}`:  1,
		`coffer_session_duration_seconds_bucket{le="0.0025"}`: 3,
		`coffer_session_duration_seconds_bucket{le="30"}`:     4,
		`coffer_session_duration_seconds_bucket{le="+Inf"}`:   5,
		`coffer_session_duration_seconds_count`:               5,
		`coffer_handshakes_in_flight`:                         2,
		`coffer_audit_records_written_total`:                  7,
		`coffer_audit_records_dropped_total`:                  3,
		`coffer_definition_serial`:                            42,
		`coffer_definition_loaded_timestamp_seconds`:          1_700_000_100.5,
		`coffer_definition_last_load_success`:                 0,
		`coffer_definition_loads_total{result="refused"}`:     2,
		`coffer_store_bytes`:                                  1 << 20,
		`coffer_definition_polls_total{result="failed"}`:      1,
	} {
		if got, ok := e.series[series]; !ok || got != want {
			t.Errorf("%s: got %v (present %v), want %v", series, got, ok, want)
		}
	}
	if got := e.series["coffer_session_duration_seconds_sum"]; math.Abs(got-45.3044) > 1e-6 {
		t.Errorf("duration sum: got %v, want 45.3044", got)
	}
}

// TestWriteMetricsDefinitions: with several definitions the serial is
// one sample per definition, labelled with its name, and the exposition
// still parses strictly.
func TestWriteMetricsDefinitions(t *testing.T) {
	m := testSnapshot()
	m.definitions = []definitionSerial{{"team-a", 3}, {"team-b", 0}}
	var b bytes.Buffer
	if err := writeMetrics(&b, m); err != nil {
		t.Fatal(err)
	}
	e, err := parseExposition(b.String())
	if err != nil {
		t.Fatalf("%v in\n%s", err, b.String())
	}
	if e.series[`coffer_definition_serial{definition="team-a"}`] != 3 {
		t.Errorf("team-a's serial: %v", e.series)
	}
	if v, ok := e.series[`coffer_definition_serial{definition="team-b"}`]; !ok || v != 0 {
		t.Errorf("team-b's serial: %v, %v", v, ok)
	}
	if _, ok := e.series["coffer_definition_serial"]; ok {
		t.Error("an unlabelled serial beside the labelled ones")
	}
}

func TestParseExpositionRejects(t *testing.T) {
	ok := "# HELP a_total x\n# TYPE a_total counter\na_total 1\n"
	if _, err := parseExposition(ok); err != nil {
		t.Fatalf("valid: %v", err)
	}
	for name, text := range map[string]string{
		"no newline":      strings.TrimSuffix(ok, "\n"),
		"undeclared":      ok + "b 1\n",
		"repeated series": ok + "a_total 2\n",
		"client label":    "# HELP a_total x\n# TYPE a_total counter\na_total{client=\"web\"} 1\n",
		"bad value":       "# HELP a_total x\n# TYPE a_total counter\na_total one\n",
		"negative":        "# HELP a_total x\n# TYPE a_total counter\na_total -1\n",
		"type first":      "# TYPE a_total counter\n# HELP a_total x\na_total 1\n",
		"bad histogram":   "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n",
	} {
		if _, err := parseExposition(text); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestMetricsPromtool checks the exposition with promtool, the format's
// reference checker, when it is installed (.ci/run installs it).
func TestMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus; .ci/run installs it); TestWriteMetrics parses the output strictly")
	}
	var b bytes.Buffer
	writeMetrics(&b, testSnapshot())
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestMetricsScrape: a running server with --metrics-listen serves
// /metrics that parses strictly and counts what happened, without any
// client's name; other paths are 404.
func TestMetricsScrape(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	p := f.start(t, "--metrics-listen", "127.0.0.1:0")
	defer p.stop()
	line, _ := p.Logs.Wait(t, 0, `msg="metrics listening" addr=127\.0\.0\.1:\d+`)
	addr := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(line)[1]
	for range 3 {
		if _, err := p.fetch("web"); err != nil {
			t.Fatal(err)
		}
	}
	// The server counts a session when its handler ends, which may be
	// just after the client has its shard: scrape until the third
	// session is counted, or a deadline passes.
	var (
		body []byte
		e    *exposition
	)
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != metricsContentType {
			t.Fatalf("GET /metrics: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
		}
		if e, err = parseExposition(string(body)); err != nil {
			t.Fatal(err)
		}
		if e.series[`coffer_sessions_total{outcome="ok"}`] >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the counter itself, with a deadline
	}
	t.Logf("scrape:\n%s", body)
	for series, want := range map[string]float64{
		`coffer_sessions_total{outcome="ok"}`:              3,
		`coffer_session_duration_seconds_count`:            3,
		`coffer_definition_serial`:                         1,
		`coffer_definition_last_load_success`:              1,
		`coffer_definition_loads_total{result="accepted"}`: 1,
	} {
		if got := e.series[series]; got != want {
			t.Errorf("%s: got %v, want %v", series, got, want)
		}
	}
	if e.series["coffer_store_bytes"] < 4096 {
		t.Errorf("coffer_store_bytes: got %v, want the store's files", e.series["coffer_store_bytes"])
	}
	if strings.Contains(string(body), "web") || strings.Contains(string(body), f.Clients["web"].Public().String()[:16]) {
		t.Error("the scrape names a client")
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on the scrape: %v\n%s", err, out)
		}
	}
	if resp, err := http.Get("http://" + addr + "/"); err != nil || resp.StatusCode != 404 {
		t.Errorf("GET /: %v %v, want 404", resp.Status, err)
	}
}
