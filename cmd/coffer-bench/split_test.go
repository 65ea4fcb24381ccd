package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/coffer"
)

// TestSplitFleet: -definitions N cuts a generated fleet into N
// definitions that parse, hold every client exactly once, and are listed
// in a server config that coffer-server's parser accepts.
func TestSplitFleet(t *testing.T) {
	const n, k = 103, 4
	opt := &options{clients: n, secrets: 3, valueSize: 8, definitions: k}
	pubs := make([]coffer.PublicKey, n)
	for i := range pubs {
		key, err := coffer.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pubs[i] = key.Public()
	}
	whole, _, err := definition(pubs, opt)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{dir: t.TempDir()}
	if fx.companionPriv, err = coffer.GenerateAuthorKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	fx.companionPub = fx.companionPriv.Public()
	if err := fx.writeParts(whole, n, k); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, p := range fx.parts {
		src, err := os.ReadFile(p.toml)
		if err != nil {
			t.Fatal(err)
		}
		def, err := coffer.ParseDefinition(src)
		if err != nil {
			t.Fatalf("%s does not parse: %v", p.name, err)
		}
		if len(def.Clients) != p.hi-p.lo || len(def.Clients) < n/k || len(def.Clients) > n/k+1 {
			t.Errorf("%s has %d clients for range %d..%d", p.name, len(def.Clients), p.lo, p.hi)
		}
		for _, c := range def.Clients {
			seen[c.Name]++
			if len(c.Values) != opt.secrets || c.Keys[0] != pubs[clientIndex(t, c.Name)] {
				t.Errorf("%s: client %s has %d values or the wrong key", p.name, c.Name, len(c.Values))
			}
			if idx := clientIndex(t, c.Name); idx < p.lo || idx >= p.hi {
				t.Errorf("%s holds client %s, outside its range", p.name, c.Name)
			}
		}
		if p.name != partName(i) {
			t.Errorf("part %d is named %s", i, p.name)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct clients over the parts, want %d", len(seen), n)
	}
	for name, c := range seen {
		if c != 1 {
			t.Errorf("client %s in %d parts", name, c)
		}
	}
	if err := fx.writeServerConfig(); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(fx.config)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(conf), "[[definitions]]") != k || filepath.Dir(fx.config) != fx.dir {
		t.Errorf("server config:\n%s", conf)
	}
}

func clientIndex(t *testing.T, name string) int {
	t.Helper()
	for i := range 100_000 {
		if clientName(i) == name {
			return i
		}
	}
	t.Fatalf("no client index for %q", name)
	return -1
}

// TestScaleTargets: issue 19's targets are judged on the largest size,
// against the 10,000-client size where they compare the two.
func TestScaleTargets(t *testing.T) {
	ten := &scaleFig{Clients: 10_000, Definitions: 4, Storm: &stormFig{Sessions: 10_000, SessionsPerS: 2000}, C16: &loadFig{CPUPerSession: 400}}
	big := &scaleFig{Clients: 100_000, Definitions: 4, LoadTotalMs: 12_000, ReloadMs: 3000, OthersSPS: 2000, DuringSPS: 1900,
		LoadHWMMiB: 200, ReloadHWMMiB: 150, IdleRSSMiB: 120,
		Storm: &stormFig{Sessions: 100_000, SessionsPerS: 2100}, C16: &loadFig{CPUPerSession: 430}}
	sf := &scaleFigures{Secrets: 10, Sizes: []*scaleFig{ten, big}}
	met := func(ts []target) (n int, names []string) {
		for _, tg := range ts {
			if tg.Met {
				n++
			} else {
				names = append(names, tg.Name)
			}
		}
		return n, names
	}
	if n, bad := met(sf.targets()); n != 7 {
		t.Fatalf("all targets should be met: %d of 7; not met: %v", n, bad)
	}
	big.Storm.SessionsPerS, big.C16.CPUPerSession, big.DuringSPS, big.ReloadHWMMiB = 1900, 460, 1700, 300
	if n, bad := met(sf.targets()); n != 3 || len(bad) != 4 {
		t.Fatalf("after worsening four figures: %d met, not met %v", n, bad)
	}
	if ts := sf.targets(); strings.Contains(ts[0].Name, "*") {
		t.Errorf("a 100,000 x 10 in 4 run marks its targets: %q", ts[0].Name)
	}
}
