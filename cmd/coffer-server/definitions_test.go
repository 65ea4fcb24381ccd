package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDefinitionsTable (issue 19, item 1, the part that is done): a config
// that lists one [[definitions]] table serves that definition with that
// table's trusted author; --definition over such a config is refused, and
// a config listing two definitions is refused with a clear error before
// anything starts (several definitions per server are not served yet).
func TestDefinitionsTable(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	table := func(name, path string) string {
		return fmt.Sprintf("[[definitions]]\nname = %q\npath = %q\ntrusted = [%q]\n", name, path, f.Author.Public().String())
	}
	writeConf := func(s string) {
		if err := os.WriteFile(f.Conf, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := []string{"--key", f.KeyFile, "--data-dir", f.DataDir, "--log-level", "debug", "--config", f.Conf}

	writeConf(table("team-a", f.DefPath+".other") + table("team-b", f.DefPath))
	out, stderr, code := f.run(t, nil, append([]string{"check"}, base...)...)
	if code == 0 || !strings.Contains(out+stderr, "2 definitions are listed") {
		t.Errorf("two definitions: exit %d, stderr %q; want a refusal naming the count", code, stderr)
	}

	writeConf(table("team-b", f.DefPath))
	out, stderr, code = f.run(t, nil, append([]string{"check", "--definition", f.DefPath}, base...)...)
	if code == 0 || !strings.Contains(out+stderr, "[[definitions]]") {
		t.Errorf("--definition over [[definitions]]: exit %d, stderr %q; want a refusal", code, stderr)
	}

	p := f.launch(t, nil, nil, append(base, "--listen", "127.0.0.1:0")...)
	p.WaitReady()
	p.WaitListening()
	r, err := p.fetch("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := wantShard(r, "one"); err != nil || r.Version.Serial != 1 {
		t.Errorf("served through [[definitions]]: serial %d, %v", r.Version.Serial, err)
	}
	p.stop()
}
