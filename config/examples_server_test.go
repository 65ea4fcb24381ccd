package config_test

import (
	"os"
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
