package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/config"
)

// TestExampleServerConfig parses examples/server.toml, so the documented
// example cannot drift from the parser.
func TestExampleServerConfig(t *testing.T) {
	data, err := os.ReadFile("../examples/server.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.ParseServer(data)
	if err != nil {
		t.Fatalf("examples/server.toml: %v", err)
	}
	if c.Listen != ":9187" || len(c.Trusted) != 1 {
		t.Errorf("got listen %q and %d trusted keys, want \":9187\" and 1", c.Listen, len(c.Trusted))
	}
	if d := config.DefaultServer(); c.Limits != d.Limits || c.Audit != d.Audit || c.Log != d.Log {
		t.Errorf("the example's limits, audit or log settings differ from the defaults it documents:\ngot  %+v %+v %+v\nwant %+v %+v %+v",
			c.Limits, c.Audit, c.Log, d.Limits, d.Audit, d.Log)
	}
}

// TestExampleServerDefinitionsTable parses the commented [[definitions]]
// example of examples/server.toml, uncommented, in place of the top-level
// definition and trusted keys.
func TestExampleServerDefinitionsTable(t *testing.T) {
	data, err := os.ReadFile("../examples/server.toml")
	if err != nil {
		t.Fatal(err)
	}
	var table []string
	for _, line := range strings.Split(string(data), "\n") {
		if len(table) > 0 && !strings.HasPrefix(line, "# ") {
			break
		}
		if line == "# [[definitions]]" || len(table) > 0 {
			table = append(table, strings.TrimPrefix(line, "# "))
		}
	}
	if len(table) != 4 {
		t.Fatalf("found %d lines of the [[definitions]] example, want 4: %q", len(table), table)
	}
	c, err := config.ParseServer([]byte(strings.Join(table, "\n")))
	if err != nil {
		t.Fatalf("the [[definitions]] example: %v", err)
	}
	if l := c.DefinitionList(); len(l) != 1 || l[0].Name != "web-team" || len(l[0].Trusted) != 1 {
		t.Errorf("the [[definitions]] example gives %+v", l)
	}
}
