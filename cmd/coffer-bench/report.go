package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// figures is everything a run measured. It is printed as a table and as
// one JSON line; field names are stable so runs can be compared.
type figures struct {
	Time        string   `json:"time"`
	Revision    string   `json:"revision,omitempty"` // the commit coffer-bench was built from
	GoVersion   string   `json:"go"`
	CPUs        int      `json:"cpus"`
	Clients     int      `json:"clients"`
	Secrets     int      `json:"secrets"`
	ValueSize   int      `json:"value_size"`
	PhaseS      float64  `json:"phase_s"`
	Rounds      int      `json:"rounds"`
	Conc        []int    `json:"conc"`
	StormConc   int      `json:"storm_conc"`
	Quick       bool     `json:"quick"`
	ServerFlags []string `json:"server_flags,omitempty"`
	// LoadAvg is the machine's 1-minute load average at the start and
	// the end: other busy processes show up in every figure.
	LoadAvg [2]float64 `json:"loadavg"`

	DefinitionBytes int     `json:"definition_bytes"`
	ShardBytes      int     `json:"shard_bytes"`
	SealMs          float64 `json:"seal_ms"`
	SealMethod      string  `json:"seal_method"`
	ReadyMs         float64 `json:"ready_ms"`
	ReadyMethod     string  `json:"ready_method"`
	LoadTotalMs     float64 `json:"load_total_ms"`
	ReadyRSSMiB     float64 `json:"ready_rss_mib"`
	IdleRSSMiB      float64 `json:"idle_rss_mib"`
	LoadHWMMiB      float64 `json:"load_hwm_mib"`

	Storm map[string]*stormFig           `json:"storm"`
	Load  map[string]map[string]*loadFig `json:"load"`

	X25519Us    float64            `json:"x25519_us"`
	FixedBaseUs float64            `json:"fixed_base_us"`
	TCPConnUs   float64            `json:"tcp_conn_us"`
	FloorUs     float64            `json:"floor_us"`
	FloorRatio  float64            `json:"coffer_over_floor_c16"`
	Ratios      map[string]float64 `json:"ratios"`

	ColdStart   coldFig  `json:"cold_start"`
	FinalRSSMiB float64  `json:"final_rss_mib"`
	FinalHWMMiB float64  `json:"final_hwm_mib"`
	CPUProfile  string   `json:"cpuprofile,omitempty"`
	Targets     []target `json:"targets"`
	Notes       []string `json:"notes,omitempty"`
}

// loadFig is one target at one concurrency: medians over the rounds of
// each figure, and the sums of sessions and errors.
type loadFig struct {
	SessionsPerS  float64 `json:"sessions_per_s"`
	Sessions      int64   `json:"sessions"`
	Errors        int64   `json:"errors"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	P999Ms        float64 `json:"p999_ms"`
	CPUPerSession float64 `json:"cpu_us_per_session"`
	RSSMiB        float64 `json:"rss_mib"`
	HWMMiB        float64 `json:"hwm_mib"`
	// SpreadCPU and SpreadSPS are how far the round furthest from the
	// median is from it, in percent of the median, for CPU per session
	// and sessions/s: issue 17's "steady" wants every round within 15%.
	SpreadCPU   float64 `json:"spread_cpu_pct"`
	SpreadSPS   float64 `json:"spread_sps_pct"`
	ErrorSample string  `json:"error_sample,omitempty"`
}

// Spread is the larger of the two spreads.
func (l *loadFig) Spread() float64 { return max(l.SpreadCPU, l.SpreadSPS) }

// maxSteadyPct is issue 17's bound on a load phase's spread.
const maxSteadyPct = 15

// stormFig is one target's boot storm.
type stormFig struct {
	Sessions      int64   `json:"sessions"`
	Errors        int64   `json:"errors"`
	ElapsedMs     float64 `json:"elapsed_ms"`
	SessionsPerS  float64 `json:"sessions_per_s"`
	P99Ms         float64 `json:"p99_ms"`
	CPUPerSession float64 `json:"cpu_us_per_session"`
	RSSBeforeMiB  float64 `json:"rss_before_mib"`
	PeakMiB       float64 `json:"peak_rss_mib"`
	PeakSince     string  `json:"peak_since"` // "storm" (VmHWM reset just before) or "start"
	ErrorSample   string  `json:"error_sample,omitempty"`
}

// coldFig is the client's cold start.
type coldFig struct {
	Runs     int     `json:"runs"`
	Errors   int     `json:"errors"`
	MedianMs float64 `json:"median_ms"`
	P90Ms    float64 `json:"p90_ms"`
	MinMs    float64 `json:"min_ms"`
	// HelpMedianMs is the median wall time of coffer-client -h: the
	// process start-up floor on this machine at this moment.
	HelpMedianMs float64 `json:"help_median_ms"`
	// EmptyMedianMs is the median wall time of a static Go program that
	// does nothing, run after each cold start; EmptyRatio is the median
	// of the cold start's time over it, run by run (issue 17's target).
	// Both are 0 when there was no empty program.
	EmptyMedianMs float64 `json:"empty_median_ms"`
	EmptyRatio    float64 `json:"empty_ratio"`
	// FloorMedianMs is the median wall time of the floor program (a TCP
	// dial and the client's key exchange, floorProgram), run after each
	// empty program; FloorRatio is the median of its time over the empty
	// program's, run by run. Both are 0 when there was no floor program.
	FloorMedianMs float64 `json:"floor_median_ms"`
	FloorRatio    float64 `json:"floor_ratio"`
	ErrorSample   string  `json:"error_sample,omitempty"`
}

// target is one of issue 6's targets, with what was measured.
type target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

func newFigures(opt *options) *figures {
	f := &figures{
		Time:        time.Now().UTC().Format(time.RFC3339),
		Revision:    revision(),
		LoadAvg:     [2]float64{loadAvg(), 0},
		GoVersion:   runtime.Version(),
		CPUs:        runtime.NumCPU(),
		Clients:     opt.clients,
		Secrets:     opt.secrets,
		ValueSize:   opt.valueSize,
		PhaseS:      opt.duration.Seconds(),
		Rounds:      opt.rounds,
		Conc:        opt.conc,
		StormConc:   opt.stormConc,
		Quick:       opt.quick,
		ServerFlags: opt.serverFlags,
		Storm:       map[string]*stormFig{},
		Load:        map[string]map[string]*loadFig{},
		Ratios:      map[string]float64{},
	}
	for _, t := range targets {
		f.Load[t] = map[string]*loadFig{}
	}
	return f
}

// revision returns the VCS revision stamped into the binary, with
// "+dirty" when the tree had local changes, else git's HEAD, or "".
func revision() string {
	var rev, dirty string
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = &debug.BuildInfo{}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		// Built without VCS stamping: ask git about the directory we
		// run in (make bench runs in the repository).
		out, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil {
			return ""
		}
		rev = strings.TrimSpace(string(out))
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return rev + dirty
}

func newStormFig(out *phaseOut, before memStat, reset bool) *stormFig {
	r := out.res
	s := &stormFig{
		Sessions:     r.Sessions,
		Errors:       r.Errors,
		ElapsedMs:    ms(r.Elapsed),
		SessionsPerS: perSecond(r.Sessions, r.Elapsed),
		P99Ms:        ms(r.P99),
		RSSBeforeMiB: mib(before.RSS),
		PeakMiB:      mib(out.mem.HWM),
		PeakSince:    "start",
	}
	if reset {
		s.PeakSince = "storm"
	}
	if r.Sessions > 0 {
		s.CPUPerSession = us(out.cpu) / float64(r.Sessions)
	}
	if len(r.ErrorSamples) > 0 {
		s.ErrorSample = r.ErrorSamples[0]
	}
	return s
}

// newLoadFig takes the median of each figure over the rounds.
func newLoadFig(outs []*phaseOut) *loadFig {
	var sps, p50, p99, p999, cpu, rss, hwm []float64
	lf := &loadFig{}
	for _, o := range outs {
		r := o.res
		lf.Sessions += r.Sessions
		lf.Errors += r.Errors
		if lf.ErrorSample == "" && len(r.ErrorSamples) > 0 {
			lf.ErrorSample = r.ErrorSamples[0]
		}
		sps = append(sps, perSecond(r.Sessions, r.Elapsed))
		p50 = append(p50, ms(r.P50))
		p99 = append(p99, ms(r.P99))
		p999 = append(p999, ms(r.P999))
		if r.Sessions > 0 {
			cpu = append(cpu, us(o.cpu)/float64(r.Sessions))
		}
		rss = append(rss, mib(o.mem.RSS))
		hwm = append(hwm, mib(o.mem.HWM))
	}
	lf.SessionsPerS, lf.P50Ms, lf.P99Ms, lf.P999Ms = median(sps), median(p50), median(p99), median(p999)
	lf.CPUPerSession, lf.RSSMiB, lf.HWMMiB = median(cpu), median(rss), median(hwm)
	lf.SpreadCPU, lf.SpreadSPS = spread(cpu), spread(sps)
	return lf
}

// spread is how far the value furthest from the median of xs is from
// it, in percent of the median; 0 for fewer than two values.
func spread(xs []float64) float64 {
	m := median(xs)
	if len(xs) < 2 || m == 0 {
		return 0
	}
	var d float64
	for _, x := range xs {
		d = max(d, math.Abs(x/m-1))
	}
	return 100 * d
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// finish computes the floor, the ratios and the targets.
func (f *figures) finish() {
	f.LoadAvg[1] = loadAvg()
	for _, c := range f.Conc {
		k := concKey(c)
		co, tl, mt := f.Load["coffer"][k], f.Load["tls"][k], f.Load["mtls"][k]
		f.Ratios["cpu_coffer_over_tls_"+k] = ratio(co.CPUPerSession, tl.CPUPerSession)
		f.Ratios["cpu_coffer_over_mtls_"+k] = ratio(co.CPUPerSession, mt.CPUPerSession)
		f.Ratios["sps_coffer_over_tls_"+k] = ratio(co.SessionsPerS, tl.SessionsPerS)
		f.Ratios["sps_coffer_over_mtls_"+k] = ratio(co.SessionsPerS, mt.SessionsPerS)
		if tx, ok := f.Load["tls-x25519"][k]; ok {
			f.Ratios["cpu_coffer_over_tls_x25519_"+k] = ratio(co.CPUPerSession, tx.CPUPerSession)
			f.Ratios["sps_coffer_over_tls_x25519_"+k] = ratio(co.SessionsPerS, tx.SessionsPerS)
		}
	}
	if tcp, ok := f.Load["tcp"]["c16"]; ok {
		f.TCPConnUs = tcp.CPUPerSession
		f.FloorUs = f.TCPConnUs + laddersPerSession*f.X25519Us + fixedBasePerSession*f.FixedBaseUs
		f.FloorRatio = ratio(f.Load["coffer"]["c16"].CPUPerSession, f.FloorUs)
	}
	f.Targets = f.targets()
}

// targets evaluates issue 17's targets (they replace issue 6's). Those stated for 10,000 clients
// x 10 secrets say so when the run used other sizes.
func (f *figures) targets() []target {
	var ts []target
	add := func(name, want, got string, met bool) {
		ts = append(ts, target{Name: name, Want: want, Got: got, Met: met})
	}
	// Targets stated for 10,000 x 10 get a mark when this run used
	// other sizes; printReport explains it.
	full := ""
	if !f.fullSize() {
		full = "*"
	}
	for _, c := range []string{"c16", "c256"} {
		co, ok := f.Load["coffer"][c]
		if !ok {
			continue
		}
		tl, mt := f.Load["tls"][c], f.Load["mtls"][c]
		if tl == nil || mt == nil {
			continue
		}
		rm, rt := f.Ratios["cpu_coffer_over_mtls_"+c], f.Ratios["cpu_coffer_over_tls_"+c]
		add("cpu/session "+c+" vs TLS", "<= 0.8x", fmt.Sprintf("%.2fx (%.0f vs %.0f us)", rt, co.CPUPerSession, tl.CPUPerSession), rt > 0 && rt <= 0.8)
		add("cpu/session "+c+" vs mTLS", "<= 0.6x", fmt.Sprintf("%.2fx (%.0f vs %.0f us)", rm, co.CPUPerSession, mt.CPUPerSession), rm > 0 && rm <= 0.6)
	}
	if co, ok := f.Load["coffer"]["c16"]; ok {
		tl := f.Load["tls"]["c16"]
		if tl == nil {
			tl = &loadFig{}
		}
		st := f.Ratios["sps_coffer_over_tls_c16"]
		add("sessions/s c16 vs TLS", ">= 1.2x", fmt.Sprintf("%.2fx (%.0f vs %.0f)", st, co.SessionsPerS, tl.SessionsPerS), st >= 1.2)
		add("p99 c16 vs TLS", "<= TLS's", fmt.Sprintf("%.2f vs %.2f ms", co.P99Ms, tl.P99Ms), co.Sessions > 0 && tl.Sessions > 0 && co.P99Ms <= tl.P99Ms)
	}
	if w, phase := f.steadiest(); phase != "" {
		add("steady: worst load phase spread", fmt.Sprintf("<= %d%%", maxSteadyPct), fmt.Sprintf("%.0f%% (%s)", w, phase), w <= maxSteadyPct)
	}
	if s, ok := f.Storm["coffer"]; ok {
		tl := f.Storm["tls"]
		if tl == nil {
			tl = &stormFig{}
		}
		r := ratio(s.ElapsedMs, tl.ElapsedMs)
		add("boot storm vs TLS", "<= 0.8x, 0 errors", fmt.Sprintf("%.2fx (%.2f vs %.2f s), %d errors", r, s.ElapsedMs/1000, tl.ElapsedMs/1000, s.Errors), r > 0 && r <= 0.8 && s.Errors == 0 && s.Sessions == int64(f.Clients))
		add("peak RSS in storm"+full, "<= 64 MiB", fmt.Sprintf("%.1f MiB (VmHWM since %s)", s.PeakMiB, s.PeakSince), s.PeakMiB <= 64)
	}
	add("idle RSS"+full, "<= 40 MiB", fmt.Sprintf("%.1f MiB", f.IdleRSSMiB), f.IdleRSSMiB > 0 && f.IdleRSSMiB <= 40)
	add("sealed + ready"+full, "< 1.5 s", fmt.Sprintf("%.2f s", f.LoadTotalMs/1000), f.LoadTotalMs < 1500)
	if f.ColdStart.Runs > 0 {
		c := f.ColdStart
		got := fmt.Sprintf("%.2fx (%.1f vs %.1f ms, %d runs)", c.EmptyRatio, c.MedianMs, c.EmptyMedianMs, c.Runs)
		if c.FloorRatio > 0 {
			got += fmt.Sprintf("; floor program %.2fx", c.FloorRatio)
		}
		if c.EmptyRatio == 0 {
			got = fmt.Sprintf("no empty program (%.1f ms, %d runs)", c.MedianMs, c.Runs)
		}
		add("client cold start vs empty Go program", "<= 1.6x", got, c.EmptyRatio > 0 && c.EmptyRatio <= 1.6 && c.Errors == 0)
	}
	return ts
}

// steadiest returns coffer's largest load phase spread and its phase
// ("" when no phase had two rounds).
func (f *figures) steadiest() (worst float64, phase string) {
	if f.Rounds < 2 {
		return 0, ""
	}
	for _, k := range slices.Sorted(maps.Keys(f.Load["coffer"])) {
		if l := f.Load["coffer"][k]; phase == "" || l.Spread() > worst {
			worst, phase = l.Spread(), k
		}
	}
	return worst, phase
}

func (f *figures) fullSize() bool { return f.Clients == 10000 && f.Secrets == 10 }

var targetNames = map[string]string{
	"coffer":     "coffer/2",
	"tls":        "TLS 1.3 hybrid",
	"tls-x25519": "TLS 1.3 X25519",
	"mtls":       "mTLS 1.3 hybrid",
	"tcp":        "TCP floor",
}

// printReport prints the table and, last, the JSON line.
func printReport(w io.Writer, f *figures) error {
	printHeader(w, f)
	printStorm(w, f)
	for _, c := range f.Conc {
		printConc(w, f, c)
	}
	printFloor(w, f)
	printTargets(w, f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(f)
}

// printHeader prints the run's parameters and the load figures.
func printHeader(w io.Writer, f *figures) {
	fmt.Fprintf(w, "\ncoffer-bench %s  %s  %s  %d CPUs  %d clients x %d secrets of %d B  phases %gs x %d rounds (medians)\n\n",
		f.Revision, f.Time, f.GoVersion, f.CPUs, f.Clients, f.Secrets, f.ValueSize, f.PhaseS, f.Rounds)
	if len(f.ServerFlags) > 0 {
		fmt.Fprintf(w, "coffer-server flags added: %s\n", strings.Join(f.ServerFlags, " "))
	}
	fmt.Fprintf(w, "load average %.1f at the start, %.1f at the end (other processes on the machine are in every figure)\n\n", f.LoadAvg[0], f.LoadAvg[1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "definition\t%.1f MiB TOML, encoded shard %d B\t\n", float64(f.DefinitionBytes)/(1<<20), f.ShardBytes)
	fmt.Fprintf(tw, "seal\t%.0f ms\t%s\n", f.SealMs, f.SealMethod)
	fmt.Fprintf(tw, "server start to ready\t%.0f ms\t%s\n", f.ReadyMs, f.ReadyMethod)
	fmt.Fprintf(tw, "server RSS idle\t%.1f MiB\tVmRSS 1 s after ready (%.1f MiB at ready; VmHWM %.1f MiB)\n", f.IdleRSSMiB, f.ReadyRSSMiB, f.LoadHWMMiB)
	tw.Flush()
}

// printStorm prints the boot storm table and its error samples.
func printStorm(w io.Writer, f *figures) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "boot storm\tclients\terrors\ttime\tsessions/s\tp99\tCPU/session\tRSS before\tpeak RSS\t\n")
	for _, t := range stormTargets {
		s, ok := f.Storm[t]
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f s\t%.0f\t%.2f ms\t%.0f us\t%.1f MiB\t%.1f MiB\t\n", targetNames[t],
			s.Sessions, s.Errors, s.ElapsedMs/1000, s.SessionsPerS, s.P99Ms, s.CPUPerSession, s.RSSBeforeMiB, s.PeakMiB)
	}
	tw.Flush()
	for _, t := range stormTargets {
		if s, ok := f.Storm[t]; ok && s.ErrorSample != "" {
			fmt.Fprintf(w, "  %s storm error: %s\n", targetNames[t], s.ErrorSample)
		}
	}
}

// printConc prints the table of every target at concurrency c, with the
// coffer/TLS and coffer/mTLS ratios.
func printConc(w io.Writer, f *figures, c int) {
	k := concKey(c)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "concurrency %d\tsessions/s\tp50\tp99\tp99.9\terrors\tCPU/session\tspread\tRSS\tVmHWM\t\n", c)
	for _, t := range targets {
		l := f.Load[t][k]
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f ms\t%.2f ms\t%.2f ms\t%d\t%.0f us\t%.0f%%\t%.1f MiB\t%.1f MiB\t\n", targetNames[t],
			l.SessionsPerS, l.P50Ms, l.P99Ms, l.P999Ms, l.Errors, l.CPUPerSession, l.Spread(), l.RSSMiB, l.HWMMiB)
	}
	for _, t := range targets {
		if e := f.Load[t][k].ErrorSample; e != "" {
			fmt.Fprintf(tw, "  %s error:\t%s\n", targetNames[t], e)
		}
	}
	fmt.Fprintf(tw, "coffer/TLS\t%.2fx\t\t\t\t\t%.2fx\t\t\t\t\n", f.Ratios["sps_coffer_over_tls_"+k], f.Ratios["cpu_coffer_over_tls_"+k])
	fmt.Fprintf(tw, "coffer/TLS X25519\t%.2fx\t\t\t\t\t%.2fx\t\t\t\t\n", f.Ratios["sps_coffer_over_tls_x25519_"+k], f.Ratios["cpu_coffer_over_tls_x25519_"+k])
	fmt.Fprintf(tw, "coffer/mTLS\t%.2fx\t\t\t\t\t%.2fx\t\t\t\t\n", f.Ratios["sps_coffer_over_mtls_"+k], f.Ratios["cpu_coffer_over_mtls_"+k])
	tw.Flush()
}

// printFloor prints the protocol floor, the client's cold start, the
// server's memory at the end, the profile and the notes.
func printFloor(w io.Writer, f *figures) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "protocol floor: TCP accept+close %.0f us (server CPU at c16) + %d x X25519 %.1f us (crypto/ecdh, cached key) + %d x fixed-base %.1f us (Se) = %.0f us; coffer/floor %.2fx\n",
		f.TCPConnUs, laddersPerSession, f.X25519Us, fixedBasePerSession, f.FixedBaseUs, f.FloorUs, f.FloorRatio)
	if f.ColdStart.Runs > 0 {
		fmt.Fprintf(w, "client cold start (coffer-client get --format json): median %.1f ms, p90 %.1f ms, min %.1f ms, %d runs, %d errors; coffer-client -h median %.1f ms; empty Go program median %.1f ms, get/empty %.2fx\n",
			f.ColdStart.MedianMs, f.ColdStart.P90Ms, f.ColdStart.MinMs, f.ColdStart.Runs, f.ColdStart.Errors, f.ColdStart.HelpMedianMs,
			f.ColdStart.EmptyMedianMs, f.ColdStart.EmptyRatio)
		if f.ColdStart.FloorRatio > 0 {
			fmt.Fprintf(w, "  floor program (TCP dial, ML-KEM-768 key pair and decapsulation, X25519 key pair and 3 multiplications): median %.1f ms, floor/empty %.2fx\n",
				f.ColdStart.FloorMedianMs, f.ColdStart.FloorRatio)
		}
		if f.ColdStart.ErrorSample != "" {
			fmt.Fprintf(w, "  first cold start error: %s\n", f.ColdStart.ErrorSample)
		}
	}
	fmt.Fprintf(w, "server at the end: VmRSS %.1f MiB, VmHWM %.1f MiB\n", f.FinalRSSMiB, f.FinalHWMMiB)
	if f.CPUProfile != "" {
		fmt.Fprintf(w, "coffer-server CPU profile: %s (go tool pprof -top %s)\n", f.CPUProfile, f.CPUProfile)
	}
	for _, n := range f.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// printTargets prints issue 17's targets, met or not.
func printTargets(w io.Writer, f *figures) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "target\twant\tgot\t\n")
	met := 0
	for _, t := range f.Targets {
		mark := "NOT MET"
		if t.Met {
			mark, met = "met", met+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Want, t.Got, mark)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d of %d targets met\n", met, len(f.Targets))
	if !f.fullSize() {
		fmt.Fprintf(w, "* the target is stated for 10000 clients x 10 secrets; this run used %d x %d\n", f.Clients, f.Secrets)
	}
	fmt.Fprintln(w)
}
