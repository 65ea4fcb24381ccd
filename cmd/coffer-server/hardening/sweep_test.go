package hardening_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// The corruption sweep (issue 13): a real data directory, every file in
// it, each kind of single damage at offsets sampled across the file, and
// for each case the real coffer-server started on a copy. Each case must
// end in exactly one of three outcomes:
//
//   - served: the server starts and serves the current definition;
//   - rebuilt: it says so in its log (quarantine or rebuild) and then
//     serves the current definition;
//   - refused: it exits with status 1 and one "coffer-server: error:"
//     line naming what is damaged.
//
// Never a panic, never an older or partial definition. check and
// inspect run on the damaged copy first and must not panic either.

// sweepClients and sweepPad make a store of several tables: about 3 MB
// of shards against 2 MiB memtables and 1 MiB base tables. sweepBig
// clients hold a value above the 64 KiB value threshold, so the value
// log holds data too.
const (
	sweepClients = 2500
	sweepPad     = 900
	sweepBig     = 3
	sweepBigLen  = 80 << 10
)

// Damage kinds.
const (
	damageFlip     = "flip"     // one bit at the offset
	damageZero     = "zero"     // 4 KiB of zeros from the offset
	damageTruncate = "truncate" // cut at the offset
	damageDelete   = "delete"
	damageEmpty    = "empty"
)

// sweepStore is the template data directory and what it must serve.
type sweepStore struct {
	f       *fixture
	tag     string
	sealed  []byte                        // the current sealed file
	extra   map[string]*coffer.PrivateKey // extra clients' keys
	files   []string                      // paths under the data directory, relative
	auditN  int                           // audit records in the template
	kindsOf map[string]string             // file -> kind
}

// buildSweepStore loads serial 1, then serial 2 by SIGHUP, fetches, and
// stops cleanly, restarting once more so the value log has several files.
func buildSweepStore(t *testing.T) *sweepStore {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("template store built in %v", time.Since(start).Round(time.Millisecond)) }()
	f := newFixture(t, relaxedLimits, "web")
	s := &sweepStore{f: f, extra: map[string]*coffer.PrivateKey{}, kindsOf: map[string]string{}}
	for i := range sweepClients + sweepBig {
		s.extra[sweepName(i)] = genKey(t)
	}
	f.Next(t, s.defTOML("one"))
	p := f.start(t)
	p.mustServe(t, "web", "one")
	s.tag = "two"
	s.sealed = f.Next(t, s.defTOML(s.tag))
	if line := p.reload(); !strings.Contains(line, "serving definition") {
		t.Fatalf("reload: %s", line)
	}
	for range 5 {
		p.mustServe(t, "web", s.tag)
	}
	s.checkServes(t, p)
	p.Stop()
	// A last run killed with -9 leaves its audit records in the memtable
	// log, whose damage must be counted.
	p = f.start(t)
	before := markCount(t, f.DataDir)
	for range 5 {
		p.mustServe(t, "web", s.tag)
	}
	waitMark(t, f.DataDir, before+5)
	p.Kill()
	err := filepath.WalkDir(f.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return nil // the admin socket a killed server leaves: not data
		}
		rel, _ := filepath.Rel(f.DataDir, path)
		s.files = append(s.files, rel)
		s.kindsOf[rel] = fileKind(rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "data")
	copyTree(t, f.DataDir, cp)
	s.auditN = s.auditCount(t, append(f.Args(), "--data", cp))
	return s
}

// markCount reads the record count from the store's audit.mark (seq,
// count, CRC; shard/auditmark.go).
func markCount(t *testing.T, dir string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "audit.mark"))
	if err != nil || len(b) != 20 {
		t.Fatalf("audit.mark: %v (%d bytes)", err, len(b))
	}
	return binary.BigEndian.Uint64(b[8:16])
}

// waitMark waits until the server has written want audit records to
// Badger, as its audit.mark says after each batch.
func waitMark(t *testing.T, dir string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for markCount(t, dir) < want {
		if time.Now().After(deadline) {
			t.Fatalf("audit.mark counts %d records after 30 s, want %d", markCount(t, dir), want)
		}
		runtime.Gosched()
	}
}

func sweepName(i int) string {
	if i >= sweepClients {
		return fmt.Sprintf("big%d", i-sweepClients)
	}
	return fmt.Sprintf("c%d", i)
}

// defTOML gives web the fixture's three tagged values, each extra client
// one tagged value padded to sweepPad bytes, and each big client one of
// sweepBigLen bytes.
func (s *sweepStore) defTOML(tag string) []byte {
	var b bytes.Buffer
	b.WriteString("[clients]\n")
	fmt.Fprintf(&b, "web = %q\n", s.f.Clients["web"].Public().String())
	for i := range sweepClients + sweepBig {
		fmt.Fprintf(&b, "%s = %q\n", sweepName(i), s.extra[sweepName(i)].Public().String())
	}
	fmt.Fprintf(&b, "[web]\na = \"%s-a\"\nb = \"%s-b\"\ncanary = \"%s %s\"\n", tag, tag, canary, tag)
	for i := range sweepClients + sweepBig {
		fmt.Fprintf(&b, "[%s]\nx = %q\n", sweepName(i), s.value(tag, i))
	}
	return b.Bytes()
}

// value is extra client i's value in the definition tagged tag.
func (s *sweepStore) value(tag string, i int) string {
	n := sweepPad
	if i >= sweepClients {
		n = sweepBigLen
	}
	v := fmt.Sprintf("%s-%d-", tag, i)
	return v + strings.Repeat("p", n-len(v))
}

// checkServes fetches web, a spread of extra clients and every big one,
// and checks each gets the current definition whole.
func (s *sweepStore) checkServes(t testing.TB, p *proc) error {
	r, err := p.fetch("web")
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	if err := wantShard(r, s.tag); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	idx := []int{0, sweepClients / 3, sweepClients - 1}
	for i := range sweepBig {
		idx = append(idx, sweepClients+i)
	}
	for _, i := range idx {
		r, err := fetchFrom(p.Addr, s.f.Server.Public(), s.extra[sweepName(i)], 10*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", sweepName(i), err)
		}
		if got := string(r.Shard["x"].Text); len(r.Shard) != 1 || got != s.value(s.tag, i) {
			return fmt.Errorf("%s: serial %d, %d values: not the current definition", sweepName(i), r.Version.Serial, len(r.Shard))
		}
	}
	return nil
}

// auditCount runs coffer-server audit with args and returns the records
// it lists plus those its open of the store reports lost.
func (s *sweepStore) auditCount(t *testing.T, args []string) int {
	t.Helper()
	out, errOut, code := run(t, serverBin, nil, append([]string{"audit", "--json", "--limit", "0"}, args...)...)
	if code != 0 {
		t.Fatalf("audit: exit %d: %s", code, errOut)
	}
	return strings.Count(out, "\n") + reportedLost(errOut)
}

// reportedLost is the number of audit records a log reports lost.
func reportedLost(logs string) int {
	m := lostRE.FindStringSubmatch(logs)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// lostRE finds the count of audit records the server reports lost.
var lostRE = regexp.MustCompile(`audit records missing from the store.* lost=(\d+)`)

// fileKind names a file of the data directory for the tally.
func fileKind(rel string) string {
	base := filepath.Base(rel)
	switch {
	case strings.HasPrefix(rel, "sealed"+string(filepath.Separator)):
		return "kept sealed"
	case filepath.Ext(base) != "":
		return strings.TrimPrefix(filepath.Ext(base), ".")
	}
	return base
}

// sweepCase is one damage to one file.
type sweepCase struct {
	file string
	kind string
	off  int64
	// noDefinition removes the definition file, so a rebuild has only the
	// kept sealed file.
	noDefinition bool
	admin        bool // also run check and inspect on the damaged copy
}

func (c sweepCase) String() string {
	s := c.kind + " " + c.file
	if c.kind == damageFlip || c.kind == damageZero || c.kind == damageTruncate {
		s += fmt.Sprintf("@%d", c.off)
	}
	if c.noDefinition {
		s += " (no definition file)"
	}
	return s
}

// cases returns perFile offsets for each offset kind in every file, plus
// deletion and emptying. The offsets are spread evenly, jittered by rng,
// across the part of the file that holds data (up to its last non-zero
// byte: Badger preallocates its memtable logs, whose records then take a
// few hundred bytes of 4 MiB); the first offset is 0 and the last is the
// file's last byte.
func (s *sweepStore) cases(perFile int, rng *mrand.Rand) []sweepCase {
	var out []sweepCase
	for _, rel := range s.files {
		b, err := os.ReadFile(filepath.Join(s.f.DataDir, rel))
		if err != nil || len(b) == 0 {
			continue
		}
		size := int64(len(b))
		used := int64(bytes.LastIndexFunc(b, func(r rune) bool { return r != 0 }) + 1)
		used = max(used, 1)
		for _, kind := range []string{damageFlip, damageZero, damageTruncate} {
			for i := range perFile {
				var off int64
				switch {
				case i == 0:
					off = 0
				case i == perFile-1:
					off = size - 1
				default:
					step := max(used/int64(perFile-1), 1)
					off = min(int64(i-1)*step+rng.Int64N(step), used-1)
				}
				out = append(out, sweepCase{file: rel, kind: kind, off: off})
			}
		}
		out = append(out, sweepCase{file: rel, kind: damageDelete}, sweepCase{file: rel, kind: damageEmpty})
	}
	for i := range out {
		out[i].noDefinition = rng.IntN(2) == 0
		out[i].admin = rng.IntN(4) == 0
	}
	return out
}

// damage applies c to the file at path.
func damage(c sweepCase, path string) error {
	switch c.kind {
	case damageDelete:
		return os.Remove(path)
	case damageEmpty:
		return os.Truncate(path, 0)
	case damageTruncate:
		return os.Truncate(path, c.off)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if c.kind == damageFlip {
		b[c.off] ^= 1 << (c.off % 8)
	} else {
		clear(b[c.off:min(int64(len(b)), c.off+4096)])
	}
	return os.WriteFile(path, b, 0o600)
}

// Outcomes.
const (
	outcomeServed  = "served"
	outcomeRebuilt = "rebuilt"
	outcomeRefused = "refused"
)

// runCase copies the template, damages it, runs check and inspect if
// asked, starts the server and returns the outcome, or fails the test.
func (s *sweepStore) runCase(t *testing.T, c sweepCase) string {
	dir := t.TempDir()
	data, def := filepath.Join(dir, "data"), filepath.Join(dir, "secrets.sealed")
	copyTree(t, s.f.DataDir, data)
	if !c.noDefinition {
		if err := os.WriteFile(def, s.sealed, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := damage(c, filepath.Join(data, c.file)); err != nil {
		t.Fatal(err)
	}
	args := append(s.f.Args(), "--data", data, "--definition", def)
	if c.admin {
		for _, cmd := range []string{"check", "inspect"} {
			out, errOut, code := run(t, serverBin, nil, append([]string{cmd}, args...)...)
			if crashed(out+errOut) || code > 2 {
				t.Fatalf("%s on %s: exit %d\n%s%s", cmd, c, code, out, errOut)
			}
		}
	}
	p := s.f.launch(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	if !p.readyOrExit(60 * time.Second) {
		logs := p.Logs.All()
		var ee *exec.ExitError
		if !errors.As(p.Err(), &ee) || ee.ExitCode() != 1 || crashed(logs) {
			t.Fatalf("%s: exited with %v, want a refusal with status 1:\n%s", c, p.Err(), logs)
		}
		if n := strings.Count(logs, "coffer-server: error:"); n != 1 {
			t.Fatalf("%s: refused with %d error lines, want 1:\n%s", c, n, logs)
		}
		t.Logf("%s: refused: %s", c, grepLines(logs, "coffer-server: error:"))
		return outcomeRefused
	}
	p.WaitListening()
	if err := s.checkServes(t, p); err != nil {
		t.Fatalf("%s: started but %v\nlog:\n%s", c, err, p.Logs.All())
	}
	p.Stop()
	logs := p.Logs.All()
	if crashed(logs) {
		t.Fatalf("%s: panic in the log:\n%s", c, logs)
	}
	s.checkKept(t, c, logs)
	// Every audit record is in the store or reported lost.
	if n := reportedLost(logs); n > 0 {
		t.Logf("%s: the server reported %d audit records lost\n%s", c, n, grepLines(logs, "WARN|ERROR"))
	}
	if got, want := s.auditCount(t, args)+reportedLost(logs), s.auditN+sweepSessions; got != want {
		t.Fatalf("%s: %d audit records stored or reported lost, want %d:\n%s", c, got, want, logs)
	}
	if strings.Contains(logs, `msg="corrupt store quarantined"`) || strings.Contains(logs, "rebuilding from the kept sealed file") {
		return outcomeRebuilt
	}
	return outcomeServed
}

// sweepSessions is how many fetches checkServes makes.
const sweepSessions = 1 + 3 + sweepBig

// checkKept checks that damage to the kept sealed file was noticed: kept
// again from the definition file, or reported loudly without one.
func (s *sweepStore) checkKept(t *testing.T, c sweepCase, logs string) {
	if s.kindsOf[c.file] != "kept sealed" {
		return
	}
	want := "kept the definition file again"
	if c.noDefinition {
		want = "THE KEPT SEALED FILE IS DAMAGED OR MISSING"
	}
	if !strings.Contains(logs, want) {
		t.Fatalf("%s: no %q in the log:\n%s", c, want, logs)
	}
}

// crashed reports a Go panic or fatal error in a process's output.
func crashed(out string) bool {
	return strings.Contains(out, "panic:") || strings.Contains(out, "fatal error:") || strings.Contains(out, "goroutine ")
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		if !e.Type().IsRegular() {
			return nil // a socket left by a killed server
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sweep runs the cases, two at a time, and logs the tally by file kind
// and outcome.
func sweep(t *testing.T, s *sweepStore, cases []sweepCase) {
	var mu sync.Mutex
	tally := map[string]map[string]int{}
	sem := make(chan struct{}, 2)
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.String(), "/", "_"), func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			got := s.runCase(t, c)
			mu.Lock()
			defer mu.Unlock()
			k := s.kindsOf[c.file]
			if tally[k] == nil {
				tally[k] = map[string]int{}
			}
			tally[k][got]++
		})
	}
	t.Cleanup(func() {
		var kinds []string
		for k := range tally {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		total := 0
		for _, k := range kinds {
			n := tally[k][outcomeServed] + tally[k][outcomeRebuilt] + tally[k][outcomeRefused]
			total += n
			t.Logf("%-12s %4d cases: served %4d, rebuilt %4d, refused %4d", k, n,
				tally[k][outcomeServed], tally[k][outcomeRebuilt], tally[k][outcomeRefused])
		}
		t.Logf("%d cases over %d files", total, len(s.files))
	})
}

// TestCorruptionSweep is the bounded sample that make test runs: two
// cases for each kind of file, the damage kinds taken in turn so that each
// appears four or five times (TestStressCorruptionSweep runs them all).
func TestCorruptionSweep(t *testing.T) {
	s := buildSweepStore(t)
	rng := mrand.New(mrand.NewPCG(13, sweepSeed(t)))
	all := s.cases(3, rng)
	kinds := []string{damageFlip, damageZero, damageTruncate, damageDelete, damageEmpty}
	seen := map[string]int{}
	var sample []sweepCase
	for range 2 {
		for _, i := range rng.Perm(len(all)) {
			c := all[i]
			fk := s.kindsOf[c.file]
			if seen[fk] < 2 && c.kind == kinds[len(sample)%len(kinds)] {
				seen[fk]++
				sample = append(sample, c)
			}
		}
	}
	t.Logf("files: %v", s.files)
	sweep(t, s, sample)
}

// sweepSeed picks the offsets' seed: COFFER_SWEEP_SEED to repeat a run,
// else the time. It is logged.
func sweepSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("COFFER_SWEEP_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("COFFER_SWEEP_SEED: %v", err)
		}
	}
	t.Logf("seed %d (COFFER_SWEEP_SEED repeats it)", seed)
	return seed
}
