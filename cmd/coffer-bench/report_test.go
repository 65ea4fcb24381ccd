package main

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/report.golden")

// fixedFigures fills every field printReport prints, error samples and
// notes included, with values no run would round the same way twice.
func fixedFigures() *figures {
	f := &figures{
		Time: "2026-12-04T22:00:00Z", Revision: "3b539a1", GoVersion: "go1.26.8", CPUs: 2,
		Clients: 1000, Secrets: 10, ValueSize: 32, PhaseS: 1.5, Rounds: 3, Conc: []int{1, 16}, StormConc: 64,
		ServerFlags: []string{"--rate", "1e6"}, LoadAvg: [2]float64{1.25, 2.75},
		DefinitionBytes: 3 << 20, ShardBytes: 734, SealMs: 412.4, SealMethod: "companion seal",
		ReadyMs: 1234.6, ReadyMethod: "sd_notify READY=1", LoadTotalMs: 1647, ReadyRSSMiB: 30.25,
		IdleRSSMiB: 28.5, LoadHWMMiB: 61.75,
		Storm: map[string]*stormFig{
			"coffer": {Sessions: 1000, ElapsedMs: 2345.6, SessionsPerS: 426.3, P99Ms: 310.2, CPUPerSession: 812,
				RSSBeforeMiB: 28.5, PeakMiB: 44.1, PeakSince: "storm"},
			"tls": {Sessions: 998, Errors: 2, ElapsedMs: 2999.9, SessionsPerS: 332.7, P99Ms: 401.5, CPUPerSession: 950,
				RSSBeforeMiB: 12.1, PeakMiB: 40.2, PeakSince: "start", ErrorSample: "read: connection reset by peer"},
		},
		Load:     map[string]map[string]*loadFig{},
		X25519Us: 48.2, FixedBaseUs: 17.9, TCPConnUs: 61.4, FloorUs: 223.9, FloorRatio: 3.14,
		Ratios: map[string]float64{"sps_coffer_over_tls_c1": 1.21, "cpu_coffer_over_tls_c1": 0.87,
			"sps_coffer_over_mtls_c1": 1.42, "cpu_coffer_over_mtls_c1": 0.66,
			"sps_coffer_over_tls_c16": 1.13, "cpu_coffer_over_tls_c16": 0.91},
		ColdStart: coldFig{Runs: 21, Errors: 1, MedianMs: 7.3, P90Ms: 9.8, MinMs: 6.1, HelpMedianMs: 2.4,
			EmptyMedianMs: 4.1, EmptyRatio: 1.78, FloorMedianMs: 5.9, FloorRatio: 1.44,
			ErrorSample: "exit status 3"},
		FinalRSSMiB: 33.3, FinalHWMMiB: 70.1, CPUProfile: "/tmp/cpu.pprof",
		Targets: []target{{"sessions/s c16 vs TLS", ">= 1.1x", "1.13x", true}, {"p99 c16", "< 5 ms", "6.20 ms", false}},
		Notes:   []string{"the machine was busy", "second note"},
	}
	for i, t := range targets {
		f.Load[t] = map[string]*loadFig{}
		for _, c := range f.Conc {
			l := &loadFig{SessionsPerS: 1000.5 / float64(i+c), Sessions: int64(100 * c), P50Ms: 0.5 * float64(c),
				P99Ms: 1.25 * float64(c+i), P999Ms: 2.5 * float64(c), CPUPerSession: 300 + float64(i), RSSMiB: 20.5, HWMMiB: 30.25,
				SpreadCPU: float64(3 * c), SpreadSPS: float64(i + 2)}
			if t == "mtls" && c == 16 {
				l.Errors, l.ErrorSample = 3, "handshake timeout"
			}
			f.Load[t][concKey(c)] = l
		}
	}
	return f
}

// TestPrintReport compares the printed report of fixed figures with
// testdata/report.golden byte for byte; -update rewrites it.
func TestPrintReport(t *testing.T) {
	var b bytes.Buffer
	if err := printReport(&b, fixedFigures()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("got report:\n%s\nwant:\n%s", b.Bytes(), want)
	}
}

// TestSpread checks a load phase's spread: the round furthest from the
// median, in percent of it, for CPU per session and sessions/s, and the
// steady target it feeds.
func TestSpread(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{100}, 0},
		{[]float64{100, 100, 100}, 0},
		{[]float64{90, 100, 120}, 20},
		{[]float64{80, 100, 105}, 20},
		{[]float64{0, 0, 0}, 0},
	} {
		if got := spread(c.xs); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("spread(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
	round := func(sessions int64, cpu time.Duration) *phaseOut {
		return &phaseOut{res: phaseResult{Sessions: sessions, Elapsed: time.Second}, cpu: cpu}
	}
	lf := newLoadFig([]*phaseOut{round(1000, 300*time.Millisecond), round(1100, 330*time.Millisecond), round(800, 320*time.Millisecond)})
	// CPU/session 300, 300, 400 us: median 300, spread 33%; sessions/s
	// 1000, 1100, 800: median 1000, spread 20%.
	if math.Abs(lf.SpreadCPU-100.0/3) > 1e-6 || math.Abs(lf.SpreadSPS-20) > 1e-6 || lf.Spread() != lf.SpreadCPU {
		t.Fatalf("spreads cpu %v sps %v", lf.SpreadCPU, lf.SpreadSPS)
	}
	f := &figures{Rounds: 3, Load: map[string]map[string]*loadFig{"coffer": {
		"c16": {SpreadCPU: 9}, "c256": {SpreadSPS: 16}, "c1": {SpreadCPU: 2}},
		"tls": {"c16": {}}, "mtls": {"c16": {}}}}
	steady := func() *target {
		for _, tg := range f.targets() {
			if strings.HasPrefix(tg.Name, "steady") {
				return &tg
			}
		}
		return nil
	}
	if tg := steady(); tg == nil || tg.Met || tg.Got != "16% (c256)" {
		t.Fatalf("steady target %+v, want unmet at 16%% (c256)", tg)
	}
	f.Load["coffer"]["c256"].SpreadSPS = 15
	if tg := steady(); tg == nil || !tg.Met {
		t.Fatalf("steady target %+v, want met at 15%%", tg)
	}
	f.Rounds = 1
	if tg := steady(); tg != nil {
		t.Fatalf("steady target %+v with one round", tg)
	}
}

// TestIssue17Targets checks the targets against issue 17's thresholds on
// figures made up to sit on each side of them.
func TestIssue17Targets(t *testing.T) {
	lf := func(cpu, sps, p99 float64) *loadFig {
		return &loadFig{CPUPerSession: cpu, SessionsPerS: sps, P99Ms: p99, Sessions: 100}
	}
	f := &figures{Clients: 10000, Secrets: 10,
		Load: map[string]map[string]*loadFig{
			"coffer": {"c16": lf(240, 3000, 10), "c256": lf(260, 3000, 10)},
			"tls":    {"c16": lf(300, 2500, 12), "c256": lf(300, 2500, 12)},
			"mtls":   {"c16": lf(400, 2000, 14), "c256": lf(420, 2000, 14)},
		},
		Storm: map[string]*stormFig{
			"coffer": {Sessions: 10000, ElapsedMs: 3000},
			"tls":    {Sessions: 10000, ElapsedMs: 4000},
		},
		Ratios: map[string]float64{
			"cpu_coffer_over_tls_c16": 0.8, "cpu_coffer_over_mtls_c16": 0.6,
			"cpu_coffer_over_tls_c256": 260.0 / 300, "cpu_coffer_over_mtls_c256": 260.0 / 420,
			"sps_coffer_over_tls_c16": 1.2,
		},
	}
	want := map[string]bool{
		"cpu/session c16 vs TLS": true, "cpu/session c16 vs mTLS": true,
		"cpu/session c256 vs TLS": false, "cpu/session c256 vs mTLS": false,
		"sessions/s c16 vs TLS": true, "p99 c16 vs TLS": true,
		"boot storm vs TLS": true,
	}
	got := map[string]bool{}
	for _, tg := range f.targets() {
		got[tg.Name] = tg.Met
	}
	for name, met := range want {
		if m, ok := got[name]; !ok || m != met {
			t.Errorf("target %q: met %v (present %v), want %v", name, m, ok, met)
		}
	}
	f.Storm["coffer"].ElapsedMs = 3300 // 0.825x TLS
	for _, tg := range f.targets() {
		if tg.Name == "boot storm vs TLS" && tg.Met {
			t.Errorf("storm at 0.825x TLS counted as met")
		}
	}
}
